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

from codegen import plan as plan_module
from codegen.execute import build_for_target, execute, run_executable
from codegen.program import Program, load_program
from codegen.targets import TARGETS

SHARED = ("hello_world_int8", "ad01_int8", "kws_ref_model", "vww_96_int8",
          "pretrainedResnet_quant")


def simulate(program: Program) -> None:
    """Run the schedule over a byte map of the arena, recording which tensor last wrote
    each byte; every read must find its own tensor (or one it shares storage with) there.
    Independent of the planner's own bookkeeping. A layer whose output overlaps its input
    is run row by row as its kernel declares (Layer.row_access): after output row k is
    written, every input row the kernel still reads must be intact."""
    plan, graph = program.plan, program.graph
    owner = np.full(plan.size, -1, dtype=np.int64)
    shares: dict[int, int] = {}  # tensor -> representative of its storage
    for layer in program.layers:
        for t in layer.outputs:
            shares[t] = t
        if layer.index in plan.elided:
            shares[layer.outputs[0]] = shares.get(layer.inputs[0], layer.inputs[0])
    for view, (base, offset) in plan.views.items():  # bands of rows of another tensor
        shares[view] = base
        if plan.locations[view].kind == "arena":
            assert plan.locations[view].index == plan.locations[base].index + offset
        else:
            assert plan.locations[view].offset == plan.locations[base].offset + offset
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
        if layer.index in plan.overlaps:
            overlapped_rows(layer, owner, span, shares)
        for t in layer.outputs:
            if plan.locations[t].kind == "arena":
                owner[span(t)] = shares[t]
        if layer.index in plan.scratch:
            start = plan.scratch[layer.index]
            owner[start:start + layer.scratch_bytes()] = -2
    for t in graph.outputs:
        check_read(t, "model output at the end")


def overlapped_rows(layer, owner: np.ndarray, span, shares: dict[int, int]) -> None:
    """The rows of a layer whose output overlaps its input, in the kernel's order."""
    access = layer.row_access()
    assert access is not None, f"layer {layer.index} overlaps without a row order"
    x, y = layer.inputs[0], layer.outputs[0]
    start_x, end_x, start_y = span(x).start, span(x).stop, span(y).start
    for k, first in enumerate(access.first_read.tolist()):
        owner[start_y + k * access.out_row:start_y + (k + 1) * access.out_row] = shares[y]
        still = owner[start_x + first * access.in_row:end_x]
        found = set(still.tolist())
        assert found <= {shares.get(x, x)}, (
            f"layer {layer.index} ({layer.opcode}): output row {k} overwrote input bytes "
            f"it still reads (now {found})")


