#!/usr/bin/env python3
"""Benchmark every shared model on every QEMU target; write BENCHMARKS.md and MEMORY.md.

Runs `codegen bench` (codegen.bench.bench_model) for each model in ../shared/models on each
QEMU target (Cortex-M and RISC-V) with the default flags, on cortex-m4 also with -O3 and
-Os (which level is best), with the inputs and outputs in the arena (issue 4's RAM table)
and with 5 wait states, on cortex-m0 also with the small multiplier; on cortex-m4 it checks
the cycle model against an independent implementation of the same table
(tests/support/m4_timing.py, on QEMU's execution log of the same binary). Then it writes:

  BENCHMARKS.md  instructions, cycles, CPI, flash and RAM per model and target; the MLPerf
                 Tiny models on cortex-m4 in cycles against TFLM + CMSIS-NN and the best
                 published boards (issue 14's tables) and in instructions (issue 5's), on
                 cortex-m0 and cortex-m3 against TFLM + CMSIS-NN (issue 19); cortex-m55
                 (its cycles an approximation; TFLM + CMSIS-NN's MVE build beside it, in
                 instructions), riscv32 and riscv32-v
                 against issue 15's goals; where the cycles go by
                 operator type and instruction class; the independent check; -O2/-O3/-Os
                 and a 16x8 section: the KWS DS-CNN quantized 16x8 by scripts/kws_16x8.py
                 (TensorFlow) against the int8 KWS on cortex-m4 (issue 11's goal); a
                 recurrent section: the LSTM and SVDF models of scripts/recurrent_models.py
                 on cortex-m4, m3 and m0 (issue 12; skipped with --no-recurrent)
  MEMORY.md      per model: the lower bound, our arena and total RAM of an invoke (arena +
                 static data + peak stack, cortex-m4) with the I/O outside and inside the
                 arena, against TFLM's planned activations and total arena (issue 4's table)

    python scripts/benchmarks.py                       # everything (a few minutes)
    python scripts/benchmarks.py -j 2                  # two benchmarks at a time
    python scripts/benchmarks.py --models ad01_int8 --targets cortex-m4 --print
                                                       # a subset, tables on stdout only
    python scripts/benchmarks.py --json results.json   # also keep every result
    python scripts/benchmarks.py --from-json results.json
                                                       # the tables again, nothing run

The files say which code they measured: a commit, or a working tree with uncommitted
changes. To measure exactly the last commit while the working tree has other changes:

    git archive --prefix=bench/ HEAD | tar -x -C /tmp
    python /tmp/bench/scripts/benchmarks.py --commit $(git rev-parse --short=12 HEAD) \
        --models-dir $PWD/../shared/models --out-dir .

The TFLM figures are the ones issues 5, 4, 14 and 19 state (TFLM built with gcc 12 -O2,
measured under the same QEMU icount setup; cycles with the same Cortex-M4 table; the
allocation report of the tflite-micro package), not measured here. The TFLM + CMSIS-NN
figures per core in scripts/tflm_baselines.json (cortex-m0 cycles, cortex-m3, cortex-m55, the
recurrent models) were measured once outside this repository under the same harness, plugin
and cycle model; that file says how, and the build itself is not part of the repository.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "tests"))

from support import m4_timing  # noqa: E402

from codegen.bench import (  # noqa: E402
    DEFAULT_OPTIMIZATION,
    BenchResult,
    LayerCost,
    bench_input,
    bench_model,
)
from codegen.cycles import FETCH_LINE_BYTES, CycleOptions, ProfileLine  # noqa: E402
from codegen.errors import CodegenError  # noqa: E402
from codegen.execute import pack_samples  # noqa: E402
from codegen.files import write_file_atomically, write_files_atomically  # noqa: E402
from codegen.plan import smallest_schedule  # noqa: E402
from codegen.program import load_program  # noqa: E402
from codegen.progress import Progress  # noqa: E402
from codegen.targets import TARGETS, get_target  # noqa: E402

SHARED_MODELS = REPO.parent / "shared" / "models"
CORTEX_M = [name for name, target in TARGETS.items() if not target.is_host]  # and RISC-V
REFERENCE_TARGET = "cortex-m4"
OTHER_OPTIMIZATIONS = ("3", "s")
SPEED_GOAL = 0.6  # x TFLM + CMSIS-NN instructions (issue 5)
CODE_GOAL = 16 * 1024  # bytes of generated model code (issue 5)
RAM_MARGIN = 2048  # bytes over TFLM's planned activations (issue 4)
RAM_GOAL = 0.75  # x TFLM's total arena, on the models of RAM_GOAL_MODELS (issue 4)
RAM_GOAL_MODELS = ("kws_ref_model", "vww_96_int8", "ad01_int8")
BOARD_WAIT_STATES = 5  # the STM32L4R5 of the published figures at 120 MHz
CYCLE_GOAL_VS_TFLM = 0.5  # x TFLM + CMSIS-NN cycles (issue 14)
M0_GOAL = 0.6  # x TFLM + CMSIS-NN instructions on cortex-m0 (issue 19)
# Issue 15: (target, the target it is measured against, at most this ratio of its
# instructions, on these models; None: every model).
NEW_TARGET_GOALS = (
    ("cortex-m55", "cortex-m4", 0.5, ("kws_ref_model", "vww_96_int8",
                                      "pretrainedResnet_quant")),
    ("riscv32", "cortex-m3", 1.0, None),
    ("riscv32-v", "riscv32", 0.4, None),
)


@dataclass(frozen=True)
class Tflm:
    """Issue 5's and issue 4's figures for TFLM on Cortex-M4."""

    macs: int
    reference: int  # instructions, TFLM reference kernels
    cmsis_nn: int  # instructions, TFLM + CMSIS-NN
    kernels_flash_kb: int  # runtime flash of TFLM + CMSIS-NN, int8 kernels only
    lower_bound: int  # bytes: live activations, file order, no in-place
    planned: int  # bytes: TFLM's planned activations
    arena: int  # bytes: TFLM's total arena


TFLM = {
    "kws_ref_model": Tflm(2_656_768, 43_112_220, 7_696_372, 58, 16_000, 16_000, 24_272),
    "vww_96_int8": Tflm(7_489_664, 100_483_262, 24_101_897, 58, 55_296, 73_728, 103_680),
    "pretrainedResnet_quant": Tflm(12_501_632, 107_487_947, 29_865_631, 56, 49_152, 49_152,
                                   55_984),
    "ad01_int8": Tflm(264_192, 1_954_038, 582_963, 33, 768, 768, 3_984),
}


@dataclass(frozen=True)
class Cm4Cycles:
    """Issue 14's cortex-m4 figures: TFLM + CMSIS-NN estimated with the same Cortex-M4 table at
    zero wait states, the best published board result (MLPerf Tiny v1.1/v1.3 closed
    division, latency converted at 120 MHz; those boards run with flash wait states) and
    the goal (0.85x the best published)."""

    tflm: int  # cycles
    tflm_cpi: float
    published: int  # cycles
    published_by: str
    goal: int  # cycles


CM4_CYCLES = {
    "kws_ref_model": Cm4Cycles(8_940_000, 1.16, 5_210_000,
                               "X-CUBE-AI 10.2, STM32L4R5 @120 MHz", 4_430_000),
    "vww_96_int8": Cm4Cycles(28_170_000, 1.17, 10_730_000, "X-CUBE-AI 10.2", 9_120_000),
    "pretrainedResnet_quant": Cm4Cycles(36_760_000, 1.23, 19_880_000, "X-CUBE-AI 10.2",
                                        16_900_000),
    "ad01_int8": Cm4Cycles(710_000, 1.22, 486_000, "Plumerai; X-CUBE-AI 10.2: 0.58 M",
                           410_000),
}

# Issue 19: TFLM + CMSIS-NN built for cortex-m0 (gcc 12.2 -O2), instructions under the same
# QEMU harness.
TFLM_M0 = {"kws_ref_model": 28_994_449, "vww_96_int8": 86_904_452,
           "pretrainedResnet_quant": 97_556_254, "ad01_int8": 1_763_193,
           "hello_world_int8": 7_175}

# TFLM + CMSIS-NN measured per core (cortex-m0, cortex-m3, cortex-m4, cortex-m55) on the
# shared models and on recurrent models, under the same harness and cycle model as ours:
# data only (how it was built and measured is written in the file).
TFLM_BASELINES = REPO / "scripts" / "tflm_baselines.json"


@dataclass(frozen=True)
class TflmAnchor:
    """TFLM + CMSIS-NN's cost of one invoke on a core (scripts/tflm_baselines.json)."""

    instructions: int
    cycles: int | None  # None where not measured in cycles (cortex-m55: before the model)


