"""ARMv7-M's CONV_2D engine (codegen/ops/_gemm_v6m.py, pack_conv7; templates/runtime/
gemm_v7m_conv.c.j2, templates/kernels/_conv_2d_v7m.c.j2):

  - its arithmetic in numpy: the weight words (two depth indices of a channel) times the
    crossed column words (two of a pixel) plus 2^15, wrapped to 32 bits, give the pair's dot
    product in the high half, exact at the extremes; the generator refuses a pair of -128;
  - the depth order: runs (a pixel's channels, a filter row, a tap) padded to an even length;
  - a model of edge layers (3x3 stride 2 from 3 channels, dilated taps of odd length, 1x1
    with two passes of blocks and an odd tail, odd depths, per-tensor weights, the extreme
    input zero points -128 and 127, a 5x5 window, a layer whose weights hold a pair of -128
    and keep the ARMv6-M engine) matches the reference on cortex-m3 and cortex-m0 under
    QEMU and, the portable C forced (CG_GEMM_V7M=1), on the host under the sanitizers, as do
    the engine tests' edge models.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from support.builder import ModelBuilder, Q, bias_scales
from support.conv_models import conv_options, out_size
from support.policy import require_tool
from support.verify import assert_same, c_matches_reference, edge_inputs, random_inputs
from test_gemm_v6m import _sanitized_matches_reference
from test_kernels_fast import MODELS as GEMM_MODELS

from codegen import quant
from codegen.build import build_firmware
from codegen.execute import HARNESS_NAME, execute, run_executable, write_harness_sources
from codegen.ops import _gemm, _gemm_v6m
from codegen.ops.conv_2d import Conv2DGemm
from codegen.program import load_program
from codegen.targets import get_target

_U32 = (1 << 32) - 1


def _conv7_engine(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sum w * x per channel as cg_v7m_conv2_kN computes it from the words (weights [C, K],
    K a multiple of 8, x [K]): t = W * X + 2^15 wrapped to 32 bits, S = sum t >> 16."""
    words = _gemm_v6m.pack_conv7(weights).astype(np.int64).reshape(-1, weights.shape[1] // 2, 2)
    column = (x[0::2].astype(np.int64) << 16) + x[1::2]  # X = x[2i] * 2^16 + x[2i + 1]
    t = (words * column[None, :, None] + (1 << 15)) & _U32
    high = np.where(t >= 1 << 31, t - (1 << 32), t) >> 16
    return high.sum(axis=1).reshape(-1)[:weights.shape[0]]


@pytest.mark.parametrize(("channels", "depth"), [(1, 8), (5, 16), (13, 40), (4, 1152)])
def test_conv7_words_give_exact_dot_products(channels: int, depth: int) -> None:
    rng = np.random.default_rng(channels)
    w = rng.integers(-127, 128, size=(channels, depth))
    w[0, 0::2] = -128  # a -128 in every pair: 128 * 255, the pair's extreme
    w[-1] = 127 * (-1) ** np.arange(depth)
    assert _gemm_v6m.fc7_fits(w)
    for x in (rng.integers(-128, 128, size=depth), np.full(depth, -128), np.full(depth, 127),
              np.where(w[-1] > 0, 127, -128), np.where(w[0] > 0, -128, 127)):
        assert np.array_equal(_conv7_engine(w, x), w @ x)


def test_conv7_order_pads_each_run_to_pairs() -> None:
    w = np.arange(1, 2 * 3 * 5 + 1).reshape(2, 15)  # three runs of five values
    ordered = _gemm_v6m.conv7_weights(w, 3)
    assert ordered.shape == (2, 24)  # 3 * 6 = 18, padded to a multiple of 8
    assert list(ordered[0, :12]) == [1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 10, 0]
    assert not ordered[:, 18:].any()


def test_conv7_refuses_a_pair_of_minus_128() -> None:
    w = np.zeros((2, 12), np.int64)
    w[1, 1:3] = -128  # two -128 in different pairs
    mult, shift = quant.quantize_multipliers(np.full(2, 0.001))
    rq = _gemm.plan_requant(w, np.zeros(2, np.int64), mult, shift, 0, -128, 127, channel_pad=4)
    assert rq is not None
    assert _gemm_v6m.plan_conv7(w, rq, 1, 16) is not None
    w[0, 2:4] = -128  # a pair of -128: 2 * 128 * 128 = 2^15 with x = -128
    assert _gemm_v6m.plan_conv7(w, rq, 1, 16) is None
    v = np.zeros((2, 10), np.int64)
    v[0, 4:6] = -128  # side by side across two runs of 5 (each padded to 6): not a pair
    assert _gemm_v6m.plan_conv7(v, rq, 2, 16) is not None
    assert _gemm_v6m.plan_conv7(v, rq, 1, 16) is None  # one run of 10: the pair (4, 5)
    # a padded depth beyond the ARMv6-M engine's: refused (its column space is taken)
    assert _gemm_v6m.plan_conv7(np.ones((2, 15)), rq, 5, 16) is None


# -- generated C ---------------------------------------------------------------------------

_INPUTS = [((1, 6, 7, 3), (0.05, -128)), ((2, 5, 5, 9), (0.04, 127)), ((1, 5, 6, 4), (0.05, -3))]
# input, filters, (kh, kw), padding, stride, dilation, activation, per-channel
_BRANCHES = [
    (0, 8, (3, 3), "SAME", (2, 2), (1, 1), "RELU6", True),  # vww's first layer
    (0, 5, (1, 3), "SAME", (1, 1), (1, 2), "NONE", True),  # taps of 3 values one by one
    (0, 67, (1, 1), "VALID", (1, 1), (1, 1), "NONE", False),  # 34 blocks: two passes, a tail
    (1, 7, (1, 1), "SAME", (1, 1), (1, 1), "RELU", True),  # 9 channels: a pair with a zero
    (1, 4, (2, 3), "VALID", (1, 2), (1, 1), "NONE", True),  # a pair of -128: ARMv6-M's
    (1, 3, (5, 5), "SAME", (1, 1), (1, 1), "RELU6", True),  # rows of 45: depth 230 of 232
    (2, 6, (3, 3), "SAME", (1, 1), (2, 2), "RELU", True),  # taps of 4 values, dilated rows
    # taps of 3 values: 9 * 4 = 36 values, beyond the ARMv6-M column's 32: ARMv6-M's
    (0, 4, (3, 3), "SAME", (1, 1), (1, 2), "NONE", True),
]


def _conv7_model() -> bytes:
    rng = np.random.default_rng(31)
    b = ModelBuilder("conv7 edges")
    inputs = [b.add_tensor(f"input{k}", shape, "int8", quant=Q(*q))
              for k, (shape, q) in enumerate(_INPUTS)]
    outs = []
    for i, (k, filters, (kh, kw), padding, stride, dilation, activation,
            per_channel) in enumerate(_BRANCHES):
        (n, h, w, c), (in_scale, _) = _INPUTS[k]
        weights = rng.integers(-127, 128, size=(filters, kh, kw, c))
        weights[0].flat[0::2] = -128  # a -128 in every pair of the first filter
        weights[-1].flat[:] = 127 * (-1) ** np.arange(kh * kw * c)
        if i == 4:
            weights[1, 0, 0, 2:4] = -128  # the pair (2, 3) of the first row
        scales = (list(0.004 * rng.uniform(0.3, 3.0, size=filters)) if per_channel
                  else [0.003])
        wq = Q(scales, 0, axis=0) if per_channel else Q(scales[0], 0)
        wt = b.add_tensor(f"w{i}", weights.shape, "int8", quant=wq, data=weights)
        bt = b.add_tensor(f"b{i}", (filters,), "int32",
                          quant=Q(bias_scales(in_scale, scales * (filters if not per_channel
                                                                   else 1)), 0, axis=0),
                          data=rng.integers(-3000, 3001, size=filters))
        oh = out_size(padding, h, kh, stride[0], dilation[0])
        ow = out_size(padding, w, kw, stride[1], dilation[1])
        y = b.add_tensor(f"y{i}", (n, oh, ow, filters), "int8", quant=Q(0.15, 9 - 7 * i))
        b.add_op("CONV_2D", [inputs[k], wt, bt], [y],
                 conv_options(padding, stride, dilation, activation))
        outs.append(y)
    b.set_io(inputs, outs)
    return b.build()


def test_conv7_model_takes_both_engines() -> None:
    layers = load_program(_conv7_model()).layers
    assert all(type(la) is Conv2DGemm for la in layers)
    assert [la.params["v7m"] is not None for la in layers] == [True] * 4 + [False] + [True] * 2 + [
        False]
    v7m = [la.params["v7m"] for la in layers]
    assert [(v["segments"], v["seg_len"], v["kpad"]) for v in v7m if v is not None] == [
        (3, 9, 32), (3, 3, 16), (1, 3, 8), (1, 9, 16), (5, 45, 232), (9, 4, 40)]
    # eight k-pairs per iteration where the padded depth is a multiple of 16, else four
    assert [v["engine"][-2:] for v in v7m if v is not None] == ["k8", "k8", "k4", "k8", "k4",
                                                                "k4"]


def _extremes(model: bytes) -> list[np.ndarray]:
    return edge_inputs(load_program(model))


@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m0"])
def test_conv7_model_matches_reference(target: str, tmp_path: Path) -> None:
    model = _conv7_model()
    executable = c_matches_reference(model, target, tmp_path, seed=6, extra=_extremes(model))
    # ARMv7-M runs the engine (and ARMv6-M's for the layer it refuses), ARMv6-M only its own
    symbols = _symbols(executable)
    assert "cg_v6m_conv4" in symbols
    assert ("cg_v7m_conv2" in symbols) == (target == "cortex-m3")
    if target == "cortex-m3":  # four single loads per k-pair, which the M3 pipelines
        assert "ldrd" not in _engine_listing(executable)


def _engine_listing(executable: Path) -> str:
    """The disassembly of the first cg_v7m_conv2_kN."""
    listing = subprocess.run([require_tool("arm-none-eabi-objdump"), "-d", str(executable)],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    engine = listing[listing.index("<cg_v7m_conv2_k"):]
    return engine[:engine.index("\n\n")]


def _symbols(executable: Path) -> str:
    return subprocess.run([require_tool("arm-none-eabi-nm"), str(executable)],
                          capture_output=True, text=True, timeout=60, check=True).stdout


def test_conv7_portable_engine_is_exact_under_sanitizers(tmp_path: Path) -> None:
    """The engine's portable C (CG_GEMM_V7M=1 on the host) beside the ARMv6-M one."""
    source = _sanitized_matches_reference(load_program(_conv7_model()), tmp_path,
                                          ["-DCG_GEMM_V6M=1", "-DCG_GEMM_V7M=1"], 9)
    assert "cg_v7m_conv2_k" in source and "cg_v6m_conv4(cols" in source


@pytest.mark.parametrize("name", ["conv_edges", "inplace_chain", "gathered_columns"])
def test_edge_models_portable_engine_under_sanitizers(name: str, tmp_path: Path) -> None:
    source = _sanitized_matches_reference(load_program(GEMM_MODELS[name]()), tmp_path,
                                          ["-DCG_GEMM_V6M=1", "-DCG_GEMM_V7M=1"], 8)
    assert "cg_v7m_conv2_k" in source


@pytest.mark.parametrize(("define", "level"), [("CG_GEMM_V7M 0", "2"),
                                               ("CG_V7M_CONV_LDRD 1", "2"), (None, "0")])
def test_conv7_model_on_cortex_m3_by_macro(define: str | None, level: str,
                                           tmp_path: Path) -> None:
    """On cortex-m3 under QEMU: -DCG_GEMM_V7M=0 (flash over time: the ARMv6-M engines and
    their byte weights, the arrays of CG_GEMM_V6M && !CG_GEMM_V7M), the engine's LDRD
    loads (-DCG_V7M_CONV_LDRD=1: fewer instructions), and the engine in a -O0 build match
    the reference."""
    program = load_program(_conv7_model())
    write_harness_sources(program, tmp_path)
    source = tmp_path / f"{HARNESS_NAME}.c"
    if define is not None:
        source.write_text(f"#define {define}\n" + source.read_text())
    executable = build_firmware(tmp_path, HARNESS_NAME, get_target("cortex-m3"),
                                tmp_path / "build", optimization=level)
    inputs = random_inputs(program, 3, seed=2)
    extra = _extremes(_conv7_model())
    inputs = [np.concatenate([extra[i], inputs[i]]) for i in range(len(inputs))]
    assert_same(run_executable(program, "cortex-m3", executable, inputs),
                execute(program, "reference", inputs), f"cortex-m3 with {define}")
    symbols = _symbols(executable)
    assert "cg_v6m_conv4" in symbols
    assert ("cg_v7m_conv2" in symbols) == (define != "CG_GEMM_V7M 0")
    if define == "CG_V7M_CONV_LDRD 1":
        assert "ldrd" in _engine_listing(executable)
