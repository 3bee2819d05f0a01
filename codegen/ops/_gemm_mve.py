"""The int8 Helium engines under CONV_2D and FULLY_CONNECTED (templates/runtime/
gemm_mve8_conv.c.j2, gemm_mve8_fc.c.j2), chosen in the C by `CG_GEMM_MVE` (Cortex-M55/M85: MVE
with integer vectors).

The DSP engine (codegen/ops/_gemm.py) widens columns to 16-bit pairs for SMLAD; Helium's
VMLADAVA.S8 multiplies sixteen int8 lanes and adds the sixteen products to a 32-bit scalar in
one instruction, so this engine keeps the columns and the weights int8 as they are:
    S = sum_k w[c, k] * x[k]     (VMLADAVA.S8 over the depth, sixteen k at a time)
exactly, with no offset to remove (the DSP engine's 128 * sum(x) and 256 * S_b do not arise).
A block is four output channels by two output pixels: per sixteen depth values, two column
vectors and four weight vectors feed eight VMLADAVAs (128 MACs). A depth that is not a multiple
of 16 ends with one predicated step (VCTP): the columns' lanes past the depth load as zeros
and are never read, and the weights there are zero. A depth of at most 16 is that one step
(`single`): the engine loads both columns once and runs every block on them.

Weights are packed at generation time in the order the engine reads them: per block of four
channels, per sixteen depth values, the four channels' sixteen bytes (`pack`). Channels are
padded to a multiple of four with zero filters whose outputs are never stored.
FULLY_CONNECTED's engine takes blocks of eight channels of one input row (its eight
accumulators): one row vector and eight weight vectors per sixteen depth values.

The input offset is folded into the bias (bias' = bias + input_offset * sum_k w), so the
accumulator is TFLM's; the requantization is the DSP engine's short form on four lanes
(`_gemm.plan_requant`: the same constants, exact within the bounds the generator checks, the
layer keeping the plain kernel otherwise), stored per block field by field for contiguous
vector loads (`table`): bias' * scale, multiplier, add, and the right shift negated (VSHL).
"""

from __future__ import annotations

import numpy as np

from codegen.ops._gemm import Requant
from codegen.ops.base import CArray

# The C condition under which the engine is compiled (runtime/gemm.c.j2 defines it).
GUARD = "CG_GEMM_MVE"
CONV_BLOCK = 4
LANES = 16  # int8 lanes of a vector: depth values per VMLADAVA.S8


def padded_depth(depth: int) -> int:
    return -(-depth // LANES) * LANES


def pack(weights: np.ndarray, block: int = CONV_BLOCK) -> np.ndarray:
    """Filters [C, K] as int8 [C / block][K padded to 16 / 16][block][16]; padded channels and
    depth values are 0."""
    w = np.asarray(weights)
    channels, depth = w.shape
    blocks = -(-channels // block)
    k_padded = padded_depth(depth)
    data = np.zeros((blocks * block, k_padded), dtype=np.int8)
    data[:channels, :depth] = w.astype(np.int8, copy=False)
    chunks = data.reshape(blocks, block, k_padded // LANES, LANES).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(chunks).ravel()


def table(rq: Requant, channels: int, block: int = CONV_BLOCK) -> np.ndarray:
    """rq's rows (bias2, multiplier, add, right), `channels` of them padded to a multiple of
    `block` with rq's padding rows, as int32 [C / block][field][block] with the right shifts
    negated."""
    blocks = -(-channels // block)
    rows = np.array(rq.table[:blocks * block], dtype=np.int64)
    if rows.shape[0] < blocks * block:  # rq padded to a smaller multiple
        pad = np.tile(np.array([[0, 0, 1, 1]], np.int64), (blocks * block - rows.shape[0], 1))
        rows = np.concatenate([rows, pad])
    rows[:, 3] = -rows[:, 3]
    return np.ascontiguousarray(
        rows.reshape(blocks, block, 4).transpose(0, 2, 1)).astype(np.int32).ravel()


def plan(weights: np.ndarray, rq: Requant) -> dict[str, object]:
    """The engine's parameters for filters `weights` [C, K]."""
    w = np.asarray(weights).reshape(np.shape(weights)[0], -1)
    channels, depth = w.shape
    single = depth <= LANES  # one step: the columns loaded once for every block
    return {"weights": pack(w), "table": table(rq, channels), "k16": padded_depth(depth),
            "single": single, "kfull": 0 if single else depth // LANES,
            "ktail": depth if single else depth % LANES}


FC_BLOCK = 8


def plan_fc(weights: np.ndarray, rq: Requant) -> dict[str, object]:
    """The FULLY_CONNECTED engine's parameters for filters `weights` [C, K] (`rq` padded to a
    multiple of FC_BLOCK): blocks of eight channels, their requantization rows as two blocks
    of four."""
    w = np.asarray(weights)
    channels, depth = w.shape
    padded = -(-channels // FC_BLOCK) * FC_BLOCK
    return {"weights": pack(w, FC_BLOCK), "table": table(rq, padded), "k16": padded_depth(depth),
            "kfull": depth // LANES, "ktail": depth % LANES}


def constants(mve: dict[str, object]) -> list[CArray]:
    """The engine's arrays, emitted only where the C compiles the engine."""
    return [CArray("mve_weights", mve["weights"], GUARD),  # type: ignore[arg-type]
            CArray("mve_rq", mve["table"], GUARD)]  # type: ignore[arg-type]
