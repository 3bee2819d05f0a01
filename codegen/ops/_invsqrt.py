"""TFLM's GetInvSqrtQuantizedMultiplierExp (kernels/internal/common.h) on numpy int64 arrays
holding int32 values: 1 / sqrt(x) of a positive int32 as a Q0.31 multiplier and a shift,
used by RSQRT (at generation time, into its table) and L2_NORMALIZATION (in the reference;
the C has the same steps in templates/runtime/inv_sqrt.c.j2).

The steps, as TFLM takes them: x <= 1 gives (INT32_MAX, 0); otherwise x is divided by 4
until below 2^29 (shift 11 plus one per division), normalised by an even left shift into
[2^27, 2^29), and five Newton-Raphson steps x <- 1.5 x - (input / 2) x^3 run in Q3.28 from
x = 1 (gemmlowp products: SaturatingRoundingDoublingHighMul, Rescale<3> as a saturating left
shift); the result times sqrt(2)/2; a negative shift is folded into the multiplier (a plain
left shift); the shift is finally multiplied by `reverse_shift`.
"""

from __future__ import annotations

import numpy as np

from codegen.ops import _fixedpoint as fp
from codegen.quant import INT32_MAX, wrap_int32

_HALF_THREE = (1 << 28) + (1 << 27)  # 1.5 in Q3.28
_ONE_Q3 = 1 << 28
_HALF_SQRT_2 = 1518500250  # sqrt(2) / 2 in Q0.31


def inv_sqrt_multiplier(values: np.ndarray, reverse_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier, shift) per value, elementwise; values are int32 >= 0."""
    x = np.asarray(values, dtype=np.int64).copy()
    small = x <= 1
    x = np.where(small, 2, x)  # any valid value; replaced below
    shift = np.full(x.shape, 11, dtype=np.int64)
    for _ in range(2):  # x < 2^31, so at most two divisions by 4 bring it below 2^29
        big = x >= (1 << 29)
        x = np.where(big, x // 4, x)
        shift = shift + big
    max_left_shift_bits = fp.count_leading_zeros(x) - 1
    left_shift_bit_pairs = max_left_shift_bits // 2 - 1
    shift = shift - left_shift_bit_pairs
    x = x << (2 * left_shift_bit_pairs)
    fixedpoint_input = x >> 1
    half_input = fp.rdbp(fixedpoint_input, 1)
    y = np.full(x.shape, _ONE_Q3, dtype=np.int64)
    for _ in range(5):
        y3 = fp.saturating_left_shift(fp.srdhm(fp.srdhm(y, y), y), 6)
        difference = fp.sub(fp.srdhm(_HALF_THREE, y), fp.srdhm(half_input, y3))
        y = fp.saturating_left_shift(difference, 3)
    y = fp.srdhm(y, _HALF_SQRT_2)
    negative = shift < 0
    y = np.where(negative, wrap_int32(y << np.where(negative, -shift, 0)), y)
    shift = np.where(negative, 0, shift)
    multiplier = np.where(small, INT32_MAX, y)
    shift = np.where(small, 0, shift * reverse_shift)
    return multiplier, shift
