"""ARMv7-M's 3x3 depthwise kernel (templates/runtime/depthwise3x3_v7m.c.j2, Cortex-M3): the
lane arithmetic of its words (codegen/ops/_depthwise_v7m.py) against plain sums at the
extremes, the layers it refuses (a -128 tap), and its C forced on the host
(CG_DW3X3_V7M=1) under the sanitizers with the edge shapes of test_ops_fast_window.py;
under QEMU it runs in test_ops_fast_window.py's cortex-m3 cases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support.conv_models import branch_model
from support.verify import c_matches_reference, edge_inputs
from test_gemm_v6m import _sanitized_matches_reference
from test_ops_fast_window import BRANCHES
from test_ops_fast_window import MODELS as WINDOW_MODELS

from codegen.ops import _depthwise_v7m
from codegen.ops.depthwise_conv_2d import DepthwiseConv2D3x3
from codegen.program import load_program


def _no_minus_128(name: str) -> Callable[[], bytes]:
    """test_ops_fast_window.py's branch model `name` with its weights in [-127, 127]: every
    3x3 depthwise layer takes the kernel."""
    shape, input_q, branches = BRANCHES[name]
    tame = [replace(b, min_weight=-127) for b in branches]
    return lambda: branch_model(shape, input_q, tame, seed=len(name), description=name)


# Theirs keep -128 taps: those layers take the portable lines beside this kernel's.
MODELS = {**{f"v7m_{name}": _no_minus_128(name) for name in BRANCHES}, **WINDOW_MODELS}


def _lanes(words: np.ndarray, u_a: np.ndarray, u_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's two accumulators (bias included, unscaled) of one channel from its words,
    for the nine taps' values u_a, u_b (in [1, 256]) of two outputs: P = U * w (mod 2^32),
    A = ca + sum P, B = sum (P >> 16) (arithmetic), outputs A - 2^16 B and B + cb, where
    ca = cb - 65537 N (N the count of negative taps, the eleventh byte)."""
    raw = np.asarray(words[:3], np.int64) & 0xFFFFFFFF
    taps = np.array([(raw[t // 4] >> (8 * (t % 4))) & 0xFF for t in range(9)], np.int64)
    taps = np.where(taps >= 128, taps - 256, taps)
    u = (u_a + (u_b << 16)) & 0xFFFFFFFF
    p = (u * (taps & 0xFFFFFFFF)) & 0xFFFFFFFF
    signed = np.where(p >= 1 << 31, p - (1 << 32), p)
    negative = (int(raw[2]) >> 16) & 0xFF
    a = (int(words[3]) - 65537 * negative + int(p.sum())) & 0xFFFFFFFF
    b = int((signed >> 16).sum())
    out_a = (a - (b << 16)) & 0xFFFFFFFF
    out_b = (b + int(words[3])) & 0xFFFFFFFF
    return tuple(v - (1 << 32) if v >= 1 << 31 else v for v in (out_a, out_b))  # type: ignore[return-value]


@pytest.mark.parametrize("zero_point", [-128, -1, 0, 127])
def test_words_give_exact_sums(zero_point: int) -> None:
    rng = np.random.default_rng(zero_point + 200)
    taps = rng.integers(-127, 128, size=(3, 3, 6))
    taps[:, :, 0] = -127
    taps[:, :, 1] = 127
    taps[:, :, 2] = 0
    taps[:, :, 3] = np.array([[-127, 127, -127], [127, -127, 127], [-127, 127, -127]])
    bias = np.array([0, -(1 << 20), 1 << 20, 12345, -7, 99])
    shifts = np.array([-3, 0, 2, 5, -1, 1])
    words = _depthwise_v7m.words(taps, shifts, bias, -zero_point)
    assert words is not None
    words = words.reshape(6, _depthwise_v7m.WORDS)
    for c in range(6):
        assert (int(words[c, 2]) >> 8) & 0xFF == max(int(shifts[c]), 0) + 1
        for x_a, x_b in ((np.full(9, -128), np.full(9, 127)), (np.full(9, 127), np.full(9, -128)),
                         (rng.integers(-128, 128, 9), rng.integers(-128, 128, 9)),
                         (np.where(taps[:, :, c].ravel() > 0, 127, -128), np.full(9, zero_point))):
            got = _lanes(words[c], x_a + 129, x_b + 129)
            w = taps[:, :, c].ravel()
            want = (int(bias[c] + ((x_a - zero_point) * w).sum()),
                    int(bias[c] + ((x_b - zero_point) * w).sum()))
            assert got == want


def test_a_minus_128_tap_has_no_words() -> None:
    taps = np.ones((3, 3, 2), np.int64)
    assert _depthwise_v7m.words(taps, np.zeros(2), None, 0) is not None
    taps[1, 2, 1] = -128
    assert _depthwise_v7m.words(taps, np.zeros(2), None, 0) is None


def test_models_take_the_kernel_with_every_variant() -> None:
    layers = [la for name, make in MODELS.items() if name.startswith("v7m_")
              for la in load_program(make()).layers if isinstance(la, DepthwiseConv2D3x3)]
    assert all(la.params["v7m"] is not None for la in layers)
    assert {la.params["variant"] for la in layers} == {
        f"s{s}{v}" for s in (1, 2) for v in ("", "_floor", "_general")}
    assert {la.params["transposed"] for la in layers} == {False, True}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_kernel_is_exact_under_sanitizers(name: str, tmp_path: Path) -> None:
    source = _sanitized_matches_reference(load_program(MODELS[name]()), tmp_path,
                                          ["-DCG_DW3X3_V7M=1"], 11)
    assert "cg_dw3x3_v7m(" in source


@pytest.mark.parametrize("name", sorted(n for n in MODELS if n.startswith("v7m_")))
def test_kernel_matches_reference_on_cortex_m3(name: str, tmp_path: Path) -> None:
    model = MODELS[name]()
    c_matches_reference(model, "cortex-m3", tmp_path, seed=12,
                        extra=edge_inputs(load_program(model)))
