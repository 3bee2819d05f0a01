"""The words of ARMv7-M's 3x3 depthwise kernel (templates/runtime/depthwise3x3_v7m.c.j2:
Cortex-M3, no DSP extension), two outputs of a channel per multiply.

Its line buffer holds u = x + 129 in [1, 256] (the padding x = input zero point), and a
word of two int16 of it, U = u_a + 2^16 u_b (the two outputs' values under one tap), times
the tap w gives both products: P = u_a w + 2^16 u_b w, exact in int32 while w >= -127
(|u_b w| <= 256 * 127 < 2^15). Its high half, P >> 16 (arithmetic), is u_b w less 1 where
w < 0 (u_a w is then in [-2^15, -1]: u_a >= 1), 0 otherwise: a constant of the tap. Per
output pair the kernel keeps
    A = ca + sum P (mod 2^32),   B = sum (P >> 16),
and the two outputs' accumulators, bias included, are A - 2^16 B and B + cb with
    S = sum w,   N = #{w < 0},   z = 129 - input_offset (129 + the input zero point):
    ca = bias - z S - 2^16 N (mod 2^32),   cb = bias - z S + N
(sum (x - zero point) w = sum u w - z S; the true sums fit in int32, so mod 2^32 is exact).
A layer with a -128 weight (u_b w = -2^15 would leave int32) has no words: it takes the
portable output lines (CG_DW3X3_PAIRS)."""

from __future__ import annotations

import numpy as np

# The C condition under which the kernel and its words are compiled.
GUARD = "CG_DW3X3_V7M"
# Words per channel: the nine taps as bytes (rows along A, taps along B), left + 1 and N
# in the tenth and eleventh bytes, then cb (the kernel derives ca = cb - 65537 N).
WORDS = 4
_BIAS_U = 129


def words(taps: np.ndarray, shifts: np.ndarray, bias: np.ndarray | None,
          input_offset: int) -> np.ndarray | None:
    """Per channel of `taps` ([3, 3, C] int8, A then B) the kernel's WORDS int32 words, or
    None when a tap is -128."""
    t = np.asarray(taps, dtype=np.int64)
    if np.any(t < -127):
        return None
    channels = t.shape[2]
    flat = t.reshape(9, channels).T  # [C, 9]
    left1 = np.maximum(np.asarray(shifts, dtype=np.int64), 0) + 1
    b = np.zeros(channels, np.int64) if bias is None else np.asarray(bias, np.int64)
    z = _BIAS_U - int(input_offset)
    s = flat.sum(axis=1)
    n = (flat < 0).sum(axis=1)
    data = np.zeros((channels, 12), np.int64)
    data[:, :9] = flat & 0xFF
    data[:, 9] = left1
    data[:, 10] = n
    packed = (data.reshape(channels, 3, 4) << np.array([0, 8, 16, 24])).sum(axis=2)
    out = np.zeros((channels, WORDS), np.int64)
    out[:, :3] = packed
    out[:, 3] = b - z * s + n
    return _wrap(out)


def _wrap(values: np.ndarray) -> np.ndarray:
    """int64 values modulo 2^32 as int32."""
    v = values & 0xFFFFFFFF
    return np.where(v >= 1 << 31, v - (1 << 32), v).astype(np.int32)
