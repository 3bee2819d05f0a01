"""`codegen bench`: what one inference costs on a target, whole and layer by layer.

The model is built with the release flags into the benchmark harness
(firmware/harness/bench_main.c), which runs one seeded random sample: a warm-up invoke,
then the measured invoke. The build defines the generated code's CODEGEN_PROFILE_LAYER(k)
hook, which marks the start of each layer and the end of the last (the profile_*.h
headers in firmware/).

Cross targets run under QEMU with `-icount shift=0,align=off,sleep=off`. There a mark
is a single instruction that changes nothing (`mov r11, r11` on Cortex-M, the HINT
`slti x0, x0, 0x2a5` on RISC-V), and a QEMU plugin (firmware/qemu/bench_plugin.c,
compiled with the host C compiler) counts every instruction executed and records the
count at each mark: exact counts for the whole invoke and for each layer, of code that is
the normal build's plus one instruction per layer (not counted). The same plugin charges
every instruction the cycles of the core's timing table (the cycle model, codegen/cycles.py
and firmware/qemu/cycle_model.c): cycles per invoke, per layer, per instruction class and
per instruction address (`profile`); the model has tables for Thumb cores only, so
the RISC-V targets report instructions without cycles. The harness
also reads
the SysTick around the invoke: the QEMU boards tick once per
`Target.instructions_per_tick` instructions, a cross-check, and the fallback (whole invoke
only, to that resolution) when QEMU cannot load the plugin. The host reports wall-clock
medians over many invokes instead, marks being calls that read the clock.

Memory: flash from the object files' sections (`size -A`): the generated model's code and
its constant data; the rest of the image is the harness. RAM: the arena (the size of the
arena symbol in the image), the model's other static data (the input and output buffers
the harness passes, any static data of NAME.c), and the peak stack of the measured invoke
(the harness paints the stack before it and finds the high-water mark after it). The
benchmark harness's own RAM (its tables, the fault handler's stack) is reported apart.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codegen import cycles
from codegen.build import build_firmware, check_toolchain
from codegen.cycles import ZERO_WAIT_STATES, CycleOptions
from codegen.errors import CodegenError
from codegen.execute import HARNESS_NAME, pack_samples, write_harness_sources
from codegen.files import check_build_dir, claim_build_dir
from codegen.program import Program, load_program
from codegen.reference import run_reference
from codegen.runner import Run, run_harness
from codegen.targets import Target, get_target
from codegen.terminal import shown

OPTIMIZATIONS = ("0", "1", "2", "3", "s")
DEFAULT_OPTIMIZATION = "2"
DEFAULT_TIMEOUT = 600.0
INPUT_SEED = 0
MARKS_FILE = "marks.txt"
# BENCH_MARK() of firmware/PLATFORM/profile_*.h, by platform: mov r11, r11 (Thumb) and
# slti x0, x0, 0x2a5 (RISC-V, a 32-bit HINT).
MARK_ENCODINGS = {"cortex-m": 0x46DB, "riscv": 0x2A502013}
MARK_ENCODING = MARK_ENCODINGS["cortex-m"]
_CALIBRATION_MARKS = 3  # clock readings back to back before the invoke; the last opens it

METHOD_PLUGIN = "qemu-plugin"
METHOD_TIMER = "systick"
METHOD_WALL_CLOCK = "wall-clock"


@dataclass(frozen=True)
class LayerCost:
    index: int  # operator index in the model file
    op: str
    macs: int
    instructions: int | None = None  # Cortex-M
    nanoseconds: float | None = None  # host: median over the measured invokes
    elided: bool = False  # a view (RESHAPE, ...) that needs no code
    cycles: int | None = None  # Cortex-M, the cycle model
    cycles_by_class: dict[str, dict[str, int]] | None = None  # see cycles.by_class


@dataclass(frozen=True)
class BenchResult:
    model: str
    target: str
    optimization: str  # the -O level
    io_in_arena: bool
    numerics: str  # the numerics mode the C reproduces (codegen/numerics.py)
    method: str  # METHOD_PLUGIN, METHOD_TIMER or METHOD_WALL_CLOCK
    resolution: float | None  # instruction counts are multiples of it: 1 exact, else the
                            # SysTick's instructions per tick (Cortex-M)
    instructions: int | None  # one invoke (Cortex-M)
    nanoseconds: float | None  # one invoke, median (host)
    invokes: int  # measured invokes (1 under QEMU; the medians' sample count on the host)
    macs: int
    instructions_per_mac: float | None
    flash_code_bytes: int  # NAME.c's functions
    flash_const_bytes: int  # NAME.c's constant data (weights, biases, parameters)
    flash_harness_bytes: int | None  # the rest of the image (Cortex-M)
    arena_bytes: int
    static_bytes: int  # the model's static RAM besides the arena and state (I/O buffers)
    stack_bytes: int | None  # peak stack of the invoke (Cortex-M)
    ram_bytes: int  # arena + state + static + stack
    harness_ram_bytes: int | None  # the benchmark harness's own static RAM (Cortex-M)
    timer_instructions: int | None  # the invoke by the SysTick, a cross-check (Cortex-M)
    output_matches_reference: bool
    layers: list[LayerCost] = field(default_factory=list)
    state_bytes: int = 0  # NAME_STATE_SIZE: state kept between invokes (static RAM)
    cycles: int | None = None  # one invoke, the cycle model (Cortex-M with the plugin)
    cycles_per_instruction: float | None = None
    cycles_per_mac: float | None = None
    cycle_model: dict[str, object] | None = None  # core, timings, wait states, ...
    cycles_by_class: dict[str, dict[str, int]] | None = None  # instruction class ->
                                                              # instructions, cycles
    profile: list[cycles.ProfileLine] | None = None  # per address (`profile=True`)

    def as_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


# -- building ----------------------------------------------------------------------------


def bench_input(program: Program) -> list[np.ndarray]:
    """One seeded sample: integers over their whole range, floats standard normal."""
    rng = np.random.default_rng(INPUT_SEED)
    arrays = []
    for index in program.graph.inputs:
        t = program.graph.tensors[index]
        if t.dtype.is_integer:
            values = rng.integers(t.dtype.qmin, t.dtype.qmax + 1, size=(1, *t.shape))
        else:
            values = rng.standard_normal(size=(1, *t.shape))
        arrays.append(values.astype(t.dtype.np))
    return arrays


def plugin_library(build_dir: Path) -> Path | None:
    """The counting QEMU plugin, compiled for this machine into build_dir (once per version
    of its sources); None when there is no host C compiler."""
    return cycles.build_plugin(build_dir)


def _run_tool(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise CodegenError(f"{command[0]} is not installed") from None
    if result.returncode != 0:
        raise CodegenError(f"{' '.join(command[:2])} failed: {result.stderr.strip()}")
    return result.stdout


# -- parsing the harness's report ---------------------------------------------------------


@dataclass(frozen=True)
class _Report:
    outputs: bytes
    clock_unit: str
    clock_bits: int
    invokes: list[list[int]]  # clock readings of each measured invoke
    stack: int | None


def _parse_report(data: bytes, output_bytes: int) -> _Report:
    outputs, text = data[:output_bytes], data[output_bytes:].decode("ascii", errors="replace")
    lines = text.splitlines()
    if not lines or lines[0] != "codegen-bench 1" or lines[-1] != "end":
        raise CodegenError("the benchmark harness wrote an incomplete report")
    unit, bits, invokes, stack = "", 0, [], None
    for line in lines[1:-1]:
        key, *values = line.split()
        if key == "clock":
            unit, bits = values[0], int(values[1])
        elif key == "invoke":
            readings = [int(v) for v in values[1:]]
            if len(readings) != int(values[0]):
                raise CodegenError("the benchmark harness wrote a truncated invoke line")
            invokes.append(readings)
        elif key == "stack":
            stack = int(values[0]) if int(values[0]) >= 0 else None
    return _Report(outputs, unit, bits, invokes, stack)


def _plugin_marks(text: str, count: int) -> list[cycles.Mark]:
    """The plugin's report at the last `count` marks (those of the measured invoke)."""
    marks = cycles.parse_marks(text)
    if len(marks) < count:
        raise CodegenError(f"the QEMU plugin saw {len(marks)} marks, expected {count} or more")
    return marks[-count:]


