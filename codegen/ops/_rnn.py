"""What the recurrent kernels (UNIDIRECTIONAL_SEQUENCE_LSTM, SVDF) share for their products:
the weight layout of the LSTM's four-gate product and the folding of zero points into sums.

The C helpers are `templates/runtime/rnn_dot.c.j2`: with the DSP extension, SMLAD on pairs of
16-bit values, the int8 weights sign-extended in pairs by SXTB16 as they are loaded (the
weights keep their int8 size in flash); without it, the same sums in plain C, four columns
at a time. Every sum is computed modulo 2^32, which is TFLM's int32 sum wherever that does
not overflow (and what its compiled kernels give where it does): a zero point folded into a
bias (bias - zero point x row sum, wrapped to int32) leaves every sum as it was.

The LSTM's product (`pack_gates`): per step, the input and the hidden state are copied once
into an int16 scratch vector padded with zeros to a multiple of four; each unit's four gate
rows are read in one pass over that vector (its loads shared by the four gates), the packed
weights laid out per unit, per group of four columns, per gate, in the order 0, 2, 1, 3 (the
bytes SXTB16 pairs: 0 with 2, 1 with 3, so that the pairs line up with the vector's words
(x0, x1) and (x2, x3)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen import quant

GROUP = 4  # columns per group of the packed LSTM weights
_ORDER = (0, 2, 1, 3)  # a group's weights in the packed word


def padded(n: int) -> int:
    """n rounded up to a whole number of groups."""
    return -(-n // GROUP) * GROUP


def pack_gates(gates: list[np.ndarray]) -> np.ndarray:
    """The four [units, n] int8 gate matrices as the LSTM kernel reads them: per unit, per
    group of four columns (zero-padded), per gate, the group's weights in _ORDER."""
    stacked = np.stack([np.asarray(g, dtype=np.int8) for g in gates])  # [4, units, n]
    count, units, n = stacked.shape
    wide = np.zeros((count, units, padded(n)), dtype=np.int8)
    wide[:, :, :n] = stacked
    grouped = wide.reshape(count, units, -1, GROUP)[..., list(_ORDER)]
    return np.ascontiguousarray(grouped.transpose(1, 2, 0, 3)).ravel()


def folded_offsets(weights: np.ndarray, zero_point: int) -> np.ndarray:
    """-zero_point x each row's sum of `weights` ([rows, n]), wrapped to int32: what a sum of
    w x (v - zero point) adds to the sum of w x v, modulo 2^32."""
    sums = np.asarray(weights).sum(axis=1, dtype=np.int64)  # no wider copy of the weights
    return quant.wrap_int32(-int(zero_point) * sums)


_INT31 = 1 << 31


@dataclass(frozen=True)
class ShortRequant:
    """TFLM's MultiplyByQuantizedMultiplier(acc, multiplier, shift) + zero point as
    cg_requantize_fast computes it (templates/runtime/requantize_fast.c.j2): acc x `scale`
    (2^(left shift + 1)), one 64-bit multiply-accumulate with `add` (the rounding and the
    zero point), the sign fixup where there is a right shift, one shift right."""

    scale_shift: int  # acc2 = acc << scale_shift
    multiplier: int
    add: int
    sign: int
    right: int


def short_requant(multiplier: int, shift: int, bound: int,
                  zero_point: int = 0) -> ShortRequant | None:
    """The short requantization of accumulators within +-bound, or None where it would not
    be exact: acc2 must fit in int32, and so must the high word (|high| <= |acc| x 2^left)
    plus `add`."""
    left, right = max(shift, 0), max(-shift, 0)
    add = ((1 << (right - 1)) if right > 0 else 0) + zero_point * (1 << right)
    if bound << (left + 1) >= _INT31 or (bound << left) + 2 + abs(add) >= _INT31:
        return None
    return ShortRequant(left + 1, int(multiplier), add, int(right > 0), right)
