"""The scalar RISC-V (rv32imac: MUL, no DSP, no SIMD) streams of the int8 matrix-product
engine (templates/runtime/_gemm_engines_rv.j2), compiled where `CG_GEMM_RV` holds.

Two channels share a 32-bit weight word as one integer, W = w_a + 65536 * w_b (w signed), so
one MUL by an input value x gives both products in 16-bit lanes:
    W * x = w_a * x + 65536 * w_b * x   (mod 2^32).
Two depth indices k, k' form a chunk: Q = W[k] * x[k] + W[k'] * x[k'] holds the low lane
L = w_a[k] x[k] + w_a[k'] x[k'] and the high lane M = w_b[k] x[k] + w_b[k'] x[k']. With
|x| <= 128 and not both weights -128, -32640 <= L, M <= 32640, so
    (Q + 2^15) >> 16 = M exactly (arithmetic shift: 0 <= L + 2^15 < 2^16, |M| < 2^15).
Per pair and pixel the engine keeps A = sum Q (mod 2^32) and H = sum M: seven instructions
(two MUL, four ADD, one shift) for four MACs, and one word load for two weights. It starts
them at the folded biases (A at bias'_a + 65536 bias'_b, H at bias'_b), so that
    acc_b = H,   acc_a = A - 65536 * H (mod 2^32, exact as |acc_a| < 2^31),
and v = acc * scale goes to the requantization (`_gemm.Requant`). The weights take twice
the DSP stream's bytes (16 bits each).

The convolution engine reads the DSP engine's widened columns (k-pair slot j of pixel n holds
inputs k and k + 2, k = 4 (j // 2) + j % 2, as 16-bit halves): slot j is a chunk. The
FULLY_CONNECTED engine reads its int8 row as it is: chunk i is inputs 2i, 2i + 1. A block of
channels (`stream`) holds each pair's starting sums (two words), then per chunk each pair's
words W[k], W[k'], then each pair's multiplier, addend and right shift of channel a, then of
b (six words): as many words as the DSP stream's blocks. The engines take CONV_WIDE or
FC_WIDE channels per pass and their last channels in blocks of four or eight
(`split_stream`); the FULLY_CONNECTED engine's last, partial block holds only the one to
three pairs it needs (a block of fewer pairs, the same layout).

The FULLY_CONNECTED engine may take the high lane less often: once per two chunks (the quad
engine) or four (the oct engine) on a block of channels where each channel's weights of each
such group sum to at most 255 in magnitude, so that a lane's sum of their products stays
within 128 * 255 < 2^15 (`group_fits`, `fc_runs`: the generator proves it per block and
calls each engine on its runs of blocks; the stream is the same). The oct engine costs 27
instructions per 16 MACs, the quad one 15 per 8, the single one 9 per 4.

A layer with a chunk whose two weights of one channel are both -128 keeps the DSP stream
(and the byte-wise engine): `stream` returns None.
"""

from __future__ import annotations

import numpy as np

from codegen.ops._gemm import Requant, padded_depth
from codegen.ops.base import CArray

GUARD = "CG_GEMM_RV"
ASM_GUARD = "CG_GEMM_ASM"


