"""The memory plan: checked by simulation, against its lower bound, and in the built binary."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from support.builder import ModelBuilder, Q, fc_options
from support.policy import require_tool
from support.verify import assert_same, random_inputs

from codegen.execute import build_for_target, execute
from codegen.program import Program, load_program
from codegen.targets import TARGETS

SHARED = ("hello_world_int8", "ad01_int8", "kws_ref_model", "vww_96_int8",
          "pretrainedResnet_quant")


def simulate(program: Program) -> None:
    """Run the schedule over a byte map of the arena, recording which tensor last wrote
    each byte; every read must find its own tensor (or one it shares storage with) there.
    Independent of the planner's own bookkeeping."""
    plan, graph = program.plan, program.graph
    owner = np.full(plan.size, -1, dtype=np.int64)
    shares: dict[int, int] = {}  # tensor -> representative of its storage
    for layer in program.layers:
        for t in layer.outputs:
            shares[t] = t
        if layer.index in plan.elided:
            shares[layer.outputs[0]] = shares.get(layer.inputs[0], layer.inputs[0])
    for t in graph.inputs:
        if plan.locations[t].kind == "arena":
            start = plan.locations[t].index
            owner[start:start + graph.tensors[t].nbytes] = shares.setdefault(t, t)

    def span(t: int) -> slice:
        start = plan.locations[t].index
        return slice(start, start + graph.tensors[t].nbytes)

    def check_read(t: int, when: str) -> None:
        if plan.locations[t].kind != "arena":
            return
        found = set(owner[span(t)].tolist())
        assert found == {shares.get(t, t)}, f"{when}: tensor {t}'s bytes now belong to {found}"

    for layer in program.layers:
        for t in layer.inputs:
            check_read(t, f"layer {layer.index} ({layer.opcode}) reads")
        if layer.index in plan.elided:
            continue
        for t in layer.outputs:
            if plan.locations[t].kind == "arena":
                owner[span(t)] = shares[t]
        if layer.index in plan.scratch:
            start = plan.scratch[layer.index]
            owner[start:start + layer.scratch_bytes()] = -2
    for t in graph.outputs:
        check_read(t, "model output at the end")


def _branching_model() -> bytes:
    """x -> FC a -> (FC b, FC c) -> both read later: a tensor with two consumers and a
    choice of order, plus a RESHAPE view and a requantizing QUANTIZE that can run in place."""
    rng = np.random.default_rng(5)
    b = ModelBuilder()

    def fc(src: int, units: int, depth: int, name: str) -> int:
        w = b.add_tensor(f"{name}_w", (units, depth), "int8", quant=Q(0.02),
                         data=rng.integers(-127, 128, size=(units, depth)))
        y = b.add_tensor(name, (1, units), "int8", quant=Q(0.15, 3))
        b.add_op("FULLY_CONNECTED", [src, w, -1], [y], fc_options("RELU"))
        return y

    x = b.add_tensor("x", (1, 24), "int8", quant=Q(0.05, -3))
    a = fc(x, 40, 24, "a")
    big = fc(a, 64, 40, "big")
    small = fc(a, 8, 40, "small")
    big2 = fc(big, 8, 64, "big2")
    merged = b.add_tensor("merged", (1, 8), "int8", quant=Q(0.2, 1))
    b.add_op("QUANTIZE", [big2], [merged])
    view = b.add_tensor("view", (8,), "int8", quant=Q(0.2, 1))
    b.add_op("RESHAPE", [merged], [view])
    out = fc(small, 8, 8, "out")
    b.set_io([x], [out, view])
    return b.build()


def _programs(shared_models: Path) -> dict[str, bytes]:
    models = {name: (shared_models / f"{name}.tflite").read_bytes() for name in SHARED}
    models["branching"] = _branching_model()
    return models


@pytest.mark.parametrize("io_in_arena", [False, True], ids=["io_outside", "io_in_arena"])
def test_plan_is_sound_and_within_the_lower_bound(shared_models: Path, io_in_arena: bool) -> None:
    for name, model in _programs(shared_models).items():
        program = load_program(model, io_in_arena=io_in_arena)
        simulate(program)
        if io_in_arena:
            assert program.plan.size <= program.plan.lower_bound, name


def test_views_cost_nothing() -> None:
    program = load_program(_branching_model())
    reshape = [layer for layer in program.layers if layer.opcode == "RESHAPE"]
    assert reshape and reshape[0].index in program.plan.elided
    assert "_l6_reshape(" not in execute_source(program)


def execute_source(program: Program) -> str:
    from codegen.emit import emit_model

    return emit_model(program, "m")["m.c"]


@pytest.mark.parametrize("target", list(TARGETS))
def test_io_in_arena_and_views_run_bit_exact(target: str, tmp_path: Path) -> None:
    for io_in_arena in (False, True):
        program = load_program(_branching_model(), io_in_arena=io_in_arena)
        inputs = random_inputs(program, 200 if TARGETS[target].is_host else 30, seed=9)
        expected = execute(program, "reference", inputs)
        got = execute(program, target, inputs, work_dir=tmp_path / str(io_in_arena))
        assert_same(got, expected, f"{target} io_in_arena={io_in_arena}")


def _arena_symbol_size(executable: Path, nm: str, symbol: str) -> int:
    listing = subprocess.run([nm, "-S", "--defined-only", str(executable)],
                             capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 4 and re.fullmatch(rf"{symbol}(\.\d+)?", parts[3]):
            return int(parts[1], 16)
    raise AssertionError(f"no {symbol} symbol in the binary")


@pytest.mark.parametrize("io_in_arena", [False, True], ids=["io_outside", "io_in_arena"])
@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_header_arena_size_is_what_the_build_reserves(target: str, io_in_arena: bool,
                                                      shared_models: Path,
                                                      tmp_path: Path) -> None:
    """The arena NAME.h states is the arena symbol's size in the linked binary: the model's
    static arena, or with the inputs and outputs in the arena the harness glue's, which it
    sizes from NAME_ARENA_SIZE. codegen bench reports the same symbol's size."""
    nm = require_tool("nm" if target == "host" else "arm-none-eabi-nm")
    program = load_program(shared_models / "ad01_int8.tflite", io_in_arena=io_in_arena)
    exe = build_for_target(program, target, tmp_path)
    header = (tmp_path / "src" / "model.h").read_text()
    stated = int(re.search(r"#define MODEL_ARENA_SIZE (\d+)u", header).group(1))
    assert stated == program.plan.size
    symbol = "glue_arena" if io_in_arena else "model_arena"
    assert _arena_symbol_size(exe, nm, symbol) == stated
    if target != "host":
        from codegen.bench import bench_program

        assert bench_program(program, target, tmp_path / "bench").arena_bytes == stated
