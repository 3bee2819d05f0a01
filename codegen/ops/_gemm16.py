"""The 16x8 matrix-product engine under FULLY_CONNECTED and CONV_2D in int16
(templates/kernels/_gemm16.c.j2).

Every output is S = sum_k w[c, k] * x[k]: one filter row of int8 weights with one column of
int16 values (an input row of a FULLY_CONNECTED, the receptive field of one output pixel of a
CONV_2D with zeros at padded taps: the 16x8 kernels have no input offset, so a padded tap
adds w * 0 just as TFLM's skipped one adds nothing). S is exact in int32 whenever
sum_k |w[c, k]| * 32768 < 2^31, which the generator checks per channel (`fits`); the kernel
then adds the bias and requantizes as TFLM does (int64 or int32, codegen/ops/_requant.py).
Computing S in another order than TFLM's loops gives the same exact sum.

The activations are already 16-bit, so with the DSP extension one SMLAD multiplies two of
them by two weights with no widening of the activations; the int8 weights are sign-extended
in pairs by SXTB16 as they are loaded. So that SXTB16 of a weight word gives the pair
(w[k], w[k+1]) and SXTB16 of the word rotated by 8 gives (w[k+2], w[k+3]), each group of
four weights is stored as the bytes [w0, w2, w1, w3] (`pack_weights`). Columns hold four
16-bit values per two words, in order, so word 2j is (x[4j], x[4j+1]) and word 2j+1
(x[4j+2], x[4j+3]).

A pass computes two channels for two columns (four sums) from one pair of weight words and
two words of each column per four values of k: 4 SXTB16 and 8 SMLAD for 16 MACs. Columns are
copied into the kernel's scratch first, the two interleaved word by word (one LDM loads a
word of each), which also lets a 1x1 CONV_2D with stride 1 run in place. Without the DSP
extension the same loop runs in plain C.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.ops._requant import Requantization, SingleRounding64

K_STEP = 4  # values of k per pair of weight words
_LIMIT = 1 << 31


def padded_depth(depth: int) -> int:
    return -(-depth // K_STEP) * K_STEP


def fits(weights: np.ndarray) -> bool:
    """Whether every channel's sum of products fits int32 for any int16 column."""
    w = np.asarray(weights, dtype=np.int64)
    return bool(np.all(np.abs(w).sum(axis=1) * 32768 < _LIMIT))


def pack_weights(weights: np.ndarray) -> np.ndarray:
    """Filters [C, K] as the engine's words (uint32): channels in pairs (padded with a zero
    filter to an even count), depth padded with zeros to a multiple of 4; for each pair and
    each group of four values of k, the word of channel 2p then of channel 2p + 1, each with
    the bytes [w[k], w[k+2], w[k+1], w[k+3]]."""
    w = np.asarray(weights, dtype=np.int64)
    channels, depth = w.shape
    full = np.zeros((channels + channels % 2, padded_depth(depth)), dtype=np.int64)
    full[:channels, :depth] = w
    groups = (full & 0xFF).reshape(full.shape[0], -1, K_STEP)  # [C, K/4, 4] bytes
    words = (groups[:, :, 0] | (groups[:, :, 2] << 8) | (groups[:, :, 1] << 16)
             | (groups[:, :, 3] << 24))  # [C, K/4]
    pairs = words.reshape(-1, 2, words.shape[1]).transpose(0, 2, 1)  # [C/2, K/4, 2]
    return pairs.ravel().astype(np.uint32)


@dataclass(frozen=True)
class Epilogue:
    """How the engine turns a channel's sum S into an output, TFLM's requantization either
    way: "smmulr", one SMMULR, where the generator has checked that it is exact: an int64
    requantization (y = (x * m16 + 2^(t - 1)) >> t with x = S + bias, m16 the 16-bit
    multiplier, t = 15 - shift) whose every x fits int32 and whose t lies in [16, 32], so
    that with b = m16 * 2^(32 - t) (below 2^31 as m16 < 2^15 <= 2^(t - 1)),
    (x * b + 2^31) >> 32 = (x * m16 * 2^(32 - t) + 2^31) / 2^32 rounded down = y;
    "generic", the layer's requantization function (codegen/ops/_requant.py) on S + bias."""

    kind: str
    accumulator: str
    function: str
    bias: bool
    runtime: tuple[str, ...]  # the snippets it calls
    @property
    def describe(self) -> str:
        if self.kind == "smmulr":
            return ("TFLM's int64 requantization as one SMMULR by the 16-bit multiplier times "
                    "2^(32 - total shift), exact for these sums")
        return f"the bias, then {self.function} ({self.accumulator} accumulator)"


def epilogue(rq: Requantization, bias: np.ndarray | None, bound: np.ndarray) -> Epilogue:
    """The fast form where its conditions hold (`bound`: per channel, on |S + bias|)."""
    has_bias = bias is not None
    if isinstance(rq, SingleRounding64):
        total = rq.total_shifts
        if int(np.max(bound)) < _LIMIT and np.all((total >= 16) & (total <= 32)):
            return Epilogue("smmulr", "int32", "cg_smmulr", has_bias, ("smmulr", "clamp"))
    return Epilogue("generic", rq.accumulator[:-2], rq.function, has_bias,
                    ("gemm16", *rq.runtime, "clamp"))


def epilogue_constants(layer_epilogue: Epilogue, rq: Requantization,
                       bias: np.ndarray | None, channels: int) -> list[tuple[str, np.ndarray]]:
    """(name, values) of the arrays the engine's epilogue reads, one entry per channel."""
    arrays: list[tuple[str, np.ndarray]] = []
    if layer_epilogue.kind == "smmulr":
        assert isinstance(rq, SingleRounding64)
        if bias is not None:
            arrays.append(("bias", np.asarray(bias).astype(np.int32)))
        scale = rq.reduced << (32 - rq.total_shifts)
        arrays.append(("scale", np.broadcast_to(scale, channels).astype(np.int32)))
        return arrays
    if bias is not None:
        c_type = np.int64 if layer_epilogue.accumulator == "int64" else np.int32
        arrays.append(("bias", np.asarray(bias).astype(c_type)))
    multiplier, shift = rq.arguments()
    arrays += [("multiplier", np.broadcast_to(multiplier, channels).astype(np.int32)),
               ("shift", np.broadcast_to(shift, channels).astype(np.int32))]
    return arrays
