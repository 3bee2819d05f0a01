"""TFLM's log_x_for_x_greater_than_or_equal_to_1<5>(FixedPoint<int32, 12>)
(kernels/internal/common.h), the logarithm LOG_SOFTMAX takes of its Q12.19 sum of
exponentials, on numpy int64 arrays holding int32 raws (the C has the same steps in
templates/runtime/log_x.c.j2).

The input z is normalised twice, by its leading zeros (z_a) and after a multiplication by
sqrt(1/2) (z_b); the one whose mantissa r is smaller wins, with its power of two adjusted by
a quarter; log(r) comes from a rational approximation around 2^-1/4
(num / (1 + denom_minus_one), gemmlowp's Newton-Raphson reciprocal), and the result is
power * log(2) + that, accumulated with one integer bit to spare (Q6.25) and rescaled to
Q5.26 with saturation.
"""

from __future__ import annotations

import numpy as np

from codegen.ops import _fixedpoint as fp
from codegen.quant import INT32_MAX, INT32_MIN, wrap_int32

INPUT_INTEGER_BITS = 12
OUTPUT_INTEGER_BITS = 5
_ACCUM_INTEGER_BITS = OUTPUT_INTEGER_BITS + 1
LOG_2 = 1488522236
SQRT_SQRT_HALF = 1805811301
SQRT_HALF = 1518500250
ONE_QUARTER = 536870912
ALPHA_N = 117049297
ALPHA_D = 127690142
ALPHA_I = 1057819769
ALPHA_F = 638450708
SHIFTED_QUARTER = ONE_QUARTER >> _ACCUM_INTEGER_BITS  # Rescale<6>: exact for 2^29


def saturating_shift(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOTParam for exponents >= 0 (0: unchanged)."""
    x = np.asarray(x, dtype=np.int64)
    e = np.broadcast_to(np.asarray(exponent, dtype=np.int64), x.shape)
    threshold = (np.int64(1) << (31 - np.maximum(e, 1))) - 1
    shifted = wrap_int32(x << e)
    out = np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, shifted))
    return np.where(e == 0, x, out)


def _saturate(x: np.ndarray) -> np.ndarray:
    return np.clip(x, INT32_MIN, INT32_MAX)


def log_x_ge_1(z: np.ndarray) -> np.ndarray:
    """Q5.26 raws of log(z / 2^19) for Q12.19 raws z >= 1."""
    z = np.asarray(z, dtype=np.int64)
    a_headroom_plus_1 = fp.count_leading_zeros(z)
    r_a_tmp = saturating_shift(z, a_headroom_plus_1 - 1)
    r_a = saturating_shift(fp.srdhm(r_a_tmp, SQRT_HALF), 1)
    shift_bits = 31 - _ACCUM_INTEGER_BITS
    a_pow = _saturate(saturating_shift(INPUT_INTEGER_BITS - a_headroom_plus_1, shift_bits)
                      + SHIFTED_QUARTER)
    z_b = fp.srdhm(z, SQRT_HALF)
    b_headroom = fp.count_leading_zeros(z_b) - 1
    r_b = saturating_shift(z, b_headroom)
    b_pow = _saturate(saturating_shift(INPUT_INTEGER_BITS - b_headroom, shift_bits)
                      - SHIFTED_QUARTER)
    r = np.minimum(r_a, r_b)
    power = np.maximum(a_pow, b_pow)
    p = fp.rounding_half_sum(r, SQRT_SQRT_HALF)
    q = wrap_int32(r - SQRT_SQRT_HALF)
    q = wrap_int32(q + q)
    common_sq = fp.srdhm(q, q)
    num = wrap_int32(fp.srdhm(q, r) + fp.srdhm(fp.srdhm(q, common_sq), ALPHA_N))
    inner = wrap_int32(wrap_int32(ALPHA_I + q) + fp.srdhm(ALPHA_D, common_sq))
    denom_minus_one = wrap_int32(fp.srdhm(p, inner) + fp.srdhm(ALPHA_F, q))
    recip_denom = fp.one_over_one_plus_x_for_x_in_0_1(denom_minus_one)
    num_scaled = fp.rdbp(num, _ACCUM_INTEGER_BITS)
    total = wrap_int32(fp.srdhm(power, LOG_2) + fp.srdhm(num_scaled, recip_denom))
    return fp.saturating_left_shift(total, _ACCUM_INTEGER_BITS - OUTPUT_INTEGER_BITS)
