"""What CONV_2D and DEPTHWISE_CONV_2D share: Prepare's quantization and bias checks, the
zero-point folding, and the skeleton of the numpy reference.

TFLM (conv_common.cc, depthwise_conv_common.cc, PopulateConvolutionQuantizationParams in
kernel_util.cc) derives one (multiplier, shift) per output channel from
    double(input_scale) * double(filter_scale[c]) / double(output_scale)
broadcasting a per-tensor filter scale to every channel, and Eval (reference_integer_ops
ConvPerChannel / DepthwiseConvPerChannel) computes for each output
    acc = sum over taps inside the image of w * (x + input_offset)   (int32)
    acc = MultiplyByQuantizedMultiplier(acc + bias, multiplier[c], shift[c])
    out = clamp(acc + output_zero_point, act_min, act_max)
The filter zero point is not used by the int8 kernels at all (see `prepare_quantization`).

Folding the input zero point into the bias, bias' = bias + input_offset * sum_taps w, is
exact only where every tap is inside the image: TFLM *skips* padded taps, which is the same
as reading the zero point there, so bias' would over-count input_offset * w for each padded
tap. The generated C therefore splits the output: the interior (every tap inside) runs
sum w * x + bias'; the border runs TFLM's own sum over the taps inside, w * (x + offset),
plus the unfolded bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.errors import UnsupportedError
from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops._window import Window
from codegen.ops.base import CArray, Layer, RowAccess, require_per_tensor, unsupported, window_rows

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")

# Largest |w * (x + input_offset)|: int8 weights times an int8 value minus an int8 zero point.
_MAX_PRODUCT = 128 * 255
# Accumulations longer than this could overflow TFLM's int32 accumulator (undefined
# behaviour in C), so such layers are refused rather than given a silently different result.
MAX_TAPS = quant.INT32_MAX // _MAX_PRODUCT
# Working-set budget of the numpy reference, per chunk of samples.
_REFERENCE_BYTES = 32 << 20


def fused_activation(op: Operator) -> str:
    activation = quant.fused_activation(op.options)
    if activation not in ACTIVATIONS:
        raise unsupported(op, f"fused activation {activation} is not supported "
                              f"({', '.join(ACTIVATIONS)})")
    return activation


def activation_bounds(op: Operator, y: Tensor) -> tuple[str, int, int]:
    """The fused activation and its clamp bounds on the int8 or int16 output (TFLM's
    CalculateActivationRangeQuantized)."""
    activation = fused_activation(op)
    lo, hi = quant.activation_range(activation, y.quant.scale, y.quant.zero_point,
                                    y.dtype.qmin, y.dtype.qmax)
    if lo > hi:
        raise unsupported(op, f"empty activation range [{lo}, {hi}] for {activation}")
    return activation, lo, hi


def require_int8_io(op: Operator, x: Tensor, y: Tensor) -> None:
    for tensor, role in ((x, "input"), (y, "output")):
        if tensor.dtype is not DType.INT8:
            raise unsupported(op, f"{role} '{tensor.name}' is {tensor.dtype_name}; only int8 "
                                  "activations are supported")
        require_per_tensor(op, tensor, role)
    if x.is_constant:
        raise unsupported(op, "a constant input is not supported")


def require_activations(op: Operator, x: Tensor, y: Tensor) -> None:
    """Input and output of one activation type (TFLM's TF_LITE_ENSURE_EQ on the types),
    quantized per tensor; the input not a constant."""
    if x.dtype is not y.dtype:
        raise unsupported(op, f"input '{x.name}' is {x.dtype_name} but output '{y.name}' is "
                              f"{y.dtype_name}; TFLM needs one type for both")
    for tensor, role in ((x, "input"), (y, "output")):
        require_per_tensor(op, tensor, role)
    if x.is_constant:
        raise unsupported(op, "a constant input is not supported")


def prepare_quantization(op: Operator, x: Tensor, w: Tensor, y: Tensor, channels: int,
                         channel_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (multipliers, shifts) as TFLM's PopulateConvolutionQuantizationParams
    computes them (double arithmetic, then QuantizeMultiplier)."""
    if w.dtype is not DType.INT8:
        raise unsupported(op, f"weights '{w.name}' are {w.dtype_name}; only int8 weights "
                              "are supported")
    if w.data is None:
        raise unsupported(op, "weights must be constant")
    q = w.quant
    if q is None:
        raise unsupported(op, f"weights '{w.name}' have no quantization parameters")
    # TFLM (PopulateConvolutionQuantizationParams) wants one scale per output channel and
    # a quantized dimension of that size (validation checks the latter), not the channel
    # dimension itself.
    if q.per_channel and len(q.scales) != channels:
        raise unsupported(
            op, f"per-channel weights need {channels} scales (dimension {channel_axis}), "
            f"found {len(q.scales)}"
        )
    if any(z != 0 for z in q.zero_points):
        # TFLM's int8 convolutions never read the filter zero point (ConvPerChannel and
        # DepthwiseConvPerChannel have no filter offset), so a model that needs one would
        # silently compute something else; the TFLite int8 spec requires 0.
        raise unsupported(op, f"weights '{w.name}' have a non-zero zero point; int8 "
                              "convolution weights must be symmetric (zero point 0)")
    scales = np.asarray(q.scales if q.per_channel else (q.scale,), dtype=np.float64)
    try:
        # Elementwise the double products and quotients TFLM computes, in its order.
        reals = np.broadcast_to(float(x.quant.scale) * scales / float(y.quant.scale),
                                (channels,))
        return quant.quantize_multipliers(reals)
    except UnsupportedError as exc:
        raise unsupported(op, str(exc)) from None


def prepare_bias(op: Operator, graph: Graph, channels: int) -> np.ndarray | None:
    """The int32 bias as int64 values, or None when the optional input is omitted."""
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return None
    b = graph.tensors[op.inputs[2]]
    if b.dtype is not DType.INT32:
        raise unsupported(op, f"bias '{b.name}' is {b.dtype_name}; int8 convolutions need an "
                              "int32 bias")
    if b.data is None or b.size != channels:
        raise unsupported(op, f"bias must be a constant of {channels} int32 values")
    return b.data.astype(np.int64).ravel()


def check_accumulation(op: Operator, taps: int) -> None:
    if taps > MAX_TAPS:
        raise unsupported(
            op, f"{taps} multiply-accumulates per output could overflow the int32 "
            f"accumulator (at most {MAX_TAPS} are supported)"
        )


@dataclass
class ConvLayer(Layer):
    """Common parts of CONV_2D and DEPTHWISE_CONV_2D; subclasses provide `_products`."""

    runtime: ClassVar[tuple[str, ...]] = ("requantize", "clamp")

    @property
    def window(self) -> Window:
        return self.params["window"]  # type: ignore[return-value]

    def row_access(self) -> RowAccess | None:
        # The plain kernels walk images, output rows, pixels, channels; a pixel reads its
        # window only (from row oy * stride - pad on).
        return self._rows(ahead=0)

    def _rows(self, ahead: int) -> RowAccess:
        p, r = self.params, self.window.rows
        first = window_rows(int(p["batches"]), r.size, r.out, r.stride, r.pad, ahead)
        return RowAccess(int(p["in_row"]), int(p["out_w"]) * int(p["out_c"]), first)

    def _products(self, xs: np.ndarray) -> np.ndarray:
        """sum over taps of w * xs for every output; xs is (S, H', W', C) int64, the input
        plus its offset, zero-padded so that every window is inside it."""
        raise NotImplementedError

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x, y = self.in_tensor(), self.out_tensor()
        n = inputs[0].shape[0]
        _, h, w, c = x.shape
        samples = inputs[0].reshape(-1, h, w, c)
        win = self.window
        # TFLM skips the taps outside the image. Padding (x + input_offset) with zeros is the
        # same thing: a padded tap adds w * 0.
        pads = ((0, 0), (win.rows.pad, win.rows.pad_after), (win.cols.pad, win.cols.pad_after),
                (0, 0))
        per_sample = 8 * (3 * (h + win.rows.pad + win.rows.pad_after)
                          * (w + win.cols.pad + win.cols.pad_after) * c
                          + 4 * int(np.prod(y.shape[1:])))
        chunk = max(1, _REFERENCE_BYTES // per_sample)
        results = []
        for start in range(0, samples.shape[0], chunk):
            xs = samples[start:start + chunk].astype(np.int64) + int(p["input_offset"])
            acc = self._products(np.pad(xs, pads))
            if p["bias_data"] is not None:
                acc = acc + p["bias_data"]
            out = self.requantize_output(quant.wrap_int32(acc))
            results.append(out.astype(np.int8))
        return [np.concatenate(results).reshape(n, *y.shape)]

    def requantize_output(self, acc: np.ndarray) -> np.ndarray:
        """The int32 accumulators (channel last) -> output values: TFLM's requantization,
        zero point and clamp; numerics modes override it."""
        p = self.params
        return quant.requantize(acc, p["multipliers"], p["shifts"], int(p["output_zero_point"]),
                                int(p["act_min"]), int(p["act_max"]))

    def constants(self) -> list[CArray]:
        p = self.params
        arrays = [CArray("weights", np.asarray(p["weights_data"], dtype=np.int8).ravel())]
        if p["has_interior"]:
            arrays.append(CArray("folded_bias", np.asarray(p["folded_bias"], dtype=np.int32)))
        if p["has_border"] and p["bias_data"] is not None:
            arrays.append(CArray("bias", np.asarray(p["bias_data"], dtype=np.int32)))
        if p["per_channel"]:
            arrays.append(CArray("multiplier", np.asarray(p["multipliers"], np.int32)))
            arrays.append(CArray("shift", np.asarray(p["shifts"], np.int32)))
        return arrays

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        rows = [
            ("window", self.window.describe()),
            ("activation", f"{p['activation']} -> clamp [{p['act_min']}, {p['act_max']}]"),
            ("interior", f"rows [{p['row_lo']}, {p['row_hi']}) cols [{p['col_lo']}, "
                         f"{p['col_hi']}) use the folded bias"),
        ]
        mult, shift = p["multipliers"], p["shifts"]
        if p["per_channel"]:
            rows.append(("multipliers", _preview(mult)))
            rows.append(("shifts", _preview(shift)))
        else:
            rows.append(("multiplier", f"{int(mult[0])} shift {int(shift[0])}"))
        return rows


class LiteRTRequantization:
    """Mixed into a convolution's plain kernel in numerics mode litert: XNNPACK's fp32
    requantization (its qs8/qc8w IGEMM and DWCONV microkernels) of the same int32
    accumulator, with XNNPACK's clamp bounds."""

    params: dict[str, object]

    def requantize_output(self, acc: np.ndarray) -> np.ndarray:
        from codegen.ops import _requant

        p = self.params
        return _requant.requantize_fp32(acc, p["fp32_scales"], int(p["output_zero_point"]),
                                        int(p["act_min"]), int(p["act_max"]))

    def constants(self) -> list[CArray]:
        arrays = [a for a in super().constants()  # type: ignore[misc]
                  if a.name not in ("multiplier", "shift")]
        if self.params["fp32_per_channel"]:
            arrays.append(CArray("scale", np.asarray(self.params["fp32_scales"], np.float32)))
        return arrays

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        rows = [r for r in super().describe()  # type: ignore[misc]
                if r[0] not in ("multipliers", "shifts", "multiplier", "activation")]
        return [*rows,
                ("activation", f"{p['activation']} -> clamp [{p['act_min']}, {p['act_max']}] "
                               "(XNNPACK's bounds)"),
                ("requantization", f"float32 scale {p['fp32_scale']}"
                 f"{' (per channel)' if p['fp32_per_channel'] else ''}, XNNPACK")]


def _preview(values: object, count: int = 4) -> str:
    arr = np.asarray(values).ravel()
    head = ", ".join(str(int(v)) for v in arr[:count])
    return f"[{head}{', ...' if arr.size > count else ''}] ({arr.size})"


def common_params(op: Operator, x: Tensor, y: Tensor, win: Window,
                  multipliers: np.ndarray, shifts: np.ndarray, bias: np.ndarray | None,
                  weight_sums: np.ndarray, weights: np.ndarray) -> dict[str, object]:
    """The parameters both convolution templates read.

    `weight_sums[c]` is the sum of every tap of output channel c's filter, for the folding."""
    activation, act_min, act_max = activation_bounds(op, y)
    input_offset = -x.quant.zero_point
    folded = (bias if bias is not None else 0) + input_offset * weight_sums.astype(np.int64)
    row_lo, row_hi = win.rows.interior()
    col_lo, col_hi = win.cols.interior()
    has_border = not (row_lo == 0 and row_hi == win.rows.out
                      and col_lo == 0 and col_hi == win.cols.out)
    per_channel = bool(np.any(multipliers != multipliers[0]) or np.any(shifts != shifts[0]))
    _, h, w, c = x.shape
    return {
        "window": win,
        "batches": int(x.shape[0]),
        "in_h": h, "in_w": w, "in_c": c,
        "out_h": win.rows.out, "out_w": win.cols.out, "out_c": int(y.shape[3]),
        "in_image": h * w * c, "in_row": w * c, "tap_step": win.cols.dilation * c,
        "out_image": int(np.prod(y.shape[1:])),
        "taps_h": win.rows.taps, "taps_w": win.cols.taps,
        "stride_h": win.rows.stride, "stride_w": win.cols.stride,
        "dil_h": win.rows.dilation, "dil_w": win.cols.dilation,
        "pad_h": win.rows.pad, "pad_w": win.cols.pad,
        "row_lo": row_lo, "row_hi": row_hi, "col_lo": col_lo, "col_hi": col_hi,
        "has_border": has_border,
        "has_interior": row_lo < row_hi and col_lo < col_hi,
        "input_offset": input_offset,
        "output_zero_point": y.quant.zero_point,
        "activation": activation,
        "act_min": act_min,
        "act_max": act_max,
        "per_channel": per_channel,
        "multipliers": multipliers,
        "shifts": shifts,
        "multiplier": int(multipliers[0]),
        "shift": int(shifts[0]),
        "weights_data": weights,
        "bias_data": bias,
        "has_bias": bias is not None,
        "folded_bias": quant.wrap_int32(np.asarray(folded, dtype=np.int64)),
    }