def simulate_rows(program: Program) -> None:
    """test_memory.simulate at the grain of rows: each arena byte labelled with the row of
    the model's tensor it holds (a band of rows, "<tensor> rows <lo>-<hi>", is those rows
    of that tensor; other tensors one label each, an alias or a view its storage's). Every
    read must find the rows it reads, so a window's rows moved up, a step's rows over rows
    of a window no step reads again, or a band's output over its own input's first rows
    (a layer's inputs are checked before its outputs are written: the kernel's order,
    `DepthwiseConv2D3x3.inplace_inputs`) must leave every row still read intact, which the
    whole-tensor simulation, with all views of a window one storage, cannot see."""
    plan, graph = program.plan, program.graph
    assert program.model_layers
    model = {t.name: t.index for t in program.model_layers[0].graph.tensors}
    root = {view: base for view, (base, _) in plan.views.items()}
    for layer in program.layers:
        if layer.index in plan.elided:
            root[layer.outputs[0]] = layer.inputs[0]

    def labels(t: int) -> np.ndarray:
        tensor = graph.tensors[t]
        base, rows = tensor.name.rsplit(" rows ", 1) if " rows " in tensor.name else ("", "")
        if base in model and len(tensor.shape) == 4:
            key, lo = model[base], int(rows.split("-")[0])
        else:
            while t in root:
                t = root[t]
            key, lo = t, 0
            if len(tensor.shape) != 4 or graph.tensors[t].shape != tensor.shape:
                return np.full(tensor.nbytes, key << 16, dtype=np.int64)
        row = tensor.nbytes // tensor.shape[1]
        return np.repeat((key << 16) + lo + np.arange(tensor.shape[1], dtype=np.int64), row)

    owner = np.full(plan.size, -1, dtype=np.int64)

    def span(t: int) -> slice | None:
        where = plan.locations[t]
        return slice(where.index, where.index + graph.tensors[t].nbytes) \
            if where.kind == "arena" else None

    for t in graph.inputs:
        if (at := span(t)) is not None:
            owner[at] = labels(t)
    for layer in program.layers:
        if layer.index in plan.elided:
            continue
        for t in layer.inputs:
            if (at := span(t)) is not None:
                assert np.array_equal(owner[at], labels(t)), \
                    f"layer {layer.index} ({layer.stem}) reads {graph.tensors[t].name}: " \
                    "a row it reads was overwritten"
        if layer.index in plan.overlaps:  # output row k, then the input rows still read
            access = layer.row_access()
            x, y = span(layer.inputs[0]), span(layer.outputs[0])
            assert access is not None and x is not None and y is not None
            want, made = labels(layer.inputs[0]), labels(layer.outputs[0])
            for k, first in enumerate(access.first_read.tolist()):
                row = slice(k * access.out_row, (k + 1) * access.out_row)
                owner[y][row] = made[row]
                assert np.array_equal(owner[x][first * access.in_row:],
                                      want[first * access.in_row:]), (layer.index, k)
        for t in layer.outputs:
            if (at := span(t)) is not None:
                owner[at] = labels(t)
        if layer.index in plan.scratch:
            start = plan.scratch[layer.index]
            owner[start:start + layer.scratch_bytes()] = -2


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


# -- schedules under a RAM budget --------------------------------------------------------


def _overlap_chain() -> bytes:
    """Every kernel with a row order, chained so that each could overlap its input:
    a strided 3x3 convolution (the engine, gathered columns), the 3x3 depthwise line
    buffer at stride 2 (every channel in one pass), an expanding 1x1 convolution, a
    shrinking max pool, an expanding 5x5 depthwise (multiplier 2, the plain kernel) and a
    shrinking VALID 3x3 convolution; odd shapes, full-range weights."""
    from support.conv_models import Branch, chain_model

    return chain_model((1, 18, 21, 3), (0.05, -3), [
        Branch("conv", (3, 3), "SAME", (2, 2), out_c=4, output=(0.08, 2)),
        Branch("depthwise", (3, 3), "SAME", (2, 2), output=(0.1, -5)),
        Branch("conv", (1, 1), "VALID", out_c=24, output=(0.12, 1)),
        Branch("max", (2, 2), "VALID", (1, 1)),
        Branch("depthwise", (5, 5), "SAME", multiplier=2, output=(0.2, 3)),
        Branch("conv", (3, 3), "VALID", out_c=8, output=(0.3, -1)),
    ], seed=16)


def _all_overlaps(model: bytes, io_in_arena: bool) -> Program:
    """The model planned with every overlap its kernels allow (a schedule the budget
    search may emit), checked to overlap every layer it can."""
    from codegen.plan import overlap_candidates, plan_memory

    program = load_program(model, io_in_arena=io_in_arena)
    candidates = overlap_candidates(program.layers)
    program.plan = plan_memory(program.graph, program.layers, io_in_arena,
                               frozenset(candidates))
    return program


