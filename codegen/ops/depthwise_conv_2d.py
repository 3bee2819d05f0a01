"""DEPTHWISE_CONV_2D: int8 in/out, int8 weights per-channel (axis 3) or per-tensor, optional
int32 bias, depth_multiplier >= 1, SAME/VALID padding, any strides and dilations, fused
NONE/RELU/RELU6/RELU_N1_TO_1.

TFLM: reference_integer_ops::DepthwiseConvPerChannel. Weights are [1, kh, kw, in_c * mult];
output channel c = ic * mult + m reads input channel ic only. TFLM takes depth_multiplier
from the options (its kernel only DCHECKs out_c == in_c * mult), so a model whose option
disagrees with its shapes is refused. The arithmetic and the zero-point folding are
described in `codegen/ops/_conv.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _conv, _depthwise_v7m, _gemm, _gemm_v6m, _litert
from codegen.ops._window import require_nhwc, window
from codegen.ops.base import CArray, RowAccess, only_output, operand, unsupported

OPCODES = ("DEPTHWISE_CONV_2D",)

# The 3x3 fast path (templates/runtime/depthwise3x3.c.j2) gives its line buffer at most
# 1/_LINE_BUFFER_SHARE of the input image (what it adds to the arena when it runs in place),
# and never less than one pass of 4 channels. Smaller passes cost a little time per pass.
_LINE_BUFFER_SHARE = 8
# The option key under which the planner asks for every channel in one pass (a larger line
# buffer, fewer passes; the output may then overlap the input): by default where that costs
# no arena (codegen/plan.py), and under --ram-budget. Never a model's option: the reader
# names those after the schema's fields.
WHOLE_LINES = "_whole_lines"
_INT31 = 1 << 31
# Where the assembly output lines of a shared right shift run (DSP cores but Helium's:
# templates/runtime/depthwise3x3.c.j2), the layer's constants of `_shared_shift_words`.
SHARED_GUARD = "CG_DW3X3_SHARED"
_SHARED_SHIFT = 10  # the shared right shift preferred (the usual per-channel shifts: 3-9)
_CHANNEL_CHUNK = 1 << 16  # channels whose 3x3 kernel words are computed at a time


@dataclass
class DepthwiseConv2D(_conv.ConvLayer):
    template: ClassVar[str] = "kernels/depthwise_conv_2d.c.j2"

    def _products(self, xs: np.ndarray) -> np.ndarray:
        weights = np.asarray(self.params["weights_data"], dtype=np.int64)[0]
        return self.window.depthwise_sums(xs, weights, int(self.params["depth_multiplier"]))

    def macs(self) -> int:
        p = self.params
        return (int(p["batches"]) * int(p["out_h"]) * int(p["out_w"]) * int(p["out_c"])
                * int(p["taps_h"]) * int(p["taps_w"]))

    def describe(self) -> list[tuple[str, str]]:
        rows = super().describe()
        rows.insert(1, ("depth multiplier", str(self.params["depth_multiplier"])))
        return rows


@dataclass
class DepthwiseConv2D3x3(DepthwiseConv2D):
    """3x3, depth multiplier 1, strides 1 or 2: the shared line-buffer kernel."""

    template: ClassVar[str] = "kernels/depthwise_conv_2d_3x3.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        p = self.params
        variant = p["variant"]
        v6m = ("depthwise3x3_v6m",) if p["v6m"] is not None else ()
        mve = (f"depthwise3x3_mve_{variant}",) if p["mve"] else ()
        step = "" if p["six_step"] is None else f".{p['six_step']}"
        lines = f".six{step}" if p["six"] else f".three{step}" if p["three"] else ""
        shared = (f"depthwise3x3_shared.{p['stride_b']}.{p['shared_shift']}{lines}",
                  ) if p["shared_shift"] else ()
        v7m = (f"depthwise3x3_v7m_lines.{variant}",) if p["v7m"] is not None else ()
        return (f"depthwise3x3_{variant}", *shared, *v6m, *mve, *v7m)

    def constants(self) -> list[CArray]:
        words = np.asarray(self.params["constants"], np.int32).ravel()
        shared = self.params["shared_constants"]
        if shared is None:
            arrays = [CArray("constants", words)]
        else:  # the same array name: one of the two per build
            arrays = [CArray("constants", words, f"!{SHARED_GUARD}"),
                      CArray("constants", np.asarray(shared, np.int32).ravel(), SHARED_GUARD)]
        if self.params["v6m"] is not None:
            arrays.append(CArray("v6m_constants", self.params["v6m"], _gemm_v6m.DEPTHWISE_GUARD))
        if self.params["v7m"] is not None:
            arrays.append(CArray("v7m_constants", self.params["v7m"], _depthwise_v7m.GUARD))
        return arrays

    def scratch_bytes(self) -> int:
        return int(self.params["scratch"])

    def inplace_inputs(self) -> tuple[int, ...]:
        # Output line i is written once input lines up to i + 1 are in the line buffer, and
        # only over input line i: with stride 1 and the same shape, the input may be overwritten.
        p = self.params
        same = self.in_tensor().shape == self.out_tensor().shape
        return (0,) if same and p["stride_a"] == 1 and p["stride_b"] == 1 else ()

    def row_access(self) -> RowAccess | None:
        # Along rows with every channel in one pass, an input row is read once, into the
        # line buffer, before the first output row that needs it: once output row oy is
        # written, only rows from oy * stride - pad + 3 on remain to be read. Along columns,
        # or a group of channels at a time, the rows are walked again: no overlap.
        p = self.params
        if p["transposed"] or p["group"] != p["channels"]:
            return None
        return self._rows(ahead=3)

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        rows = super().describe()
        rows.append(("kernel", f"3x3 line buffer along {'columns' if p['transposed'] else 'rows'}"
                               f", {p['group']} channels per pass, {p['scratch']} B scratch"))
        return rows


def _fast_3x3(x, y, win, weights: np.ndarray, params: dict[str, object],
              mult: int, whole: bool = False) -> dict[str, object] | None:
    """Parameters of the 3x3 line-buffer kernel, or None when the layer does not fit it
    (see _channel_words for its arithmetic)."""
    r, c = win.rows, win.cols
    if (r.taps, c.taps, r.dilation, c.dilation, mult) != (3, 3, 1, 1, 1):
        return None
    if r.stride not in (1, 2) or c.stride not in (1, 2):
        return None
    shifts = np.asarray(params["shifts"], dtype=np.int32)
    if np.any(shifts > 6):  # 128 * 2^(left shift + 1) must fit in int16
        return None
    w = np.asarray(weights)[0]  # [3, 3, C] int8 (no wider copy of all the weights)
    _, h, wd, ch = x.shape
    oh, ow = r.out, c.out
    # Axis B, inside a line, is the longer one: more outputs in groups of 4.
    transposed = oh > ow
    if transposed:
        a_axis, b_axis = c, r
        taps = np.transpose(w, (1, 0, 2))
        in_steps, out_steps = (ch, wd * ch), (ch, ow * ch)
    else:
        a_axis, b_axis = r, c
        taps = w
        in_steps, out_steps = (wd * ch, ch), (ow * ch, ch)
    zp = int(params["output_zero_point"])
    bias = params["bias_data"]
    words = _channel_words(taps, shifts, None if bias is None else np.asarray(bias),
                           np.asarray(params["multipliers"]), zp, b_axis.stride == 1)
    if words is None:
        return None
    constants, v6m = words
    v7m = _depthwise_v7m.words(taps, shifts, None if bias is None else np.asarray(bias),
                               int(params["input_offset"]))
    # The last output reads up to 4 values from its window start (a pair past the third tap);
    # the assembly reads whole groups of four outputs: 4 * stride * groups + 2 values.
    reach = max((b_axis.out - 1) * b_axis.stride + 4,
                4 * b_axis.stride * -(-b_axis.out // 4) + 2)
    line = max(reach, b_axis.pad + b_axis.size)
    line += line % 2
    per_channel_bytes = 3 * line * 2
    budget = h * wd * ch // _LINE_BUFFER_SHARE
    group = ch if whole else min(ch, max(4, budget // per_channel_bytes // 4 * 4))
    # The Helium driver (templates/runtime/depthwise3x3_mve.c.j2) keeps three input lines of
    # four channels, four bytes per position along B, in the same scratch buffer: it runs
    # where they fit (not with fewer than four channels), the line-buffer kernel elsewhere.
    passes = -(-b_axis.out // 3)
    positions = max((3 * passes - 1) * b_axis.stride + 3, b_axis.pad + b_axis.size)
    general = bool(np.any(shifts >= 0) or params["act_min"] != -128
                   or params["act_max"] != 127)  # a right shift of 0 somewhere
    fixup = _gemm.needs_sign_fixup(zp, int(params["act_min"]))
    variant = f"s{b_axis.stride}" + ("_general" if general else "" if fixup else "_floor")
    shared = (_shared_shift_words(taps, shifts, None if bias is None else np.asarray(bias),
                                  np.asarray(params["multipliers"]), zp)
              if variant.endswith("_floor") else None)
    offset = int(params["input_offset"]) & 0xFFFF
    pair = offset | (offset << 16)
    return {
        "transposed": bool(transposed),
        "in_a": a_axis.size, "in_b": b_axis.size, "out_a": a_axis.out, "out_b": b_axis.out,
        "stride_a": a_axis.stride, "stride_b": b_axis.stride,
        "pad_a": a_axis.pad, "pad_b": b_axis.pad,
        "in_step_a": in_steps[0], "in_step_b": in_steps[1],
        "out_step_a": out_steps[0], "out_step_b": out_steps[1],
        "channels": ch, "line": line,
        **group_params(group, line, v6m is not None, positions),
        "offset_pair": pair - (1 << 32) if pair >= _INT31 else pair,
        "constants": constants,
        "variant": variant,
        "shared_shift": None if shared is None else shared[0],
        # lines of exactly six outputs, of 8 s + 2 int16 (the reach of two groups of four):
        # one group per channel, the rows post-incremented by a line (asm_lines_single)
        "six": shared is not None and b_axis.out == 6 and line == 8 * b_axis.stride + 2,
        # and (lines of six and three) their outputs' step where STRB's immediate offsets
        # reach five of them
        "six_step": out_steps[1] if out_steps[1] * 5 <= 4095 else None,
        # of three, lines of 6 (stride 1) or 10 (stride 2) int16 and channels in pairs: two
        # channels per pass (every pass has an even count: groups are multiples of 4 or all
        # channels)
        "three": (shared is not None and b_axis.out == 3 and line == 2 + 4 * b_axis.stride
                  and ch % 2 == 0),
        "shared_constants": None if shared is None else shared[1].ravel(),
        "v6m": None if v6m is None else v6m.ravel(),
        "v7m": None if v7m is None else v7m.ravel(),
        "mve_positions": positions,
    }


def group_params(group: int, line: int, v6m: bool, positions: int) -> dict[str, object]:
    """What a pass of `group` channels through the line buffer (lines of `line` positions)
    decides: the scratch bytes (three int16 lines per channel; the v6m kernel's passes take
    half the channels as words, at least one channel) and whether the Helium driver's
    `positions` fit it."""
    return {"group": group, "scratch": 3 * line * max(2 * group, 4 if v6m else 0),
            "mve": 3 * 4 * positions <= 3 * group * line * 2}


def with_group(layer: DepthwiseConv2D3x3, group: int) -> DepthwiseConv2D3x3:
    """The prepared layer with `group` channels per pass of its line buffer (only what the
    group decides changes: the quantization and the constants are not computed again)."""
    p = layer.params
    return replace(layer, params={**p, **group_params(group, int(p["line"]), p["v6m"] is not None,
                                                      int(p["mve_positions"]))})


def with_whole_lines(layer: DepthwiseConv2D3x3) -> DepthwiseConv2D3x3:
    """The layer as `prepare` makes it with WHOLE_LINES: its line buffer takes all channels
    in one pass (`with_group`)."""
    op = replace(layer.op, options={**layer.op.options, WHOLE_LINES: True})
    return replace(with_group(layer, int(layer.params["channels"])), op=op)


def _channel_words(taps: np.ndarray, shifts: np.ndarray, bias: np.ndarray | None,
                   multipliers: np.ndarray, zp: int, with_v6m: bool
                   ) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Per channel of `taps` ([3, 3, C] int8, A then B), the words of the 3x3 kernel
    (CG_DW3X3_WORDS: the scaled taps in int16 pairs, bias * scale, multiplier, add, right)
    and, `with_v6m`, of the cores without DSP (templates/runtime/depthwise3x3_v6m.c.j2:
    the nine taps and left + 1); None when the layer does not fit the kernel.

    Weights and bias are scaled by 2^(left shift + 1), which the requantization needs (see
    templates/runtime/requantize_fast.c.j2); this is exact while every accumulator, so
    scaled, fits in int32, which the bound below guarantees (|x - zero point| <= 255).
    Computed _CHANNEL_CHUNK channels at a time: a layer of millions of channels needs no
    wide temporaries of its size."""
    channels = taps.shape[2]
    constants = np.empty((channels, 10), np.int32)
    v6m = np.empty((channels, 10), np.int32) if with_v6m else None
    for start in range(0, channels, _CHANNEL_CHUNK):
        part = slice(start, min(channels, start + _CHANNEL_CHUNK))
        chunk = taps[:, :, part]
        left = np.maximum(shifts[part].astype(np.int64), 0)
        right = np.maximum(-shifts[part].astype(np.int64), 0)
        scale = np.left_shift(1, left + 1)
        b = np.zeros(chunk.shape[2], np.int64) if bias is None else bias[part].astype(np.int64)
        bound = np.abs(b) + 255 * np.abs(chunk.astype(np.int64)).sum(axis=(0, 1))
        rounding = np.where(right > 0, np.left_shift(1, np.maximum(right - 1, 0)), 0)
        add = rounding + zp * np.left_shift(1, right)
        if np.any(bound * scale >= _INT31) or np.any(bound * 2**left + 2 + np.abs(add) >= _INT31):
            return None
        scaled = chunk.astype(np.int32) * scale.astype(np.int32)  # |value| <= 2^14
        words = constants[part]
        for row in range(3):
            words[:, 2 * row] = _pack(scaled[row, 0], scaled[row, 1])
            words[:, 2 * row + 1] = _pack(scaled[row, 1], scaled[row, 2])
        words[:, 6] = b * scale
        words[:, 7] = multipliers[part]
        words[:, 8] = add
        words[:, 9] = right
        if v6m is not None:
            v6m[part, :9] = chunk.reshape(9, -1).T
            v6m[part, 9] = left + 1
    return constants, v6m