def _count_regions(counts: list[int], running: int) -> tuple[int, list[int]]:
    """(whole invoke, each layer) from the plugin's counts at the marks of the measured
    invoke: before it, at each of the running+1 layer boundaries, after it. Each region
    starts with one mark instruction, which is not the model's."""
    if len(counts) != running + 3:
        raise CodegenError(f"the QEMU plugin recorded {len(counts)} marks in the invoke, "
                           f"expected {running + 3} for {running} layers")
    layers = [b - a - 1 for a, b in itertools.pairwise(counts[1:-1])]
    return counts[-1] - counts[0] - (len(counts) - 1), layers


def _clock_regions(readings: list[float], running: int | None) -> tuple[float, list[float]]:
    """(whole invoke, each layer) from the harness's clock readings of one invoke: three
    back to back (the cost of a reading), before the invoke, at the layer boundaries when
    the model calls the clock (`running` layers; None when it does not), after it."""
    expected = _CALIBRATION_MARKS + 1 + (running + 1 if running is not None else 0)
    if len(readings) != expected:
        raise CodegenError(f"the benchmark harness recorded {len(readings)} clock readings, "
                           f"expected {expected}")
    mark = min(readings[1] - readings[0], readings[2] - readings[1])
    opened = _CALIBRATION_MARKS - 1
    model = readings[opened + 1:-1]
    layers = [b - a - mark for a, b in itertools.pairwise(model)]
    regions = len(readings) - 1 - opened
    return readings[-1] - readings[opened] - regions * mark, layers


