"""Patch-based execution (codegen/patch.py): a CNN's first stage run in bands of rows.

Builder models cover strides 1 and 2, kernels 1, 3 and 5, SAME and VALID padding, both
poolings inside the stage, a residual ADD inside the stage (reading the model input from
before it) and one across its boundary (the model input and the stage's output, after the
stage). Each patch-based schedule (several stage ends and band counts, with and without
overlaps, I/O outside and inside the arena) is checked by the byte-level simulation of
tests/test_memory.py, and its C against the same model run unpatched (the reference of the
model's own layers, which matches TFLM) on the host, under the sanitizers with the
debug-buffer build, and on every other target.

Streamed stages (rows kept in window buffers, not computed again; codegen/patch.py `stream`)
are checked the same way on the windows model and on a model shaped like kws_ref_model in
small (strided convolution, 3x3 depthwise of strides 1 and 2, 1x1 convolutions, a global
AVERAGE_POOL_2D summed over the steps): the simulation for every stage end and row count,
also at the grain of rows (`simulate_rows`: a window's rows moved up, a step's rows over
window rows no step reads again), the C on the host, under the sanitizers with the
debug-buffer build, and on cortex-m4; rows over dead window rows on each core's depthwise
driver under QEMU.

Streamed stages with residual branches (`stream` of a stage that is not a chain: a tensor
read by a 3x3 convolution and by the ADD joining its branch back, strides 1 and 2, kernels
1 and 3, a global pool; and the residual model's ADDs reading the model input inside the
stage and the stage's output after it) the same way on every Cortex-M target, and
pretrainedResnet_quant at several budgets.
A streamed stage's repeated steps are one loop in the invoke (the C above runs it), also in
the debug-buffer build, which marks every layer in order.

Few-channel convolutions streamed in bands (a kws_ref_model-shaped first layer, one input
channel and rows of an odd width, and a second one, each loop order of the row function in
assembly): each layer's bands define and call one row function, which ends an odd row in its
one-pixel block; bit-exact at integer extremes on the host (also under the sanitizers),
cortex-m4 and cortex-m33, whose executables link one row function a layer.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from support.builder import ModelBuilder, Q, bias_scales
from support.conv_models import conv_options, depthwise_options, pool_options
from support.elementwise_models import binary_options
from support.verify import assert_same, random_inputs, reference_matches_tflm
from test_memory import simulate, simulate_rows

from codegen.execute import build_for_target, execute, run_executable
from codegen.patch import Patched, patch, stage_ends, stream, stream_steps
from codegen.plan import overlap_candidates, plan_memory, replace
from codegen.program import Program, load_program
from codegen.targets import TARGETS


class _Chain:
    """A builder model grown one layer at a time (full-range int8 weights)."""

    def __init__(self, shape: tuple[int, ...], q: tuple[float, int], seed: int) -> None:
        self.b = ModelBuilder("patch test")
        self.rng = np.random.default_rng(seed)
        self.x = self.b.add_tensor("input", shape, "int8", quant=Q(*q))
        self.q = {self.x: q}
        self.count = 0

    def _out(self, shape: tuple[int, ...], q: tuple[float, int]) -> int:
        self.count += 1
        y = self.b.add_tensor(f"t{self.count}", shape, "int8", quant=Q(*q))
        self.q[y] = q
        return y

    def shape(self, t: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.b._current.tensors[t].shape)

    def conv(self, x: int, out_c: int, k: int, stride: int, padding: str,
             q: tuple[float, int], depthwise: bool = False,
             kernel: tuple[int, int] | None = None, activation: str = "RELU6") -> int:
        """A k x k (or `kernel`: height, width) convolution; RELU6 (or `activation`) where
        it is not depthwise (RELU)."""
        n, h, w, c = self.shape(x)
        kh, kw = kernel or (k, k)
        oh = -(-h // stride) if padding == "SAME" else (h - kh) // stride + 1
        ow = -(-w // stride) if padding == "SAME" else (w - kw) // stride + 1
        if depthwise:
            out_c = c
            w_shape: tuple[int, ...] = (1, kh, kw, c)
        else:
            w_shape = (out_c, kh, kw, c)
        scales = list(0.02 * self.rng.uniform(0.25, 4.0, size=out_c))
        wt = self.b.add_tensor(f"w{self.count}", w_shape, "int8",
                               quant=Q(scales, 0, axis=3 if depthwise else 0),
                               data=self.rng.integers(-128, 128, size=w_shape))
        bias = self.b.add_tensor(f"b{self.count}", (out_c,), "int32",
                                 quant=Q(bias_scales(self.q[x][0], scales), 0, axis=0),
                                 data=self.rng.integers(-3000, 3001, size=out_c))
        y = self._out((n, oh, ow, out_c), q)
        if depthwise:
            self.b.add_op("DEPTHWISE_CONV_2D", [x, wt, bias], [y],
                          depthwise_options(padding, (stride, stride), activation="RELU"))
        else:
            self.b.add_op("CONV_2D", [x, wt, bias], [y],
                          conv_options(padding, (stride, stride), activation=activation))
        return y

    def pool(self, x: int, kind: str, k: int, stride: int, padding: str) -> int:
        n, h, w, c = self.shape(x)
        oh = -(-h // stride) if padding == "SAME" else (h - k) // stride + 1
        ow = -(-w // stride) if padding == "SAME" else (w - k) // stride + 1
        y = self._out((n, oh, ow, c), self.q[x])
        self.b.add_op(kind, [x], [y], pool_options(padding, (stride, stride), (k, k)))
        return y

    def global_pool(self, x: int, activation: str = "NONE") -> int:
        """AVERAGE_POOL_2D whose window is the whole image."""
        n, h, w, c = self.shape(x)
        y = self._out((n, 1, 1, c), self.q[x])
        self.b.add_op("AVERAGE_POOL_2D", [x], [y],
                      pool_options("VALID", (1, 1), (h, w), activation))
        return y

    def add(self, a: int, b: int, q: tuple[float, int]) -> int:
        y = self._out(self.shape(a), q)
        self.b.add_op("ADD", [a, b], [y], binary_options("ADD"))
        return y

    def build(self, output: int) -> bytes:
        self.b.set_io([self.x], [output])
        return self.b.build()


def windows_model() -> bytes:
    """Strides 1 and 2, kernels 1, 3 and 5, SAME and VALID, both poolings, odd heights
    (rows of whole words: a band starts on a word)."""
    m = _Chain((1, 29, 20, 3), (0.05, -3), seed=16)
    t = m.conv(m.x, 8, 3, 2, "SAME", (0.06, -8))            # 15x12x8
    t = m.conv(t, 0, 5, 1, "SAME", (0.07, 5), depthwise=True)
    t = m.conv(t, 12, 1, 1, "VALID", (0.08, -2))             # expanding 1x1
    t = m.pool(t, "MAX_POOL_2D", 3, 1, "SAME")
    t = m.conv(t, 0, 3, 2, "VALID", (0.09, 1), depthwise=True)  # 7x5x12
    t = m.pool(t, "AVERAGE_POOL_2D", 2, 1, "SAME")
    t = m.conv(t, 10, 5, 1, "SAME", (0.1, -4))               # stage ends around here
    t = m.conv(t, 6, 3, 2, "SAME", (0.12, 3))
    t = m.conv(t, 4, 1, 1, "VALID", (0.15, 0))
    return m.build(t)


def residual_model() -> bytes:
    """A residual ADD inside the stage (with the model input, from before it) and one
    after it (the model input again and the stage's output)."""
    m = _Chain((1, 17, 13, 4), (0.05, 2), seed=17)
    a = m.conv(m.x, 4, 3, 1, "SAME", (0.06, -1))
    b = m.conv(a, 0, 3, 1, "SAME", (0.07, 3), depthwise=True)
    c = m.add(m.x, b, (0.09, -2))                             # inside, across from before
    d = m.conv(c, 4, 1, 1, "VALID", (0.08, 0))
    e = m.conv(d, 0, 5, 1, "SAME", (0.1, 1), depthwise=True)
    f = m.add(m.x, e, (0.11, 4))                              # after a stage ending at e
    g = m.conv(f, 8, 3, 2, "SAME", (0.12, -3))
    return m.build(g)


def patched_program(model: bytes, end: int, tiles: int, io_in_arena: bool,
                    overlaps: bool) -> Program:
    """The model with layers 0..end in `tiles` bands (every overlap its kernels allow, or
    none), as load_program makes it under a budget that picks this schedule."""
    program = load_program(model, io_in_arena=io_in_arena)
    result = patch(program.graph, program.layers, end, tiles)
    assert result is not None, (end, tiles)
    return _scheduled(program, result, io_in_arena, overlaps,
                      patch=f"layers 0-{end} in {tiles} bands", extra_macs=result.extra_macs)


def _scheduled(program: Program, result: Patched, io_in_arena: bool, overlaps: bool,
               **summary: object) -> Program:
    """The program of a patch-based or streamed schedule `result` of `program`, planned with
    every overlap its kernels allow (or none), its plan's summary fields set to `summary`."""
    chosen = frozenset(overlap_candidates(result.layers)) if overlaps else frozenset()
    plan = plan_memory(result.graph, result.layers, io_in_arena, chosen, result.views)
    plan = replace(plan, **summary)
    by_index = {layer.index: layer for layer in result.layers}
    return Program(result.graph, [by_index[i] for i in plan.order], plan, program.source,
                   program.constant_bytes, model_layers=program.layers)


def _schedules(model: bytes) -> list[tuple[int, int]]:
    """(end, tiles): every stage end, with 2 bands, 3 and one band per output row."""
    program = load_program(model)
    found = []
    for end in stage_ends(program.graph, program.layers):
        height = program.graph.tensors[program.layers[end].outputs[0]].shape[1]
        found += [(end, tiles) for tiles in sorted({2, 3, height}) if 1 < tiles <= height
                  and patch(program.graph, program.layers, end, tiles) is not None]
    return found


def pooled_model() -> bytes:
    """kws_ref_model's shape in small: a strided convolution, 3x3 depthwise (strides 1 and
    2, SAME and VALID) and 1x1 convolutions, then a global AVERAGE_POOL_2D (the stage end
    of a streamed schedule) and a 1x1 convolution after it. Odd heights; every row of the
    trunk a whole number of words."""
    m = _Chain((1, 31, 12, 2), (0.05, 7), seed=18)
    t = m.conv(m.x, 8, 3, 2, "SAME", (0.06, -8))                   # 16x6x8
    t = m.conv(t, 0, 3, 1, "SAME", (0.07, -20), depthwise=True)
    t = m.conv(t, 12, 1, 1, "VALID", (0.08, 3))                    # 16x6x12
    t = m.conv(t, 0, 3, 2, "SAME", (0.09, -5), depthwise=True)     # 8x3x12
    t = m.conv(t, 16, 1, 1, "VALID", (0.1, -30))                   # 8x3x16
    t = m.conv(t, 0, 3, 1, "VALID", (0.11, 9), depthwise=True)     # 6x1x16
    t = m.global_pool(t, "RELU6")
    t = m.conv(t, 4, 1, 1, "VALID", (0.15, 0))
    return m.build(t)


MODELS = {"windows": windows_model, "residual": residual_model}
STREAMED = {"windows": windows_model, "pooled": pooled_model}


@pytest.mark.parametrize("name", ["windows", "residual", "pooled", "few_rows"])
def test_reference_matches_tflm(name: str) -> None:
    model = {**MODELS, **STREAMED, "few_rows": few_rows_model}[name]()
    reference_matches_tflm(model, random_inputs(load_program(model), 300, seed=1))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_schedule_is_sound(name: str) -> None:
    """Each stage end and band count, with and without overlaps, I/O outside and in the
    arena: the simulation proves that no live byte is overwritten; the bands compute
    MACs again (their halos), never fewer."""
    model = MODELS[name]()
    schedules = _schedules(model)
    assert len(schedules) >= 6, schedules
    ends = {end for end, _ in schedules}
    assert len(ends) >= 3
    for end, tiles in schedules:
        for io_in_arena in (False, True):
            for overlaps in (False, True):
                program = patched_program(model, end, tiles, io_in_arena, overlaps)
                simulate(program)
                assert program.plan.extra_macs >= 0
                assert program.macs == sum(layer.macs() for layer in program.model_layers or []
                                           ) + program.plan.extra_macs


@pytest.mark.parametrize("name", list(MODELS))
def test_host_bit_exact_and_sanitizer_clean(name: str, tmp_path: Path) -> None:
    """Five schedules spread over the stage ends and band counts on the host (I/O in and
    outside the arena, overlaps or not), against the unpatched model; the deepest stage
    with the most bands also under the sanitizers with the debug-buffer build."""
    model = MODELS[name]()
    schedules = _schedules(model)
    schedules = schedules[::max(1, len(schedules) // 5)]
    plain = load_program(model)
    inputs = random_inputs(plain, 60, seed=5)
    expected = execute(plain, "reference", inputs)
    for i, (end, tiles) in enumerate(schedules):
        program = patched_program(model, end, tiles, io_in_arena=i % 2 == 1,
                                  overlaps=i % 3 != 0)
        assert_same(execute(program, "reference", inputs), expected, "reference")
        exe = build_for_target(program, "host", tmp_path / f"s{i}")
        got = run_executable(program, "host", exe, inputs)
        assert_same(got, expected, f"host, layers 0-{end} in {tiles} bands")
    end, tiles = max(schedules)
    for io_in_arena in (False, True):
        program = patched_program(model, end, tiles, io_in_arena, overlaps=True)
        exe = build_for_target(program, "host", tmp_path / f"asan{io_in_arena}",
                               sanitize=True)
        got = run_executable(program, "host", exe, inputs)
        assert_same(got, expected, f"host sanitizers, layers 0-{end} in {tiles} bands")


@pytest.mark.parametrize("target", [t for t in TARGETS if not TARGETS[t].is_host])
def test_every_target_bit_exact(target: str, tmp_path: Path) -> None:
    """Both models, each with a deep stage in many bands (overlaps on), on every target."""
    for name, make in MODELS.items():
        model = make()
        end, tiles = max(_schedules(model))
        plain = load_program(model)
        inputs = random_inputs(plain, 8, seed=6)
        expected = execute(plain, "reference", inputs)
        program = patched_program(model, end, tiles, io_in_arena=False, overlaps=True)
        exe = build_for_target(program, target, tmp_path / name)
        got = run_executable(program, target, exe, inputs)
        assert_same(got, expected, f"{target}: {name}, layers 0-{end} in {tiles} bands")


def test_budget_picks_a_patch_based_schedule_and_says_so(tmp_path: Path) -> None:
    """Under a budget the layer-by-layer plans cannot meet, load_program patches the
    first stage; bands of one shape share one C function."""
    from codegen.emit import emit_model

    model = windows_model()
    plain = load_program(model)
    from codegen.plan import smallest_plan, smallest_schedule

    unpatched = smallest_plan(plain.graph, plain.layers).size
    smallest = smallest_schedule(plain.graph, plain.layers).plan
    assert smallest.patch and smallest.size < unpatched
    program = load_program(model, ram_budget=smallest.size)
    assert program.plan.patch and program.plan.size <= smallest.size
    assert "bands of" in program.plan.schedule
    source = _one_core(emit_model(program, "m")["m.c"])
    for symbol in {layer.symbol("m") for layer in program.layers}:
        assert source.count(f"static void {symbol}(") == 1, symbol
    many = patched_program(model, *max(_schedules(model)), io_in_arena=False, overlaps=False)
    symbols = {layer.symbol("m") for layer in many.layers}
    assert len(symbols) < len(many.layers)  # middle bands share their function
    source = _one_core(emit_model(many, "m")["m.c"])
    assert sum(source.count(f"static void {s}(") for s in symbols) == len(symbols)
    inputs = random_inputs(plain, 20, seed=7)
    assert_same(execute(program, "host", inputs, work_dir=tmp_path),
                execute(plain, "reference", inputs), "host at the budget")


def _one_core(source: str) -> str:
    """The C without the kernels only other cores compile (from `#if CG_GEMM_V6M` or
    `#if CG_GEMM_V7M` up to its own `#else`, past the `#elif` branches and the conditionals
    nested in them): a function is defined once for each kind of core."""
    kept: list[str] = []
    depth = 0  # inside a skipped `#if CG_GEMM_V6M`: 1 + the conditionals opened since
    for line in source.splitlines(keepends=True):
        if depth == 0:
            if line in ("#if CG_GEMM_V6M\n", "#if CG_GEMM_V7M\n"):
                depth = 1
            else:
                kept.append(line)
            continue
        if line.startswith("#if"):
            depth += 1
        elif line.startswith("#endif"):
            depth -= 1
        elif line.startswith("#else") and depth == 1:
            depth = 0
    return "".join(kept)


_DEFINITION = re.compile(r"^(?:#if ([^\n]*)\n)?static const (\w+) (\w+)\[\d+\] = \{\n(.*?)^\};",
                         re.M | re.S)
_ALIAS = re.compile(r"^#define (\w+) (\w+)$", re.M)


def _banded_programs(model: bytes) -> list[Program]:
    """The deepest stage of `model` in the most bands, and streamed one row per step: bands
    of several shapes (first, middle, last), each shape a C function of its own."""
    end = max(end for end, _ in _streams(model))
    return [patched_program(model, *max(_schedules(model)), io_in_arena=False, overlaps=True),
            streamed_program(model, end, 1, io_in_arena=False, overlaps=True)]


def test_bands_define_each_constant_array_once(tmp_path: Path) -> None:
    """Bands of different shapes share one copy of their weights, biases and requantization
    constants: each distinct array (C type, guard, values) of the running layers is defined
    once in NAME.c, every other name of it a #define of the first (under the same guard);
    the C still runs bit-exact on the host and cortex-m4."""
    from codegen.emit import emit_model

    model = windows_model()
    plain = load_program(model)
    inputs = random_inputs(plain, 16, seed=12)
    expected = execute(plain, "reference", inputs)
    for k, program in enumerate(_banded_programs(model)):
        distinct = {(a.guard, a.c_type, a.values.tobytes()) for layer in program.layers
                    for a in layer.constants()}
        source = emit_model(program, "m")["m.c"]
        arrays = [(guard, c_type, body) for guard, c_type, _, body
                  in _DEFINITION.findall(source)]
        assert len(arrays) == len(set(arrays)) == len(distinct), (len(arrays), len(distinct))
        defined = {name for _, _, name, _ in _DEFINITION.findall(source)}
        aliases = [(alias, first) for alias, first in _ALIAS.findall(source)
                   if alias.startswith("m_l")]
        assert aliases and all(first in defined for _, first in aliases), aliases
        assert all(source.count(alias) > 1 for alias, _ in aliases)  # used by a kernel
        for target in ("host", "cortex-m4"):
            exe = build_for_target(program, target, tmp_path / f"{target}{k}")
            assert_same(run_executable(program, target, exe, inputs), expected,
                        f"{target}: {program.plan.patch}")


def test_banded_models_compile_as_one_translation_unit(tmp_path: Path) -> None:
    """Two banded models (one --name each) included in one C file: their aliases of shared
    constants do not collide, with gcc and clang under the project's warnings."""
    from support.policy import require_tool
    from test_static_analysis import WARNINGS, _run

    from codegen.emit import emit_model

    unity = []
    for name, program in zip(("a", "b"), _banded_programs(windows_model()), strict=True):
        for file, text in emit_model(program, name).items():
            (tmp_path / file).write_text(text)
        unity.append(f'#include "{name}.c"')
    (tmp_path / "all.c").write_text("\n".join(unity) + "\n")
    for compiler in ("gcc", "clang"):
        _run([require_tool(compiler), *WARNINGS, "-I", str(tmp_path), "-c",
              str(tmp_path / "all.c"), "-o", str(tmp_path / f"{compiler}.o")])


@pytest.mark.parametrize("numerics", ["litert-ref", "litert"])
def test_other_numerics_never_patch(numerics: str) -> None:
    """Bands are layers prepared again, with TFLM's arithmetic: a model generated for
    another numerics mode keeps its own layers, and a budget only a patch-based schedule
    meets is refused in one line naming the smallest arena of that mode."""
    from codegen.errors import CodegenError
    from codegen.plan import smallest_schedule

    model = windows_model()
    plain = load_program(model, numerics=numerics)
    patched = smallest_schedule(plain.graph, plain.layers).plan
    assert patched.patch
    with pytest.raises(CodegenError, match=r"^--ram-budget \d+: the smallest arena codegen "
                                           r"reaches for this model is \d+ bytes \(layer by "
                                           r"layer"):
        load_program(model, numerics=numerics, ram_budget=patched.size)
    program = load_program(model, numerics=numerics, ram_budget=plain.plan.size)
    assert program.numerics == numerics and not program.plan.patch


# -- streamed stages: rows kept, not computed again ----------------------------------------


def streamed_program(model: bytes, end: int, rows: int, io_in_arena: bool,
                     overlaps: bool, wide: float = 0.0, residual: bool = False) -> Program:
    """The model with layers 0..end streamed, at most `rows` new rows per layer and step
    (`wide`: the depthwise bands' line buffers, as `stream` takes it); `residual`: a stage
    with residual branches (the kind `stream` finds: asserted)."""
    program = load_program(model, io_in_arena=io_in_arena)
    result = stream(program.graph, program.layers, end, rows, wide)
    assert result is not None and result.kept and bool(result.joins) == residual, (end, rows)
    return _scheduled(program, result, io_in_arena, overlaps, patch=f"layers 0-{end} streamed",
                      extra_macs=result.extra_macs, steps=result.tiles)


def _streams(model: bytes, residual: bool = False) -> list[tuple[int, int]]:
    """(end, rows): every stage end (`residual`: with a residual ADD), 1, 2 and 3 new rows
    per step."""
    program = load_program(model)
    return [(end, rows) for end in stage_ends(program.graph, program.layers)
            for rows in (1, 2, 3)
            for result in [stream(program.graph, program.layers, end, rows)]
            if result is not None and bool(result.joins) == residual]


def test_streams_keep_rows_and_sum_the_pool() -> None:
    """A window buffer keeps the rows a 3x3 layer reads again (KEEP_ROWS moves them up);
    the global pool's steps sum rows in int32, the last one writes the pool's output; no
    layer computes a row twice (no MACs added), and each layer computes all its rows."""
    from codegen.ops.average_pool_2d import GlobalPoolRows

    model = pooled_model()
    plain = load_program(model)
    program = streamed_program(model, 6, 1, io_in_arena=False, overlaps=False)
    opcodes = [layer.opcode for layer in program.layers]
    assert "KEEP_ROWS" in opcodes
    pool = [layer for layer in program.layers if isinstance(layer, GlobalPoolRows)]
    assert len(pool) == 6 and pool[-1].outputs == plain.layers[6].outputs  # 6 input rows
    assert [p.params["first"] for p in pool] == [True] + [False] * 5
    assert all(program.graph.tensors[p.outputs[0]].dtype.numpy_name == "int32"
               for p in pool[:-1])
    assert program.plan.extra_macs == 0
    for layer in plain.layers[:6]:  # output rows computed over the steps: each once
        made = [program.graph.tensors[b.outputs[0]].shape[1] for b in program.layers
                if b.op.opcode == layer.opcode and b.stem.startswith(f"l{layer.index}_")]
        assert sum(made) == program.graph.tensors[layer.outputs[0]].shape[1], layer.index
    # the windows are a few rows, not whole tensors
    assert program.plan.size < load_program(model, ram_budget=10**6).plan.size


def test_streams_bit_exact_on_cortex_m4(tmp_path: Path) -> None:
    """Both models' deepest streamed stage, one row per step, under QEMU (the DSP
    assembly, its one-pixel convolution engine too)."""
    for name, make in STREAMED.items():
        model = make()
        end = max(end for end, _ in _streams(model))
        plain = load_program(model)
        inputs = random_inputs(plain, 8, seed=9)
        expected = execute(plain, "reference", inputs)
        program = streamed_program(model, end, 1, io_in_arena=False, overlaps=True)
        # rows of 3 pixels: the engine's one-pixel variant runs their last pixel
        assert name != "pooled" or any(s.startswith("gemm_conv_one.")
                                       for layer in program.layers for s in layer.runtime)
        exe = build_for_target(program, "cortex-m4", tmp_path / name)
        got = run_executable(program, "cortex-m4", exe, inputs)
        assert_same(got, expected, f"cortex-m4: {name}, layers 0-{end} streamed")


def _over_dead_rows(program: Program) -> tuple[int, int]:
    """Bands whose output is over their own input's first rows, and layers whose output is
    over rows of another window (a view of a window their input is not in)."""
    views = program.plan.views
    own = other = 0
    for layer in program.layers:
        out, x = views.get(layer.outputs[0]), views.get(layer.inputs[0])
        if out is None or layer.opcode == "KEEP_ROWS" or \
                program.graph.tensors[layer.outputs[0]].dtype.numpy_name != "int8":
            continue
        if out == x:
            own += 1
        elif x is None or out[0] != x[0]:
            other += 1 if "rows 0-" in program.graph.tensors[out[0]].name else 0
    return own, other


@pytest.mark.parametrize("target", ["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m55",
                                    "riscv32", "riscv32-v"])
def test_streams_over_dead_rows_bit_exact_on_targets(target: str, tmp_path: Path) -> None:
    """A step's rows written over window rows no step reads again: 3x3 depthwise bands over
    their own input's first rows (each core's line-buffer driver: ARMv6-M, ARMv7-M, DSP,
    Helium, RISC-V scalar and vector) and other layers' over another window's top rows,
    two rows a step with wider depthwise passes; bit-exact under QEMU."""
    model = pooled_model()
    plain = load_program(model)
    inputs = random_inputs(plain, 8, seed=12)
    expected = execute(plain, "reference", inputs)
    program = streamed_program(model, 6, 2, io_in_arena=False, overlaps=True, wide=0.6)
    own, other = _over_dead_rows(program)
    assert own >= 6 and other >= 6, (own, other)
    simulate_rows(program)
    exe = build_for_target(program, target, tmp_path / target)
    got = run_executable(program, target, exe, inputs)
    assert_same(got, expected, f"{target}: pooled, rows over dead window rows")


def fives_model() -> bytes:
    """Rows of five pixels (kws_ref_model's): a 3x3 depthwise of stride 1 whose channels
    share one right shift (output zero point -128, RELU: the full int8 range), a 1x1
    convolution after it, a global pool."""
    m = _Chain((1, 11, 10, 4), (0.05, 3), seed=19)
    t = m.conv(m.x, 16, 3, 2, "SAME", (0.06, -128))                 # 6x5x16
    t = m.conv(t, 0, 3, 1, "SAME", (0.07, -128), depthwise=True)
    t = m.conv(t, 12, 1, 1, "VALID", (0.08, -128))                  # 6x5x12
    t = m.global_pool(t)
    return m.build(t)


def test_stream_lines_of_five_bit_exact_on_cortex_m4_and_host(tmp_path: Path) -> None:
    """Streamed one row per step, the depthwise bands take the output lines of five (one
    group of six per channel, five stored) and the 1x1 bands the one-pixel engine for the
    fifth pixel: bit-exact under QEMU (the DSP assembly) and on the host."""
    model = fives_model()
    plain = load_program(model)
    inputs = random_inputs(plain, 12, seed=11)
    expected = execute(plain, "reference", inputs)
    end = max(end for end, _ in _streams(model))
    program = streamed_program(model, end, 1, io_in_arena=False, overlaps=True)
    snippets = {s for layer in program.layers for s in layer.runtime}
    assert any(s.startswith("depthwise3x3_shared.1.") and s.endswith(".five")
               for s in snippets), snippets
    assert any(s.startswith("gemm_conv_one.") for s in snippets), snippets
    # the 1x1 band is one of the run engine's layers: its fifth pixel too by the one-pixel
    # engine, not as a run pass of a pair of itself (twice the work)
    from codegen.emit import emit_model
    runs = re.findall(r"/\* the run engine: .*?#else", emit_model(program, "m")["m.c"], re.S)
    assert runs and all("_one(cols" in r for r in runs), runs
    for target in ("cortex-m4", "host"):
        exe = build_for_target(program, target, tmp_path / target)
        got = run_executable(program, target, exe, inputs)
        assert_same(got, expected, f"{target}: rows of five, layers 0-{end} streamed")


def test_budget_streams_through_the_global_pool(tmp_path: Path) -> None:
    """Under a budget only a streamed stage meets, load_program streams up to the global
    pool (no MACs again) and says so; without a budget the schedule is the default one."""
    from codegen.inspect import memory_report
    from codegen.plan import smallest_schedule

    model = pooled_model()
    plain = load_program(model)
    assert not plain.plan.patch and plain.plan.steps == 0
    smallest = smallest_schedule(plain.graph, plain.layers).plan
    assert smallest.steps and smallest.extra_macs == 0
    assert "the global pool summed in int32" in smallest.patch
    program = load_program(model, ram_budget=smallest.size)
    assert program.plan.steps and program.plan.size <= smallest.size
    assert "streamed in" in program.plan.schedule
    path = tmp_path / "pooled.tflite"
    path.write_bytes(model)
    report = memory_report(path, smallest.size)
    assert "streamed in" in report and "KEEP_ROWS" in report
    # the live bytes of a step are the union of its spans (views of rows lie inside their
    # tensor's window) with its scratch: never more than the arena, which one step fills
    live = [int(m) for m in re.findall(r": (\d+) B live: ", report)]
    assert len(live) == len(program.layers) and max(live) <= program.plan.size, live
    assert "; scratch [" in report
    inputs = random_inputs(plain, 20, seed=10)
    assert_same(execute(program, "host", inputs, work_dir=tmp_path / "build"),
                execute(plain, "reference", inputs), "host at the budget")


# -- streamed stages with residual branches ----------------------------------------------


def branches_model() -> bytes:
    """Residual blocks shaped like pretrainedResnet_quant's in small: a tensor read by a 3x3
    convolution and by the ADD that joins its branch of two back (stride 1), one read by a 3x3
    stride-2 convolution and by a 1x1 stride-2 one whose ADD joins them, a 3x3 depthwise
    branch (32 channels: wide line buffers take more than a band's 4 per pass), a 1x1
    convolution, then a global AVERAGE_POOL_2D and a 1x1 convolution after it. An odd
    height; every row a whole number of words."""
    m = _Chain((1, 17, 12, 4), (0.05, 2), seed=20)
    a = m.conv(m.x, 8, 3, 1, "SAME", (0.06, -1))                   # 17x12x8
    b = m.conv(a, 8, 3, 1, "SAME", (0.07, 3))
    b = m.conv(b, 8, 3, 1, "SAME", (0.075, -4))
    c = m.add(a, b, (0.09, -2))                                    # a: read by b and c
    d = m.conv(c, 32, 3, 2, "SAME", (0.08, 0))                     # 9x6x32
    e = m.conv(c, 32, 1, 2, "VALID", (0.1, 1))                     # c: read by d and e
    f = m.add(e, d, (0.11, 4))
    g = m.conv(f, 0, 3, 1, "SAME", (0.12, -3), depthwise=True)
    h = m.add(f, g, (0.13, 5))
    i = m.conv(h, 12, 1, 1, "VALID", (0.14, -5))
    j = m.global_pool(i)
    return m.build(m.conv(j, 4, 1, 1, "VALID", (0.15, 0)))


# the residual model's stages read the model input in an ADD inside the stage and its
# output in one after the stage (a branch across the stage's boundary)
BRANCHED = {"branches": branches_model, "residual": residual_model}


def test_branch_streams_compute_each_row_once() -> None:
    """Each layer computes each of its rows once over the steps (no MACs again); a tensor
    with two readers keeps in its window the rows the lagging one (the ADD joining the
    skip branch back) still reads: a few rows, not the whole tensor; a chain streams
    without joins."""
    model = branches_model()
    plain = load_program(model)
    graph, layers = plain.graph, plain.layers
    chain = stream(graph, layers, 0, 1)  # a chain of one layer
    assert chain is None or chain.joins == 0
    steps = stream_steps(graph, layers[:10], 1)
    assert steps is not None
    for i, layer in enumerate(layers[:10]):
        rows = [r for step in steps for r in range(*step[i])]
        assert rows == list(range(graph.tensors[layer.outputs[0]].shape[1])), i
    program = streamed_program(model, 10, 1, io_in_arena=False, overlaps=False,
                               residual=True)
    assert program.plan.extra_macs == 0
    assert "KEEP_ROWS" in [layer.opcode for layer in program.layers]
    windows = {base for base, _ in program.plan.views.values()}
    a = graph.tensors[layers[0].outputs[0]]
    kept = [program.graph.tensors[t] for t in windows if program.graph.tensors[t].name
            .startswith(f"{a.name} rows 0-")]
    # the rows the first 3x3 reads: the ADD lags two rows behind the tensor's newest (the
    # two 3x3 halos), the first of them
    assert len(kept) == 1 and kept[0].shape[1] == 3
    assert program.plan.size < load_program(model, ram_budget=10**6).plan.size
    wide = stream(graph, layers, 9, 1, 1.5)  # the depthwise branch's wide line buffers
    assert wide is not None and wide.joins
    assert max(int(layer.params.get("group") or 0) for layer in wide.layers
               if layer.opcode == "DEPTHWISE_CONV_2D") > 4


def _all_streamed() -> list[tuple[str, bool]]:
    """(model name, residual): the chains of STREAMED and the stages of BRANCHED."""
    return [(name, False) for name in STREAMED] + [(name, True) for name in BRANCHED]


@pytest.mark.parametrize(("name", "residual"), _all_streamed())
def test_every_stream_is_sound(name: str, residual: bool) -> None:
    """Each stage end (with residual branches or a chain) and rows per step, with and
    without overlaps, I/O outside and in the arena: the simulation, also at the grain of
    rows, proves that no live byte is overwritten (a row kept for its slowest reader is
    still its window's when read); no MACs are computed again."""
    model = (BRANCHED if residual else STREAMED)[name]()
    streams = _streams(model, residual)
    assert len(streams) >= (9 if residual else 12), streams
    for end, rows in streams:
        for io_in_arena in (False, True):
            for overlaps in (False, True):
                program = streamed_program(model, end, rows, io_in_arena, overlaps,
                                           residual=residual)
                simulate(program)
                simulate_rows(program)
                assert program.plan.extra_macs == 0
                assert program.macs == sum(layer.macs() for layer in program.model_layers
                                           or [])


@pytest.mark.parametrize(("name", "residual"), _all_streamed())
def test_streams_host_bit_exact_and_sanitizer_clean(name: str, residual: bool,
                                                     tmp_path: Path) -> None:
    """Five streamed schedules spread over the stage ends and rows per step on the host
    (I/O in and outside the arena, overlaps or not; with residual branches, wide depthwise
    line buffers or not), against the unpatched model; the deepest stage one row at a
    time also under the sanitizers with the debug-buffer build."""
    model = (BRANCHED if residual else STREAMED)[name]()
    streams = _streams(model, residual)
    chosen = streams[::max(1, len(streams) // 5)]
    plain = load_program(model)
    inputs = random_inputs(plain, 60, seed=12 if residual else 8)
    expected = execute(plain, "reference", inputs)
    for i, (end, rows) in enumerate(chosen):
        program = streamed_program(model, end, rows, io_in_arena=i % 2 == 1,
                                   overlaps=i % 3 != 0, wide=1.5 * (i % 2) * residual,
                                   residual=residual)
        exe = build_for_target(program, "host", tmp_path / f"s{i}")
        got = run_executable(program, "host", exe, inputs)
        assert_same(got, expected, f"host, layers 0-{end} streamed, {rows} rows")
    end = max(end for end, _ in streams)
    for io_in_arena in (False, True):
        program = streamed_program(model, end, 1, io_in_arena, overlaps=True,
                                   residual=residual)
        exe = build_for_target(program, "host", tmp_path / f"asan{io_in_arena}",
                               sanitize=True)
        got = run_executable(program, "host", exe, inputs)
        assert_same(got, expected, f"host sanitizers, layers 0-{end} streamed")


_STEP_TERM = re.compile(r"(\d+) ([+-]) (\d+) \* step\b|(\d+) \* step\b")


def _at_step(text: str, step: int) -> str:
    """A loop body's line with the loop index `step` put in (the offsets computed)."""
    def value(m: re.Match[str]) -> str:
        if m.group(4) is not None:
            return str(int(m.group(4)) * step)
        sign = 1 if m.group(2) == "+" else -1
        return str(int(m.group(1)) + sign * int(m.group(3)) * step)
    return _STEP_TERM.sub(value, text)


def _invoke_unrolled(source: str) -> tuple[int, list[tuple[str, str]]]:
    """(loops, [(mark, call)] in the order they run) of m_invoke_with_arena's text: each
    loop's body repeated with its index put in."""
    body = source[source.index("int m_invoke_with_arena("):]
    lines = body[:body.index("\n}\n")].splitlines()
    loops, run, k = 0, [], 0
    loop = re.compile(r" +for \(unsigned int step = 0; step < (\d+)u; \+\+step\) \{$")
    while k < len(lines):
        head = loop.match(lines[k])
        end = lines.index("    }", k) if head else k + 1
        text = lines[k + 1:end] if head else lines[k:end]
        for step in range(int(head.group(1)) if head else 1):
            run += [_at_step(line.strip(), step) for line in text]
        loops, k = loops + bool(head), end + bool(head)
    marks = [line for line in run if line.startswith("CODEGEN_PROFILE_LAYER(")]
    calls = [line for line in run if line.startswith("m_")]
    return loops, list(zip(marks, calls, strict=False))


@pytest.mark.parametrize(("name", "residual"), _all_streamed())
def test_streamed_invoke_loops_over_its_steps(name: str, residual: bool) -> None:
    """The deepest stage one row per step (the schedules run above on the host, under
    the sanitizers and under QEMU): the invoke makes the steps that repeat as a loop, fewer
    calls in the text than band layers, in the debug-buffer build too; unrolled, the
    loops mark and call every running layer in order (the marks codegen bench counts)."""
    from codegen.emit import EmitOptions, emit_model

    model = (BRANCHED if residual else STREAMED)[name]()
    end = max(end for end, _ in _streams(model, residual))
    for io_in_arena in (False, True):
        program = streamed_program(model, end, 1, io_in_arena, overlaps=True,
                                   residual=residual)
        running = [layer for layer in program.layers if layer.index not in program.plan.elided]
        for debug in (False, True):
            source = emit_model(program, "m", EmitOptions(debug_buffers=debug))["m.c"]
            loops, unrolled = _invoke_unrolled(source)
            calls = len(re.findall(r"^ +m_\w+\(", source[source.index("_invoke_with_arena("):],
                                   re.M))
            assert loops >= 1 and calls < len(running), (loops, calls, len(running))
            assert [mark for mark, _ in unrolled] == [
                f"CODEGEN_PROFILE_LAYER({k});" for k in range(len(running))]
            assert [call.split("(")[0] for _, call in unrolled] == [
                layer.symbol("m") for layer in running]


@pytest.mark.parametrize("target", [t for t in TARGETS if TARGETS[t].name.startswith("cortex-m")])
def test_branch_streams_bit_exact_on_cortex_m(target: str, tmp_path: Path) -> None:
    """Both models' deepest stage with residual branches, one row per step, under QEMU on
    each Cortex-M target."""
    for name, make in BRANCHED.items():
        model = make()
        end = max(end for end, _ in _streams(model, residual=True))
        plain = load_program(model)
        inputs = random_inputs(plain, 8, seed=13)
        expected = execute(plain, "reference", inputs)
        program = streamed_program(model, end, 1, io_in_arena=False, overlaps=True, residual=True)
        exe = build_for_target(program, target, tmp_path / name)
        got = run_executable(program, target, exe, inputs)
        assert_same(got, expected, f"{target}: {name}, layers 0-{end} streamed")


def test_budget_streams_resnet_residual_blocks(shared_models: Path, tmp_path: Path) -> None:
    """pretrainedResnet_quant under budgets only a stage with residual branches meets:
    streamed through its three residual blocks into the global pool (no MACs again), each
    plan sound and within its budget, the schedule text saying so; bit-exact on the host
    at the smallest arena, where no step's live bytes exceed the arena. Without a budget the
    schedule is the default one."""
    from codegen.inspect import memory_report
    from codegen.plan import smallest_schedule

    model = (shared_models / "pretrainedResnet_quant.tflite").read_bytes()
    plain = load_program(model)
    assert not plain.plan.patch and plain.plan.steps == 0
    smallest = smallest_schedule(plain.graph, plain.layers).plan
    assert smallest.steps and smallest.extra_macs == 0
    assert "(3 residual ADDs in the stream)" in smallest.patch
    for budget in (20480, (20480 + smallest.size) // 2, smallest.size):
        program = load_program(model, ram_budget=budget)
        simulate(program)
        assert program.plan.size <= budget and program.plan.extra_macs == 0, budget
        assert "residual ADDs in the stream" in program.plan.schedule, budget
    report = memory_report(shared_models / "pretrainedResnet_quant.tflite", smallest.size)
    live = [int(m) for m in re.findall(r": (\d+) B live: ", report)]
    assert len(live) == len(program.layers) and max(live) <= program.plan.size, live
    inputs = random_inputs(plain, 10, seed=14)
    assert_same(execute(program, "host", inputs, work_dir=tmp_path),
                execute(plain, "reference", inputs), "host at the smallest arena")


# -- few-channel layers streamed in bands: one row function, its odd row's last pixel -----


def few_rows_model() -> bytes:
    """kws_ref_model's first layer in small (one input channel, a 10x4 kernel of stride 2,
    rows of an odd width: 9 pixels by 4 channels, the row function's passes inside each
    block), a second few-channel convolution (4 channels in, rows of 5 pixels by 16, the
    blocks inside each pass), then a depthwise and a 1x1 convolution to a smaller tensor and
    a global pool. RELU with output zero points -128: the full int8 range, which the row
    function in assembly (conv_2d._few_shifted) takes."""
    m = _Chain((1, 49, 18, 1), (0.05, -128), seed=22)
    t = m.conv(m.x, 4, 0, 2, "SAME", (1.0, -128), kernel=(10, 4), activation="RELU")  # 25x9x4
    t = m.conv(t, 16, 3, 2, "SAME", (15.0, -128), activation="RELU")                # 13x5x16
    t = m.conv(t, 0, 3, 1, "SAME", (10.0, -128), depthwise=True)
    t = m.conv(t, 4, 1, 1, "VALID", (30.0, -128), activation="RELU")                # 13x5x4
    return m.build(m.global_pool(t))


_FEW_ROW = re.compile(r"^static void __attribute__\(\(naked, noinline\)\) (\w+_row)\((.*?)^}$",
                      re.M | re.S)


def _few_banded() -> tuple[bytes, Program]:
    """few_rows_model under the smallest arena's budget, and its program: both few-channel
    layers streamed, each in several bands."""
    model = few_rows_model()
    plain = load_program(model)
    from codegen.plan import smallest_schedule

    budget = smallest_schedule(plain.graph, plain.layers).plan.size
    program = load_program(model, ram_budget=budget)
    assert program.plan.steps and "streamed in" in program.plan.schedule
    return model, program


def test_few_bands_share_one_row_function() -> None:
    """Each few-channel layer's bands (each of them taking the assembly with the one-pixel
    block for the row's odd last pixel) share one row function: the first band's, its text
    once in the file, every other band's name #defined to it; each band calls its own name;
    the function ends its rows in the one-pixel block."""
    from codegen.emit import emit_model

    _, program = _few_banded()
    source = emit_model(program, "m")["m.c"]
    rows = _FEW_ROW.findall(source)
    bodies = dict(rows)
    for index, passes_inner in ((0, True), (1, False)):
        bands = [la for la in program.layers if la.stem.startswith(f"l{index}_conv_2d_band")]
        symbols = sorted({la.symbol("m") for la in bands})
        assert len(symbols) >= 3, symbols
        shifted = [la.params["few"]["shifted"] for la in bands]
        assert all(sh is not None and sh["one"] and sh["passes_inner"] == passes_inner
                   for sh in shifted), index
        first = f"{symbols[0]}_row"
        mine = [name for name, _ in rows if name.startswith(f"m_l{index}_conv_2d_band")]
        assert mine == [first], mine
        assert source.count(bodies[first]) == 1
        assert "the row's odd last pixel alone" in bodies[first]
        for symbol in symbols[1:]:
            assert source.count(f"\n#define {symbol}_row {first}\n") == 1, symbol
        assert all(source.count(f"{s}_row(rows") == 1 for s in symbols)
    assert len(rows) == 2, [name for name, _ in rows]


def _few_inputs(program: Program, count: int) -> list[np.ndarray]:
    """The all-minimum and all-maximum samples, columns alternating -128 and 127 (either
    way round: each pixel's window, the odd last one's too, at both ends), then `count`
    full-range random ones."""
    from support.verify import edge_inputs

    (edges,) = edge_inputs(program)
    shape = edges.shape[1:]
    columns = np.where(np.arange(shape[2])[:, None] % 2 == 0, -128, 127).astype(np.int8)
    stripes = np.stack([np.broadcast_to(columns, shape), np.broadcast_to(~columns, shape)])
    (rest,) = random_inputs(program, count, seed=23)
    return [np.concatenate([edges, stripes, rest])]


@pytest.mark.parametrize("target", ["host", "cortex-m4", "cortex-m33"])
def test_few_bands_bit_exact(target: str, tmp_path: Path) -> None:
    """The streamed few-channel layers against the unstreamed model's reference at integer
    extremes and on random inputs: the row functions in assembly (with the one-pixel block)
    under QEMU, where each layer's bands link one; the C on the host, also under the
    sanitizers with the debug-buffer build."""
    model, program = _few_banded()
    plain = load_program(model)
    inputs = _few_inputs(plain, 400 if target == "host" else 150)
    expected = execute(plain, "reference", inputs)
    assert_same(execute(program, "reference", inputs), expected, "reference, streamed")
    for sanitize in (False, True) if target == "host" else (False,):
        exe = build_for_target(program, target, tmp_path / f"s{sanitize}", sanitize=sanitize)
        got = run_executable(program, target, exe, inputs)
        assert_same(got, expected, f"{target}{' sanitizers' if sanitize else ''}: "
                                   "few-channel layers in streamed bands")
        if not TARGETS[target].is_host:
            from test_gemm_v7m_conv import _symbols

            symbols = _symbols(exe)
            for index in (0, 1):
                rows = re.findall(rf"\b\w*_l{index}_conv_2d_band\d+_row$", symbols, re.M)
                assert len(rows) == 1, (index, rows)
