"""TFLM's "rescale to a common scale" arithmetic, shared by the comparisons,
SQUARED_DIFFERENCE, ADD_N and CUMSUM: an input value minus its zero point, shifted left,
times a multiplier below one (QuantizeMultiplierSmallerThanOneExp at Prepare,
MultiplyByQuantizedMultiplierSmallerThanOneExp at Eval).

QuantizeMultiplierSmallerThanOneExp TFLITE_CHECKs 0 < m < 1 and a shift <= 0 (a multiplier
that rounds up to 1 fails too): TFLM aborts there, the generator refuses the model.
"""

from __future__ import annotations

import numpy as np

from codegen import quant
from codegen.errors import UnsupportedError
from codegen.model.ir import Operator
from codegen.ops.base import unsupported


def multiplier_below_one(op: Operator, real: float, what: str) -> tuple[int, int]:
    """(multiplier, shift <= 0) of a real multiplier in (0, 1)."""
    if not 0.0 < real < 1.0:
        raise unsupported(op, f"{what} is {real:g}; TFLM needs it in (0, 1) and aborts "
                          "otherwise")
    try:
        multiplier, shift = quant.quantize_multiplier(real)
    except UnsupportedError as error:
        raise unsupported(op, f"{what}: {error}") from None
    if shift > 0:
        raise unsupported(op, f"{what} {real!r} rounds to 1; TFLM needs it below 1 and aborts "
                          "otherwise")
    return multiplier, shift


def scaled(values: np.ndarray, offset: int, left_shift: int, multiplier: int,
           shift: int) -> np.ndarray:
    """((x + offset) << left_shift) * multiplier * 2^shift, TFLM's double rounding (int64
    arrays holding int32 values; the shifted value fits int32 for 8-bit inputs)."""
    shifted = (np.asarray(values, dtype=np.int64) + offset) * (1 << left_shift)
    return quant.multiply_by_quantized_multiplier(shifted, multiplier, shift)
