"""Documentation generated from the code: the supported operators and targets in README.md.

`python -m codegen.docs` rewrites the marked sections of README.md; a test checks that they
are current, so the README cannot drift from the registry and the target table.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

from codegen.model.ir import DType
from codegen.ops import DOCUMENTED_TYPES, registry, supported_types
from codegen.targets import TARGETS

_SECTION = re.compile(r"(<!-- (?P<name>[a-z]+):begin -->\n).*?(<!-- (?P=name):end -->)", re.S)


def _summary(module_name: str) -> str:
    """The module docstring's first paragraph without its leading list of opcodes."""
    module = importlib.import_module(module_name)
    first = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())
    # "LOGISTIC and TANH, int8 -> int8 ...": drop the opcodes, keep the facts.
    first = re.sub(r"^[A-Z0-9_]+((, | and )[A-Z0-9_]+)*[:,]?\s*", "", first)
    return first.rstrip(".")


def _module_types(module_name: str, opcode: str) -> set[DType]:
    kernels = registry()[opcode]
    return {t for t in supported_types(opcode)
            if (kernels.get(t) or kernels.get(None)).__module__ == module_name}


def operator_table() -> str:
    """One row per set of opcodes, with a column per activation type (int8, int16) saying
    whether it has a kernel, and what the modules handling it support: the first paragraph
    of each module's docstring (an operator with a module per type has both, int8 first)."""
    modules: dict[str, list[str]] = {}
    for opcode, kernels in registry().items():
        for module_name in dict.fromkeys(prepare.__module__ for prepare in kernels.values()):
            modules.setdefault(module_name, []).append(opcode)
    rows_by_opcodes: dict[tuple[str, ...], list[str]] = {}
    for module_name, opcodes in modules.items():
        rows_by_opcodes.setdefault(tuple(sorted(opcodes)), []).append(module_name)
    types = " | ".join(t.numpy_name for t in DOCUMENTED_TYPES)
    rows = [f"| operators | {types} | what is supported |",
            "|---|" + ":-:|" * len(DOCUMENTED_TYPES) + "---|"]
    for opcodes, names in sorted(rows_by_opcodes.items()):
        covered = [_module_types(name, opcodes[0]) for name in names]
        ordered = [name for _, name in sorted(zip([min(c, key=_rank) for c in covered], names,
                                                  strict=True), key=lambda pair: _rank(pair[0]))]
        marks = " | ".join("yes" if any(t in c for c in covered) else "—"
                           for t in DOCUMENTED_TYPES)
        text = "; ".join(_summary(name) for name in ordered)
        rows.append(f"| {', '.join(opcodes)} | {marks} | {text} |")
    return "\n".join(rows) + "\n"


def _rank(dtype: DType) -> int:
    return list(DType).index(dtype)


def target_table() -> str:
    rows = ["| target | core flags | runs on | notes |", "|---|---|---|---|"]
    for target in TARGETS.values():
        flags = " ".join(target.machine_flags) or "native compiler"
        runs = ("this machine" if target.is_host
                else f"QEMU `{target.qemu_machine}` (`-cpu {target.qemu_cpu}`)")
        rows.append(f"| `{target.name}` | `{flags}` | {runs} | {target.note} |")
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
