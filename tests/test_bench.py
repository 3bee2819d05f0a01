"""codegen bench: exact instruction counts, the stack's high-water mark, the report's fields.

A hand-written fake model marks two "layers" with the CODEGEN_PROFILE_LAYER hook: exactly
1000 NOPs, then a function with a 4 KB stack frame that it fills. Its benchmark must count
exactly 1000 instructions for the first and see the frame on the stack, on every QEMU
target (which also checks the SysTick rates in the target table against the exact
counts). Real models: the JSON fields of `codegen bench` and their consistency, the same
counts on a second run, the SysTick fallback, the host's wall clock.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from support.policy import require_tool

from codegen import bench, cycles
from codegen.bench import Measurement, bench_model, measure
from codegen.build import build_firmware
from codegen.cli import main
from codegen.emit import render
from codegen.errors import CodegenError
from codegen.execute import build_for_target
from codegen.program import load_program
from codegen.resources import data_root
from codegen.targets import TARGETS, get_target

QEMU_TARGETS = [name for name, target in TARGETS.items() if not target.is_host]
SIZE = 64  # bytes of the fake model's input and output
NOPS = 1000
FRAME = 4096

FAKE_H = """\
#ifndef FAKE_H
#define FAKE_H
#include <stdint.h>
int fake_invoke(const int8_t *input, int8_t *output);
#endif
"""

FAKE_C = f"""\
#include "fake.h"

#ifndef CODEGEN_PROFILE_LAYER
#define CODEGEN_PROFILE_LAYER(index) ((void)0)
#endif

/* Fills a {FRAME}-byte frame, so the stack's high-water mark must be below it. */
__attribute__((noinline)) static void deep(const int8_t *input, int8_t *output)
{{
    volatile int8_t frame[{FRAME}];
    int i;
    for (i = 0; i < {FRAME}; ++i) {{
        frame[i] = input[i % {SIZE}];
    }}
    for (i = 0; i < {SIZE}; ++i) {{
        output[i] = (int8_t)(frame[i + {FRAME - SIZE}] ^ 0x55);
    }}
}}

int fake_invoke(const int8_t *input, int8_t *output)
{{
    CODEGEN_PROFILE_LAYER(0);
    __asm__ volatile(".rept {NOPS}\\n\\tnop\\n\\t.endr" ::: "memory");
    CODEGEN_PROFILE_LAYER(1);
    deep(input, output);
    CODEGEN_PROFILE_LAYER(2);
    return 0;
}}
"""


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fake")
    (directory / "fake.h").write_text(FAKE_H)
    (directory / "fake.c").write_text(FAKE_C)
    glue = render("harness_glue.c.j2", name="fake", io_in_arena=False,
                  inputs=[{"c_type": "int8_t", "elements": SIZE}],
                  outputs=[{"c_type": "int8_t", "elements": SIZE}])
    (directory / "harness_glue.c").write_text(glue)
    return directory


def _fake_input() -> tuple[bytes, bytes]:
    data = np.arange(SIZE, dtype=np.int8) * 3
    expected = (np.tile(data, FRAME // SIZE)[FRAME - SIZE:] ^ 0x55).astype(np.int8)
    return data.tobytes(), expected.tobytes()


def _measure_fake(fake_dir: Path, name: str, tmp_path: Path) -> Measurement:
    target = get_target(name)
    executable = build_firmware(fake_dir, "fake", target, tmp_path, harness="bench")
    data, expected = _fake_input()
    result = measure(executable, target, data, SIZE, 2, plugin_dir=tmp_path, timeout=60)
    assert result.outputs == expected
    return result


@pytest.mark.qemu
@pytest.mark.parametrize("name", QEMU_TARGETS)
def test_counts_are_exact_and_the_stack_is_seen(fake_dir: Path, name: str,
                                                tmp_path: Path) -> None:
    result = _measure_fake(fake_dir, name, tmp_path)
    assert result.method == bench.METHOD_PLUGIN and result.resolution == 1
    assert result.layer_instructions is not None
    assert result.layer_instructions[0] == NOPS
    # The cycle model: a NOP takes a cycle; the dual-issue Cortex-M7 runs two at a time
    # (pairs never span QEMU's blocks of at most 512 instructions: up to 2 more). It has
    # no table for the other cores: instructions only.
    if not cycles.has_cycle_model(get_target(name)):
        assert result.cycles is None and result.layer_cycles is None
    elif name == "cortex-m7":
        assert result.layer_cycles is not None
        assert NOPS // 2 <= result.layer_cycles[0] <= NOPS // 2 + 2, result.layer_cycles
        assert result.cycles is not None and result.cycles >= sum(result.layer_cycles)
    else:
        assert result.layer_cycles is not None and result.layer_cycles[0] == NOPS
        assert result.cycles is not None and result.cycles >= sum(result.layer_cycles)
    filling = result.layer_instructions[1]
    assert 2 * FRAME <= filling <= 20 * FRAME, filling  # a store and a loop step per byte
    overhead = result.instructions - sum(result.layer_instructions)
    assert 0 <= overhead <= 40, overhead  # the calls into fake_invoke and the returns
    # The SysTick agrees to within a tick plus its own reading around the invoke.
    rate = get_target(name).instructions_per_tick
    assert abs(result.timer_instructions - result.instructions) <= rate + 40
    assert result.stack_bytes is not None
    assert FRAME <= result.stack_bytes <= FRAME + 128, result.stack_bytes


@pytest.mark.qemu
def test_systick_fallback(fake_dir: Path, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the plugin (a QEMU built without plugin support), the whole invoke from the
    SysTick, in multiples of its rate; no per-layer counts."""
    monkeypatch.setattr(bench, "plugin_library", lambda _directory: None)
    result = _measure_fake(fake_dir, "cortex-m4", tmp_path)
    assert result.method == bench.METHOD_TIMER and result.resolution == 40
    assert result.layer_instructions is None
    assert result.instructions % 40 == 0
    assert NOPS + 2 * FRAME <= result.instructions <= NOPS + 20 * FRAME
    assert result.stack_bytes is not None and result.stack_bytes >= FRAME


