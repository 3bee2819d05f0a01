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

On ARMv7-M (Cortex-M3: MLA, LDRD, ADD with ASR) FULLY_CONNECTED takes another arrangement
(`pack_fc7`, templates/runtime/gemm_v7m_fc.c.j2): a weight word holds two channels,
W = w0 + 2^16 * w1 (signed, as an integer), and two MLAs over the depth pair k, k + 1 give
    P = W_k * x_k + W_k+1 * x_k+1 + 2^15 = (t0 + 2^15) + 2^16 * t1,
t0, t1 the pair's sums of channels 0 and 1. Where the generator proved every pair sum of
every channel within [-2^15, 2^15) for x in [-128, 127] (`fc7_fits`; it fails only for two
weights -128 side by side), the low half t0 + 2^15 lies in [0, 2^16), so P >> 16 = t1
exactly and the engine keeps A = sum P (mod 2^32) and B = sum P >> 16:
    S1 = B,   S0 = A - 2^16 * B - 2^15 * depth / 2 (mod 2^32),
the last term folded into the table's bias. Six channels (three words) per pass: two
products per MLA, the weights two words per LDRD.

CONV_2D on ARMv7-M (`pack_conv7`, templates/runtime/gemm_v7m_conv.c.j2) crosses the lanes:
a weight word holds two depth indices of one channel, W = w[2i] + 2^16 * w[2i + 1], a column
word the same two of one pixel, X = 2^16 * x[2i] + x[2i + 1], so that
    W * X + 2^15 = (w[2i] * x[2i + 1] + 2^15) + 2^16 * (w[2i] * x[2i] + w[2i + 1] * x[2i + 1])
