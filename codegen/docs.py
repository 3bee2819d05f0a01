"""Documentation generated from the code: the supported operators and targets in README.md.

`python -m codegen.docs` rewrites the marked sections of README.md; a test checks that they
are current, so the README cannot drift from the registry and the target table.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

from codegen.ops import registry
from codegen.targets import TARGETS

_SECTION = re.compile(r"(<!-- (?P<name>[a-z]+):begin -->\n).*?(<!-- (?P=name):end -->)", re.S)


def _summary(opcode: str) -> str:
    module = importlib.import_module(registry()[opcode].__module__)
    # The docstring's first paragraph, on one line.
    first = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())
    # "FULLY_CONNECTED: int8 in/out, ...": drop the leading opcode list, keep the facts.
    return re.sub(r"^[A-Z0-9_]+(, [A-Z0-9_]+)*:\s*", "", first).rstrip(".")


def operator_table() -> str:
    rows = ["| operator | what is supported |", "|---|---|"]
    rows += [f"| {opcode} | {_summary(opcode)} |" for opcode in sorted(registry())]
    return "\n".join(rows) + "\n"


def target_table() -> str:
    rows = ["| target | core flags | runs on |", "|---|---|---|"]
    for target in TARGETS.values():
        flags = " ".join(target.machine_flags) or "native compiler"
        runs = "this machine" if target.is_host else f"QEMU `{target.qemu_machine}`"
        rows.append(f"| `{target.name}` | `{flags}` | {runs} |")
    return "\n".join(rows) + "\n"


SECTIONS = {"operators": operator_table, "targets": target_table}


def render_readme(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        return match.group(1) + SECTIONS[match.group("name")]() + match.group(3)

    return _SECTION.sub(replace, text)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else Path("README.md")
    text = path.read_text(encoding="utf-8")
    path.write_text(render_readme(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