def _unwrap(readings: list[int], bits: int) -> list[int]:
    """Clock readings made monotonic (the SysTick wraps every 2^24 ticks)."""
    if bits >= 64:
        return readings
    modulus, out = 1 << bits, [readings[0]]
    for value in readings[1:]:
        out.append(out[-1] + (value - out[-1]) % modulus)
    return out


# -- measuring memory ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Sections:
    code: int = 0
    const: int = 0
    data: int = 0
    bss: int = 0


def _sections(path: Path, target: Target) -> _Sections:
    sums = {"code": 0, "const": 0, "data": 0, "bss": 0}
    for line in _run_tool([target.toolchain_prefix + "size", "-A", str(path)]).splitlines():
        fields = line.split()
        if len(fields) < 2 or not fields[1].isdigit():
            continue
        name, size = fields[0], int(fields[1])
        if name.startswith((".text", ".ARM.exidx", ".vectors")):
            sums["code"] += size
        elif name.startswith((".rodata", ".data.rel.ro")):
            sums["const"] += size
        elif name.startswith(".data"):
            sums["data"] += size
        elif name.startswith((".bss", "COMMON")):
            sums["bss"] += size
    return _Sections(**sums)


def _object(build_dir: Path, source: str) -> Path:
    found = [p for p in build_dir.glob("harness*.p/*.o")
             if p.name == f"{source}.o" or p.name.endswith(f"_{source}.o")]
    if len(found) != 1:
        raise CodegenError(f"cannot find the object file of {source} in {build_dir}")
    return found[0]


def _symbol_size(executable: Path, target: Target, pattern: str) -> int | None:
    listing = _run_tool([target.toolchain_prefix + "nm", "-S", "--defined-only",
                         str(executable)])
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 4 and re.fullmatch(pattern, fields[3]):
            return int(fields[1], 16)
    return None


@dataclass(frozen=True)
class _Memory:
    code: int
    const: int
    harness_flash: int | None
    arena: int
    state: int
    static: int
    harness_ram: int | None