def load_tflm_baselines(path: Path = TFLM_BASELINES) -> dict:
    """The measured TFLM + CMSIS-NN figures; {} when the file is missing."""
    return json.loads(path.read_text()) if path.is_file() else {}


def tflm_anchor(core: str, model: str, baselines: dict | None = None) -> TflmAnchor | None:
    """TFLM + CMSIS-NN on `core` for a shared model, or None when not measured."""
    data = load_tflm_baselines() if baselines is None else baselines
    entry = data.get("cores", {}).get(core, {}).get("models", {}).get(model)
    if entry is None:
        return None
    return TflmAnchor(entry["instructions"], entry.get("cycles"))


def tflm_recurrent_anchor(name: str, baselines: dict | None = None) -> dict | None:
    """TFLM + CMSIS-NN on a recurrent model (key of the file's "recurrent" table): its
    core, description, instructions and cycles per invoke; None when not measured."""
    data = load_tflm_baselines() if baselines is None else baselines
    entry = data.get("recurrent", {}).get(name)
    return dict(entry) if entry is not None else None


@dataclass(frozen=True)
class Job:
    model: str  # file stem
    target: str
    optimization: str = DEFAULT_OPTIMIZATION
    io_in_arena: bool = False
    wait_states: int = 0
    small_multiplier: bool = False
    budget: int = 0  # --ram-budget: 0 none, -1 the smallest arena reachable, else bytes

    @property
    def group(self) -> str:
        """Jobs of one group share a configured build directory and run one after another."""
        return (f"{self.target}-O{self.optimization}{'-io' if self.io_in_arena else ''}"
                f"{f'-ws{self.wait_states}' if self.wait_states else ''}"
                f"{'-small' if self.small_multiplier else ''}"
                f"{f'-budget{self.budget}' if self.budget else ''}")

    @property
    def cross_checked(self) -> bool:
        """The default cortex-m4 benchmarks: their cycles are checked independently."""
        return self == Job(self.model, REFERENCE_TARGET)

    def describe(self) -> str:
        return (f"{self.model} on {self.target} -O{self.optimization}"
                f"{' (I/O in arena)' if self.io_in_arena else ''}"
                f"{f' ({self.wait_states} wait states)' if self.wait_states else ''}"
                f"{' (small multiplier)' if self.small_multiplier else ''}"
                f"{' (smallest --ram-budget)' if self.budget < 0 else ''}"
                f"{f' (--ram-budget {self.budget})' if self.budget > 0 else ''}")


@dataclass(frozen=True)
class Independent:
    """The independent Cortex-M4 implementation on the same binary (tests/support/
    m4_timing.py): the whole invoke, and how many layers got the same cycles."""

    instructions: int
    cycles: int
    layers_equal: int
    layers: int


@dataclass(frozen=True)
class Outcome:
    job: Job
    result: BenchResult | None
    error: str | None = None
    independent: Independent | str | None = None  # a string: why it failed


def _independent(job: Job, result: BenchResult, models_dir: Path,
                 work_dir: Path) -> Independent | str:
    try:
        program = load_program(models_dir / f"{job.model}.tflite")
        marks = m4_timing.cycles_at_marks(work_dir / "build" / "harness.elf",
                                          get_target(job.target),
                                          pack_samples(bench_input(program)), work_dir)
    except (OSError, subprocess.SubprocessError, KeyError, CodegenError) as error:
        return f"failed: {type(error).__name__}: {' '.join(str(error).split())}"
    running = [c for c in result.layers if not c.elided]
    marks = marks[-(len(running) + 3):]
    layers = [b.cycles - a.cycles for a, b in itertools.pairwise(marks[1:-1])]
    return Independent(marks[-1].instructions - marks[0].instructions,
                       marks[-1].cycles - marks[0].cycles,
                       sum(c.cycles == mine for c, mine in zip(running, layers, strict=True)),
                       len(running))


def _run_group(jobs: list[Job], models_dir: Path, work_root: Path, timeout: float,
               cross_check: bool, bar: Progress | None = None) -> list[Outcome]:
    """Run the jobs one after another; each outcome is announced on stderr as it comes
    (above `bar`, which advances), or, without a bar, by the caller."""
    outcomes = []
    for job in jobs:
        if bar is not None:
            bar.set_label(f"benchmarks: {job.model} on {job.target}")
        try:
            options = CycleOptions(wait_states=job.wait_states,
                                   small_multiplier=job.small_multiplier)
            model = models_dir / f"{job.model}.tflite"
            budget = (smallest_arena(model) if job.budget < 0 else job.budget) or None
            result = bench_model(model, job.target, ram_budget=budget,
                                 io_in_arena=job.io_in_arena, optimization=job.optimization,
                                 timeout=timeout, work_dir=work_root / job.group,
                                 cycle_options=options)
            independent = (_independent(job, result, models_dir, work_root / job.group)
                           if cross_check and job.cross_checked and result.cycles else None)
            outcomes.append(Outcome(job, result, independent=independent))
        except CodegenError as error:
            outcomes.append(Outcome(job, None, " ".join(str(error).split())))
        except Exception as error:  # a bug: recorded in the table, the other rows go on
            detail = " ".join(str(error).split())
            outcomes.append(Outcome(job, None, f"internal error: {type(error).__name__}: "
                                               f"{detail}"))
        if bar is not None:
            bar.advance()
            bar.note(_outcome_line(outcomes[-1]))
    return outcomes


def smallest_arena(model: Path) -> int:
    """The smallest arena the planner reaches for a model (its I/O outside the arena): the
    budget of the "smallest" benchmarks."""
    program = load_program(model)
    return smallest_schedule(program.graph, program.layers).plan.size


def _outcome_line(outcome: Outcome) -> str:
    return (f"  {outcome.job.describe()}: "
            f"{'done' if outcome.result else 'FAILED: ' + (outcome.error or '')}")


def run_jobs(jobs: list[Job], models_dir: Path, work_root: Path, parallel: int,
             timeout: float, cross_check: bool = True) -> dict[Job, Outcome]:
    groups: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        groups[job.group].append(job)
    outcomes: dict[Job, Outcome] = {}
    # A bar of benchmarks done over all models and targets (on a terminal), each outcome
    # a line above it.
    with Progress("benchmarks", len(jobs), tick=0.5) as bar:
        if parallel <= 1:
            for group in groups.values():
                outcomes.update((o.job, o) for o in _run_group(group, models_dir, work_root,
                                                               timeout, cross_check, bar))
            return outcomes
        with ProcessPoolExecutor(max_workers=parallel) as pool:
            futures = [pool.submit(_run_group, group, models_dir, work_root, timeout,
                                   cross_check)
                       for group in groups.values()]
            for future in as_completed(futures):
                for outcome in future.result():
                    outcomes[outcome.job] = outcome
                    bar.advance()
                    bar.note(_outcome_line(outcome))
    return outcomes