def test_host_measures_wall_clock(fake_dir: Path, tmp_path: Path) -> None:
    result = _measure_fake(fake_dir, "host", tmp_path)
    assert result.method == bench.METHOD_WALL_CLOCK and result.instructions is None
    assert result.invokes >= 11
    assert result.nanoseconds is not None and result.nanoseconds > 0
    assert result.layer_nanoseconds is not None and len(result.layer_nanoseconds) == 2
    assert result.stack_bytes is None


def test_mark_is_the_one_the_plugin_looks_for() -> None:
    header = (data_root() / "firmware" / "cortex-m" / "profile_cortex_m.h").read_text()
    assert '"mov r11, r11"' in header and f"{bench.MARK_ENCODING:#06x}" in header
    header = (data_root() / "firmware" / "riscv" / "profile_riscv.h").read_text()
    assert '"slti x0, x0, 0x2a5"' in header
    assert f"{bench.MARK_ENCODINGS['riscv']:#010x}u" in header


@pytest.mark.qemu
@pytest.mark.parametrize("name", ["riscv32", "riscv32-v"])
def test_riscv_mark_is_never_emitted_otherwise(name: str, tmp_path: Path) -> None:
    """The plugin's RISC-V mark is what the assembler makes of BENCH_MARK(), a benchmark
    counts with it, and a normal build of the same model (startup, picolibc, the kernels)
    holds no instruction of that encoding."""
    target = get_target(name)
    objdump = require_tool(target.toolchain_prefix + "objdump")
    model = data_root() / "codegen" / "demo" / "demo_mlp.tflite"
    result = bench_model(model, name, work_dir=tmp_path / "bench")
    assert result.method == bench.METHOD_PLUGIN and result.output_matches_reference
    program = load_program(model)
    normal = build_for_target(program, name, tmp_path / "run")

    def marks_in(executable: Path) -> list[str]:
        listing = subprocess.run([objdump, "-d", str(executable)], capture_output=True,
                                 text=True, check=True).stdout
        words = re.findall(r"^\s*[0-9a-f]+:\s+([0-9a-f]{8})\s+(.*)$", listing, re.MULTILINE)
        return [" ".join(text.split()) for word, text in words
                if int(word, 16) == bench.MARK_ENCODINGS["riscv"]]

    marked = marks_in(tmp_path / "bench" / "build" / target.executable_name)
    assert marked and set(marked) == {"slti zero,zero,677"}
    assert marks_in(normal) == []


