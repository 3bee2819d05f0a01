"""The cycle model of `codegen bench`, Python side: the QEMU plugin, its arguments, and
what it writes.

The model itself is C: firmware/qemu/cycle_model.c decodes Thumb instructions and holds
each core's timing table and the rules it applies (its header comment lists them all),
and firmware/qemu/bench_plugin.c applies it to what QEMU executes, with the wait states.
The plugin writes, at each layer mark, the totals so far and the instructions and cycles
of every instruction address since the previous mark; this module turns that into cycles
per layer, per instruction class and per address (`codegen bench --profile`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from codegen.errors import CodegenError
from codegen.resources import firmware_dir
from codegen.targets import Target

PLUGIN_SOURCES = ("bench_plugin.c", "cycle_model.c")
PLUGIN_HEADERS = ("cycle_model.h", "qemu_plugin_api.h")
FETCH_LINE_BYTES = 16  # a 128-bit flash line, as on STM32F4/L4 parts
MAX_WAIT_STATES = 15
MARK_CLASS = "mark"

# Where each core's timings come from (BENCHMARKS.md and `codegen bench` say it).
TIMING_SOURCES = {
    "cortex-m0": "Cortex-M0 TRM",
    "cortex-m3": "Cortex-M3 TRM",
    "cortex-m4": "Cortex-M4 TRM",
    "cortex-m7": "an approximation of the dual-issue Cortex-M7 (no published table)",
    "cortex-m33": "an approximation of the Cortex-M33 (no published table)",
    "cortex-m55": "an approximation of the Cortex-M55 (no published table; Helium as "
                  "dual-beat pipes after LLVM's scheduling model)",
}
# Cores whose model leaves --wait-states out: the M55's vector loads move 64 bits a beat
# and its systems run from TCM or caches, not the Cortex-M4-class flash modelled here.
NO_WAIT_STATES = frozenset({"cortex-m55"})


def has_cycle_model(target: Target) -> bool:
    """Whether the cycle model has a table for `target`'s core. The others (RISC-V) get
    exact instruction counts only: the plugin runs with core=none."""
    return target.name in TIMING_SOURCES


@dataclass(frozen=True)
class CycleOptions:
    """What the cycle model assumes besides the core's table."""

    wait_states: int = 0  # per flash access (data reads and fetch-line changes)
    small_multiplier: bool = False  # Cortex-M0: the 32-cycle multiplier

    def describe(self, target: str) -> dict[str, object]:
        return {"core": target, "timings": TIMING_SOURCES.get(target, ""),
                "wait_states": self.wait_states, "fetch_line_bytes": FETCH_LINE_BYTES,
                "small_multiplier": self.small_multiplier}


ZERO_WAIT_STATES = CycleOptions()


def check_options(target: Target, options: CycleOptions) -> None:
    """Refuse options that do not apply to `target`, in one line."""
    if target.is_host and (options.wait_states or options.small_multiplier):
        raise CodegenError("--wait-states and --small-multiplier apply to the cycle model of "
                           "the Cortex-M targets; the host is measured by the wall clock")
    if not target.is_host and not has_cycle_model(target) and (
            options.wait_states or options.small_multiplier):
        raise CodegenError(f"--wait-states and --small-multiplier apply to the cycle model, "
                           f"which has no table for {target.name}: it reports instructions "
                           "only")
    if options.wait_states and target.name in NO_WAIT_STATES:
        raise CodegenError(f"--wait-states does not apply to {target.name}: its model "
                           "(Helium loads, TCM) has zero wait states only; run it without "
                           "--wait-states")
    if options.small_multiplier and target.name != "cortex-m0":
        raise CodegenError(f"--small-multiplier applies to cortex-m0 only ({target.name} has "
                           "a single-cycle multiplier)")
    if not 0 <= options.wait_states <= MAX_WAIT_STATES:
        raise CodegenError(f"--wait-states must be 0 to {MAX_WAIT_STATES}, "
                           f"not {options.wait_states}")


def flash_region(target: Target) -> tuple[int, int]:
    """[start, end) of the board's CODE region (its linker script): code and constants."""
    script = firmware_dir() / target.platform / f"{target.board}.ld"
    match = re.search(r"CODE\s*\([a-z]*\)\s*:\s*ORIGIN\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*"
                      r"LENGTH\s*=\s*(\d+)\s*([KM]?)", script.read_text())
    if match is None:
        raise CodegenError(f"cannot find the CODE region in {script}")
    start = int(match[1], 0)
    length = int(match[2]) * {"": 1, "K": 1024, "M": 1024 * 1024}[match[3]]
    return start, start + length


def plugin_arguments(target: Target, options: CycleOptions) -> list[str]:
    """The plugin's model arguments for `target` (the mark and output file aside)."""
    if not has_cycle_model(target):
        return ["core=none"]
    arguments = [f"core={target.name}"]
    if options.small_multiplier:
        arguments.append("small_multiplier=1")
    if options.wait_states:
        start, end = flash_region(target)
        arguments += [f"wait_states={options.wait_states}", f"flash={start:#x}:{end:#x}",
                      f"line={FETCH_LINE_BYTES}"]
    return arguments


