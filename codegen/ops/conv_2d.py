"""CONV_2D: int8 in/out, int8 weights per-channel (axis 0) or per-tensor, optional int32
bias, SAME/VALID padding, any strides and dilations, groups, fused
NONE/RELU/RELU6/RELU_N1_TO_1.

TFLM: reference_integer_ops::ConvPerChannel. Weights are [out_c, kh, kw, in_c / groups];
TFLM infers groups = in_c / filter_in_c, and output channel c reads the input channels of
group c / (out_c / groups). The arithmetic and the zero-point folding are described in
`codegen/ops/_conv.py`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _conv, _gemm, _gemm_mve, _gemm_rv, _gemm_v6m, _litert
from codegen.ops._window import require_nhwc, window
from codegen.ops.base import CArray, Layer, RowAccess, only_output, operand, unsupported

OPCODES = ("CONV_2D",)

_LOCAL_COLUMNS = 64  # bytes: two widened columns this small go on the stack, not in the arena
# k-pairs per iteration of the one-pixel engine at most (an odd count's last pixel)
ONE_KPAIRS = 16
# the flags the looping shifted run engine of 32 k-pairs takes from `scale`
# (runtime/_gemm_engines.j2, conv_engine's `half`): C, its entry at k-pair 17; V, a depth of
# one pass of its loop (at most 32 k-pairs)
HALF_ENTRY = 1 << 29
ONE_PASS = 1 << 28


@dataclass
class Conv2D(_conv.ConvLayer):
    template: ClassVar[str] = "kernels/conv_2d.c.j2"

    def _products(self, xs: np.ndarray) -> np.ndarray:
        # Partial sums stay below 2**31 (MAX_TAPS): float64 is exact.
        return self.window.conv_sums(xs, np.asarray(self.params["weights_data"]),
                                     int(self.params["groups"]))

    def macs(self) -> int:
        p = self.params
        return (int(p["batches"]) * int(p["out_h"]) * int(p["out_w"]) * int(p["out_c"])
                * int(p["filter_size"]))

    def describe(self) -> list[tuple[str, str]]:
        rows = super().describe()
        if int(self.params["groups"]) > 1:
            rows.insert(1, ("groups", str(self.params["groups"])))
        return rows


@dataclass
class Conv2DGemm(Conv2D):
    """The matrix-product engine (codegen/ops/_gemm.py), two output pixels per pass: a 1x1
    convolution widens each pixel's channels; any other window widens the receptive field
    (NAME_column, specialised to the layer's shape: straight from the image with channels
    a multiple of 4, else through a gathered int8 column) with the input zero point at
    padded taps, so the folded bias is exact at the border too."""

    template: ClassVar[str] = "kernels/conv_2d_fast.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        p = self.params
        fills = not p["pointwise"] and not p["gather"] and (p["has_border"] or p["depth_pad"])
        copies = ("gemm_copy",) if p["ring"] else ()
        few = ("conv_few",) if p["few"] is not None else ()
        v7m = () if p["v7m"] is None else ("gemm_v7m_conv", p["v7m"]["snippet"])
        run = ("gemm_conv_run." + ".".join(p["run_variant"]),) if p["run"] else ()
        if (p["run"] or p.get("one")) and int(p["pixels"]) % 2:
            # the image's last pixel: the one-pixel engine (a run layer's, or a band's where
            # codegen/patch.py sets `one`)
            run = (*run, "gemm_conv_one." + ".".join(p["one_variant"]))
        return (*p["snippets"], *run, *(("widen_fill",) if fills else ()), *copies, "gemm_v6m_conv",
                *v7m, p["mve"]["snippet"], *few)

    def constants(self) -> list[CArray]:
        p = self.params
        arrays = [*_gemm_rv.constants(p["stream"], p["rv_stream"], p["asm_stream"]),
                  *_gemm_v6m.constants(p["v6m"], _gemm_v6m.V6M_ONLY_GUARD if p["v7m"]
                                       else _gemm_v6m.GUARD),
                  *_gemm_v6m.constants_conv7(p["v7m"]),  # type: ignore[arg-type]
                  *_gemm_mve.constants(p["mve"])]
        if p["few"] is None:
            return arrays
        few = p["few"]
        if few["shifted"] is None:
            return [*arrays, CArray("few", few["stream"], "CG_CONV_FEW")]
        return [*arrays, CArray("few", few["shifted"]["stream"], "CG_CONV_FEW && CG_GEMM_ASM"),
                CArray("few", few["stream"], "CG_CONV_FEW && !CG_GEMM_ASM")]

    def scratch_bytes(self) -> int:
        return int(self.params["scratch"])

    def inplace_inputs(self) -> tuple[int, ...]:
        # 1x1, stride 1: a pass widens its two pixels' channels before it writes their
        # outputs, which take no more bytes than the inputs. Other windows with the output's
        # shape (stride 1, as many channels): each input row is saved in a ring before the
        # first pass that writes that row (see the template).
        return (0,) if self.params["inplace"] else ()

    def row_access(self) -> RowAccess | None:
        # Two output pixels per pass, in order: a pass reads both windows, then writes both
        # pixels. The ring variant reads rows it saved; it runs in place instead.
        return None if self.params["ring"] else self._rows(ahead=0)

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [*super().describe(),
                ("kernel", f"{p['engine']}, {self._column()}, depth padded to {p['kpad']}, "
                           f"{p['scratch']} B scratch"
                           + ("; few input channels: int16 row buffer, SMLAD pairs"
                              if p["few"] is not None else ""))]

    def _column(self) -> str:
        p = self.params
        if p["pointwise"]:
            return "1x1: a pixel's channels widened"
        return "receptive field " + ("gathered, then widened" if p["gather"] else "widened")


def _gemm_params(params: dict[str, object], weights: np.ndarray) -> dict[str, object] | None:
    """The engine's parameters, or None when the layer keeps the plain kernel (grouped
    convolutions, accumulators the short requantization cannot take)."""
    p = params
    if int(p["groups"]) != 1:
        return None
    out_c = int(p["out_c"])
    w = np.asarray(weights).reshape(out_c, -1)  # int8, not copied
    bias = p["bias_data"]
    folded = (np.zeros(out_c, np.int64) if bias is None else np.asarray(bias, np.int64)) + int(
        p["input_offset"]) * w.sum(axis=1, dtype=np.int64)
    rq = _gemm.plan_requant(w, folded, p["multipliers"], p["shifts"],
                            int(p["output_zero_point"]), int(p["act_min"]), int(p["act_max"]),
                            channel_pad=_gemm.CONV_BLOCK)
    if rq is None:
        return None
    depth = w.shape[1]
    kpad = _gemm.padded_depth(depth)
    pointwise = (int(p["taps_h"]), int(p["taps_w"])) == (1, 1)  # 1x1 windows never pad
    unit_stride = (int(p["stride_h"]), int(p["stride_w"])) == (1, 1)
    gather = not pointwise and int(p["in_c"]) % 4 != 0
    # A gathered column without dilation along the width takes each filter row's first
    # `row_main` values (a multiple of 4) straight from the image and gathers only the
    # rest of every row, after them (`split_order`): the depth is reordered, weights alike.
    row_values = int(p["taps_w"]) * int(p["in_c"])
    row_main = row_values - row_values % 4
    split = gather and int(p["dil_w"]) == 1 and row_main > 0
    packed = w[:, split_order(int(p["taps_h"]), row_values)] if split else w
    full = (int(p["act_min"]), int(p["act_max"])) == (-128, 127)
    # A window with the output's shape runs in place over a ring of the input rows it still
    # needs after the output has overwritten them: from pad_h rows above a pass's first row
    # to its last row (a pass's two pixels may straddle two rows).
    ring = (not pointwise and unit_stride and (int(p["dil_h"]), int(p["dil_w"])) == (1, 1)
            and out_c == int(p["in_c"]) and int(p["in_c"]) % 4 == 0
            and (int(p["out_h"]), int(p["out_w"])) == (int(p["in_h"]), int(p["in_w"])))
    ring_rows = min(int(p["pad_h"]) + 2, int(p["in_h"])) if ring else 0
    # Columns of at most 64 bytes (depths up to 16) live in the kernel's stack frame.
    local = not gather and not ring and 4 * kpad <= _LOCAL_COLUMNS
    fixup = _gemm.needs_sign_fixup(int(p["output_zero_point"]), int(p["act_min"]))
    few = None if ring or pointwise else _few_params(p, w, fixup)
    if few is not None:
        local = False  # the row buffer is scratch
    blocks, tail = divmod(out_c, _gemm.CONV_BLOCK)
    clamp = "sat" if full else "clamp"
    # A 1x1 convolution over consecutive pixels whose channels the DSP assembly widens
    # itself (cg_widen_pair's loop: a multiple of 8 below 512), whole blocks of channels:
    # one call of the run engine for all its passes.
    run = (pointwise and unit_stride and depth % 8 == 0 and depth < 512 and tail == 0)
    # up to sixteen k-pairs per iteration as the depth allows (fewer loop tests), 32 in
    # the run engine (its k-loop runs for every block of every pixel pair)
    kpairs = (32 if run and kpad % 64 == 0 else 16 if kpad % 32 == 0
              else 8 if kpad % 16 == 0 else 4)
    # ... one iteration without a loop where that is the whole depth
    once = ("once",) if kpad == 2 * kpairs else ()
    mode = "fix" if fixup else "floor"
    # The DSP assembly's one final shift where the layer allows it (`_gemm.plan_shifted`):
    # a stream of its own, compiled with that assembly only.
    shifted = _gemm.plan_shifted(packed, rq) if full and not fixup else None
    variant = (mode if shifted is None else f"shr{shifted[0]}", clamp, f"k{kpairs}", *once)
    # scalar RISC-V shares the DSP path's columns, so its stream takes their (split) order
    rv = _gemm_rv.split_stream(packed, rq, _gemm_rv.CONV_WIDE, _gemm.CONV_BLOCK,
                               _gemm_rv.conv_chunks(kpad))
    return {
        "run": run,
        # the run engine's variant and scale argument (unused by the shifted assembly but
        # as the entry of 32 k-pairs' second half: `share_engines` may change both)
        "run_variant": variant,
        "run_scale": rq.scale if shifted is None else 0,
        "engine_variant": variant,
        "engine": "cg_gemm_conv_" + "_".join(variant),
        "one_variant": one_variant(variant),
        "snippets": (f"gemm_conv_plain.{clamp}", "gemm_conv." + ".".join(variant)),
        "blocks": blocks,
        "tail": tail,
        "tail_offset": blocks * (kpad + 4 * _gemm.CONV_BLOCK),
        "clamp_args": "" if full else f", {p['act_min']}, {p['act_max']}",
        "pointwise": pointwise,
        "inplace": (pointwise and unit_stride and out_c <= int(p["in_c"])) or ring,
        "ring": ring,
        "ring_rows": ring_rows,
        "ring_offset": 4 * kpad,
        "local": local,
        "column_bytes": 4 * kpad,
        "gather": gather,
        "pixels": int(p["out_h"]) * int(p["out_w"]),
        "kpad": kpad,
        "kiter": kpad // _gemm.K_STEP,
        "scale": rq.scale,
        "stream": _gemm.block_stream(packed, rq, _gemm.CONV_BLOCK),
        "asm_stream": (None if shifted is None
                       else _gemm.block_stream(packed, shifted[1], _gemm.CONV_BLOCK)),
        "reshift": None if shifted is None else functools.partial(_reshift, packed, rq),
        "v6m": _gemm_v6m.plan(w, rq, _gemm_v6m.CONV_BLOCK),
        "v7m": _gemm_v6m.plan_conv7(w, rq, _segments(p, pointwise), kpad),
        "mve": _mve_params(w, rq, (mode, clamp)),
        "rv_stream": None if rv is None else rv["stream"],
        "rv": rv,
        "rv_engine": f"cg_gemm_conv_rv_{mode}_{clamp}",
        "depth": depth,
        "depth_pad": kpad - depth,
        "input_zero_point": -int(p["input_offset"]),
        "row_values": row_values,
        "split": split,
        "row_main": row_main,
        "row_rest": row_values - row_main,
        "rest_offset": int(p["taps_h"]) * row_main,
        # the rows' rest, gathered, as whole words of four values (the zeros after them
        # stay in the columns from the start)
        "rest_span": -(-int(p["taps_h"]) * (row_values - row_main) // 4) * 4,
        "row_step": int(p["dil_h"]) * int(p["in_row"]),
        "row_pixels": int(p["stride_h"]) * int(p["in_w"]),
        "scratch": 0 if local else max(4 * kpad + (kpad if gather else 0)
                                       + ring_rows * int(p["in_row"]),
                                       0 if few is None else int(few["scratch"])),
        "few": few,
    }


def _segments(p: dict[str, object], pointwise: bool) -> int:
    """The runs of a window's values contiguous in the image (ARMv7-M's CONV_2D widens each
    into pairs on its own): a pixel's channels, each filter row, or each tap (dilated
    along the width)."""
    if pointwise:
        return 1
    return int(p["taps_h"]) * (1 if int(p["dil_w"]) == 1 else int(p["taps_w"]))


# The few-channel kernel (templates/kernels/_conv_2d_few.c.j2): at most this many input
# channels, and this many values in a window (its slots are unrolled).
FEW_CHANNELS = 4
FEW_WINDOW = 100
_INT31 = 1 << 31


def _few_params(p: dict[str, object], w: np.ndarray, fixup: bool) -> dict[str, object] | None:
    """The few-input-channel kernel's parameters (cores with the DSP extension and plain C),
    or None where the layer keeps the engine: the input rows a window reads, widened once
    to int16 (x - input zero point, zeros at padded taps) in a buffer of `taps_h` rows; the
    window's values of each filter row read as int16 pairs, in memory order; two pixels by
    four channels per pass, the accumulators starting at bias * 2^(left + 1).

    Weights are int16 pairs scaled by 2^(left + 1) (left <= 6 keeps them int16), so each sum
    is the accumulator times 2^(left + 1), which cg_requantize_fast takes; exact while
    (|bias| + 255 * sum |w|) * 2^(left + 1) fits in int32, which is checked (as the 3x3
    depthwise kernel's `_channel_words`)."""
    in_c, kh, kw = int(p["in_c"]), int(p["taps_h"]), int(p["taps_w"])
    if in_c > FEW_CHANNELS or (int(p["dil_h"]), int(p["dil_w"])) != (1, 1):
        return None
    if kh * kw * in_c > FEW_WINDOW:
        return None
    out_c = w.shape[0]
    shifts = np.asarray(p["shifts"], dtype=np.int64)
    mult = np.broadcast_to(np.asarray(p["multipliers"], dtype=np.int64), (out_c,))
    shifts = np.broadcast_to(shifts, (out_c,))
    if np.any(shifts > 6):
        return None
    left = np.maximum(shifts, 0)
    right = np.maximum(-shifts, 0)
    if fixup and np.any(right == 0):  # the sign fixup of cg_requantize_fast needs right >= 1
        return None
    scale = np.left_shift(1, left + 1)
    bias = np.zeros(out_c, np.int64) if p["bias_data"] is None else np.asarray(
        p["bias_data"], np.int64)
    zp = int(p["output_zero_point"])
    add = np.where(right > 0, np.left_shift(1, np.maximum(right - 1, 0)), 0) + zp * np.left_shift(
        1, right)
    bound = np.abs(bias) + 255 * _gemm.abs_row_sums(w)
    if np.any(bound * scale >= _INT31) or np.any(bound * 2**left + 2 + np.abs(add) >= _INT31):
        return None
    row_values = kw * in_c
    row_slots = -(-row_values // 2)
    # Only where it reads fewer pairs than the engine's padded depth (vww's and resnet's
    # 3x3x3: 30 against 32), or where the DSP assembly with one final shift takes it (kws's
    # 10x4x1: 40 and 40): elsewhere the engine's two channels per weight word do better.
    reads_less = 2 * kh * row_slots < _gemm.padded_depth(kh * row_values)
    blocks = -(-out_c // 4)
    words = _few_words(w, scale, kh, row_slots)
    table = np.zeros((4, 4 * blocks), np.int64)
    table[0, :out_c] = bias * scale
    table[1, :out_c] = mult
    table[2, :out_c] = add
    table[3, :out_c] = right
    table = table.reshape(4, blocks, 4).transpose(1, 0, 2).reshape(blocks, -1)
    stream = _int32_words(np.concatenate([words, table], axis=1))
    sw, out_w = int(p["stride_w"]), int(p["out_w"])
    # a pass reads two pixels' windows (the second past the row where the width is odd)
    line = max((int(p["pad_w"]) + int(p["in_w"])) * in_c,
               (out_w + out_w % 2 - 1) * sw * in_c + 2 * row_slots)
    line += line % 2
    keep = max(kh - int(p["stride_h"]), 0)
    # the assembly's loads take immediate offsets (at most 4095 bytes) from the window start
    reach = 2 * ((kh - 1) * line + 2 * (row_slots - 1) + sw * in_c)
    asm = reach <= 4095 and 16 * kh * row_slots + 60 <= 4095
    full = (int(p["act_min"]), int(p["act_max"])) == (-128, 127)
    plan = _few_plan(kh, row_values, line, sw * in_c)
    # the row function's immediates: the stores and the step past both pixels' outputs and
    # the next pass's window (ADDW) at most 4095 bytes on
    shifted = (_few_shifted(w, bias, mult, left, right, add, kh, plan)
               if asm and full and not fixup and out_c % 4 == 0 and 2 * out_c <= 4095
               and 4 * sw * in_c <= 4095 else None)
    if not reads_less and shifted is None:
        return None
    if shifted is not None:
        # the row function's loops: a block's restart (its outputs and window reloaded)
        # costs about as much as a pass's; the passes inner where there are many more
        shifted["passes_inner"] = out_c <= 8 and out_w >= 8
        shifted["one"] = _few_one(plan, sw * in_c) if out_w % 2 and out_w > 1 else None
    ring = _few_ring(p, stream.size if shifted is None else max(
        stream.size, shifted["stream"].size))  # type: ignore[union-attr]
    if ring:
        # filter row fy in buffer row (iy0 + fy) mod kh: a stream for each iy0 mod kh
        variants = [_rolled(w, kh, t) for t in range(1, kh)]
        stream = np.concatenate([stream, *(_int32_words(np.concatenate(
            [_few_words(v, scale, kh, row_slots), table], axis=1)) for v in variants)])
        if shifted is not None:
            streams = [shifted["stream"]]
            for v in variants:
                rotated = _few_shifted(v, bias, mult, left, right, add, kh, plan)
                # a rotation of the filter rows moves taps, not values: the same bounds
                assert rotated is not None
                streams.append(rotated["stream"])
            shifted["stream"] = np.concatenate(streams)
    return {
        "stream": stream,
        "shifted": shifted,
        "ring": ring,
        "variant_words": stream.size // max(ring, 1),
        "row_slots": row_slots,
        "block_words": stream.size // max(ring, 1) // blocks,
        "blocks": out_c // 4,
        "tail": out_c % 4,
        "line": line,
        "keep": keep,
        "sign": 1 if fixup else 0,
        "asm": asm,
        "offset": int(p["input_offset"]),
        # the assembly's single pixel of a row one pixel wide writes both pixels' outputs
        # after the rows (a wider odd row's last pixel: the row function's one-pixel block)
        "spare": 2 * kh * line,
        "scratch": 2 * kh * line + (2 * out_c if shifted is not None and out_w == 1 else 0),
    }


# The most constant bytes the ring of input rows (_few_ring) may add to a layer.
FEW_RING_BYTES = 2048


def _few_ring(p: dict[str, object], stream_words: int) -> int:
    """The rows of the few-channel kernel's buffer as a ring (input row iy in buffer row
    iy mod kh, the rows an output row keeps for the next never moved; a weight stream per
    iy0 mod kh, its filter rows rotated to match): kh, or 0 where the rows are moved (no
    rows kept, one output row, not every rotation used, or streams of more than
    FEW_RING_BYTES more)."""
    kh, sh = int(p["taps_h"]), int(p["stride_h"])
    if kh <= sh or int(p["out_h"]) < 2 or math.gcd(kh, sh) != 1:
        return 0
    return kh if 4 * (kh - 1) * stream_words <= FEW_RING_BYTES else 0


def _rolled(w: np.ndarray, kh: int, t: int) -> np.ndarray:
    """Weights [channel, depth] with their filter rows rotated by t: row j holds row
    (j - t) mod kh."""
    return np.roll(w.reshape(w.shape[0], kh, -1), t, axis=1).reshape(w.shape)


def _few_words(w: np.ndarray, scale: np.ndarray, kh: int, row_slots: int) -> np.ndarray:
    """The few-channel kernel's weight words of each block of four channels: [block, fy,
    slot, channel of the block], each the pair of int16 weights times the channel's
    `scale` (the second value in the high half)."""
    out_c = w.shape[0]
    blocks = -(-out_c // 4)
    row_values = w.size // (out_c * kh)
    scaled = np.zeros((4 * blocks, kh, 2 * row_slots), np.int64)
    scaled[:out_c, :, :row_values] = (np.asarray(w, np.int64).reshape(out_c, kh, row_values)
                                      * scale[:, None, None])
    pairs = scaled.reshape(blocks, 4, kh, row_slots, 2)
    words = (pairs[..., 1] << 16) | (pairs[..., 0] & 0xFFFF)  # [block, ch, fy, slot]
    return words.transpose(0, 2, 3, 1).reshape(blocks, -1)


def _int32_words(values: np.ndarray) -> np.ndarray:
    """Values in [-2^31, 2^32) as int32 words, flattened."""
    flat = values.ravel()
    return np.where(flat >= _INT31, flat - (1 << 32), flat).astype(np.int32)


# A slot of the assembly's plan: the byte offsets of the pairs it loads from the window
# start, the registers of the first and second pixel's pairs, and the taps of its weight
# pair's low and high halves ((filter row, value in the row), or None for zero).
Tap = tuple[int, int] | None


def _few_plan(kh: int, row_values: int, line: int, step: int) -> list[dict[str, object]]:
    """The slots of the DSP assembly's pass, in order. Each filter row's pairs; a pair the
    second pixel reads at slot s the first reads at slot s + half (its window `step` values
    on, `half` = step / 2 pairs) where step is even and less than a row's pairs: chains of
    slots s, s + half, ... load it once. Where a row's values are odd, the last value of
    rows 2j and 2j + 1 share one slot (their two pairs' low halves packed by PKHBT) instead
    of two half-empty ones, after row 2j + 1's chain whose second pixel's pair is the first's
    last (it stays in its register: `reuse`)."""
    slots = -(-row_values // 2)
    half = step // 2 if step % 2 == 0 and step // 2 < slots else 0
    merged = 2 * (kh // 2) if row_values % 2 else 0
    plan: list[dict[str, object]] = []
    for fy in range(kh):
        last = slots - 1 if fy < merged else slots
        starts = list(range(min(half, last) if half else last))
        if half and fy < merged and fy % 2:
            final = (slots - 1 - half) % half
            starts = [*(x for x in starts if x != final), final]
        for start in starts:
            for s in range(start, last, half if half else last):
                reg = ((s - start) // half) % 2 if half else 0
                offset = 2 * (fy * line + 2 * s)
                plan.append({"merge": None, "u": None if half and s != start else offset,
                             "v": offset + 2 * step, "ru": ("r12", "lr")[reg],
                             "rv": ("lr", "r12")[reg],
                             "taps": ((fy, 2 * s), (fy, 2 * s + 1) if 2 * s + 1 < row_values
                                      else None)})
        if fy < merged and fy % 2:
            low, high = 2 * ((fy - 1) * line + row_values - 1), 2 * (fy * line + row_values - 1)
            reuse = bool(plan) and plan[-1].get("v") == high
            plan.append({"merge": (low, high, low + 2 * step, high + 2 * step), "reuse": reuse,
                         "ru": plan[-1]["ru"] if reuse else "r12",
                         "rv": plan[-1]["rv"] if reuse else "lr",
                         "taps": ((fy - 1, row_values - 1), (fy, row_values - 1))})
    return plan


def _few_one(plan: list[dict[str, object]], step: int) -> list[tuple[int, ...]]:
    """The first pixel's loads of each of `plan`'s slots (the row function's one-pixel
    block, an odd row's last pixel): the byte offset of its pair, or those of the two pairs
    whose low halves PKHBT packs."""
    return [tuple(slot["merge"][:2]) if slot["merge"]  # type: ignore[index]
            else (int(slot["v"]) - 2 * step,)  # type: ignore[call-overload]
            for slot in plan]


def _plan_words(w: np.ndarray, scale: np.ndarray, kh: int,
                plan: list[dict[str, object]]) -> np.ndarray:
    """The weight words of `plan`'s slots for each block of four channels: [block, slot,
    channel of the block], each the pair of its taps' int16 weights times the channel's
    `scale`."""
    out_c = w.shape[0]
    rows = np.asarray(w, np.int64).reshape(out_c, kh, -1) * scale[:, None, None]
    halves = np.zeros((2, out_c, len(plan)), np.int64)
    for j, slot in enumerate(plan):
        for h, tap in enumerate(slot["taps"]):  # type: ignore[attr-defined]
            if tap is not None:
                halves[h, :, j] = rows[:, tap[0], tap[1]]
    words = (halves[1] << 16) | (halves[0] & 0xFFFF)  # [channel, slot]
    return words.reshape(out_c // 4, 4, len(plan)).transpose(0, 2, 1).reshape(out_c // 4, -1)


def _few_shifted(w: np.ndarray, bias: np.ndarray, mult: np.ndarray, left: np.ndarray,
                 right: np.ndarray, add: np.ndarray, kh: int,
                 plan: list[dict[str, object]]) -> dict[str, object] | None:
    """The few-channel kernel's DSP assembly (full int8 range, no tie fixup, whole blocks of
    four channels) with one final shift R for the layer, in SSAT's immediate, as
    `_gemm.plan_shifted` does for the engine: channel c's weights and bias scaled by
    s = 2^(left + 1 + d), d = R - right >= 1, so the sum is v * 2^d (v the short form's,
    times 2^(left + 1)); add' = add * 2^d + 2^(d - 1) and SMMLA (no rounding) give
    t = floor((floor((v * m + 2^31) / 2^32) + add) * 2^d + ...), whose floor by 2^R is the
    short form's (floors nest). A constant channel (multiplier 0) keeps its value as
    add' = (add >> right) * 2^R. None where a bound fails: weights must stay int16
    (left + 1 + d <= 8), v * 2^d and t int32. Per block the stream holds the bias times s
    (the first pixel's accumulators, one LDM; the first slot starts the second's from them),
    (multiplier, add') of each channel, then
    the weight words of `plan`'s slots (_few_plan)."""
    live = mult != 0
    if not live.any():
        return None
    shift = int(right[live].max()) + 1
    if shift > 31:
        return None
    d = np.where(live, shift - right, 0)
    exponent = left + 1 + d
    if np.any(exponent > 8):
        return None
    scale = np.where(live, np.left_shift(1, exponent), 0)
    magnitude = np.abs(bias) + 255 * _gemm.abs_row_sums(w)
    bound = magnitude * scale
    added = np.where(live, add * np.left_shift(1, d) + np.left_shift(1, np.maximum(d - 1, 0)),
                     np.right_shift(add, right) * (1 << shift))
    if np.any(bound >= _INT31) or np.any(
            np.abs(added) + ((bound * np.abs(mult)) >> 32) + 2 >= _INT31):
        return None
    blocks = w.shape[0] // 4
    init = (bias * scale).reshape(blocks, 4)
    constants = np.stack([mult, added], axis=1).reshape(blocks, 8)
    words = _plan_words(w, scale, kh, plan)
    stream = _int32_words(np.concatenate([init, constants, words], axis=1))
    # the stream's end is a MOVW from its start; a block's bytes an ADDW/SUBW immediate
    if 4 * stream.size > 0xFFFF or 4 * (stream.size // blocks) > 4095:
        return None
    return {"stream": stream, "shift": shift, "block_bytes": 4 * (stream.size // blocks),
            "plan": plan, "variant_words": stream.size}


def _mve_params(w: np.ndarray, rq: _gemm.Requant, variant: tuple[str, ...]) -> dict[str, object]:
    """The int8 Helium engine's arrays and its variant: the requantization's, and one step
    (k1) or any depth (kn)."""
    mve = _gemm_mve.plan(w, rq)
    full = (*variant, "k1" if mve["single"] else "kn")
    return {**mve, "engine": "cg_gemm_mve8_conv_" + "_".join(full),
            "snippet": "gemm_mve8_conv." + ".".join(full)}


def _reshift(packed: np.ndarray, rq: _gemm.Requant, shift: int) -> np.ndarray | None:
    """The DSP assembly's stream of a layer for a larger final shift, or None where its
    bounds do not allow it."""
    planned = _gemm.plan_shifted(packed, rq, shift)
    return None if planned is None else _gemm.block_stream(packed, planned[1], _gemm.CONV_BLOCK)


def one_variant(variant: tuple[str, ...]) -> tuple[str, ...]:
    """The one-pixel engine's variant for an engine `variant` (runtime/gemm_conv_one.c.j2):
    the same requantization; a looping engine's at most ONE_KPAIRS k-pairs per iteration
    (vww's 32-k-pair run layers: half the unrolled body for a loop test per 16 k-pairs);
    one without its loop (`once`) the same depth."""
    if variant[-1] == "once" or int(variant[2][1:]) <= ONE_KPAIRS:
        return variant
    return (*variant[:2], f"k{ONE_KPAIRS}")


def _set_variant(layer: Layer, variant: tuple[str, ...]) -> None:
    layer.params.update(engine_variant=variant, engine="cg_gemm_conv_" + "_".join(variant),
                        one_variant=one_variant(variant), run_variant=variant,
                        snippets=(f"gemm_conv_plain.{variant[1]}",
                                  "gemm_conv." + ".".join(variant)))


def _share_shifts(gemm: list[Layer]) -> None:
    """Layers of one kind (clamp, k-pairs; 16 and 32 k-pairs one kind: `_share_halves`)
    whose final shifts differ (shrR variants) take the largest of their kind that their
    bounds allow: fewer copies of an engine."""
    kinds: dict[tuple[str, ...], list[Layer]] = {}
    for la in gemm:
        variant = la.params["engine_variant"]
        if variant[0].startswith("shr"):
            kpairs = "k16" if variant[2] == "k32" else variant[2]
            kinds.setdefault((variant[1], kpairs), []).append(la)
    for members in kinds.values():
        shifts = sorted({int(la.params["engine_variant"][0][3:]) for la in members},
                        reverse=True)
        for la in members:
            variant = la.params["engine_variant"]
            for shift in (s for s in shifts if s > int(variant[0][3:])):
                stream = la.params["reshift"](shift)
                if stream is not None:
                    la.params["asm_stream"] = stream
                    _set_variant(la, (f"shr{shift}", *variant[1:]))
                    break


def share_engines(layers: list[Layer]) -> None:
    """One final shift for layers of one kind where their bounds allow (`_share_shifts`).
    Engines without their loop (`once`) only where the model needs no looping engine of
    the same kind (fixup, clamp, k-pairs): one copy of an engine's unrolled body, not two.
    The layers that would add the second copy take the looping one (the same arithmetic)."""
    gemm = [la for la in layers if isinstance(la, Conv2DGemm)]
    _share_shifts(gemm)
    looping = {la.params["engine_variant"] for la in gemm
               if la.params["engine_variant"][-1] != "once"}
    for la in gemm:
        variant = la.params["engine_variant"]
        if variant[-1] == "once" and variant[:-1] in looping:
            _set_variant(la, variant[:-1])
    _share_halves(gemm)


def _share_halves(gemm: list[Layer]) -> None:
    """Run layers of 16 k-pairs (modulo 32) with one final shift take the looping run engine
    of 32 k-pairs of their kind where the model has it, through its second entry (at k-pair
    17, chosen by HALF_ENTRY in its `scale` argument: runtime/_gemm_engines.j2,
    conv_engine's `half`), with that engine's final shift where their bounds allow: one
    engine's code, not two."""
    halves = sorted({la.params["run_variant"][:2] for la in gemm if la.params["run"]
                     and la.params["run_variant"][2:] == ("k32",)
                     and la.params["run_variant"][0].startswith("shr")}, reverse=True)
    for la in gemm:
        variant = la.params["run_variant"]
        if not (la.params["run"] and variant[0].startswith("shr") and variant[2] == "k16"):
            continue
        for kind in (k for k in halves if k[1] == variant[1]):
            stream = (la.params["asm_stream"] if kind[0] == variant[0]
                      else la.params["reshift"](int(kind[0][3:])))
            if stream is not None:
                la.params["asm_stream"] = stream
                _set_variant(la, (*kind, *variant[2:]))
                la.params.update(run_variant=(*kind, "k32"), run_scale=HALF_ENTRY)
                break
    _flag_single_passes(gemm)


def _flag_single_passes(gemm: list[Layer]) -> None:
    """Run layers on the looping shifted engine of 32 k-pairs whose depth is one pass of its
    loop (at most 64 values) tell it so in `scale` (ONE_PASS): it leaves the loop without
    its end test."""
    for la in gemm:
        p = la.params
        if (p["run"] and p["run_variant"][0].startswith("shr")
                and p["run_variant"][2:] == ("k32",) and p["kpad"] <= 64):
            p["run_scale"] |= ONE_PASS


def split_order(rows: int, row_values: int) -> np.ndarray:
    """The depth order of a split column (`_gemm_params`): for each of `rows` filter rows
    of `row_values` values, its first `main` (row_values rounded down to a multiple of 4),
    then the remaining values of every row, row after row. Entry i is the index of the
    filter's value (in [kh, kw, in_c] order) at column position i."""
    main = row_values - row_values % 4
    index = np.arange(rows * row_values).reshape(rows, row_values)
    return np.concatenate([index[:, :main].ravel(), index[:, main:].ravel()])


def prepare(op: Operator, graph: Graph) -> Conv2D:
    x = operand(op, graph, 0, "input")
    w = operand(op, graph, 1, "weights")
    y = only_output(op, graph)
    _conv.require_int8_io(op, x, y)
    require_nhwc(op, x, "input")
    require_nhwc(op, y, "output")
    if len(w.shape) != 4:
        raise unsupported(op, f"weights must be 4-D [out, h, w, in], found {list(w.shape)}")
    out_c, kh, kw, group_c = w.shape
    in_c = x.shape[3]
    if group_c < 1 or in_c % group_c:
        raise unsupported(op, f"input channels {in_c} are not a multiple of the filter's "
                              f"input channels {group_c}")
    groups = in_c // group_c
    if out_c % groups:
        raise unsupported(op, f"{out_c} output channels do not split into {groups} groups")
    if y.shape[0] != x.shape[0] or y.shape[3] != out_c:
        raise unsupported(op, f"output shape {list(y.shape)} does not match input "
                              f"{list(x.shape)} and {out_c} filters")
    win = window(op, x, y, kh, kw)
    _conv.check_accumulation(op, kh * kw * group_c)
    multipliers, shifts = _conv.prepare_quantization(op, x, w, y, out_c, channel_axis=0)
    bias = _conv.prepare_bias(op, graph, out_c)
    params = _conv.common_params(op, x, y, win, multipliers, shifts, bias,
                                 w.data.reshape(out_c, -1).sum(axis=1, dtype=np.int64), w.data)
    params.update(
        groups=groups,
        group_c=group_c,
        per_group=out_c // groups,
        filter_size=kh * kw * group_c,
        filter_row=kw * group_c,
    )
    gemm = _gemm_params(params, w.data)
    if gemm is not None:
        params.update(gemm)
        return Conv2DGemm(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
    return Conv2D(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


@dataclass
class Conv2DLiteRT(_conv.LiteRTRequantization, Conv2D):
    runtime: ClassVar[tuple[str, ...]] = ("requantize_fp32",)


def litert(layer: Conv2D) -> Conv2D:
    """The layer as LiteRT's default interpreter computes it: XNNPACK (numerics litert)."""
    return _litert.conv_layer(layer, Conv2DLiteRT, int(layer.params["out_c"]))  # type: ignore[return-value]


KERNELS = {DType.INT8: prepare}
NUMERICS = {"litert": litert,
            "litert-ref": lambda layer: _litert.require_bias(layer, "litert-ref")}