def test_overlap_chain_overlaps_every_kernel() -> None:
    program = _all_overlaps(_overlap_chain(), io_in_arena=True)
    kinds = {type(layer).__name__ for layer in program.layers
             if layer.index in program.plan.overlaps}
    assert kinds == {"Conv2DGemm", "DepthwiseConv2D3x3", "MaxPool2D", "DepthwiseConv2D"}
    assert set(program.plan.overlaps) == {layer.index for layer in program.layers}
    simulate(program)
    # The budget search finds an overlap that saves memory (not all of them do: an
    # overlapped pair is placed as one piece).
    from codegen.plan import smallest_plan

    smallest = smallest_plan(program.graph, program.layers, io_in_arena=True)
    assert smallest.overlaps
    assert smallest.size < load_program(_overlap_chain(), io_in_arena=True).plan.size


@pytest.mark.parametrize("target", list(TARGETS))
def test_overlapping_schedules_run_bit_exact(target: str, tmp_path: Path) -> None:
    """The overlapped plans of the chain on every target (and under the sanitizers with
    the debug-buffer build on the host), against the reference, which matches TFLM."""
    from support.verify import reference_matches_tflm

    model = _overlap_chain()
    for io_in_arena in (False, True):
        program = _all_overlaps(model, io_in_arena)
        inputs = random_inputs(program, 100 if TARGETS[target].is_host else 12, seed=16)
        expected = execute(program, "reference", inputs)
        if target == "host" and io_in_arena:
            assert_same(expected, reference_matches_tflm(model, inputs), "reference vs TFLM")
        sanitize = (False, True) if TARGETS[target].is_host else (False,)
        for sanitizer in sanitize:
            work = tmp_path / f"{io_in_arena}-{sanitizer}"
            exe = build_for_target(program, target, work, sanitize=sanitizer)
            got = run_executable(program, target, exe, inputs)
            assert_same(got, expected, f"{target} io_in_arena={io_in_arena} "
                                       f"sanitize={sanitizer}")


