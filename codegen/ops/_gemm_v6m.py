"""The int8 matrix-product engine of the cores without the DSP extension
(templates/runtime/gemm_v6m.c.j2): ARMv6-M (Cortex-M0/M0+) and ARMv7-M (Cortex-M3), chosen
in the C by `CG_GEMM_V6M` (an M-profile core without `__ARM_FEATURE_DSP`).

These cores have a 32x32->32 multiply (`MULS`, one cycle on most ARMv6-M parts) and no SIMD.
Values go unsigned: u = x + 128 and v = w + 128 are bytes in [0, 255], so a product is below
2^16. A CONV_2D column word holds two output pixels' values, U = u0 + 2^16 * u1, and one
multiply by a weight byte gives both products, P = v * u0 + 2^16 * v * u1, each half exact.
Per channel and pixel pair the engine keeps A = sum P (mod 2^32) and B = sum (P >> 16), so
    T1 = B,   T0 = A - 2^16 * B (mod 2^32)
are sum v * u of pixel 1 and pixel 0, exact below 2^32 (depth < 66,051). With SU = sum u of
the pixel and SV = sum v of the channel over the true depth (padding is u = v = 0),
    S = sum w * x = T - 128 * SU - 128 * SV + 16384 * depth,
so the generator folds -128 * SV + 16384 * depth into the requantization's bias
(`conv_table`) and the kernel subtracts 128 * SU. Weights are bytes v, four channels of one
depth index next to each other, eight depth indices per block of 32 bytes (immediate-offset
`LDRB`s with one base register): [block of 4 channels][k][4].

FULLY_CONNECTED reads its input row as it is (no scratch): x signed, v = w + 128 unsigned,
    sum v * x = S + 128 * sum(x)
which the DSP engine's requantization table already takes (its `sx128`), eight channels per
pass: [block of 8 channels][k][8].

Requantization: the DSP engine's short form (`_gemm.plan_requant`), exact where the generator
bounds the accumulator; the 32x32->64 high word is one SMULL on ARMv7-M and four 16-bit
products on ARMv6-M.
"""

from __future__ import annotations

import numpy as np

from codegen.ops._gemm import Requant, padded_depth
from codegen.ops.base import CArray

# The C condition under which the engine is compiled (runtime/gemm_v6m.c.j2).
GUARD = "CG_GEMM_V6M"
# The 3x3 depthwise kernel's (templates/runtime/depthwise3x3_v6m.c.j2: not on ARMv7-M).
DEPTHWISE_GUARD = "CG_DW3X3_V6M"
CONV_BLOCK = 4
FC_BLOCK = 8
_FIELDS = 4


def pack(weights: np.ndarray, block: int) -> np.ndarray:
    """Filters [C, K] as bytes w + 128, [C / block][K padded to 8][block]; padded channels
    and depth indices are 0."""
    w = np.asarray(weights)
    channels, depth = w.shape
    blocks = -(-channels // block)
    k_padded = padded_depth(depth)
    data = np.zeros((blocks * block, k_padded), dtype=np.uint8)
    data[:channels, :depth] = w.astype(np.int8, copy=False).view(np.uint8) ^ 0x80
    return np.ascontiguousarray(
        data.reshape(blocks, block, k_padded).transpose(0, 2, 1)).ravel()


def _table(rq: Requant, adjust: np.ndarray, block: int) -> np.ndarray:
    """rq's rows, channels padded to a multiple of `block` with constant rows, and
    adjust[c] * scale added to the bias of every row that depends on the input (multiplier
    != 0), wrapped to int32 as the C computes modulo 2^32."""
    table = rq.table.copy()
    rows = table.shape[0]
    padded = -(-rows // block) * block
    if padded > rows:
        table = np.concatenate([table, np.repeat(table[-1:], padded - rows, axis=0)])
        table[rows:] = [0, 0, 1, 1]  # multiplier 0: the output is (0 + 1 + 0) >> 1 = 0
    live = np.nonzero(table[:len(adjust), 1] != 0)[0]
    table[live, 0] += adjust[live] * rq.scale
    wrapped = (table + (1 << 31)) % (1 << 32) - (1 << 31)
    return wrapped.astype(np.int32).ravel()


def conv_table(weights: np.ndarray, rq: Requant) -> np.ndarray:
    """The CONV_2D engine's [bias2', multiplier, add, right] per channel (see the module
    docstring: bias2' = (bias' - 128 * SV + 16384 * depth) * scale)."""
    w = np.asarray(weights)
    depth = w.shape[1]
    sv = w.sum(axis=1, dtype=np.int64) + 128 * depth
    return _table(rq, 16384 * depth - 128 * sv, CONV_BLOCK)


def fc_table(weights: np.ndarray, rq: Requant) -> np.ndarray:
    """The FULLY_CONNECTED engine's table: the DSP engine's, padded to its block."""
    return _table(rq, np.zeros(np.shape(weights)[0], np.int64), FC_BLOCK)


def plan(weights: np.ndarray, rq: Requant, block: int) -> dict[str, object]:
    """The engine's parameters for filters `weights` [C, K]: the packed weights and the
    requantization table."""
    w = np.asarray(weights).reshape(np.shape(weights)[0], -1)
    table = conv_table(w, rq) if block == CONV_BLOCK else fc_table(w, rq)
    return {"weights": pack(w, block), "table": table}


def constants(v6m: dict[str, object]) -> list[CArray]:
    """The engine's arrays, emitted only where the C compiles the engine."""
    return [CArray("v6m_weights", v6m["weights"], GUARD),  # type: ignore[arg-type]
            CArray("v6m_rq", v6m["table"], GUARD)]  # type: ignore[arg-type]
