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
    instruction an M0 lacks (test_firmware.py, test_shared_models.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from support.policy import REPO_ROOT, require_tool
from support.verify import edge_inputs, random_inputs
from test_kernels_fast import MODELS as GEMM_MODELS
from test_ops_fast_window import MODELS as WINDOW_MODELS

from codegen import quant
from codegen.execute import execute, run_executable, write_harness_sources
from codegen.ops import _gemm, _gemm_v6m
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
MODELS = {**GEMM_MODELS, **{f"window_{name}": make for name, make in WINDOW_MODELS.items()}}
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_portable_engine_is_exact_under_sanitizers(name: str, tmp_path: Path) -> None:
    model = MODELS[name]()
    program = load_program(model)
    write_harness_sources(program, tmp_path)
    executable = tmp_path / "harness"
    command = [require_tool("gcc"), "-std=c99", "-O1", "-g", *SANITIZE, "-DCG_GEMM_V6M=1",
               "-DCG_GEMM_V6M_MULHI16=1",
               "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Werror",
               "-I", str(tmp_path), "-I", str(HARNESS), str(tmp_path / "model.c"),
               str(tmp_path / "harness_glue.c"), str(HARNESS / "main.c"),
               str(HARNESS / "io_stdio.c"), "-o", str(executable)]
    built = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stderr
    assert "cg_v6m_" in (tmp_path / "model.c").read_text()
    inputs = random_inputs(program, 6, seed=7)
    extra = edge_inputs(program)
    inputs = [np.concatenate([extra[i], inputs[i]]) for i in range(len(inputs))]
    expected = execute(program, "reference", inputs)
    got = run_executable(program, "host", executable, inputs)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert np.array_equal(g, e)