def build_plugin(build_dir: Path) -> Path | None:
    """The QEMU plugin compiled for this machine into build_dir (once per version of its
    sources); None when there is no host C compiler or it fails."""
    source_dir = firmware_dir() / "qemu"
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        return None
    digest = hashlib.sha256()
    for name in (*PLUGIN_SOURCES, *PLUGIN_HEADERS):
        digest.update((source_dir / name).read_bytes())
    library = build_dir / f"bench_plugin-{digest.hexdigest()[:16]}.so"
    if not library.is_file():
        build_dir.mkdir(parents=True, exist_ok=True)
        partial = library.with_suffix(".tmp")
        command = [cc, "-shared", "-fPIC", "-O2", "-o", str(partial),
                   *(str(source_dir / name) for name in PLUGIN_SOURCES)]
        if subprocess.run(command, capture_output=True, check=False).returncode != 0:
            return None
        partial.replace(library)
    return library


# -- what the plugin writes ---------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """What ran at one instruction address."""

    cls: str
    executions: int
    cycles: int


@dataclass(frozen=True)
class Mark:
    """The plugin's totals at one mark and the addresses that ran since the previous one."""

    instructions: int
    cycles: int
    rows: dict[int, Row]


def parse_marks(text: str) -> list[Mark]:
    marks: list[Mark] = []
    rows: dict[int, Row] = {}
    try:
        for line in text.splitlines():
            fields = line.split()
            if not fields:
                continue
            if fields[0] == "mark":
                rows = {}
                marks.append(Mark(int(fields[1]), int(fields[2]), rows))
            elif fields[0] == "error":
                raise CodegenError(f"the QEMU plugin failed: {' '.join(fields[1:])}")
            elif fields[0] != "total" and marks:
                rows[int(fields[0], 16)] = Row(fields[1], int(fields[2]), int(fields[3]))
    except (IndexError, ValueError):
        raise CodegenError("the QEMU plugin wrote a malformed report") from None
    return marks


def merge(parts: Iterable[dict[int, Row]]) -> dict[int, Row]:
    """The rows of several intervals added up, by address."""
    total: dict[int, Row] = {}
    for rows in parts:
        for address, row in rows.items():
            old = total.get(address)
            total[address] = row if old is None else Row(
                row.cls, old.executions + row.executions, old.cycles + row.cycles)
    return total


def by_class(rows: dict[int, Row]) -> dict[str, dict[str, int]]:
    """{class: {"instructions", "cycles"}}, most cycles first; marks left out."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows.values():
        if row.cls != MARK_CLASS:
            sums[row.cls][0] += row.executions
            sums[row.cls][1] += row.cycles
    ordered = sorted(sums.items(), key=lambda item: (-item[1][1], item[0]))
    return {cls: {"instructions": n, "cycles": c} for cls, (n, c) in ordered}


# -- the per-address profile --------------------------------------------------------------


@dataclass(frozen=True)
class ProfileLine:
    address: int
    function: str
    cls: str
    executions: int
    cycles: int
    disassembly: str


# "00000130 <name>:" and "  130:\t6808      \tldr\tr0, [r1, #0]"
_FUNCTION = re.compile(r"([0-9a-f]+) <(.+)>:$")
_INSTRUCTION = re.compile(r"\s*([0-9a-f]+):\t(?:[0-9a-f]{4} ?){1,2}\s*\t(.*)$")


def disassembly(executable: Path, target: Target) -> dict[int, tuple[str, str]]:
    """address -> (function, instruction text) from objdump."""
    try:
        listing = subprocess.run([target.toolchain_prefix + "objdump", "-d",
                                  *target.objdump_flags, str(executable)],
                                 capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise CodegenError(f"cannot disassemble {executable.name}: {error}") from None
    found: dict[int, tuple[str, str]] = {}
    function = "?"
    for line in listing.splitlines():
        if match := _FUNCTION.match(line):
            function = match[2]
        elif match := _INSTRUCTION.match(line):
            found[int(match[1], 16)] = (function, " ".join(match[2].split()))
    return found


def profile(rows: dict[int, Row], executable: Path, target: Target) -> list[ProfileLine]:
    """Every instruction address that ran (marks left out), in address order."""
    listing = disassembly(executable, target)
    lines = []
    for address in sorted(rows):
        row = rows[address]
        if row.cls == MARK_CLASS:
            continue
        function, text = listing.get(address, ("?", "?"))
        lines.append(ProfileLine(address, function, row.cls, row.executions, row.cycles,
                                 text))
    return lines


def format_profile(lines: list[ProfileLine], total_cycles: int, limit: int = 12) -> list[str]:
    """The functions that take most cycles, each instruction annotated (the `limit`
    hottest functions; the others summed on one line)."""
    functions: dict[str, list[ProfileLine]] = defaultdict(list)
    for line in lines:
        functions[line.function].append(line)
    ranked = sorted(functions.items(), key=lambda item: -sum(p.cycles for p in item[1]))
    out = []
    for name, body in ranked[:limit]:
        cycles = sum(p.cycles for p in body)
        executed = sum(p.executions for p in body)
        share = 100 * cycles / total_cycles if total_cycles else 0.0
        out += ["", f"  {_printable(name)}: {cycles:,} cycles ({share:.1f}%), "
                    f"{executed:,} instructions, CPI {cycles / max(executed, 1):.2f}",
                f"  {'address':>10} {'executions':>11} {'cycles':>11}  {'class':<12} "
                "instruction"]
        out += [f"  {p.address:>10x} {p.executions:>11,} {p.cycles:>11,}  {p.cls:<12} "
                f"{_printable(p.disassembly)}" for p in body]
    rest = ranked[limit:]
    if rest:
        cycles = sum(p.cycles for _, body in rest for p in body)
        out += ["", f"  {len(rest)} more functions: {cycles:,} cycles"]
    return out


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)
