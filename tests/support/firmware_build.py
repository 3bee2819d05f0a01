"""Compile, link and run small bare-metal programs for the tests of the integrations
(Arduino sketch, several models in one firmware): the repository's startup code and linker
scripts, the target's flags from the targets table, and QEMU with a timeout."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from codegen.runner import qemu_command
from codegen.targets import get_target
from support import policy

CORTEX_M_DIR = policy.REPO_ROOT / "firmware" / "cortex-m"
WARNINGS = ("-Wall", "-Wextra", "-Werror")


def run_tool(command: Sequence[str]) -> str:
    done = subprocess.run(list(command), capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, f"$ {' '.join(command)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def compile_object(source: Path, target: str, out: Path, *, cxx: bool = False,
                   flags: Sequence[str] = ()) -> Path:
    """One object for a Cortex-M target: C99 (or C++ with -x c++) with warnings as errors."""
    machine = get_target(target)
    tool = machine.toolchain_prefix + ("g++" if cxx else "gcc")
    language = ["-x", "c++", "-std=gnu++11", "-fno-exceptions", "-fno-rtti"] if cxx else \
        ["-std=c99"]
    run_tool([policy.require_tool(tool), *machine.machine_flags, *language, *WARNINGS, "-O2",
              "-ffunction-sections", "-fdata-sections", f"-I{CORTEX_M_DIR}", *flags, "-c",
              str(source), "-o", str(out)])
    return out


def link(objects: Sequence[Path], target: str, out: Path, *,
         libraries: Sequence[Path] = ()) -> Path:
    """A firmware image: the objects plus the startup code, for the target's board, linked
    by gcc (C++ objects compiled without exceptions and RTTI need no C++ library)."""
    machine = get_target(target)
    startup = [compile_object(CORTEX_M_DIR / f"{name}.c", target,
                              out.parent / f"{out.stem}-{name}.o")
               for name in ("startup", "semihost")]
    run_tool([policy.require_tool(machine.toolchain_prefix + "gcc"), *machine.machine_flags,
              *map(str, objects),
              *map(str, startup), *map(str, libraries), "--specs=nano.specs",
              "-nostartfiles", "-Wl,--gc-sections", f"-L{CORTEX_M_DIR}",
              f"-T{CORTEX_M_DIR / (machine.board + '.ld')}", "-o", str(out)])
    return out


def run_under_qemu(elf: Path, target: str, timeout: float = 120) -> str:
    """The semihosting console of a firmware run that exits with status 0."""
    policy.require_tool("qemu-system-arm")
    done = subprocess.run(qemu_command(elf, get_target(target)), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stdout
    return done.stdout