def _measure_memory(program: Program, executable: Path, build_dir: Path,
                    target: Target) -> _Memory:
    model = _sections(_object(build_dir, f"{HARNESS_NAME}.c"), target)
    glue = _sections(_object(build_dir, "harness_glue.c"), target)
    symbol = "glue_arena" if program.plan.io_in_arena else f"{HARNESS_NAME}_arena"
    arena = _symbol_size(executable, target, rf"{symbol}(\.\d+)?")
    if arena is None:
        arena = 0 if program.plan.size == 0 else program.plan.size
    model_ram = model.data + model.bss + glue.data + glue.bss
    harness_flash = harness_ram = None
    if not target.is_host:
        image = _sections(executable, target)
        harness_flash = image.code + image.const + image.data - model.code - model.const \
            - model.data
        harness_ram = image.data + image.bss - model_ram
    state = program.state.size if program.state is not None else 0
    return _Memory(model.code, model.const + model.data, harness_flash, arena, state,
                   model_ram - arena - state, harness_ram)


# -- the benchmark ------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """What the benchmark harness measured for one sample."""

    method: str  # METHOD_PLUGIN, METHOD_TIMER or METHOD_WALL_CLOCK
    resolution: float | None  # see BenchResult.resolution
    outputs: bytes  # the model's outputs for the sample
    invokes: int  # measured invokes
    instructions: int | None = None  # the whole invoke (Cortex-M)
    layer_instructions: list[int] | None = None  # per marked layer (exact counts only)
    nanoseconds: float | None = None  # the whole invoke, median (host)
    layer_nanoseconds: list[float] | None = None  # per marked layer, medians (host)
    timer_instructions: int | None = None  # the whole invoke by the SysTick (Cortex-M)
    stack_bytes: int | None = None  # peak stack of the last measured invoke (Cortex-M)
    cycles: int | None = None  # the whole invoke, the cycle model (plugin only)
    layer_cycles: list[int] | None = None  # per marked layer
    rows: dict[int, cycles.Row] | None = None  # the whole invoke, per instruction address
    layer_rows: list[dict[int, cycles.Row]] | None = None  # per marked layer


def _run(executable: Path, target: Target, data: bytes, plugin_dir: Path,
         timeout: float, cycle_options: CycleOptions) -> tuple[Run, str]:
    if target.is_host:
        return run_harness(executable, target, data, timeout=timeout), METHOD_WALL_CLOCK
    plugin = plugin_library(plugin_dir)
    if plugin is not None:
        arguments = (str(plugin), f"insn={MARK_ENCODINGS[target.platform]:#x}",
                     f"out={MARKS_FILE}",
                     *cycles.plugin_arguments(target, cycle_options))
        try:
            run = run_harness(executable, target, data, timeout=timeout, icount=True,
                              plugin=arguments, collect=(MARKS_FILE,))
        except CodegenError as error:
            if "plugin" not in str(error).lower():
                raise
        else:
            if MARKS_FILE in run.files:
                return run, METHOD_PLUGIN
    return run_harness(executable, target, data, timeout=timeout, icount=True), METHOD_TIMER


def measure(executable: Path, target: Target, input_bytes: bytes, output_bytes: int,
            layers: int, *, plugin_dir: Path, timeout: float = DEFAULT_TIMEOUT,
            cycle_options: CycleOptions = ZERO_WAIT_STATES) -> Measurement:
    """Run a benchmark harness (build_firmware(..., harness="bench")) on one sample.

    `layers` is the number of layers the model marks with CODEGEN_PROFILE_LAYER (it marks
    layers+1 boundaries); `output_bytes` the size of its outputs. The counting plugin is
    compiled into `plugin_dir`; its cycle model assumes `cycle_options`."""
    cycles.check_options(target, cycle_options)
    run, method = _run(executable, target, input_bytes, plugin_dir, timeout, cycle_options)
    report = _parse_report(run.output, output_bytes)
    if not report.invokes:
        raise CodegenError("the benchmark harness measured no invoke")
    if target.is_host:
        splits = [_clock_regions([float(v) for v in r], layers) for r in report.invokes]
        return Measurement(
            method, None, report.outputs, len(report.invokes),
            nanoseconds=statistics.median(total for total, _ in splits),
            layer_nanoseconds=[statistics.median(parts[k] for _, parts in splits)
                               for k in range(layers)],
        )
    ticks = _unwrap(report.invokes[-1], report.clock_bits)
    timer_total, _ = _clock_regions([float(t) for t in ticks], None)
    timer_instructions = round(int(timer_total) * target.instructions_per_tick)
    if method == METHOD_PLUGIN:
        marks = _plugin_marks(run.files[MARKS_FILE].decode(), layers + 3)
        total, parts = _count_regions([m.instructions for m in marks], layers)
        # The plugin's rows after a mark are those of the interval that ends at it; a mark
        # costs no cycles. Regions: before the first layer, each layer, after the last.
        layer_rows = [m.rows for m in marks[2:-1]]
        if not cycles.has_cycle_model(target):  # instructions only (rows without cycles)
            return Measurement(method, 1, report.outputs, len(report.invokes), total, parts,
                               timer_instructions=timer_instructions,
                               stack_bytes=report.stack,
                               rows=cycles.merge(m.rows for m in marks[1:]))
        return Measurement(method, 1, report.outputs, len(report.invokes), total, parts,
                           timer_instructions=timer_instructions, stack_bytes=report.stack,
                           cycles=marks[-1].cycles - marks[0].cycles,
                           layer_cycles=[b.cycles - a.cycles
                                         for a, b in itertools.pairwise(marks[1:-1])],
                           rows=cycles.merge(m.rows for m in marks[1:]),
                           layer_rows=layer_rows)
    return Measurement(method, target.instructions_per_tick, report.outputs,
                       len(report.invokes), timer_instructions,
                       timer_instructions=timer_instructions, stack_bytes=report.stack)


