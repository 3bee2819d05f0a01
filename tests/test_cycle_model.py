"""The cycle model of `codegen bench`: hand-worked micro-benchmarks on every core it models.

Each assembly file of tests/cycle_model/ runs regions of instructions between layer marks
under QEMU with the benchmark plugin; its `@@` lines state, per region, the instructions
it executes and the cycles the core's timing table gives, worked out by hand in the
comments beside it. The plugin must count exactly those instructions and charge exactly
those cycles; its per-address rows must add up to the same numbers. On real benchmark
builds (cortex-m4), an independent implementation of the Cortex-M4 table fed QEMU's own
execution log (support/m4_timing.py) must find the same instructions and cycles. On a real
cortex-m55 build, every executed instruction must be classified, each Helium and
low-overhead-loop instruction as binutils' disassembly of it implies.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import m4_timing
from support.policy import require_tool

from codegen import bench, cycles
from codegen.cli import main
from codegen.cycles import CycleOptions
from codegen.execute import pack_samples
from codegen.program import load_program
from codegen.resources import firmware_dir
from codegen.runner import qemu_command
from codegen.targets import TARGETS, get_target

SOURCES = Path(__file__).parent / "cycle_model"
SMALL = CycleOptions(small_multiplier=True)
WS3 = CycleOptions(wait_states=3)

# (file, target, variant key, options): every core the model covers, each option.
RUNS = [
    ("armv6m", "cortex-m0", "cortex-m0", CycleOptions()),
    ("armv6m", "cortex-m0", "cortex-m0+small-multiplier", SMALL),
    ("armv7m", "cortex-m3", "cortex-m3", CycleOptions()),
    ("armv7m", "cortex-m4", "cortex-m4", CycleOptions()),
    ("armv7m", "cortex-m7", "cortex-m7", CycleOptions()),
    ("armv7m", "cortex-m33", "cortex-m33", CycleOptions()),
    ("armv7em", "cortex-m4", "cortex-m4", CycleOptions()),
    ("armv7em", "cortex-m7", "cortex-m7", CycleOptions()),
    ("armv7em", "cortex-m33", "cortex-m33", CycleOptions()),
    ("armv81m", "cortex-m55", "cortex-m55", CycleOptions()),
    ("wait_states", "cortex-m4", "cortex-m4", CycleOptions()),
    ("wait_states", "cortex-m4", "cortex-m4+ws3", WS3),
]


@dataclass(frozen=True)
class Expected:
    name: str
    instructions: int
    cycles: dict[str, int]  # variant key -> cycles


def expectations(source: Path) -> list[Expected]:
    found = []
    for line in source.read_text().splitlines():
        if match := re.match(r"@@ (\w+) (.*)$", line):
            fields = dict(field.split("=") for field in match[2].split())
            instructions = int(fields.pop("instructions"))
            found.append(Expected(match[1], instructions,
                                  {key: int(value) for key, value in fields.items()}))
    return found


def build(source: Path, target_name: str, directory: Path) -> Path:
    target = get_target(target_name)
    gcc = require_tool(target.toolchain_prefix + "gcc")
    linker = firmware_dir() / "cortex-m"
    elf = directory / f"{source.stem}-{target_name}.elf"
    subprocess.run([gcc, *target.machine_flags, "-nostdlib", "-nostartfiles",
                    "-T", str(linker / f"{target.board}.ld"), "-L", str(linker),
                    str(source), "-o", str(elf)], check=True, capture_output=True, text=True)
    return elf


def run(elf: Path, target_name: str, options: CycleOptions, directory: Path) -> list:
    target = get_target(target_name)
    plugin = cycles.build_plugin(directory)
    assert plugin is not None, "the QEMU plugin does not compile"
    marks = directory / f"{elf.stem}-{options.wait_states}-{options.small_multiplier}.txt"
    command = qemu_command(elf, target, icount=True, plugin=[
        str(plugin), f"insn={bench.MARK_ENCODING:#x}", f"out={marks}",
        *cycles.plugin_arguments(target, options)])
    subprocess.run(command, check=True, timeout=60, stdin=subprocess.DEVNULL,
                   capture_output=True)
    return cycles.parse_marks(marks.read_text())


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cycle_model")


@pytest.mark.qemu
@pytest.mark.parametrize(("name", "target", "key", "options"), RUNS,
                         ids=[f"{name}-{key}" for name, _, key, _ in RUNS])
def test_micro_benchmark(name: str, target: str, key: str, options: CycleOptions,
                         work: Path) -> None:
    source = SOURCES / f"{name}.S"
    expected = expectations(source)
    assert expected and all(key in e.cycles for e in expected), f"{source} lacks {key}"
    marks = run(build(source, target, work), target, options, work)
    assert len(marks) == len(expected) + 1, len(marks)
    measured = []
    for before, after in itertools.pairwise(marks):
        rows = [row for row in after.rows.values() if row.cls != cycles.MARK_CLASS]
        instructions = after.instructions - before.instructions - 1  # the opening mark
        cycle_count = after.cycles - before.cycles
        # the per-address rows of the interval add up to its totals
        assert sum(r.executions for r in rows) == instructions
        assert sum(r.cycles for r in rows) == cycle_count
        measured.append((instructions, cycle_count))
    assert measured == [(e.instructions, e.cycles[key]) for e in expected]


def test_every_core_has_micro_benchmarks() -> None:
    covered = {key for _, _, key, _ in RUNS}
    assert {"cortex-m0", "cortex-m0+small-multiplier", "cortex-m3", "cortex-m4",
            "cortex-m7", "cortex-m33", "cortex-m55", "cortex-m4+ws3"} <= covered
    modelled = {name for name, target in TARGETS.items()
                if not target.is_host and cycles.has_cycle_model(target)}
    assert {target for _, target, _, _ in RUNS} == modelled == set(cycles.TIMING_SOURCES)
    # The cores without a table: RISC-V (the decoder is a Thumb one).
    assert {name for name, target in TARGETS.items() if not target.is_host} - modelled == {
        "riscv32", "riscv32-v"}


def test_flash_region_is_the_code_region() -> None:
    assert cycles.flash_region(get_target("cortex-m4")) == (0, 4 << 20)
    assert cycles.flash_region(get_target("cortex-m33")) == (0x10000000, 0x10000000 + (4 << 20))


@pytest.mark.parametrize(("arguments", "message"), [
    (["--target", "cortex-m4", "--small-multiplier"], "applies to cortex-m0 only"),
    (["--target", "cortex-m0", "--wait-states", "16"], "--wait-states must be 0 to 15"),
    (["--target", "cortex-m0", "--wait-states", "-1"], "--wait-states must be 0 to 15"),
    (["--target", "host", "--wait-states", "2"], "the host is measured by the wall clock"),
    (["--target", "riscv32", "--wait-states", "2"], "no table for riscv32"),
    (["--target", "riscv32-v", "--small-multiplier"], "no table for riscv32-v"),
    (["--target", "cortex-m55", "--wait-states", "1"], "does not apply to cortex-m55"),
])
def test_option_errors(arguments: list[str], message: str, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model.tflite"  # never read: the options are checked first
    assert main(["bench", str(model), *arguments]) == 1
    err = capsys.readouterr().err
    assert err.startswith("codegen: error: ") and message in err and err.count("\n") == 1


@pytest.mark.qemu
@pytest.mark.parametrize("model", ["ad01_int8", "kws_ref_model"])
def test_m4_agrees_with_an_independent_implementation(model: str, shared_models: Path,
                                                      tmp_path: Path) -> None:
    """The plugin's Cortex-M4 cycles on a real benchmark build equal those of
    support/m4_timing.py, which applies the same table to QEMU's own execution log with
    objdump's disassembly (it shares no code with the plugin). The issue asks for 3%; the
    two implement the same rules, so any difference at all is a bug in one of them."""
    program = load_program(shared_models / f"{model}.tflite")
    result = bench.bench_program(program, "cortex-m4", tmp_path)
    assert result.output_matches_reference and result.cycles is not None
    running = [c for c in result.layers if not c.elided]
    marks = m4_timing.cycles_at_marks(tmp_path / "build" / "harness.elf",
                                      get_target("cortex-m4"),
                                      pack_samples(bench.bench_input(program)), tmp_path)
    marks = marks[-(len(running) + 3):]
    assert marks[-1].instructions - marks[0].instructions == result.instructions
    assert marks[-1].cycles - marks[0].cycles == result.cycles
    layers = [(b.instructions - a.instructions, b.cycles - a.cycles)
              for a, b in itertools.pairwise(marks[1:-1])]
    assert layers == [(c.instructions, c.cycles) for c in running]


@pytest.mark.qemu
def test_cli_reports_cycles_and_their_options(shared_models: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    model = shared_models / "hello_world_int8.tflite"
    common = [str(model), "--target", "cortex-m0", "--build-dir", str(tmp_path), "--json"]

    def bench_json(*extra: str) -> dict:
        assert main(["bench", *common, *extra]) == 0
        return json.loads(capsys.readouterr().out)

    plain = bench_json("--profile")
    cycle_count, instructions = plain["cycles"], plain["instructions"]
    assert plain["cycle_model"]["core"] == "cortex-m0" and cycle_count > instructions
    assert plain["cycles_per_instruction"] == pytest.approx(cycle_count / instructions)
    layers = [layer["cycles"] for layer in plain["layers"]]
    assert all(c > 0 for c in layers) and sum(layers) <= cycle_count
    for layer in plain["layers"]:  # per layer, the classes add up to the layer
        classes = layer["cycles_by_class"].values()
        assert sum(c["cycles"] for c in classes) == layer["cycles"]
        assert sum(c["instructions"] for c in classes) == layer["instructions"]
    for rows in (plain["cycles_by_class"].values(), plain["profile"]):
        assert sum(r["cycles"] for r in rows) == cycle_count
    assert sum(p["executions"] for p in plain["profile"]) == instructions
    assert all(p["function"] != "?" and p["disassembly"] for p in plain["profile"])
    # The small multiplier: every MULS takes 32 cycles instead of 1, nothing else changes.
    small = bench_json("--small-multiplier")
    muls = plain["cycles_by_class"]["mul"]["instructions"]
    assert muls > 0 and small["instructions"] == instructions
    assert small["cycles"] == cycle_count + 31 * muls
    # Wait states only add cycles: the weights are read from flash.
    waiting = bench_json("--wait-states", "2")
    assert waiting["instructions"] == instructions and waiting["cycle_model"]["wait_states"] == 2
    loads = sum(plain["cycles_by_class"].get(c, {}).get("instructions", 0)
                for c in ("load", "load_multi"))
    assert cycle_count < waiting["cycles"] <= cycle_count + 2 * (loads * 8 + instructions)
    assert main(["bench", *common[:-1], "--profile"]) == 0
    text = capsys.readouterr().out
    assert f"cycles {cycle_count:,} per invoke" in text and "Cortex-M0 TRM" in text
    assert "cycles (" in text and "instructions, CPI" in text  # the hottest functions


# The Armv8.1-M class binutils' mnemonic and operands imply (first match), for the check
# below; None: not an Armv8.1-M class.
M55_MNEMONICS = (
    (r"(dls|dlstp|wls|wlstp|le|letp|lctp)$", None, "loop"),
    (r"(vpst|vpnot|vctp)", None, "mve_pred"),
    (r"vdup", None, "mve_move"),
    (r"vmov", r"\[", "mve_move"),
    (r"v(ldr|str)", r"\[(r\d+|ip|fp|sl), q|\[q", "mve_gather"),
    (r"v(ldr|ld[24])", r"\bq\d", "mve_load"),
    (r"v(str|st[24])", r"\bq\d", "mve_store"),
    (r"v(r?ml[as]l?dav|mla[lv]|addl?v)", None, "mve_mac"),
    (r"v(q?r?d?mul|mla|qr?dml|cmp|pt|fm)", r"\bq\d", "mve_mul"),
    (r"v", r"\bq\d", "mve_alu"),
)


def m55_class_of(disassembly: str) -> str | None:
    mnemonic, _, operands = disassembly.partition(" ")
    for pattern, operand_pattern, cls in M55_MNEMONICS:
        if re.match(pattern, mnemonic) and (
                operand_pattern is None or re.search(operand_pattern, operands)):
            return cls
    return None


@pytest.mark.qemu
def test_m55_decoder_classifies_every_instruction_of_a_build(shared_models: Path,
                                                             tmp_path: Path) -> None:
    """Every instruction a real cortex-m55 build executes has its class: none falls back to
    "unknown", no Helium instruction is taken for a coprocessor one ("system", what a
    decoder without MVE makes of them), and each Helium or loop instruction has the class
    binutils' disassembly of it implies (an independent decoder). hello_world runs Helium
    loads, stores, MACs, multiplies and integer operations in its fully-connected kernels,
    with the scalar code around them."""
    program = load_program(shared_models / "hello_world_int8.tflite")
    result = bench.bench_program(program, "cortex-m55", tmp_path, profile=True)
    assert result.output_matches_reference and result.cycles is not None
    assert result.cycles_by_class is not None and result.profile
    assert {"mve_load", "mve_store", "mve_mac", "mve_mul", "mve_alu", "mve_move"} <= set(
        result.cycles_by_class)
    assert not {"unknown", "system"} & {line.cls for line in result.profile}
    assert sum(line.cycles for line in result.profile) == result.cycles
    armv81m = {cls for _, _, cls in M55_MNEMONICS}
    for line in result.profile:
        implied = m55_class_of(line.disassembly)
        if implied is not None or line.cls in armv81m:
            assert line.cls == implied, (hex(line.address), line.disassembly, line.cls)