# -- formatting ---------------------------------------------------------------------------


def _n(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _ratio(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _mark(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def _tool_version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return "not installed"
    return out.splitlines()[0].strip() if out else "unknown"


def _failed(outcome: Outcome | None) -> str | None:
    if outcome is None:
        return "not run"
    if outcome.result is None:
        return f"failed: {outcome.error}"
    if not outcome.result.output_matches_reference:
        return "output differs from the reference"
    return None


_MEASURED_PATHS = ("codegen", "templates", "firmware", "meson.build", "meson.options")


def source_state(commit: str | None) -> str:
    """Which code the numbers are of: a commit, or a working tree with changes."""
    if commit:
        return f"the code of commit {commit}"
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", *_MEASURED_PATHS],
            capture_output=True, text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "a source tree outside git"
    changed = [line[3:] for line in changed if line.strip()]
    if not changed:
        return f"the code of commit {head}"
    return (f"commit {head} with uncommitted changes to {len(changed)} file(s) "
            f"({', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''})")


def _header(title: str, command: str, state: str) -> list[str]:
    return [
        f"# {title}",
        "",
        f"Generated by `{command}` (scripts/benchmarks.py) from {state}; do not edit by hand.",
        "",
    ]


def _method_lines() -> list[str]:
    gcc = _tool_version(["arm-none-eabi-gcc", "--version"])
    riscv_gcc = _tool_version(["riscv64-unknown-elf-gcc", "--version"])
    qemu = _tool_version(["qemu-system-arm", "--version"])
    return [
        "How: `codegen bench MODEL --target TARGET` builds the model into the benchmark "
        f"harness with `-O{DEFAULT_OPTIMIZATION}` (the level `codegen build` uses) and the "
        "target's machine flags, and runs one seeded random sample (a warm-up invoke, then "
        "the measured one) under QEMU with `-icount shift=0,align=off,sleep=off`. A QEMU "
        "plugin counts the instructions exactly, for the whole invoke and per layer; the "
        "layer boundaries are one `mov r11, r11` each, not counted. MACs are codegen's count "
        "(`Layer.macs()`). Flash: the model's code and constant data from its object file; "
        "RAM: the arena, the other static data of the model (the input and output buffers "
        "when they are outside the arena) and the peak stack of the invoke (stack painting). "
        "The cortex-m0 build (ARMv6-M code) runs on QEMU's Cortex-M3. cortex-m55 runs on "
        "QEMU's `mps3-an547`, riscv32 and riscv32-v on its RISC-V `virt` board (machine "
        "mode), where a layer boundary is the HINT `slti x0, x0, 0x2a5`.",
        "",
        "Cycles: the same plugin charges every executed instruction the cycles of the core's "
        "timing table (firmware/qemu/cycle_model.c; README, `codegen bench`), at zero wait "
        "states unless a table says otherwise. cortex-m0, cortex-m3, cortex-m4: their TRMs' "
        "tables (M0: loads and stores 2, `MULS` 1, taken branches 3, `BL` 4; M3/M4: single "
        "loads 2 or 1 pipelined behind a load, stores with an immediate offset 1, `LDM`/`STM` "
        "1+N, taken branches 1+P with P = 1-3 from the kind of target and its alignment, "
        "`SDIV` 12; M3: `MLA` 2, `SMULL` 5, `SMLAL` 7; M4: every multiply and MAC 1). "
        "cortex-m33, cortex-m7 and cortex-m55: approximations (ARM publishes no table for "
        "them; the M7 dual issue is modelled roughly; all three charge a load-use stall; "
        "the M55 is the M33 with Helium as dual-beat vector pipes, see its section; no "
        "`--wait-states` for it). Simplified: no "
        "load-use stall on the M0, M3 and M4 beyond the table's load cycles (not even "
        "behind a pipelined load); on every core no stall for an address computed by the "
        "instruction just before, no literal-load fetch contention, no unaligned-access, "
        "bit-banding, write-buffer or interrupt costs; divides and the M3's long multiplies "
        "at their worst case (no early termination); an instruction skipped by `IT` costs as "
        "if it ran; no wait states except where a table says so (`--wait-states N`: N more "
        f"cycles per flash data read and per instruction fetch that leaves the current and "
        f"next {FETCH_LINE_BYTES}-byte line; no cache). CPI is cycles per instruction.",
        "",
        f"Tools: {gcc}; {riscv_gcc} with picolibc; {qemu} (qemu-system-arm and "
        "qemu-system-riscv32).",
        "",
    ]


def _by_op(result: BenchResult) -> list[tuple[str, int, int, int, int]]:
    """(operator, layers, MACs, instructions, cycles), most cycles first."""
    ops: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for layer in result.layers:
        if layer.elided:
            continue
        entry = ops[layer.op]
        entry[0] += 1
        entry[1] += layer.macs
        entry[2] += layer.instructions or 0
        entry[3] += layer.cycles or 0
    return sorted(((op, *values) for op, values in ops.items()),
                  key=lambda row: (-row[4], -row[3]))


def _mega(value: float | None) -> str:
    return "—" if value is None else f"{value / 1e6:.2f} M"


def _cpi(r: BenchResult) -> str:
    return _ratio(r.cycles_per_instruction)


def _cm4_cycles_section(models: list[str], outcomes: dict[Job, Outcome]) -> list[str]:
    ref = REFERENCE_TARGET
    lines = [
        f"## {ref}: cycles against TFLM + CMSIS-NN and the best published boards",
        "",
        "TFLM + CMSIS-NN: issue 14's estimate with the same Cortex-M4 table at zero wait "
        "states, on TFLM + CMSIS-NN builds of the same models. Best published: MLPerf Tiny "
        "v1.1/v1.3 closed-division results measured on Cortex-M4 boards, latency converted "
        "to cycles at 120 MHz; a second reference only, because those boards run from flash "
        f"with wait states (the STM32L4R5 at 120 MHz: {BOARD_WAIT_STATES}, behind its ART "
        "accelerator's caches) while this estimate has none. Goal (issue 14): at most 0.85x "
        f"the best published and at most {CYCLE_GOAL_VS_TFLM}x TFLM + CMSIS-NN, in cycles "
        "at zero wait states.",
        "",
        "| model | instructions | cycles | CPI | cycles/MAC | TFLM + CMSIS-NN cycles (CPI) | "
        "ratio | best published (by) | ratio | goal | goal met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for model in models:
        figures = CM4_CYCLES.get(model)
        outcome = outcomes.get(Job(model, ref))
        problem = _failed(outcome)
        if figures is None:
            continue
        if problem is not None or outcome.result.cycles is None:
            lines.append(f"| {model} | {problem or 'no cycles'} ||||||||||")
            continue
        r = outcome.result
        vs_tflm, vs_best = r.cycles / figures.tflm, r.cycles / figures.published
        met = r.cycles <= figures.goal and vs_tflm <= CYCLE_GOAL_VS_TFLM
        lines.append(
            f"| {model} | {_n(r.instructions)} | {_n(r.cycles)} | {_cpi(r)} | "
            f"{_ratio(r.cycles_per_mac)} | {_mega(figures.tflm)} ({figures.tflm_cpi:.2f}) | "
            f"{vs_tflm:.2f} | {_mega(figures.published)} ({figures.published_by}) | "
            f"{vs_best:.2f} | {_mega(figures.goal)} | {_mark(met)} |")
    bracket = [(model, outcomes.get(Job(model, ref)),
                outcomes.get(Job(model, ref, wait_states=BOARD_WAIT_STATES)))
               for model in models if model in CM4_CYCLES]
    if any(_failed(w) is None for _, _, w in bracket):
        lines += [
            "",
            f"The same builds with {BOARD_WAIT_STATES} wait states and no cache "
            f"(`codegen bench --wait-states {BOARD_WAIT_STATES}`: every flash data read and "
            f"every fetch that leaves the current and next {FETCH_LINE_BYTES}-byte line costs "
            f"{BOARD_WAIT_STATES} more), an upper bound for such a board; with the "
            "accelerator's caches it lies between the two columns.",
            "",
            f"| model | cycles, 0 wait states | cycles, {BOARD_WAIT_STATES} wait states, no "
            "cache | best published |",
            "|---|---:|---:|---:|",
        ]
        for model, zero, waiting in bracket:
            cells = [_n(o.result.cycles) if _failed(o) is None else (_failed(o) or "")
                     for o in (zero, waiting)]
            lines.append(f"| {model} | {cells[0]} | {cells[1]} | "
                         f"{_mega(CM4_CYCLES[model].published)} |")
    return [*lines, ""]


_CORE_HEADER = [
    "| model | instructions | instr/MAC | cycles | CPI | cycles, small multiplier | "
    "TFLM + CMSIS-NN instructions | ratio | TFLM + CMSIS-NN cycles | ratio | "
    "goal met (instructions) | goal met (cycles) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
]


def _m0_section(models: list[str], outcomes: dict[Job, Outcome],
                targets: list[str], baselines: dict | None = None) -> list[str]:
    if "cortex-m0" not in targets:
        return []
    data = load_tflm_baselines() if baselines is None else baselines
    lines = [
        "## cortex-m0 and cortex-m3: against TFLM + CMSIS-NN",
        "",
        "TFLM + CMSIS-NN on cortex-m0: issue 19's instruction counts (gcc 12.2 -O2, built "
        "for `-mcpu=cortex-m0`, the same QEMU harness); its cycles with the same cycle "
        "model, measured on such a build (scripts/tflm_baselines.json, whose instruction "
        "counts reproduce issue 19's within 0.01%). Goal "
        f"(issue 19): at most {M0_GOAL}x its instructions, and the same ratio in cycles. "
        "Cycles with the single-cycle multiplier and with the 32-cycle one "
        "(`--small-multiplier`).",
        "",
        *_CORE_HEADER,
        *_core_rows("cortex-m0", models, outcomes, data),
    ]
    if "cortex-m3" in targets:
        lines += [
            "",
            "cortex-m3 against TFLM + CMSIS-NN built for cortex-m3 (gcc 12.2 -O2, "
            "`-mcpu=cortex-m3`, measured under the same harness and cycle model: "
            f"scripts/tflm_baselines.json). Goal (issue 19): at most {M0_GOAL}x its "
            "instructions, and the same ratio in cycles. The M3's multiplier is single-cycle.",
            "",
            *_CORE_HEADER,
            *_core_rows("cortex-m3", models, outcomes, data),
        ]
    return [*lines, ""]


def _over(ours: int | None, theirs: int | None) -> float | None:
    return ours / theirs if ours is not None and theirs else None


def _core_rows(core: str, models: list[str], outcomes: dict[Job, Outcome],
               data: dict) -> list[str]:
    """A row per model of `core` against TFLM + CMSIS-NN built for it: the cortex-m0's
    instructions from issue 19 (TFLM_M0), every other figure from the baselines file."""
    rows = []
    for model in models:
        outcome = outcomes.get(Job(model, core))
        problem = _failed(outcome)
        if problem is not None:
            rows.append(f"| {model} | {problem} |||||||||||")
            continue
        r = outcome.result
        small_cell = "—"  # the small-multiplier variant: cortex-m0 only
        if core == "cortex-m0":
            small = outcomes.get(Job(model, core, small_multiplier=True))
            small_cell = _n(small.result.cycles if _failed(small) is None else None)
        anchor = tflm_anchor(core, model, data)
        tflm = TFLM_M0.get(model) if core == "cortex-m0" else \
            (anchor.instructions if anchor is not None else None)
        tflm_cycles = anchor.cycles if anchor is not None else None
        ins, cyc = _over(r.instructions, tflm), _over(r.cycles, tflm_cycles)
        rows.append(
            f"| {model} | {_n(r.instructions)} | {_ratio(r.instructions_per_mac)} | "
            f"{_n(r.cycles)} | {_cpi(r)} | {small_cell} | {_n(tflm)} | {_ratio(ins)} | "
            f"{_n(tflm_cycles)} | {_ratio(cyc)} | "
            f"{_mark(ins <= M0_GOAL if ins is not None else None)} | "
            f"{_mark(cyc <= M0_GOAL if cyc is not None else None)} |")
    return rows


def _new_targets_section(models: list[str], outcomes: dict[Job, Outcome],
                         targets: list[str], baselines: dict | None = None) -> list[str]:
    goals = [g for g in NEW_TARGET_GOALS if g[0] in targets and g[1] in targets]
    if not goals:
        return []
    data = load_tflm_baselines() if baselines is None else baselines
    lines = [
        "## cortex-m55, riscv32, riscv32-v: against issue 15's goals",
        "",
        "Instructions, counted exactly as on the other targets (the RISC-V layer mark is the "
        "HINT `slti x0, x0, 0x2a5`). Cycles and CPI on cortex-m55 only, an approximation "
        "(ARM publishes no timing table; from the Armv8.1-M beat-wise execution of Helium "
        "and LLVM's scheduling model of the core): scalar code as the Cortex-M33; a Helium "
        "instruction (one does 8 or 16 MACs) 2 cycles, its two 64-bit beats on one of three "
        "pipes (load/store, integer, multiply/FP), 1 directly after a vector instruction of "
        "another pipe; `VPST`/`VCTP` 1; `LE`/`LETP` 1, no refill when looping back; no wait "
        "states. The RISC-V cores have no cycle model. The goals are in instructions. "
        "Goals (issue "
        "15): cortex-m55 at most 0.5x our cortex-m4 instructions on KWS, VWW and IC "
        "(kws_ref_model, vww_96_int8, pretrainedResnet_quant); riscv32 no worse than our "
        "cortex-m3; riscv32-v at most 0.4x riscv32. cortex-m55 stands for the Cortex-M85 "
        "too (the same code; the cycles are the M55's). Anchor (cortex-m55 rows): TFLM + "
        "CMSIS-NN built for the Cortex-M55 (gcc 12.2 -O2, its MVE path) on the same QEMU "
        "machine, "
        "scripts/tflm_baselines.json.",
        "",
        "| model | target | instructions | cycles | CPI | instr/MAC | against | "
        "its instructions | ratio | goal | goal met | TFLM + CMSIS-NN instructions | ratio |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    for target, base, goal, goal_models in goals:
        for model in models:
            outcome, other = outcomes.get(Job(model, target)), outcomes.get(Job(model, base))
            problem = _failed(outcome) or _failed(other)
            if problem is not None:
                lines.append(f"| {model} | {target} | {problem} |||||||||||")
                continue
            r, b = outcome.result, other.result
            anchor = tflm_anchor(target, model, data) if target == "cortex-m55" else None
            tflm = anchor.instructions if anchor is not None else None
            ratio = (r.instructions / b.instructions
                     if r.instructions is not None and b.instructions else None)
            judged = goal_models is None or model in goal_models
            met = ratio <= goal if ratio is not None and judged else None
            lines.append(
                f"| {model} | {target} | {_n(r.instructions)} | {_n(r.cycles)} | {_cpi(r)} | "
                f"{_ratio(r.instructions_per_mac)} | {base} | {_n(b.instructions)} | "
                f"{_ratio(ratio)} | {f'{goal}x' if judged else '—'} | {_mark(met)} | "
                f"{_n(tflm)} | {_ratio(_over(r.instructions, tflm))} |")
    return [*lines, ""]


def _independent_section(models: list[str], outcomes: dict[Job, Outcome]) -> list[str]:
    rows = [(model, outcomes.get(Job(model, REFERENCE_TARGET))) for model in models]
    rows = [(model, o) for model, o in rows if o is not None and o.independent is not None]
    if not rows:
        return []
    lines = [
        f"## {REFERENCE_TARGET}: the cycle model checked independently",
        "",
        "The same Cortex-M4 table implemented a second time (tests/support/m4_timing.py), "
        "sharing no code with the plugin: it reads the instructions from objdump's "
        "disassembly and the executed stream from QEMU's own log (`-d in_asm,exec,nochain`) "
        "of the same binary. Issue 14 asks for agreement within 3%.",
        "",
        "| model | plugin: instructions | cycles | independent: instructions | cycles | "
        "difference | layers with equal cycles |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model, outcome in rows:
        r, check = outcome.result, outcome.independent
        if isinstance(check, str) or r is None:
            lines.append(f"| {model} | {check if isinstance(check, str) else 'not run'} "
                         "||||||")
            continue
        difference = 100 * (check.cycles - r.cycles) / r.cycles if r.cycles else 0.0
        lines.append(f"| {model} | {_n(r.instructions)} | {_n(r.cycles)} | "
                     f"{_n(check.instructions)} | {_n(check.cycles)} | {difference:+.3f}% | "
                     f"{check.layers_equal} of {check.layers} |")
    return [*lines, ""]


def _class_section(models: list[str], outcomes: dict[Job, Outcome]) -> list[str]:
    lines = [
        f"## {REFERENCE_TARGET}: cycles by instruction class",
        "",
        "Classes of at least 1% of the cycles (`cycles_by_class` of `codegen bench --json`; "
        "`--profile` gives them per instruction). Loads cost 2 cycles unless pipelined "
        "behind a load, `LDRD` 3 and taken branches 2-4, so their CPI above 1 is where "
        "cycles go beyond the instruction count.",
        "",
        "| model | class | instructions | cycles | CPI | share of cycles |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for model in models:
        outcome = outcomes.get(Job(model, REFERENCE_TARGET))
        if _failed(outcome) is not None or not outcome.result.cycles_by_class:
            continue
        r = outcome.result
        for name, sums in r.cycles_by_class.items():
            share = 100 * sums["cycles"] / r.cycles if r.cycles else 0.0
            if share >= 1.0:
                lines.append(f"| {model} | {name} | {_n(sums['instructions'])} | "
                             f"{_n(sums['cycles'])} | "
                             f"{sums['cycles'] / max(sums['instructions'], 1):.2f} | "
                             f"{share:.1f}% |")
    return [*lines, ""]


def benchmarks_md(models: list[str], targets: list[str], outcomes: dict[Job, Outcome],
                  command: str, state: str) -> str:
    lines = _header("Benchmarks", command, state) + _method_lines()
    ref = REFERENCE_TARGET
    if ref in targets:
        lines += _cm4_cycles_section(models, outcomes)
    lines += [
        f"## {ref}: instructions against TFLM + CMSIS-NN",
        "",
        f"Goal (issue 5): at most {SPEED_GOAL}x the TFLM + CMSIS-NN instructions, generated "
        f"code under {CODE_GOAL // 1024} KB of flash. TFLM figures from issue 5 (gcc 12 "
        "-O2, same QEMU setup).",
        "",
        "| model | MACs | instructions | instr/MAC | TFLM + CMSIS-NN | ratio | TFLM reference "
        "kernels | ratio | generated code (B) | goal met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for model in models:
        outcome = outcomes.get(Job(model, ref))
        tflm = TFLM.get(model)
        problem = _failed(outcome)
        if problem is not None:
            lines.append(f"| {model} | {problem} |||||||||")
            continue
        r = outcome.result
        speed = r.instructions / tflm.cmsis_nn if tflm else None
        slow = r.instructions / tflm.reference if tflm else None
        met = (speed is not None and speed <= SPEED_GOAL and r.flash_code_bytes < CODE_GOAL
               if tflm else None)
        lines.append(
            f"| {model} | {_n(r.macs)} | {_n(r.instructions)} | "
            f"{_ratio(r.instructions_per_mac)} | {_n(tflm.cmsis_nn if tflm else None)} | "
            f"{_ratio(speed)} | {_n(tflm.reference if tflm else None)} | {_ratio(slow)} | "
            f"{_n(r.flash_code_bytes)} | {_mark(met)} |")
    lines += ["", *_m0_section(models, outcomes, targets)]
    lines += _new_targets_section(models, outcomes, targets)
    lines += [
        "## Every target",
        "",
        "| model | target | instructions | instr/MAC | cycles | CPI | flash: code (B) | "
        "flash: constants (B) | RAM: arena (B) | RAM: static (B) | RAM: stack (B) | "
        "RAM: total (B) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in models:
        for target in targets:
            outcome = outcomes.get(Job(model, target))
            problem = _failed(outcome)
            if problem is not None:
                lines.append(f"| {model} | {target} | {problem} ||||||||||")
                continue
            r = outcome.result
            lines.append(
                f"| {model} | {target} | {_n(r.instructions)} | "
                f"{_ratio(r.instructions_per_mac)} | {_n(r.cycles)} | {_cpi(r)} | "
                f"{_n(r.flash_code_bytes)} | {_n(r.flash_const_bytes)} | "
                f"{_n(r.arena_bytes)} | {_n(r.static_bytes)} | {_n(r.stack_bytes)} | "
                f"{_n(r.ram_bytes)} |")
    harness = [o.result for o in outcomes.values()
               if o.result is not None and o.result.flash_harness_bytes is not None]
    flash = max((r.flash_harness_bytes or 0 for r in harness), default=0)
    ram = max((r.harness_ram_bytes or 0 for r in harness), default=0)
    lines += [
        "",
        "Static RAM is the model's input and output buffers (outside the arena here). The "
        f"benchmark harness itself (startup, semihosting I/O, its tables, the fault handler's "
        f"stack) adds up to {flash:,} B of flash and {ram:,} B of RAM, not counted above.",
        "",
        f"## {ref}: where the cycles go, by operator type",
        "",
        "| model | operator | layers | MACs | instructions | cycles | share of cycles | CPI | "
        "instr/MAC | cycles/MAC |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in models:
        outcome = outcomes.get(Job(model, ref))
        if _failed(outcome) is not None:
            continue
        r = outcome.result
        for op, count, macs, instructions, cycle_count in _by_op(r):
            share = 100 * cycle_count / r.cycles if r.cycles else 0
            lines.append(
                f"| {model} | {op} | {count} | {_n(macs)} | {_n(instructions)} | "
                f"{_n(cycle_count)} | {share:.1f}% | "
                f"{_ratio(cycle_count / instructions if instructions else None)} | "
                f"{_ratio(instructions / macs if macs else None)} | "
                f"{_ratio(cycle_count / macs if macs else None)} |")
    lines += ["", *_class_section(models, outcomes), *_independent_section(models, outcomes)]
    levels = (DEFAULT_OPTIMIZATION, *OTHER_OPTIMIZATIONS)
    lines += [
        f"## {ref}: optimization level",
        "",
        f"Instructions and generated code bytes of each model at each level. `codegen build` "
        f"and `codegen bench` compile with -O{DEFAULT_OPTIMIZATION}; `codegen bench -O LEVEL` "
        "measures another level.",
        "",
        "| model | " + " | ".join(f"-O{o} instructions" for o in levels) + " | "
        + " | ".join(f"-O{o} code (B)" for o in levels) + " |",
        "|---|" + "---:|" * (2 * len(levels)),
    ]
    wins: dict[str, int] = defaultdict(int)
    # level -> [(instructions, code) relative to the default level], per model
    relative: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for model in models:
        results = [outcomes.get(Job(model, ref, o)) for o in levels]
        if any(_failed(o) is not None for o in results):
            lines.append(f"| {model} |" + " — |" * (2 * len(levels)))
            continue
        counts = [o.result.instructions for o in results]
        codes = [o.result.flash_code_bytes for o in results]
        wins[levels[counts.index(min(counts))]] += 1
        for level, count, code in zip(levels[1:], counts[1:], codes[1:], strict=True):
            relative[level].append((count / counts[0], code / codes[0]))
        lines.append(f"| {model} | " + " | ".join(_n(c) for c in counts) + " | "
                     + " | ".join(_n(c) for c in codes) + " |")
    if wins:
        ranking = ", ".join(f"-O{o} on {n}" for o, n in sorted(wins.items(),
                                                                key=lambda w: -w[1]))
        lines += ["", f"- Fewest instructions: {ranking} of {sum(wins.values())} models."]
        for level, pairs in relative.items():
            ins = [100 * (r - 1) for r, _ in pairs]
            code = [c for _, c in pairs]
            lines.append(f"- -O{level} against -O{DEFAULT_OPTIMIZATION}: instructions "
                         f"{min(ins):+.1f}% to {max(ins):+.1f}%, generated code "
                         f"{min(code):.2f}x to {max(code):.2f}x.")
    return "\n".join(lines) + "\n"


def memory_md(models: list[str], outcomes: dict[Job, Outcome], models_dir: Path,
              command: str, state: str) -> str:
    ref = REFERENCE_TARGET
    lines = [
        *_header("Memory", command, state),
        "RAM of one invoke on cortex-m4 under QEMU: the arena (its symbol's size in the "
        "binary, what `NAME_ARENA_SIZE` states), the model's other static data (its input "
        "and output buffers when they are outside the arena) and the peak stack of the "
        "invoke (the benchmark harness paints the stack before it and finds the high-water "
        "mark after it). \"I/O in arena\" is `codegen generate --io-in-arena` (`codegen bench "
        "--io-in-arena`). Lower bound: the largest sum of activation tensors alive at once "
        "in file order without in-place operators (inputs and outputs included). TFLM "
        "figures from issue 4 (the tflite-micro package's allocation report).",
        "",
        f"Goals (issue 4): arena at most the lower bound; total RAM at most TFLM's planned "
        f"activations + {RAM_MARGIN // 1024} KB on every model, and at most {RAM_GOAL}x TFLM's "
        f"total arena on {', '.join(RAM_GOAL_MODELS)}.",
        "",
        "| model | lower bound | TFLM planned activations | TFLM total arena | arena, I/O in "
        "arena | total RAM, I/O in arena | arena, I/O outside | total RAM, I/O outside | "
        "arena ≤ lower bound | RAM ≤ planned + 2 KB | RAM ≤ 0.75x TFLM arena |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    budget_lines = [
        "",
        "## Under a RAM budget (issue 16)",
        "",
        "`codegen bench --ram-budget BYTES` on cortex-m4, I/O outside the arena: with the "
        "smallest arena the planner reaches for the model as the budget (at any cost), and "
        "with the budget of issue 16's goal; each with its schedule and its instructions "
        "against the default schedule's. Goal: an arena within the goal's budget, with at "
        "most its allowance of extra instructions.",
        "",
        "| model | arena, default | instructions, default | smallest arena | its schedule | "
        "its extra instructions | goal | arena at the goal's budget | its schedule | its "
        "extra instructions | goal met |",
        "|---|---:|---:|---:|---|---:|---|---:|---|---:|---|",
    ]
    for model in models:
        lower = load_program(models_dir / f"{model}.tflite").plan.lower_bound
        tflm = TFLM.get(model)
        inside = outcomes.get(Job(model, ref, io_in_arena=True))
        outside = outcomes.get(Job(model, ref))
        cells = []
        for outcome in (inside, outside):
            problem = _failed(outcome)
            if problem is not None:
                cells += [problem, "—"]
            else:
                r = outcome.result
                cells += [f"{_n(r.arena_bytes)}",
                          f"{_n(r.ram_bytes)} = {_n(r.arena_bytes)} + {_n(r.static_bytes)} + "
                          f"{_n(r.stack_bytes)}"]
        rams = [o.result.ram_bytes for o in (inside, outside) if _failed(o) is None]
        best = min(rams) if rams else None
        arena_ok = (inside.result.arena_bytes <= lower if _failed(inside) is None else None)
        planned_ok = (best <= tflm.planned + RAM_MARGIN if tflm and best is not None
                      else None)
        arena_goal = (best <= RAM_GOAL * tflm.arena
                      if tflm and best is not None and model in RAM_GOAL_MODELS else None)
        lines.append(
            f"| {model} | {_n(lower)} | {_n(tflm.planned if tflm else None)} | "
            f"{_n(tflm.arena if tflm else None)} | " + " | ".join(cells) + " | "
            f"{_mark(arena_ok)} | {_mark(planned_ok)} | {_mark(arena_goal)} |")
        goal = BUDGET_GOALS.get(model)
        budget_lines.append(_budget_row(
            model, outside, outcomes.get(Job(model, ref, budget=-1)),
            outcomes.get(Job(model, ref, budget=goal[0])) if goal else None, models_dir))
    lines += [
        "",
        "Total RAM is written arena + static + stack. The RAM goals are judged on the smaller "
        "of the two totals.",
        *budget_lines,
    ]
    return "\n".join(lines) + "\n"


# Issue 16: (arena goal with --ram-budget, extra instructions allowed), cortex-m4, I/O outside
BUDGET_GOALS = {"vww_96_int8": (24_576, 0.15), "pretrainedResnet_quant": (20_480, 0.15),
                "kws_ref_model": (6_144, 0.10)}


def _budget_cells(default: BenchResult, outcome: Outcome | None,
                  models_dir: Path, model: str) -> tuple[list[str], float | None]:
    """(arena, schedule, extra instructions) of a budget benchmark, and the extra ratio."""
    problem = _failed(outcome)
    reached = re.search(r"the smallest arena codegen reaches for this model is (\d+) bytes",
                        problem or "")
    if reached:  # the budget refused in one line
        return [f"none fits (smallest {_n(int(reached.group(1)))})", "—", "—"], None
    if problem is not None:
        return [problem, "—", "—"], None
    r = outcome.result
    program = load_program(models_dir / f"{model}.tflite", ram_budget=r.arena_bytes)
    extra = ((r.instructions - default.instructions) / default.instructions
             if r.instructions and default.instructions else None)
    return [_n(r.arena_bytes), program.plan.schedule,
            f"{extra:+.1%}" if extra is not None else "—"], extra


def _budget_row(model: str, default: Outcome | None, smallest: Outcome | None,
                at_goal: Outcome | None, models_dir: Path) -> str:
    goal = BUDGET_GOALS.get(model)
    goal_text = f"≤ {_n(goal[0])} B, ≤ {goal[1]:.0%} more" if goal else "—"
    problem = _failed(default)
    if problem is not None:
        return f"| {model} | {problem} |" + " — |" * 9
    d = default.result
    low, _ = _budget_cells(d, smallest, models_dir, model)
    if goal is None:
        high, met = ["—", "—", "—"], None
    else:
        high, extra = _budget_cells(d, at_goal, models_dir, model)
        met = (extra is not None and extra <= goal[1]
               and at_goal.result.arena_bytes <= goal[0])
    return (f"| {model} | {_n(d.arena_bytes)} | {_n(d.instructions)} | "
            + " | ".join(low) + f" | {goal_text} | " + " | ".join(high)
            + f" | {_mark(met)} |")


# -- recurrent models (issue 12) ----------------------------------------------------------

RECURRENT_TARGETS = (REFERENCE_TARGET, "cortex-m3", "cortex-m0")
RECURRENT_OPERATORS = {"lstm_kws": "UNIDIRECTIONAL_SEQUENCE_LSTM (int8)",
                       "lstm_kws_16x8": "UNIDIRECTIONAL_SEQUENCE_LSTM (16x8)",
                       "svdf_kws": "2 x SVDF (int8 state)",
                       "lstm_units20_steps16": "UNIDIRECTIONAL_SEQUENCE_LSTM (int8)",
                       "lstm_units32_steps25_dense": "UNIDIRECTIONAL_SEQUENCE_LSTM (int8)",
                       "svdf_kws_d40_u64_r1_m8_int16": "SVDF (int16 state)"}


def recurrent_anchor(name: str) -> int | None:
    """TFLM + CMSIS-NN cycles on cortex-m4 for a recurrent model, where
    scripts/tflm_baselines.json has them for the same file and its output equalled TFLM's
    reference kernels'."""
    entry = tflm_recurrent_anchor(name)
    if (entry is None or entry.get("core") != REFERENCE_TARGET
            or not entry.get("output_matches_tflm_reference")):
        return None
    return int(entry["cycles"])


def bench_recurrent(targets: list[str], work_root: Path, timeout: float) -> list[Outcome]:
    """The models of scripts/recurrent_models.py (made once, cached) on the recurrent
    targets among `targets`."""
    made = subprocess.run([sys.executable, str(REPO / "scripts" / "recurrent_models.py")],
                          capture_output=True, text=True, check=False)
    chosen = [t for t in RECURRENT_TARGETS if t in targets]
    if made.returncode != 0:
        last = (made.stderr.strip().splitlines() or ["no message"])[-1]
        return [Outcome(Job(name, target), None, f"scripts/recurrent_models.py failed: {last}")
                for name in RECURRENT_OPERATORS for target in chosen]
    paths = [Path(line) for line in made.stdout.split()]
    outcomes = []
    for target in chosen:
        for path in paths:
            job = Job(path.stem, target)
            try:
                result = bench_model(path, target, timeout=timeout,
                                     work_dir=work_root / "recurrent" / target)
            except CodegenError as error:
                outcomes.append(Outcome(job, None, " ".join(str(error).split())))
                continue
            outcomes.append(Outcome(job, result))
    return outcomes


def recurrent_md(outcomes: dict[Job, Outcome]) -> list[str]:
    lines = [
        "",
        "## Recurrent models",
        "",
        "Issue 12: LSTM and SVDF on the DSP extension's pair multiply-accumulates (plain C "
        "without it). `python scripts/recurrent_models.py` makes the models: `lstm_kws`, 49 "
        "frames x 10 features -> LSTM 20 units -> Dense 12 (Keras, TensorFlow's int8 "
        "converter); `lstm_kws_16x8`, the same in 16x8; `svdf_kws`, one frame of 40 features "
        "-> SVDF 64 filters -> SVDF 32 filters, memory 8 (the test suite's model builder); and "
        "the three models TFLM + CMSIS-NN (`arm_lstm_unidirectional_s8`, `arm_svdf_s8`) was "
        "measured on, under the same harness and cycle model (scripts/tflm_baselines.json; "
        "the same files, made by the test suite's builders): an LSTM of 20 units over 16 "
        "steps of 8 features, one of 32 units over 25 steps of 10 features with a Dense 4 "
        "head, an SVDF of 64 filters on 40 features, memory 8, int16 state. "
        "Per invoke (the LSTM: the whole sequence; the SVDF: one frame); state: the RAM kept "
        "between invokes (NAME_STATE_SIZE), outside the arena.",
        "",
        "| model | operator | target | MACs | instructions | cycles | cycles/MAC | "
        "RAM: state (B) | RAM: arena (B) | flash: code (B) | TFLM + CMSIS-NN (cycles) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for job in sorted((j for j in outcomes if j.model in RECURRENT_OPERATORS),
                      key=lambda j: (list(RECURRENT_OPERATORS).index(j.model),
                                     RECURRENT_TARGETS.index(j.target))):
        outcome = outcomes[job]
        problem = _failed(outcome)
        head = f"| {job.model} | {RECURRENT_OPERATORS[job.model]} | {job.target} |"
        if problem is not None:
            lines.append(f"{head} {problem} ||||||||")
            continue
        r = outcome.result
        anchor = recurrent_anchor(job.model) if job.target == REFERENCE_TARGET else None
        lines.append(f"{head} {_n(r.macs)} | {_n(r.instructions)} | {_n(r.cycles)} | "
                     f"{_ratio(r.cycles_per_mac)} | {_n(r.state_bytes)} | "
                     f"{_n(r.arena_bytes)} | {_n(r.flash_code_bytes)} | "
                     f"{'-' if anchor is None else _n(anchor)} |")
    return lines


# -- 16x8 (issue 11) -------------------------------------------------------------------------

INT16_GOAL = 1.5  # x the int8 KWS's instructions on cortex-m4
INT16_KWS = ("kws_16x8", "kws_ref_model")  # (16x8 model, the int8 model it is made from)


def bench_16x8(models_dir: Path, work_root: Path, timeout: float) -> Outcome:
    """The 16x8 KWS, made from the int8 one by scripts/kws_16x8.py, benchmarked on
    cortex-m4."""
    name, int8 = INT16_KWS
    job = Job(name, REFERENCE_TARGET)
    model = work_root / f"{name}.tflite"
    made = subprocess.run([sys.executable, str(REPO / "scripts" / "kws_16x8.py"), "-o",
                           str(model), "--int8", str(models_dir / f"{int8}.tflite")],
                          capture_output=True, text=True, check=False)
    if made.returncode != 0:
        last = (made.stderr.strip().splitlines() or ["no message"])[-1]
        return Outcome(job, None, f"scripts/kws_16x8.py failed: {last}")
    try:
        result = bench_model(model, REFERENCE_TARGET, timeout=timeout,
                             work_dir=work_root / "16x8")
    except CodegenError as error:
        return Outcome(job, None, " ".join(str(error).split()))
    return Outcome(job, result)


def int16_md(int8: Outcome | None, int16: Outcome) -> list[str]:
    ref = REFERENCE_TARGET
    lines = [
        "",
        f"## {ref}: 16x8",
        "",
        f"Goal (issue 11): the MLPerf Tiny keyword-spotting DS-CNN quantized 16x8 (int16 "
        f"activations, int8 weights, int64 biases) in at most {INT16_GOAL}x the instructions "
        "of the int8 model. `python scripts/kws_16x8.py` makes it from the int8 reference "
        "model: the same network and weights, converted by TensorFlow's 16x8 converter.",
        "",
        "| model | activations | MACs | instructions | instr/MAC | x int8 | cycles | x int8 | "
        "flash: code (B) | flash: constants (B) | RAM: arena (B) | goal met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    base = int8.result if int8 is not None and _failed(int8) is None else None
    for outcome, kind in ((int8, "int8"), (int16, "int16")):
        problem = _failed(outcome)
        if problem is not None:
            lines.append(f"| {outcome.job.model if outcome else '—'} | {kind} | {problem} "
                         "||||||||||")
            continue
        r = outcome.result
        ratio = r.instructions / base.instructions if base else None
        cycles = r.cycles / base.cycles if base and base.cycles and r.cycles else None
        met = ratio <= INT16_GOAL if kind == "int16" and ratio is not None else None
        lines.append(f"| {outcome.job.model} | {kind} | {_n(r.macs)} | {_n(r.instructions)} | "
                     f"{_ratio(r.instructions_per_mac)} | {_ratio(ratio)} | {_n(r.cycles)} | "
                     f"{_ratio(cycles)} | "
                     f"{_n(r.flash_code_bytes)} | {_n(r.flash_const_bytes)} | "
                     f"{_n(r.arena_bytes)} | {_mark(met)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=SHARED_MODELS)
    parser.add_argument("--models", help="comma-separated file stems (default: every .tflite)")
    parser.add_argument("--targets", help=f"comma-separated (default: {','.join(CORTEX_M)})")
    parser.add_argument("--out-dir", type=Path, default=REPO,
                        help="where BENCHMARKS.md and MEMORY.md go (default: the repository)")
    parser.add_argument("--print", action="store_true",
                        help="print the tables instead of writing the files")
    parser.add_argument("--json", type=Path, help="also save every result as JSON here")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="benchmarks run at a time (default 1)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds one benchmark may run (default 900)")
    parser.add_argument("--work-dir", type=Path,
                        help="keep the build directories here (default: a temporary one)")
    parser.add_argument("--commit", help="the commit this source tree is (for a tree exported "
                                         "with git archive, which has no .git)")
    parser.add_argument("--no-cross-check", action="store_true",
                        help="skip the independent check of the cortex-m4 cycles (it traces "
                             "each model under QEMU once more)")
    parser.add_argument("--no-recurrent", action="store_true",
                        help="skip the recurrent models (scripts/recurrent_models.py needs "
                             "TensorFlow once, to make them)")
    parser.add_argument("--from-json", type=Path,
                        help="write the tables from the results a run saved with --json "
                             "instead of running anything")
    args = parser.parse_args(argv)
    if args.from_json:
        return _write(args, *_load(args.from_json, args.commit))
    models = (args.models.split(",") if args.models else
              sorted(p.stem for p in args.models_dir.glob("*.tflite")))
    targets = args.targets.split(",") if args.targets else CORTEX_M
    unknown = [t for t in targets if t not in CORTEX_M]
    if unknown:
        parser.error(f"not QEMU targets: {', '.join(unknown)}")
    jobs = [Job(m, t) for t in targets for m in models]
    if REFERENCE_TARGET in targets:
        jobs += [Job(m, REFERENCE_TARGET, o) for o in OTHER_OPTIMIZATIONS for m in models]
        jobs += [Job(m, REFERENCE_TARGET, io_in_arena=True) for m in models]
        jobs += [Job(m, REFERENCE_TARGET, budget=-1) for m in models]
        jobs += [Job(m, REFERENCE_TARGET, budget=BUDGET_GOALS[m][0]) for m in models
                 if m in BUDGET_GOALS]
        jobs += [Job(m, REFERENCE_TARGET, wait_states=BOARD_WAIT_STATES) for m in models
                 if m in CM4_CYCLES]
    if "cortex-m0" in targets:
        jobs += [Job(m, "cortex-m0", small_multiplier=True) for m in models]
    command = "python scripts/benchmarks.py" + (" " + " ".join(argv if argv is not None
                                                               else sys.argv[1:])).rstrip()
    command = re.sub(r"\s+(-j|--jobs|--work-dir|--json|--timeout|--commit|--out-dir|"
                     r"--from-json)[ =]\S+",
                     "", command)
    if args.models_dir.resolve().parts[-2:] == ("shared", "models"):
        command = re.sub(r"\s+--models-dir[ =]\S+", "", command)  # the usual models
    state = source_state(args.commit)
    print(f"{len(jobs)} benchmarks", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="codegen-benchmarks-") as tmp:
        work_root = args.work_dir or Path(tmp)
        outcomes = run_jobs(jobs, args.models_dir, work_root, args.jobs, args.timeout,
                            cross_check=not args.no_cross_check)
        if REFERENCE_TARGET in targets and INT16_KWS[1] in models:
            int16 = bench_16x8(args.models_dir, work_root, args.timeout)
            outcomes[int16.job] = int16
        if REFERENCE_TARGET in targets and not args.no_recurrent:
            for outcome in bench_recurrent(targets, work_root, args.timeout):
                outcomes[outcome.job] = outcome
    if args.json:
        saved = json.dumps(
            {"command": command, "state": state, "models": models, "targets": targets,
             "outcomes": [{"job": vars(o.job),
                           "result": o.result.as_json() if o.result else None,
                           "error": o.error,
                           "independent": (vars(o.independent)
                                           if isinstance(o.independent, Independent)
                                           else o.independent)}
                          for o in outcomes.values()]}, indent=1)
        write_file_atomically(args.json, lambda stream: stream.write(saved.encode()), "--json",
                              "JSON file")
    return _write(args, models, targets, outcomes, command, state)


def _result(data: dict) -> BenchResult:
    layers = [LayerCost(**layer) for layer in data.pop("layers")]
    profile = data.pop("profile", None)
    return BenchResult(**data, layers=layers,
                       profile=[ProfileLine(**line) for line in profile] if profile else None)


def _load(path: Path, commit: str | None) -> tuple[list[str], list[str], dict[Job, Outcome],
                                                   str, str]:
    """What a run saved with --json: models, targets, outcomes, its command and state."""
    saved = json.loads(path.read_text())
    if isinstance(saved, list):  # an older run saved only the outcomes
        if not commit:
            raise SystemExit("benchmarks.py: --from-json with this file needs --commit")
        saved = {"outcomes": saved, "state": f"the code of commit {commit}"}
    outcomes: dict[Job, Outcome] = {}
    for entry in saved["outcomes"]:
        job = Job(**entry["job"])
        check = entry.get("independent")
        outcomes[job] = Outcome(job, _result(entry["result"]) if entry["result"] else None,
                                entry["error"],
                                Independent(**check) if isinstance(check, dict) else check)
    models = saved.get("models") or sorted({job.model for job in outcomes})
    targets = saved.get("targets") or [t for t in CORTEX_M
                                       if any(job.target == t for job in outcomes)]
    command = saved.get("command", "python scripts/benchmarks.py")
    return models, targets, outcomes, command, saved["state"]


def _write(args: argparse.Namespace, models: list[str], targets: list[str],
           outcomes: dict[Job, Outcome], command: str, state: str) -> int:
    texts = {"BENCHMARKS.md": benchmarks_md(models, targets, outcomes, command, state)}
    int16 = outcomes.get(Job(INT16_KWS[0], REFERENCE_TARGET))
    if int16 is not None:
        int8 = outcomes.get(Job(INT16_KWS[1], REFERENCE_TARGET))
        texts["BENCHMARKS.md"] += "\n".join(int16_md(int8, int16)) + "\n"
    if any(job.model in RECURRENT_OPERATORS for job in outcomes):
        texts["BENCHMARKS.md"] += "\n".join(recurrent_md(outcomes)) + "\n"
    if REFERENCE_TARGET in targets:
        texts["MEMORY.md"] = memory_md(models, outcomes, args.models_dir, command, state)
    if args.print:
        for text in texts.values():
            print(text)
    else:  # both files or neither
        for path in write_files_atomically(texts, args.out_dir):
            print(f"wrote {path}", file=sys.stderr)
    # A goal's budget that no schedule meets is a result (its cell says so), not a failure.
    return 1 if any(o.result is None and o.job.budget <= 0 for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
