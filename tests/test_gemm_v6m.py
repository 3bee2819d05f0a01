"""The matrix-product engine of the cores without DSP (codegen/ops/_gemm_v6m.py,
templates/runtime/gemm_v6m*.c.j2): ARMv6-M (Cortex-M0/M0+) and ARMv7-M (Cortex-M3).

  - its arithmetic in numpy, without C: the packed bytes and two-pixel column words, put
    through 32-bit wrap-around MULS arithmetic (A = sum P, B = sum P >> 16), give the exact
    dot products, and the folded tables give TFLM's outputs;
  - the portable C of the engine and of the 3x3 depthwise kernel (depthwise3x3_v6m.c.j2;
    what a core without the assembly compiles) built for the host with CG_GEMM_V6M=1 (and
    the ARMv6-M high-word multiply from 16-bit halves) under AddressSanitizer and
    UndefinedBehaviorSanitizer, against the reference, on the edge models of the engine's
    and the depthwise kernel's tests (test_kernels_fast.py, test_ops_fast_window.py);
  - the assembly runs on cortex-m0 and cortex-m3 under QEMU in those tests' edge models
    and test_shared_models.py's models (every target), and the cortex-m0 image holds no
    instruction an M0 lacks (test_firmware.py, test_shared_models.py);
  - ARMv7-M's FULLY_CONNECTED engine (pack_fc7, gemm_v7m_fc.c.j2): its words through the
    assembly's 32-bit arithmetic give the exact dot products at the extremes, the generator
    refuses weights whose pair sums could leave 16 bits, and a model with both kinds of
    layer (several passes of blocks, a tail, the fallback) matches the reference on
    cortex-m3 and cortex-m0 under QEMU and, its portable C forced, on the host under the
    sanitizers.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from support.builder import ModelBuilder, Q, bias_scales, fc_options
from support.policy import REPO_ROOT, require_tool
from support.verify import c_matches_reference, edge_inputs, random_inputs
from test_kernels_fast import MODELS as GEMM_MODELS
from test_ops_fast_window import MODELS as WINDOW_MODELS

from codegen import quant
from codegen.execute import execute, run_executable, write_harness_sources
from codegen.ops import _gemm, _gemm_v6m
from codegen.ops.fully_connected import FullyConnectedGemm
from codegen.program import load_program

_U32 = np.uint64(0xFFFFFFFF)


def _conv_engine(weights: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """sum v * u of pixels 0 and 1 per channel, as cg_v6m_conv4 and the layer compute them
    (modulo 2^32), from the packed bytes."""
    channels, depth = weights.shape
    kpad = _gemm.padded_depth(depth)
    packed = _gemm_v6m.pack(weights, _gemm_v6m.CONV_BLOCK).reshape(-1, kpad, 4)
    u = np.zeros((2, kpad), np.uint64)
    u[0, :depth] = x0.astype(np.int64) + 128
    u[1, :depth] = x1.astype(np.int64) + 128
    words = u[0] | (u[1] << np.uint64(16))
    sums = []
    for block in packed.astype(np.uint64):
        p = (block * words[:, None]) & _U32  # MULS: both halves exact
        a = p.sum(axis=0) & _U32
        b = (p >> np.uint64(16)).sum(axis=0) & _U32
        t0 = (a - (b << np.uint64(16))) & _U32
        sums.append(np.stack([t0, b]))
    return np.concatenate(sums, axis=1)[:, :channels].astype(np.int64)


@pytest.mark.parametrize(("channels", "depth"), [(1, 1), (5, 13), (8, 64), (3, 300)])
def test_column_words_give_exact_dot_products(channels: int, depth: int) -> None:
    rng = np.random.default_rng(channels * 1000 + depth)
    w = rng.integers(-128, 128, size=(channels, depth))
    w[0, : depth // 2] = -128  # extremes
    x = rng.integers(-128, 128, size=(2, depth))
    x[1, :] = -128 if depth > 1 else 127
    t = _conv_engine(w, x[0], x[1])
    u = x + 128
    v = w + 128
    assert np.array_equal(t, u @ v.T)  # sum v * u per pixel and channel
    # S = T - 128 * SU - 128 * SV + 16384 * depth, the folding conv_table relies on
    s = t - 128 * u.sum(axis=1)[:, None] - 128 * v.sum(axis=1)[None, :] + 16384 * depth
    assert np.array_equal(s, x @ w.T)


def test_fc_packing_is_blocks_of_eight_unsigned_bytes() -> None:
    w = np.arange(-60, 60).reshape(10, 12) % 256 - 128
    packed = _gemm_v6m.pack(w, _gemm_v6m.FC_BLOCK).reshape(2, 16, 8)
    assert packed[0, 3, 5] == w[5, 3] + 128
    assert packed[1, 11, 1] == w[9, 11] + 128
    assert not packed[1, :, 2:].any() and not packed[:, 12:, :].any()  # padding is zero


@pytest.mark.parametrize("seed", range(4))
def test_conv_table_gives_tflms_outputs(seed: int) -> None:
    """The layer's requantization from T - 128 * SU and the table equals TFLM's."""
    rng = np.random.default_rng(seed)
    channels, depth = 7, 27
    w = rng.integers(-128, 128, size=(channels, depth))
    w[2] = 0  # constant channel
    bias = rng.integers(-20000, 20000, size=channels)
    x_offset = int(rng.integers(-128, 128))
    folded = bias + x_offset * w.sum(axis=1)
    mult, shift = quant.quantize_multipliers(rng.uniform(1e-4, 0.02, size=channels))
    zp, act_min, act_max = int(rng.integers(-128, 128)), -128, 127
    rq = _gemm.plan_requant(w, folded, mult, shift, zp, act_min, act_max, channel_pad=2)
    assert rq is not None
    table = _gemm_v6m.conv_table(w, rq).reshape(-1, 4)[:channels].astype(np.int64)
    x = rng.integers(-128, 128, size=(2, depth))
    x[0] = 127
    t = _conv_engine(w, x[0], x[1])
    su128 = 128 * (x + 128).sum(axis=1)[:, None]
    v = quant.wrap_int32((t - su128) * rq.scale + table[None, :, 0])
    product = v * table[None, :, 1]
    y = (product >> 32) + ((product >> 31) & 1)
    got = np.clip((y + table[None, :, 2] + (v < 0) * -1) >> table[None, :, 3], act_min,
                  act_max)
    acc = x @ w.T + folded
    expected = quant.requantize(acc, mult, shift, zp, act_min, act_max)
    assert np.array_equal(got, expected)


# -- the portable C, on the host, under the sanitizers --------------------------------------

HARNESS = REPO_ROOT / "firmware" / "harness"
# The engine tests' edge models and the 3x3 depthwise ones (depthwise3x3_v6m.c.j2).
# window models of stride-2 3x3 depthwise layers alone: no layer an ARMv6-M engine takes
# (its depthwise lines are stride 1), so nothing for the portable engine's test to run
_NO_V6M = {"dw_six_lines_s2", "dw_three_lines_s2", "dw_three_lines_s2_valid"}
MODELS = {**GEMM_MODELS, **{f"window_{name}": make for name, make in WINDOW_MODELS.items()
                            if name not in _NO_V6M}}
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer"]


def _sanitized_matches_reference(program: object, tmp_path: Path, defines: list[str],
                                 seed: int) -> str:
    """Build the program's C for the host with `defines` under the sanitizers, run edge and
    random samples, compare with the reference; returns the generated model.c."""
    write_harness_sources(program, tmp_path)  # type: ignore[arg-type]
    executable = tmp_path / "harness"
    command = [require_tool("gcc"), "-std=c99", "-O1", "-g", *SANITIZE, *defines,
               "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Werror",
               "-I", str(tmp_path), "-I", str(HARNESS), str(tmp_path / "model.c"),
               str(tmp_path / "harness_glue.c"), str(HARNESS / "main.c"),
               str(HARNESS / "io_stdio.c"), "-o", str(executable)]
    built = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stderr
    inputs = random_inputs(program, 6, seed=seed)  # type: ignore[arg-type]
    extra = edge_inputs(program)  # type: ignore[arg-type]
    inputs = [np.concatenate([extra[i], inputs[i]]) for i in range(len(inputs))]
    expected = execute(program, "reference", inputs)  # type: ignore[arg-type]
    got = run_executable(program, "host", executable, inputs)  # type: ignore[arg-type]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert np.array_equal(g, e)
    return (tmp_path / "model.c").read_text()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_portable_engine_is_exact_under_sanitizers(name: str, tmp_path: Path) -> None:
    source = _sanitized_matches_reference(load_program(MODELS[name]()), tmp_path,
                                          ["-DCG_GEMM_V6M=1", "-DCG_GEMM_V6M_MULHI16=1"], 7)
    assert "cg_v6m_" in source


@pytest.mark.parametrize("name", sorted(WINDOW_MODELS))
def test_depthwise_pairs_are_exact_under_sanitizers(name: str, tmp_path: Path) -> None:
    """The 3x3 depthwise output lines two outputs per step (CG_DW3X3_PAIRS, what ARMv7-M
    without DSP compiles), forced on the host."""
    source = _sanitized_matches_reference(load_program(WINDOW_MODELS[name]()), tmp_path,
                                          ["-DCG_DW3X3_PAIRS=1"], 7)
    assert "cg_dw3x3_" in source

# -- ARMv7-M's FULLY_CONNECTED engine ---------------------------------------------------------

def _fc7_engine(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sum w * x per channel (modulo 2^32), as cg_v7m_fc6 and the layer compute them from the
    words: P = W_k x_k + W_k+1 x_k+1 + 2^15 wrapped to 32 bits, A = sum P, B = sum (P >> 16)
    (arithmetic), S = A - 2^16 B - 2^15 * depth / 2 (even channels) or B (odd ones)."""
    channels, depth = weights.shape
    words = _gemm_v6m.pack_fc7(weights).astype(np.int64).reshape(-1, depth // 2, 3, 2)
    p = (words[..., 0] * x[0::2, None] + words[..., 1] * x[1::2, None] + (1 << 15)) & 0xFFFFFFFF
    signed = np.where(p >= 1 << 31, p - (1 << 32), p)
    a = p.sum(axis=1) & 0xFFFFFFFF
    b = (signed >> 16).sum(axis=1) & 0xFFFFFFFF
    even = (a - (b << 16) - (1 << 15) * (depth // 2)) & 0xFFFFFFFF
    s = np.stack([even, b], axis=-1).reshape(-1)[:channels]
    return np.where(s >= 1 << 31, s - (1 << 32), s)


@pytest.mark.parametrize(("channels", "depth"), [(1, 8), (5, 16), (13, 24), (50, 640)])
def test_fc7_words_give_exact_dot_products(channels: int, depth: int) -> None:
    rng = np.random.default_rng(channels)
    w = rng.integers(-127, 128, size=(channels, depth))
    w[0, 0::2] = -128  # one -128 in every pair: the pair sums' extreme, 128 * 255
    w[-1] = 127 * (-1) ** np.arange(depth)
    assert _gemm_v6m.fc7_fits(w)
    for x in (rng.integers(-128, 128, size=depth), np.full(depth, -128), np.full(depth, 127),
              np.where(w[-1] > 0, 127, -128), np.where(w[0] > 0, -128, 127)):
        assert np.array_equal(_fc7_engine(w, x), w @ x)


def test_fc7_refuses_pair_sums_beyond_16_bits() -> None:
    w = np.zeros((2, 8), np.int64)
    w[1, 1:3] = -128  # two -128 in different pairs
    assert _gemm_v6m.fc7_fits(w)
    w[0, 2:4] = -128  # a pair of -128: 2 * 128 * 128 = 2^15 with x = -128
    assert not _gemm_v6m.fc7_fits(w)
    mult, shift = quant.quantize_multipliers(np.full(2, 0.001))
    rq = _gemm.plan_requant(w, np.zeros(2, np.int64), mult, shift, 0, -128, 127, channel_pad=8)
    assert rq is not None and _gemm_v6m.plan_fc7(w, rq) is None


_FC7_Q = (0.05, 7)


def _fc7_model() -> bytes:
    """Two rows of depth 16 into 50 units (nine blocks of six: two passes, the last block
    two channels; per-channel, RELU) and into 3 units whose weights hold a pair of -128 (the
    ARMv6-M engine on every core)."""
    rng = np.random.default_rng(21)
    b = ModelBuilder("fc7")
    x = b.add_tensor("input", (2, 16), "int8", quant=Q(*_FC7_Q))
    outs = []
    for i, (units, activation) in enumerate([(50, "RELU"), (3, "NONE")]):
        weights = rng.integers(-128, 128, size=(units, 16))
        weights[weights == -128] = -127
        weights[0, 0::2] = -128
        if units == 3:
            weights[1, 4:6] = -128
        scales = list(0.01 * rng.uniform(0.3, 3.0, size=units))
        wt = b.add_tensor(f"w{i}", weights.shape, "int8", quant=Q(scales, 0, axis=0),
                          data=weights)
        bt = b.add_tensor(f"b{i}", (units,), "int32",
                          quant=Q(bias_scales(_FC7_Q[0], scales), 0, axis=0),
                          data=rng.integers(-5000, 5001, size=units))
        y = b.add_tensor(f"y{i}", (2, units), "int8", quant=Q(0.1, -20 + 30 * i))
        b.add_op("FULLY_CONNECTED", [x, wt, bt], [y], fc_options(activation))
        outs.append(y)
    b.set_io([x], outs)
    return b.build()


def test_fc7_model_takes_both_engines() -> None:
    layers = load_program(_fc7_model()).layers
    assert all(type(la) is FullyConnectedGemm for la in layers)
    assert [la.params["v7m"] is not None for la in layers] == [True, False]


@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m0"])
def test_fc7_model_matches_reference(target: str, tmp_path: Path) -> None:
    model = _fc7_model()
    c_matches_reference(model, target, tmp_path, seed=5, extra=edge_inputs(load_program(model)))


def test_fc7_portable_engine_is_exact_under_sanitizers(tmp_path: Path) -> None:
    """ARMv7-M's engine in its portable C (CG_GEMM_V7M=1 on the host) with the ARMv6-M one
    beside it, under the sanitizers."""
    source = _sanitized_matches_reference(load_program(_fc7_model()), tmp_path,
                                          ["-DCG_GEMM_V6M=1", "-DCG_GEMM_V7M=1"], 9)
    assert "cg_v7m_fc6(x" in source and "cg_v6m_fc8(x" in source