def _layer_costs(program: Program, m: Measurement) -> list[LayerCost]:
    costs, k = [], 0
    for layer in program.layers:
        elided = layer.index in program.plan.elided
        instructions = nanoseconds = cycle_count = classes = None
        if elided:
            instructions = 0 if m.layer_instructions is not None else None
            nanoseconds = 0.0 if m.layer_nanoseconds is not None else None
            cycle_count = 0 if m.layer_cycles is not None else None
            classes = {} if m.layer_rows is not None else None
        else:
            if m.layer_instructions is not None:
                instructions = m.layer_instructions[k]
            if m.layer_nanoseconds is not None:
                nanoseconds = m.layer_nanoseconds[k]
            if m.layer_cycles is not None:
                cycle_count = m.layer_cycles[k]
            if m.layer_rows is not None:
                classes = cycles.by_class(m.layer_rows[k])
            k += 1
        costs.append(LayerCost(layer.index, layer.opcode, layer.macs(), instructions,
                               nanoseconds, elided, cycle_count, classes))
    return costs


def bench_program(program: Program, target_name: str, work_dir: Path, *,
                  optimization: str = DEFAULT_OPTIMIZATION,
                  timeout: float = DEFAULT_TIMEOUT,
                  cycle_options: CycleOptions = ZERO_WAIT_STATES,
                  profile: bool = False) -> BenchResult:
    """Build and run the benchmark harness for `program` in work_dir (src/ and build/; a
    configured build/ is reused, so benchmarking model after model only recompiles).
    `profile`: also the cycles of every instruction address (Cortex-M with the plugin)."""
    if optimization not in OPTIMIZATIONS:
        raise CodegenError(f"unknown optimization level {optimization!r}; "
                           f"valid: {', '.join(OPTIMIZATIONS)}")
    target = get_target(target_name)
    cycles.check_options(target, cycle_options)
    check_toolchain(target)
    work_dir = claim_build_dir(work_dir)
    source_dir, build_dir = claim_build_dir(work_dir / "src"), work_dir / "build"
    write_harness_sources(program, source_dir)
    executable = build_firmware(source_dir, HARNESS_NAME, target, build_dir,
                                optimization=optimization, harness="bench")
    inputs = bench_input(program)
    graph = program.graph
    running = [layer for layer in program.layers if layer.index not in program.plan.elided]
    m = measure(executable, target, pack_samples(inputs),
                sum(graph.tensors[t].nbytes for t in graph.outputs), len(running),
                plugin_dir=build_dir, timeout=timeout, cycle_options=cycle_options)
    expected = b"".join(np.ascontiguousarray(a).tobytes()
                        for a in run_reference(program, inputs))
    memory = _measure_memory(program, executable, build_dir, target)
    macs = program.macs
    return BenchResult(
        model=program.source,
        target=target.name,
        optimization=optimization,
        io_in_arena=program.plan.io_in_arena,
        numerics=program.numerics,
        method=m.method,
        resolution=m.resolution,
        instructions=m.instructions,
        nanoseconds=m.nanoseconds,
        invokes=m.invokes,
        macs=macs,
        instructions_per_mac=(m.instructions / macs if m.instructions is not None and macs
                              else None),
        flash_code_bytes=memory.code,
        flash_const_bytes=memory.const,
        flash_harness_bytes=memory.harness_flash,
        arena_bytes=memory.arena,
        static_bytes=memory.static,
        state_bytes=memory.state,
        stack_bytes=m.stack_bytes,
        ram_bytes=memory.arena + memory.state + memory.static + (m.stack_bytes or 0),
        harness_ram_bytes=memory.harness_ram,
        timer_instructions=m.timer_instructions,
        output_matches_reference=m.outputs == expected,
        layers=_layer_costs(program, m),
        **_cycle_fields(m, macs, target, cycle_options,
                        executable if profile else None),
    )


