"""The int8 matrix-product engine under FULLY_CONNECTED and CONV_2D (templates/runtime/gemm*.c.j2).

Every output is a dot product S = sum_k w[c, k] * x[k] of one filter row with one column of
int8 input values (an input row of a FULLY_CONNECTED, the receptive field of one output
pixel of a CONV_2D, with the input zero point at padded taps), plus a bias into which the
generator has folded the input offset, then TFLM's requantization:
    acc = S + bias'            (bias' = bias + input_offset * sum_k w[c, k])
    out = clamp(RoundingDivideByPOT(SRDHM(acc * 2^left, multiplier), right) + zero_point)
The sums are exact integers, so computing them in another order than TFLM's reference
kernels gives the same acc; only how they are computed changes.

Columns are widened once to 16-bit pairs, so that one SMLAD (two 16x16 multiplies and an
add, on cores with the DSP extension; emulated in plain C elsewhere) does two MACs. Weights
stay int8, four to a word, but *two channels* share a word: channel a's weights as unsigned
bytes w + 128 in the low byte of each halfword, channel b's as signed bytes in the high byte.
As a signed halfword that is 256 * w_b + (w_a + 128), so with W such a word, X a pair of
16-bit inputs and H = W & 0xFF00FF00 (channel b's halfwords, 256 * w_b):
    r = sum SMLAD(W, X) = 256 * S_b + S_a + 128 * sum(x)
    h = sum SMLAD(H, X) = 256 * S_b
    S_a = r - h - 128 * sum(x),   S_b = h / 256
Two SMLADs and one AND for four MACs, where sign-extending channel a's and b's bytes would
take two extensions. The arithmetic is modulo 2^32 (SMLAD wraps), so S_a is exact whenever
it fits in int32; S_b needs 256 * S_b to fit, which `plan_requant` checks. The convolution
engine's assembly takes SXTB16(W ror 8) instead of the AND (channel b's bytes as 16-bit
halves): h = S_b, S_a = r - 256 * h - 128 * sum(x), one operation less per output.

The convolution engine (`block_stream`) takes four channels (two pairs) and two pixels per
pass: for each k-pair slot, two weight words and two column words serve eight SMLADs (16
MACs), and the fourteen registers this needs make its DSP path one naked assembly function
(templates/runtime/_gemm_engines.j2). The stream carries each block's requantization
constants after its weights, so one pointer walks both. The tie fixup of
RoundingDivideByPOT (`needs_sign_fixup`) is left out where the activation clamps every
negative result away.

Inputs are widened by SXTB16 of a word and of the word rotated by 8, which gives the pairs
(x0, x2) and (x1, x3): k-pair slot 2g holds inputs 4g and 4g + 2, slot 2g + 1 holds 4g + 1
and 4g + 3. The weight words are laid out in the same order (`pack_weights`).

Requantization (`plan_requant`) is TFLM's exactly, in fewer instructions, where the
generator can bound the accumulator:
  - v = acc * 2^(left + 1) must fit in int32; then SRDHM(acc * 2^left, m) =
    floor((acc * 2^left * m + 2^30) / 2^31) = floor((v * m + 2^31) / 2^32): the high word of
    one 32x32->64 multiply plus bit 31 of its low word;
  - RoundingDivideByPOT(y, right) + zero_point (right >= 1) =
    (y + (y < 0 ? -1 : 0) + 2^(right - 1) + zero_point * 2^right) >> right,
    as the sum does not overflow; the sign may be v's (they differ only where y = 0, and
    there (add - 1) >> right = add >> right).
Channels whose output does not depend on the input (all-zero weights, or a zero multiplier)
get constants that produce their one value. A layer that does not meet these bounds keeps
the straightforward kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen import quant

INT31 = 1 << 31
# Widened inputs are int8 values: the raw input, or its zero point at a padded tap.
_X_MAX = 128
# The engine's inner loop does four k-pairs (eight inputs) per iteration.
K_STEP = 8
_FIELDS = 4  # per channel: bias2, multiplier, add, right
_BLOCK_ELEMENTS = 1 << 20  # large weight matrices are scanned this many values at a time


@dataclass(frozen=True)
class Requant:
    """What the engine's requantization reads: `scale` = 2^(left shift + 1) for the whole
    layer, and per channel (rows of `table`) bias' * scale, multiplier, the rounding and
    zero-point addend, and the right shift."""

    scale: int
    table: np.ndarray  # int64 [channels (padded), 4]

    @property
    def flat(self) -> np.ndarray:
        return self.table.astype(np.int32).ravel()


def padded_depth(depth: int) -> int:
    return -(-depth // K_STEP) * K_STEP


def _constant_row(value: int) -> list[int]:
    # multiplier 0: y = 0, then (0 + 2 * value + 1 + (0 or -1)) >> 1 = value.
    return [0, 0, 2 * value + 1, 1]


def plan_requant(weights: np.ndarray, bias: np.ndarray, multipliers: np.ndarray,
                 shifts: np.ndarray, zero_point: int, act_min: int, act_max: int,
                 channel_pad: int) -> Requant | None:
    """The engine's requantization constants for filters `weights` [C, K] and the folded
    biases `bias` [C] (true values, not wrapped to int32), or None when an accumulator
    could leave the range where the short form is exact. Channels are padded to a multiple
    of `channel_pad` with constant (never stored) ones."""
    channels, depth = np.shape(weights)
    if depth * _X_MAX * _X_MAX >= INT31:  # 128 * sum(column) must fit in int32
        return None
    mult = np.broadcast_to(np.asarray(multipliers, dtype=np.int64), (channels,))
    shift = np.broadcast_to(np.asarray(shifts, dtype=np.int64), (channels,))
    bias = np.asarray(bias, dtype=np.int64)
    magnitude = abs_row_sums(weights) * _X_MAX  # bound on |S|
    constant = (magnitude == 0) | (mult == 0)
    lefts = {int(s) for s in np.maximum(shift[~constant], 0)}
    if len(lefts) > 1:
        return None
    left = lefts.pop() if lefts else 0
    scale = 1 << (left + 1)
    rows: list[list[int]] = []
    for c in range(channels):
        if constant[c]:
            # acc is bias' whatever the input (all-zero weights: bias' = bias), or the
            # multiplier is 0 and SRDHM gives 0.
            value = quant.requantize(quant.wrap_int32(np.array([bias[c]])), int(mult[c]),
                                     int(shift[c]), zero_point, act_min, act_max)
            rows.append(_constant_row(int(value[0])))
            continue
        right = int(-shift[c])
        if right < 1:
            return None
        bound = (int(magnitude[c]) + abs(int(bias[c]))) * scale  # bound on |v|
        if bound >= INT31:
            return None
        if c % 2 == 1 and int(magnitude[c]) * 256 >= INT31:  # h = 256 * S_b must not wrap
            return None
        add = (1 << (right - 1)) + zero_point * (1 << right)
        y_bound = (bound * int(mult[c]) >> 32) + 2
        if y_bound + abs(add) >= INT31:
            return None
        rows.append([int(bias[c]) * scale, int(mult[c]), add, right])
    padded = -(-channels // channel_pad) * channel_pad
    rows += [_constant_row(0)] * (padded - channels)
    return Requant(scale, np.array(rows, dtype=np.int64).reshape(-1, _FIELDS))


def abs_row_sums(weights: np.ndarray) -> np.ndarray:
    """sum_k |w[c, k]| per row of int8 values (of any integer type), as int64, a block
    of rows at a time (no full-size copy of a large matrix)."""
    w = np.asarray(weights)
    rows = max(1, _BLOCK_ELEMENTS // max(1, w.shape[1]))
    return np.concatenate([np.abs(w[r:r + rows].astype(np.int16)).sum(axis=1, dtype=np.int64)
                           for r in range(0, w.shape[0], rows)] or [np.zeros(0, np.int64)])


def pack_weights(weights: np.ndarray, group: int) -> np.ndarray:
    """Filters [C, K] as the engine's int32 words.

    Channels go in pairs (a = 2p, b = 2p + 1), padded with zero filters to a multiple of
    2 * group; depth is padded with zeros to a multiple of K_STEP. Word j of pair p holds
    the inputs of k-pair slot j (see the module docstring) as bytes
    [w_a[k] + 128, w_b[k], w_a[k + 2] + 128, w_b[k + 2]] with k = 4 * (j // 2) + j % 2.
    group 1: pair after pair, each with its K/2 words. group g > 1 (`block_stream`): for
    each g pairs, slot after slot, the g pairs' words."""
    w = np.asarray(weights)
    channels, depth = w.shape
    padded_c = -(-channels // (2 * group)) * (2 * group)
    pairs, k_padded = padded_c // 2, padded_depth(depth)
    # The words' bytes, built as bytes (no wider copy of a large matrix): channel b's are
    # two's complement, channel a's w + 128, i.e. the same byte with its top bit flipped.
    data = np.zeros((padded_c, k_padded), dtype=np.uint8)
    data[:channels, :depth] = w.astype(np.int8, copy=False).view(np.uint8)
    data[0::2] ^= 0x80
    # [pair, channel a or b, input group g, half h, m] holds the byte of input 4g + 2h + m;
    # word 2g + m (slot j, k = 4 * (j // 2) + j % 2) is [a, b of 4g + m, a, b of 4g + 2 + m].
    quads = data.reshape(pairs, 2, k_padded // 4, 2, 2).transpose(0, 2, 4, 3, 1)
    words = np.ascontiguousarray(quads).reshape(pairs, 2 * k_padded).view("<i4")
    if group > 1:
        words = words.reshape(pairs // group, group, k_padded // 2).transpose(0, 2, 1)
    return words.astype(np.int32).ravel()


def needs_sign_fixup(zero_point: int, act_min: int) -> bool:
    """Whether the requantization must subtract 1 below zero (RoundingDivideByPOT rounds
    ties away from zero). Not where act_min >= zero_point: a negative SRDHM result y gives
    RoundingDivideByPOT(y) <= 0 either way, hence an output <= zero_point, clamped to
    act_min by both."""
    return act_min < zero_point


# Channels per block of the convolution engine (two pairs) and of the FULLY_CONNECTED
# engine (four pairs).
CONV_BLOCK = 4
FC_BLOCK = 8


def block_stream(weights: np.ndarray, rq: Requant, block: int) -> np.ndarray:
    """Filters [C, K] and their requantization constants as an engine reads them, one block
    of `block` channels (block / 2 pairs) after another: for each k-pair slot j, the
    block's pairs' words j (`pack_weights`'s words), then the block's rows of `rq.table`
    (bias2, multiplier, add, right). Channels are padded to a multiple of `block` with zero
    filters; `rq` must be padded alike."""
    blocks = -(-np.shape(weights)[0] // block)
    words = pack_weights(weights, group=block // 2).reshape(blocks, -1)  # padded there
    table = rq.table[:block * blocks].astype(np.int32).reshape(blocks, -1)
    return np.concatenate([words, table], axis=1).ravel()


# The largest final shift of `plan_shifted` (SSAT's ASR immediate is 1 to 31; a constant
# channel's value v * 2^shift must stay within int32 for |v| <= 128).
_MAX_SHIFT = 23


def plan_shifted(weights: np.ndarray, rq: Requant,
                 shift: int | None = None) -> tuple[int, Requant] | None:
    """The DSP convolution engine's constants for one final shift R shared by the layer,
    which SSAT's shift immediate does (`ssat t, #8, t, asr #R`), or None where a bound
    fails. For the variants without the tie fixup only. Per channel with right shift r,
    d = R - r >= 1 (R = the largest r + 1): the table row (bias2, multiplier, add, right)
    becomes (bias * s, multiplier, add * 2^d + 2^(d - 1), s) with s = scale * 2^d, and
        v' = S * s + bias * s = v * 2^d,   t = add' + floor(v' * multiplier / 2^32)  (SMMLA)
        out = t >> R = floor((v * m + 2^31 + add * 2^32) * 2^d / 2^(32 + r + d))
    which is the short form's (SMMLAR: floor((v * m + 2^31) / 2^32) + add, then >> r; the
    floors nest), as long as v' and t fit in int32. A constant channel (multiplier 0)
    keeps its one value v as add' = v * 2^R. `shift` asks for a larger R (one engine
    for several layers: conv_2d.share_engines)."""
    table = rq.table
    mult = table[:, 1]
    live = mult != 0
    if not live.any():
        return None
    right = table[:, 3]
    least = int(right[live].max()) + 1
    shift = least if shift is None else shift
    if not least <= shift <= _MAX_SHIFT:
        return None
    magnitude = np.zeros(len(table), np.int64)
    channels = np.shape(weights)[0]
    magnitude[:channels] = abs_row_sums(weights) * _X_MAX
    rows: list[list[int]] = []
    for c in range(len(table)):
        bias2, m, add, r = (int(v) for v in table[c])
        if m == 0:
            value = (add - 1) >> 1  # _constant_row
            rows.append([0, 0, value * (1 << shift), 0])
            continue
        d = shift - r
        s = rq.scale << d
        bias = bias2 // rq.scale  # bias2 = bias * scale exactly
        bound = (int(magnitude[c]) + abs(bias)) * s  # bound on |v'|
        if bound >= INT31:
            return None
        added = add * (1 << d) + (1 << (d - 1))
        if abs(added) + (bound * abs(m) >> 32) + 2 >= INT31:
            return None
        rows.append([bias * s, m, added, s])
    return shift, Requant(rq.scale, np.array(rows, dtype=np.int64))