def conv_chunks(kpad: int) -> np.ndarray:
    """The depth indices (k, k + 2) of each k-pair slot of the convolution's columns."""
    j = np.arange(kpad // 2)
    k = 4 * (j // 2) + j % 2
    return np.stack([k, k + 2], axis=1)


def fc_chunks(kpad: int) -> np.ndarray:
    """The depth indices (2i, 2i + 1) of the FULLY_CONNECTED engine's chunks."""
    k = np.arange(0, kpad, 2)
    return np.stack([k, k + 1], axis=1)


def stream(weights: np.ndarray, rq: Requant, block: int, chunks: np.ndarray) -> np.ndarray | None:
    """Filters [C, K] and `rq` as the engine reads them, block after block: each pair's
    starting sums, then per chunk (rows of `chunks`, depth indices) each pair's words W[k],
    W[k'], then each pair's constants (see the module docstring). Channels are padded to a
    multiple of `block` (`rq` with constant rows where it has none). None where a chunk has
    two -128 weights in one channel."""
    w = np.asarray(weights)
    channels, depth = w.shape
    blocks = -(-channels // block)
    kpad = padded_depth(depth)
    data = np.zeros((blocks * block, kpad), dtype=np.int32)
    data[:channels, :depth] = w
    first, second = chunks[:, 0], chunks[:, 1]
    if np.any((data[:, first] == -128) & (data[:, second] == -128)):
        return None
    words = data[0::2].astype(np.int64) + 65536 * data[1::2]  # [pairs, kpad]
    picked = words.reshape(blocks, block // 2, kpad)[:, :, chunks]  # [blocks, pairs, chunk, 2]
    body = picked.transpose(0, 2, 1, 3).reshape(blocks, -1)
    table = rq.table[:block * blocks].astype(np.int64)
    if len(table) < block * blocks:  # constant rows (multiplier 0) for the padded channels
        pad = np.tile(np.array([[0, 0, 1, 1]], np.int64), (block * blocks - len(table), 1))
        table = np.concatenate([table, pad])
    pairs = table.reshape(blocks, block // 2, 2, 4)  # [block, pair, a or b, field]
    bias = pairs[..., 0] // rq.scale  # bias' (bias2 = bias' * scale exactly)
    start = np.stack([bias[..., 0] + 65536 * bias[..., 1], bias[..., 1]], axis=2)
    constants = pairs[..., 1:].reshape(blocks, -1)  # per pair: m, add, right of a, then b
    flat = np.concatenate([start.reshape(blocks, -1), body, constants], axis=1).ravel()
    return ((flat + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)


def split_stream(weights: np.ndarray, rq: Requant, wide: int, block: int,
                 chunks: np.ndarray, small_tail: bool = False) -> dict[str, object] | None:
    """The stream of a layer whose engine takes `wide` channels per pass and `block` at its
    end: the channels' first multiple of `wide` in blocks of `wide`, the rest in blocks of
    `block` (the last one padded). With `small_tail` (the FULLY_CONNECTED engine) the last,
    partial block is one of `tail_pairs` pairs only (its channels padded to an even count),
    so that a layer of a few units computes no padded pairs. The C's counts and offsets
    (words) come with it; None where `stream` refuses the weights."""
    w = np.asarray(weights)
    channels, depth = w.shape
    kpad = padded_depth(depth)
    wide_blocks = channels // wide
    cut = wide * wide_blocks
    blocks, partial = divmod(channels - cut, block)
    tail_pairs = -(-partial // 2) if small_tail else block // 2
    ends = [cut + blocks * block, channels] if small_tail else [channels]
    parts = [stream(w[:cut], rq, wide, chunks) if wide_blocks else np.zeros(0, np.int32)]
    for start, end, size in zip([cut, *ends[:-1]], ends, [block, 2 * tail_pairs], strict=False):
        parts.append(stream(w[start:end], Requant(rq.scale, rq.table[start:]), size, chunks)
                     if end > start else np.zeros(0, np.int32))
    if any(part is None for part in parts):
        return None
    offset = wide_blocks * block_words(kpad, wide)
    return {"stream": np.concatenate(parts), "wide_blocks": wide_blocks,
            "blocks": blocks, "block_offset": offset,
            "tail_offset": offset + blocks * block_words(kpad, block), "partial": partial,
            "tail_pairs": tail_pairs}


def group_fits(weights: np.ndarray, block: int, inputs: int) -> np.ndarray:
    """Per block of `block` channels (the last one padded with zeros), whether every channel's
    weights of each group of `inputs` depth indices (depth inputs * j ..., the FULLY_CONNECTED
    engine's chunks inputs * j / 2 ...) sum to at most 255 in magnitude: then a lane's sum of
    their products is within 128 * 255 = 32640 < 2^15 and the engine may take its high lane
    once per group (`fc_runs`)."""
    w = np.abs(np.asarray(weights, np.int64))
    channels, depth = w.shape
    blocks = -(-channels // block)
    kpad = -(-depth // inputs) * inputs
    data = np.zeros((blocks * block, kpad), np.int64)
    data[:channels, :depth] = w
    sums = data.reshape(blocks, block, kpad // inputs, inputs).sum(axis=3)
    return np.asarray(sums.max(axis=(1, 2)) <= 255)


# The depth from which the oct engine takes the blocks that fit it (below, its longer setup
# costs more than it saves).
OCT_DEPTH = 32


def _groups(weights: np.ndarray, block: int) -> np.ndarray:
    """Per block, the chunks per high lane its engine may take: 4 (the oct engine, from a
    depth of OCT_DEPTH), 2 (the quad engine) or 1."""
    w = np.asarray(weights)
    quad = np.where(group_fits(w, block, 4), 2, 1)
    return np.where(group_fits(w, block, 8), 4, quad) if w.shape[1] >= OCT_DEPTH else quad


def fc_runs(weights: np.ndarray, split: dict[str, object], wide: int, block: int
            ) -> dict[str, object]:
    """The FULLY_CONNECTED engine's calls over a `split_stream` split: the wide blocks in runs
    of consecutive blocks (first block, count, chunks per high lane: `_groups`), the chunks
    per high lane of the `block`-channel blocks and the partial one, all together
    (`rest_group`), and of the partial one alone (`tail_group`)."""
    w = np.asarray(weights)
    cut = wide * int(split["wide_blocks"])  # type: ignore[call-overload]
    groups = _groups(w[:cut], wide).tolist() if cut else []
    runs: list[tuple[int, int, int]] = []
    for b, g in enumerate(groups):
        if runs and runs[-1][2] == g:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1, g)
        else:
            runs.append((b, 1, g))
    rest = w[cut:]
    tail = w[cut + block * int(split["blocks"]):]  # type: ignore[call-overload]
    tail_block = 2 * int(split.get("tail_pairs", block // 2))  # type: ignore[call-overload]
    return {"runs": runs, "rest_group": int(_groups(rest, block).min()) if len(rest) else 4,
            "tail_group": int(_groups(tail, tail_block).min()) if len(tail) else 4}


def block_words(kpad: int, block: int) -> int:
    """Words of one block in the stream: the weights, then four constants per channel."""
    return block * kpad // 2 + 4 * block


def constants(dsp: np.ndarray, rv: np.ndarray | None,
              asm: np.ndarray | None = None) -> list[CArray]:
    """The DSP engine's `stream` and, where the layer has one, the RISC-V stream
    `rv_stream`, each compiled only where an engine reads it; where the layer has one, the
    DSP assembly's own `stream` (`_gemm.plan_shifted`), in place of the other there."""
    own = [] if asm is None else [CArray("stream", asm, ASM_GUARD)]
    plain = "" if asm is None else f"!{ASM_GUARD}"
    if rv is None:
        return [*own, CArray("stream", dsp, plain)]
    both = f"{plain} && !{GUARD}" if plain else f"!{GUARD}"
    return [*own, CArray("stream", dsp, both), CArray("rv_stream", rv, GUARD)]


# Channels per pass of the convolution engine's main loop (four pairs, two pixels); its last
# channels go four at a time (`_gemm.CONV_BLOCK`).
CONV_WIDE = 8
# The FULLY_CONNECTED engine's (eight pairs, one row); its last channels go eight at a time
# (`_gemm.FC_BLOCK`).
FC_WIDE = 16