def _cycle_fields(m: Measurement, macs: int, target: Target, options: CycleOptions,
                  profile_of: Path | None) -> dict[str, object]:
    if m.cycles is None or m.rows is None:
        return {}
    return {
        "cycles": m.cycles,
        "cycles_per_instruction": m.cycles / m.instructions if m.instructions else None,
        "cycles_per_mac": m.cycles / macs if macs else None,
        "cycle_model": options.describe(target.name),
        "cycles_by_class": cycles.by_class(m.rows),
        "profile": (cycles.profile(m.rows, profile_of, target) if profile_of is not None
                    else None),
    }


def bench_model(model: Path, target_name: str, *, io_in_arena: bool = False,
                ram_budget: int | None = None,
                optimization: str = DEFAULT_OPTIMIZATION, timeout: float = DEFAULT_TIMEOUT,
                work_dir: Path | None = None, cycle_options: CycleOptions = ZERO_WAIT_STATES,
                profile: bool = False, numerics: str = "tflm") -> BenchResult:
    if work_dir is not None:  # before any work; it may not hold the model
        check_build_dir(work_dir, keep=[("the model", model)])
    program = load_program(model, io_in_arena=io_in_arena, ram_budget=ram_budget,
                           numerics=numerics)
    options = {"optimization": optimization, "timeout": timeout,
               "cycle_options": cycle_options, "profile": profile}
    if work_dir is not None:
        return bench_program(program, target_name, work_dir, **options)
    with tempfile.TemporaryDirectory(prefix="codegen-bench-") as tmp:
        return bench_program(program, target_name, Path(tmp), **options)


# -- text report --------------------------------------------------------------------------