def test_regions_subtract_the_marks() -> None:
    # plugin: before, 3 layer boundaries, after; each region starts with its mark
    total, layers = bench._count_regions([100, 110, 211, 1212, 1220], 2)
    assert layers == [100, 1000] and total == 1220 - 100 - 4
    with pytest.raises(CodegenError, match="expected 5 for 2 layers"):
        bench._count_regions([1, 2, 3], 2)
    # clock: three calibration readings 5 apart, then the invoke with 2 layers
    total, parts = bench._clock_regions([0.0, 5.0, 10.0, 20.0, 125.0, 230.0, 240.0], 2)
    assert parts == [100.0, 100.0] and total == 240.0 - 10.0 - 4 * 5.0
    assert bench._unwrap([(1 << 24) - 2, 3, 10], 24) == [(1 << 24) - 2, (1 << 24) + 3,
                                                        (1 << 24) + 10]


@pytest.mark.qemu
def test_model_bench_is_consistent_and_deterministic(shared_models: Path,
                                                     tmp_path: Path) -> None:
    model = shared_models / "ad01_int8.tflite"
    first = bench_model(model, "cortex-m4", work_dir=tmp_path)
    second = bench_model(model, "cortex-m4", work_dir=tmp_path)
    assert first == second  # the same counts, to the instruction
    r = first
    assert r.output_matches_reference
    assert r.method == bench.METHOD_PLUGIN
    assert r.macs == load_program(model).macs > 0
    assert 0.25 <= r.instructions_per_mac <= 50.0, r.instructions_per_mac  # SMLAD: 2 MACs
    assert all(c.instructions is not None and c.instructions > 0 for c in r.layers)
    layers = sum(c.instructions for c in r.layers)
    assert 0 <= r.instructions - layers <= 100 + 10 * len(r.layers)
    assert abs(r.timer_instructions - r.instructions) <= 40 + 40 * len(r.layers)
    assert r.flash_code_bytes > 0 and r.flash_harness_bytes > 0
    assert r.flash_const_bytes >= sum(
        a.nbytes for layer in load_program(model).layers for a in layer.constants())
    assert r.arena_bytes == load_program(model).plan.size
    assert r.static_bytes >= 640 + 640  # the input and output buffers
    assert 0 < r.stack_bytes < 1024
    assert r.ram_bytes == r.arena_bytes + r.static_bytes + r.stack_bytes


@pytest.mark.qemu
def test_io_in_arena(shared_models: Path, tmp_path: Path) -> None:
    model = shared_models / "ad01_int8.tflite"
    r = bench_model(model, "cortex-m4", io_in_arena=True, work_dir=tmp_path)
    assert r.output_matches_reference and r.io_in_arena
    assert r.arena_bytes == load_program(model, io_in_arena=True).plan.size
    assert r.static_bytes == 0
    assert r.ram_bytes == r.arena_bytes + r.stack_bytes


@pytest.mark.qemu
def test_cli_json(shared_models: Path, tmp_path: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    model = shared_models / "hello_world_int8.tflite"
    assert main(["bench", str(model), "--target", "cortex-m4", "--json",
                 "--build-dir", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("instructions", "macs", "flash_code_bytes", "flash_const_bytes",
                "arena_bytes", "stack_bytes", "ram_bytes", "layers"):
        assert key in report, key
    assert [set(layer) >= {"index", "op", "instructions", "macs"}
            for layer in report["layers"]] == [True] * len(report["layers"])
    assert sum(layer["macs"] for layer in report["layers"]) == report["macs"]
    assert main(["bench", str(model), "--target", "cortex-m4", "--build-dir",
                 str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert f"{report['instructions']:,} instructions per invoke" in text
    assert "FULLY_CONNECTED" in text


def test_cli_host(shared_models: Path, tmp_path: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    require_tool("cc")
    model = shared_models / "hello_world_int8.tflite"
    assert main(["bench", str(model), "--target", "host", "--json",
                 "--build-dir", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["instructions"] is None and report["nanoseconds"] > 0
    assert report["output_matches_reference"]
    assert all(layer["nanoseconds"] is not None for layer in report["layers"])
    assert report["flash_code_bytes"] > 0 and report["ram_bytes"] > 0