def _shared_shift_words(taps: np.ndarray, shifts: np.ndarray, bias: np.ndarray | None,
                        multipliers: np.ndarray, zp: int) -> tuple[int, np.ndarray] | None:
    """The words of `_channel_words` for one right shift R shared by every channel (the
    assembly's SMMLA then SSAT with ASR #R), or None where they do not fit; only for every
    shift negative and the full int8 range (the `_floor` variants, no tie fixup).

    A channel of right shift s < R has its weights and bias scaled by 2^(R - s) more, and
    its add (rounding plus zero point, r) becomes r 2^k + 2^(k - 1) with k = R - s >= 1:
    then the high word of acc 2^k * m + add 2^32 shifted right by R is floor((acc m + r 2^32
    + 2^31) / 2^(32 + s)), what SMMLAR (ties upward), the add and ASR #s give. The scaled
    weights must fit in int16 (|w| 2^(1 + k) <= 2^15) and every accumulator and high word
    in int32. A channel of s >= R takes words of its own (`_wide_channel`), checked exact at
    every accumulator its inputs can give. Of the shifts that fit, the one nearest
    _SHARED_SHIFT: the layers of a model mostly share one function (one per shift and
    stride)."""
    right = -shifts.astype(np.int64)  # every shift < 0: left 0, right >= 1
    b = np.zeros(taps.shape[2], np.int64) if bias is None else bias.astype(np.int64)
    bound = np.abs(b) + 255 * np.abs(taps.astype(np.int64)).sum(axis=(0, 1))
    candidates = range(int(right.min()) + 1, min(int(right.min()) + 7, 31) + 1)
    wides = int(right.max())  # shifts from R = this one on: channels of their own words
    for shared in sorted(candidates, key=lambda r: (r <= wides, abs(r - _SHARED_SHIFT), r)):
        narrow = right < shared
        k = np.where(narrow, shared - right, 1)
        scale = np.left_shift(1, k + 1)
        add = ((np.left_shift(1, right - 1) + zp * np.left_shift(1, right)) * np.left_shift(1, k)
               + np.left_shift(1, k - 1))
        high = bound * (scale >> 1) + 1 + np.abs(add)  # |the high word| before the shift
        if not (np.all((bound * scale < _INT31)[narrow]) and np.all((high < _INT31)[narrow])):
            continue
        mult = np.asarray(multipliers, np.int64).copy()
        b_scaled = b * scale
        for c in np.flatnonzero(~narrow):
            wide = _wide_channel(int(b[c]), int(bound[c] - abs(b[c])), int(multipliers[c]),
                                 int(right[c]), shared, zp)
            if wide is None:
                break
            scale[c], b_scaled[c], mult[c], add[c] = wide
        else:
            return shared, _words(taps, scale, b_scaled, mult, add, shared)
    return None