def _duration(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.3f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def format_result(r: BenchResult) -> str:
    how = {METHOD_PLUGIN: "counted exactly by a QEMU plugin",
           METHOD_TIMER: f"SysTick, multiples of {r.resolution} instructions",
           METHOD_WALL_CLOCK: f"wall clock, median of {r.invokes} invokes"}[r.method]
    arena = "arena (with the inputs and outputs)" if r.io_in_arena else "arena"
    mode = "" if r.numerics == "tflm" else f", numerics {r.numerics}"
    lines = [f"{shown(r.model)} on {r.target}, -O{r.optimization}{mode} ({how})"]
    if r.instructions is not None:
        per_mac = f", {r.instructions_per_mac:.2f} instructions/MAC" if r.macs else ""
        lines.append(f"  time   {r.instructions:,} instructions per invoke; "
                     f"{r.macs:,} MACs{per_mac}")
        if r.cycles is not None:
            lines.append(_cycles_line(r))
    elif r.nanoseconds is not None:
        lines.append(f"  time   {_duration(r.nanoseconds)} per invoke; {r.macs:,} MACs")
    flash = r.flash_code_bytes + r.flash_const_bytes + (r.flash_harness_bytes or 0)
    harness = (f", harness {r.flash_harness_bytes:,}" if r.flash_harness_bytes is not None
               else "")
    lines.append(f"  flash  {flash:,} B: model code {r.flash_code_bytes:,} + constant data "
                 f"{r.flash_const_bytes:,}{harness}")
    stack = (f" + peak stack {r.stack_bytes:,}" if r.stack_bytes is not None
             else " (stack not measured on this target)")
    more = (f"; the benchmark harness uses {r.harness_ram_bytes:,} B more"
            if r.harness_ram_bytes is not None else "")
    state = f" + state {r.state_bytes:,}" if r.state_bytes else ""
    lines.append(f"  RAM    {r.ram_bytes:,} B: {arena} {r.arena_bytes:,}{state} + static "
                 f"{r.static_bytes:,}{stack}{more}")
    if not r.output_matches_reference:
        lines.append("  WARNING: the benchmarked output differs from the numpy reference")
    lines.append("")
    if r.cycles is not None:
        lines += _cycle_tables(r)
    elif r.instructions is not None:
        lines.append(f"  {'layer':>5}  {'op':<22} {'MACs':>12} {'instructions':>13} "
                     f"{'instr/MAC':>9} {'share':>6}")
        for c in r.layers:
            per_mac = f"{c.instructions / c.macs:9.2f}" if c.macs and c.instructions else ""
            share = 100 * (c.instructions or 0) / r.instructions if r.instructions else 0
            op = c.op + (" (view)" if c.elided else "")
            lines.append(f"  {c.index:>5}  {op:<22} {c.macs:>12,} {c.instructions or 0:>13,} "
                         f"{per_mac:>9} {share:5.1f}%")
    else:
        lines.append(f"  {'layer':>5}  {'op':<22} {'MACs':>12} {'median':>12} {'share':>6}")
        total = r.nanoseconds or 0
        for c in r.layers:
            ns = c.nanoseconds or 0.0
            op = c.op + (" (view)" if c.elided else "")
            share = 100 * ns / total if total else 0
            lines.append(f"  {c.index:>5}  {op:<22} {c.macs:>12,} {_duration(ns):>12} "
                         f"{share:5.1f}%")
    return "\n".join(lines)


def _cycles_line(r: BenchResult) -> str:
    model = r.cycle_model or {}
    per_mac = f", {r.cycles_per_mac:.2f} cycles/MAC" if r.cycles_per_mac is not None else ""
    extras = [f"{model.get('wait_states', 0)} wait states"]
    if model.get("small_multiplier"):
        extras.append("32-cycle multiplier")
    return (f"  cycles {r.cycles:,} per invoke (CPI {r.cycles_per_instruction or 0:.2f}"
            f"{per_mac}), modelled: {model.get('timings', '')}, {', '.join(extras)}")


def _cycle_tables(r: BenchResult) -> list[str]:
    total = r.cycles or 0
    lines = [f"  {'layer':>5}  {'op':<22} {'MACs':>12} {'instructions':>13} {'cycles':>13} "
             f"{'CPI':>5} {'cyc/MAC':>8} {'share':>6}"]
    for c in r.layers:
        ins, cyc = c.instructions or 0, c.cycles or 0
        cpi = f"{cyc / ins:5.2f}" if ins else ""
        per_mac = f"{cyc / c.macs:8.2f}" if c.macs and cyc else ""
        op = c.op + (" (view)" if c.elided else "")
        share = 100 * cyc / total if total else 0
        lines.append(f"  {c.index:>5}  {op:<22} {c.macs:>12,} {ins:>13,} {cyc:>13,} "
                     f"{cpi:>5} {per_mac:>8} {share:5.1f}%")
    lines += ["", f"  {'class':<16} {'instructions':>13} {'cycles':>13} {'CPI':>5} "
                  f"{'share':>6}"]
    for name, sums in (r.cycles_by_class or {}).items():
        ins, cyc = sums["instructions"], sums["cycles"]
        lines.append(f"  {name:<16} {ins:>13,} {cyc:>13,} {cyc / max(ins, 1):5.2f} "
                     f"{100 * cyc / max(total, 1):5.1f}%")
    if r.profile is not None:
        lines += cycles.format_profile(r.profile, total)
    return lines