(mod 2^32): the low half lies in [16512, 49152], never carries, and where `fc7_fits` proves
the pair's dot product within [-2^15, 2^15) the high half is that dot product exactly, one
MLA and one ADD with ASR #16 per two products, no correction after the sum: S = sum w * x,
which the DSP engine's table takes as it is. The depth goes in runs of values contiguous in
the image (`conv7_weights`: a pixel's channels, a filter row, or a tap), each padded with a
zero to an even length; two channels by two pixels per pass.

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
# ARMv7-M's FULLY_CONNECTED engine (templates/runtime/gemm_v7m_fc.c.j2).
V7M_GUARD = "CG_GEMM_V7M"
FC7_BLOCK = 6
# ARMv7-M's CONV_2D engine (templates/runtime/gemm_v7m_conv.c.j2): channels per block.
CONV7_BLOCK = 2
# The ARMv6-M engine's arrays where ARMv7-M takes its own.
V6M_ONLY_GUARD = f"{GUARD} && !{V7M_GUARD}"


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


def fc7_fits(weights: np.ndarray) -> bool:
    """Whether every channel's sum over each depth pair (2i, 2i + 1) of w * x lies within
    [-2^15, 2^15) for every x in [-128, 127] (the depth is even)."""
    w = np.asarray(weights, np.int64)
    high = np.maximum(127 * w, -128 * w)
    low = np.minimum(127 * w, -128 * w)
    return bool((high[:, 0::2] + high[:, 1::2]).max(initial=0) < 1 << 15
                and (low[:, 0::2] + low[:, 1::2]).min(initial=0) >= -(1 << 15))


def pack_fc7(weights: np.ndarray) -> np.ndarray:
    """Filters [C, K] (K even) as int32 words w[c] + 2^16 * w[c + 1] (wrapped) of channel
    pairs, [C / 6][K / 2][3 pairs][k, k + 1]; padded channels are 0."""
    w = np.asarray(weights, np.int64)
    channels, depth = w.shape
    blocks = -(-channels // FC7_BLOCK)
    data = np.zeros((blocks * FC7_BLOCK, depth), np.int64)
    data[:channels] = w
    pairs = data.reshape(blocks, 3, 2, depth // 2, 2)
    words = pairs[:, :, 0] + (pairs[:, :, 1] << 16)  # [block][pair][k / 2][2]
    wrapped = (words.transpose(0, 2, 1, 3) + (1 << 31)) % (1 << 32) - (1 << 31)
    return np.ascontiguousarray(wrapped.astype(np.int32)).ravel()


def fc7_table(weights: np.ndarray, rq: Requant) -> np.ndarray:
    """ARMv7-M's FULLY_CONNECTED table: the DSP engine's, padded to six channels, with
    -2^15 * depth / 2 (the bias of every MLA pair) added to the accumulator of every even
    channel (the low halves)."""
    channels, depth = np.shape(weights)
    adjust = np.zeros(channels, np.int64)
    adjust[0::2] = -(1 << 15) * (depth // 2)
    return _table(rq, adjust, FC7_BLOCK)


def plan_fc7(weights: np.ndarray, rq: Requant) -> dict[str, np.ndarray] | None:
    """ARMv7-M's FULLY_CONNECTED engine, or None where a pair sum could leave 16 bits."""
    w = np.asarray(weights)
    if w.shape[1] % 2 or not fc7_fits(w):
        return None
    return {"weights": pack_fc7(w), "table": fc7_table(w, rq)}


def constants_fc7(v7m: dict[str, np.ndarray] | None) -> list[CArray]:
    """ARMv7-M's FULLY_CONNECTED arrays, where the C compiles that engine."""
    if v7m is None:
        return []
    return [CArray("v7m_weights", v7m["weights"], V7M_GUARD),
            CArray("v7m_rq", v7m["table"], V7M_GUARD)]


def conv7_weights(weights: np.ndarray, segments: int) -> np.ndarray:
    """Filters [C, K] in ARMv7-M's CONV_2D depth order: K as `segments` runs (a filter row
    or a tap: values contiguous in the image) each padded with a zero to an even length,
    then zeros to a multiple of 8."""
    w = np.asarray(weights, np.int64)
    channels, depth = w.shape
    length = depth // segments
    runs = np.zeros((channels, segments, length + length % 2), np.int64)
    runs[:, :, :length] = w.reshape(channels, segments, length)
    flat = runs.reshape(channels, -1)
    data = np.zeros((channels, padded_depth(flat.shape[1])), np.int64)
    data[:, :flat.shape[1]] = flat
    return data


def pack_conv7(weights: np.ndarray) -> np.ndarray:
    """Filters [C, K] (K a multiple of 8, conv7_weights' order) as int32 words
    w[c, 2i] + 2^16 * w[c, 2i + 1] (wrapped), [C / 2][K / 2][2 channels]; a padded
    channel is 0."""
    w = np.asarray(weights, np.int64)
    channels, depth = w.shape
    blocks = -(-channels // CONV7_BLOCK)
    data = np.zeros((blocks * CONV7_BLOCK, depth), np.int64)
    data[:channels] = w
    words = data[:, 0::2] + (data[:, 1::2] << 16)  # [channel][k-pair]
    ordered = words.reshape(blocks, CONV7_BLOCK, depth // 2).transpose(0, 2, 1)
    wrapped = (ordered + (1 << 31)) % (1 << 32) - (1 << 31)
    return np.ascontiguousarray(wrapped.astype(np.int32)).ravel()


def plan_conv7(weights: np.ndarray, rq: Requant, segments: int,
               kpad: int) -> dict[str, object] | None:
    """ARMv7-M's CONV_2D engine for filters [C, K] of `segments` runs (conv7_weights), or
    None where a pair's dot product could leave 16 bits (two weights -128 side by side) or
    the padded depth would exceed the ARMv6-M engine's `kpad` (whose column space it takes)."""
    w = np.asarray(weights).reshape(np.shape(weights)[0], -1)
    ordered = conv7_weights(w, segments)
    if ordered.shape[1] > kpad or not fc7_fits(ordered):
        return None
    length = w.shape[1] // segments
    unroll = 8 if ordered.shape[1] % 16 == 0 else 4  # k-pairs per iteration of its loop
    return {"weights": pack_conv7(ordered),
            "engine": f"cg_v7m_conv2_k{unroll}", "snippet": f"gemm_v7m_conv2.k{unroll}",
            "table": _table(rq, np.zeros(w.shape[0], np.int64), CONV7_BLOCK),
            "segments": segments, "seg_len": length, "seg_even": length + length % 2,
            "depth": segments * (length + length % 2), "kpad": ordered.shape[1]}


def constants_conv7(v7m: dict[str, object] | None) -> list[CArray]:
    """ARMv7-M's CONV_2D arrays, where the C compiles that engine."""
    if v7m is None:
        return []
    return [CArray("v7m_weights", v7m["weights"], V7M_GUARD),  # type: ignore[arg-type]
            CArray("v7m_rq", v7m["table"], V7M_GUARD)]  # type: ignore[arg-type]


def plan(weights: np.ndarray, rq: Requant, block: int) -> dict[str, object]:
    """The engine's parameters for filters `weights` [C, K]: the packed weights and the
    requantization table."""
    w = np.asarray(weights).reshape(np.shape(weights)[0], -1)
    table = conv_table(w, rq) if block == CONV_BLOCK else fc_table(w, rq)
    return {"weights": pack(w, block), "table": table}


def constants(v6m: dict[str, object], guard: str = GUARD) -> list[CArray]:
    """The engine's arrays, emitted only where the C compiles the engine (`guard`)."""
    return [CArray("v6m_weights", v6m["weights"], guard),  # type: ignore[arg-type]
            CArray("v6m_rq", v6m["table"], guard)]  # type: ignore[arg-type]