_WIDE_SEARCH = 1 << 10  # the adds tried around the nearest one for a channel of s >= R


def _wide_channel(bias: int, spread: int, m: int, s: int, shared: int, zp: int
                  ) -> tuple[int, int, int, int] | None:
    """(weight scale, bias word, multiplier, add) of a channel of right shift s >= the shared
    R whose outputs over every accumulator acc in [bias - spread, bias + spread] are those
    of its own words, f(acc) = clamp(floor((2 acc m + 2^31 + r 2^32) / 2^(32 + s))), or None.

    An output constant there: no weights (scale 0), the add c 2^R. Otherwise the weights and
    bias doubled, bias + n, a multiplier m' near m / 2^(s - R) and an add A: g(acc) =
    clamp(floor((2 (acc + n) m' + A 2^32) / 2^(32 + R))), both non-decreasing in acc; they
    are equal on the interval when they agree at its ends and every output level reached
    inside starts at the same accumulator (the searched A and n make it so)."""
    lo, hi = bias - spread, bias + spread
    r = (1 << (s - 1)) + zp * (1 << s)
    top = 1 << (32 + s)

    def f(acc: int) -> int:
        return min(127, max(-128, (2 * acc * m + (1 << 31) + (r << 32)) // top))

    first, last = f(lo), f(hi)
    if first == last:
        return (0, 0, m, first << shared) if abs(first << shared) < _INT31 else None
    # the first accumulator of each output level reached inside (lo, hi]
    starts = [(t, -((((1 << 31) + (r << 32)) - t * top) // (2 * m)))
              for t in range(first + 1, last + 1)]
    j = s - shared
    nearest = ((1 << 31) + (r << 32)) >> (32 + j)
    for m2 in sorted({m >> j, -(-m // (1 << j))}):
        if not 0 < m2 < _INT31:
            continue
        for a in sorted(range(nearest - _WIDE_SEARCH, nearest + _WIDE_SEARCH + 1),
                        key=lambda v: abs(v - nearest)):
            # g's first accumulator of level t, less f's: one n for every level
            n = -(((a << 32) - (starts[0][0] << (32 + shared))) // (2 * m2)) - starts[0][1]
            if all(-(((a << 32) - (t << (32 + shared))) // (2 * m2)) - c == n
                   for t, c in starts[1:]):
                words = _wide_words(bias, spread, n, m2, a, shared, f)
                if words is not None:
                    return words
    return None


def _wide_words(bias: int, spread: int, n: int, m2: int, a: int, shared: int,
                f: Callable[[int], int]) -> tuple[int, int, int, int] | None:
    """`_wide_channel`'s words for bias + n, m2 and add a where they fit in int32 and agree
    with f at both ends of [bias - spread, bias + spread], else None."""
    lo, hi = bias - spread, bias + spread
    low, high = 2 * (lo + n), 2 * (hi + n)  # the doubled accumulators' range
    if max(abs(low), abs(high), abs(a)) >= _INT31 // 2:
        return None
    if max(abs(low), abs(high)) * m2 // (1 << 32) + abs(a) + 1 >= _INT31:
        return None

    def g(acc: int) -> int:
        return min(127, max(-128, (2 * (acc + n) * m2 + (a << 32)) >> (32 + shared)))

    if g(lo) != f(lo) or g(hi) != f(hi):
        return None
    return 2, 2 * (bias + n), m2, a


def _words(taps: np.ndarray, scale: np.ndarray, bias: np.ndarray, multipliers: np.ndarray,
           add: np.ndarray, shared: int) -> np.ndarray:
    """The shared-shift words of `_shared_shift_words` (int32 [C, 10]; `bias` scaled)."""
    scaled = taps.astype(np.int64) * scale  # |value| <= 2^15
    words = np.empty((taps.shape[2], 10), np.int64)
    for row in range(3):
        words[:, 2 * row] = _pack(scaled[row, 0], scaled[row, 1])
        words[:, 2 * row + 1] = _pack(scaled[row, 1], scaled[row, 2])
    words[:, 6] = bias
    words[:, 7] = multipliers
    words[:, 8] = add
    words[:, 9] = shared
    return words.astype(np.int32)


def _pack(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """int16 values held in int32 as int32 words, `low` in the low half (the first in
    memory); `high` << 16 cannot overflow (|high| < 2^15)."""
    return (high << 16) | (low & 0xFFFF)


def prepare(op: Operator, graph: Graph) -> DepthwiseConv2D:
    x = operand(op, graph, 0, "input")
    w = operand(op, graph, 1, "weights")
    y = only_output(op, graph)
    _conv.require_int8_io(op, x, y)
    require_nhwc(op, x, "input")
    require_nhwc(op, y, "output")
    if len(w.shape) != 4 or w.shape[0] != 1:
        raise unsupported(op, f"weights must be [1, h, w, out], found {list(w.shape)}")
    _, kh, kw, out_c = w.shape
    in_c = x.shape[3]
    mult = int(op.options.get("depth_multiplier", 1))
    if mult < 1 or in_c * mult != out_c:
        raise unsupported(op, f"depth_multiplier {mult} does not map {in_c} input channels "
                              f"to the filter's {out_c} output channels")
    if y.shape[0] != x.shape[0] or y.shape[3] != out_c:
        raise unsupported(op, f"output shape {list(y.shape)} does not match input "
                              f"{list(x.shape)} and {out_c} filters")
    win = window(op, x, y, kh, kw)
    _conv.check_accumulation(op, kh * kw)
    multipliers, shifts = _conv.prepare_quantization(op, x, w, y, out_c, channel_axis=3)
    bias = _conv.prepare_bias(op, graph, out_c)
    params = _conv.common_params(op, x, y, win, multipliers, shifts, bias,
                                 w.data.reshape(-1, out_c).sum(axis=0, dtype=np.int64), w.data)
    params.update(
        depth_multiplier=mult,
        filter_row=kw * out_c,
    )
    fast = _fast_3x3(x, y, win, w.data, params, mult, bool(op.options.get(WHOLE_LINES)))
    if fast is not None:
        params.update(fast)
        return DepthwiseConv2D3x3(op, graph, inputs=(x.index,), outputs=(y.index,),
                                  params=params)
    return DepthwiseConv2D(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


@dataclass
class DepthwiseConv2DLiteRT(_conv.LiteRTRequantization, DepthwiseConv2D):
    runtime: ClassVar[tuple[str, ...]] = ("requantize_fp32",)


def litert(layer: DepthwiseConv2D) -> DepthwiseConv2D:
    """The layer as LiteRT's default interpreter computes it: XNNPACK (numerics litert)."""
    return _litert.conv_layer(layer, DepthwiseConv2DLiteRT,  # type: ignore[return-value]
                              int(layer.params["out_c"]))


KERNELS = {DType.INT8: prepare}
NUMERICS = {"litert": litert,
            "litert-ref": lambda layer: _litert.require_bias(layer, "litert-ref")}