def _budgets(program: Program) -> list[int | None]:
    """No budget, the default arena, the smallest reachable (patch-based or not), the
    smallest without patches, and one between."""
    from codegen.plan import smallest_plan, smallest_schedule

    io = program.plan.io_in_arena
    default = program.plan.size
    overlapped = smallest_plan(program.graph, program.layers, io).size
    smallest = smallest_schedule(program.graph, program.layers, io).plan.size
    budgets = sorted({default, overlapped, smallest, (default + smallest) // 2}, reverse=True)
    return [*budgets, None]


@pytest.mark.parametrize("io_in_arena", [False, True], ids=["io_outside", "io_in_arena"])
def test_every_budget_plan_is_sound(shared_models: Path, io_in_arena: bool) -> None:
    """The byte-level simulation of every schedule the planner emits, for every shared
    model (and the two test models) at several budgets; each plan fits its budget, and a
    budget that fits the default plan keeps it."""
    models = _programs(shared_models)
    models["overlap_chain"] = _overlap_chain()
    for name, model in models.items():
        default = load_program(model, io_in_arena=io_in_arena)
        for budget in _budgets(default):
            program = load_program(model, io_in_arena=io_in_arena, ram_budget=budget)
            simulate(program)
            if program.plan.steps:
                simulate_rows(program)
            if budget is not None:
                assert program.plan.size <= budget, (name, budget)
            if budget is None or budget >= default.plan.size:
                assert program.plan.locations == default.plan.locations, (name, budget)
                assert program.plan.size == default.plan.size


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_vww_overlap_shrinks_the_arena(shared_models: Path, target: str,
                                       tmp_path: Path) -> None:
    """The expanding 1x1 convolution at vww's peak overlaps its input, and the model runs
    bit-exact so planned."""
    model = (shared_models / "vww_96_int8.tflite").read_bytes()
    default = load_program(model).plan.size
    program = load_program(model, ram_budget=default - 1)
    assert program.plan.overlaps and program.plan.size < default
    inputs = random_inputs(program, 6 if target == "host" else 2, seed=3)
    expected = execute(program, "reference", inputs)
    assert_same(execute(program, target, inputs, work_dir=tmp_path), expected, target)


@pytest.mark.parametrize("io_in_arena", [False, True], ids=["io_outside", "io_in_arena"])
def test_a_budget_below_the_smallest_arena_is_refused(shared_models: Path,
                                                      io_in_arena: bool) -> None:
    from codegen.errors import CodegenError
    from codegen.plan import smallest_schedule

    for name in ("vww_96_int8", "kws_ref_model"):
        model = (shared_models / f"{name}.tflite").read_bytes()
        program = load_program(model, io_in_arena=io_in_arena)
        smallest = smallest_schedule(program.graph, program.layers, io_in_arena).plan
        with pytest.raises(CodegenError) as caught:
            load_program(model, ram_budget=smallest.size - 1, io_in_arena=io_in_arena)
        message = str(caught.value)
        assert "\n" not in message
        assert f"is {smallest.size} bytes ({smallest.schedule})" in message
        fits = load_program(model, ram_budget=smallest.size, io_in_arena=io_in_arena).plan
        assert fits.size == smallest.size


def test_ram_budget_on_the_command_line(shared_models: Path, tmp_path: Path) -> None:
    import sys

    model = str(shared_models / "vww_96_int8.tflite")

    def codegen(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "codegen", *args], capture_output=True,
                              text=True, timeout=300)

    refused = codegen("generate", model, "-o", str(tmp_path / "out"), "--ram-budget", "1000")
    assert refused.returncode == 1 and not (tmp_path / "out").exists()
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("codegen: error: --ram-budget 1000: ")
    for bad in ("-5", "1e3", "12kB", "99999999999999"):
        result = codegen("inspect", "--memory", model, "--ram-budget", bad)
        assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, bad
    shown = codegen("inspect", "--memory", model, "--ram-budget", "52000")
    assert shown.returncode == 0, shown.stderr
    assert "schedule: layer by layer, output overlapping input at 1 layer(s) (2) " \
           "(--ram-budget 52000)" in shown.stdout
    made = codegen("generate", model, "-o", str(tmp_path / "c"), "--ram-budget", "52000")
    assert made.returncode == 0, made.stderr
    header = (tmp_path / "c" / "vww_96_int8.h").read_text()
    size = int(re.search(r"#define VWW_96_INT8_ARENA_SIZE (\d+)u", header).group(1))
    assert size <= 52000


def _random_buffers(rng: np.random.Generator, count: int) -> list[plan_module.Buffer]:
    buffers = []
    for k in range(count):
        first = int(rng.integers(0, 12))
        buffers.append(plan_module.Buffer((k,), first, first + int(rng.integers(0, 6)),
                                          16 * int(rng.integers(1, 40))))
    return buffers


@pytest.mark.parametrize("seed", range(40))
def test_placement_stops_only_at_the_live_bound(seed: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """place_buffers and place_clusters stop trying orderings once one reaches the most
    bytes alive at one step (`_live_bound`): the placement is the one every ordering would
    have given, and no placement is below the bound."""
    rng = np.random.default_rng(seed)
    buffers = _random_buffers(rng, int(rng.integers(3, 30)))
    cluster = [int(c) for c in rng.integers(0, max(2, len(buffers) * 2 // 3), len(buffers))]
    relative = [16 * int(rng.integers(0, 8)) for _ in buffers]
    for c in set(cluster):  # each group's base: one member at distance 0
        relative[cluster.index(c)] = 0
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(cluster):
        groups.setdefault(c, []).append(i)
    fast = (plan_module.place_buffers(buffers),
            plan_module.place_clusters(buffers, cluster, relative))
    bounds = (plan_module._live_bound(buffers, [[i] for i in range(len(buffers))],
                                      [0] * len(buffers)),
              plan_module._live_bound(buffers, list(groups.values()), relative))
    monkeypatch.setattr(plan_module, "_live_bound", lambda *args: -1)  # every ordering
    full = (plan_module.place_buffers(buffers),
            plan_module.place_clusters(buffers, cluster, relative))
    assert fast == full
    for (_, size), bound in zip(full, bounds, strict=True):
        assert bound <= size
