"""TRANSPOSE_CONV: int8 in/out with int8 weights and an optional int32 bias, or int16 in/out
(16x8) with int8 weights and an optional int64 or int16 bias; weights per-channel (axis 0) or
per-tensor, SAME/VALID padding, any strides, fused NONE/RELU/RELU6/RELU_N1_TO_1.

TFLM: transpose_conv.cc and reference_integer_ops::TransposeConv. Inputs: the output shape
(constant int32; TFLM uses the output tensor's shape, so it must agree), the weights
[out_c, kh, kw, in_c], the input, the optional bias. Prepare takes the padding of a
convolution whose *input* has the transpose convolution's output size
(ComputePaddingHeightWidth with the output height and width, dilation 1), and per-channel
multipliers as for CONV_2D. Eval scatters: every input pixel adds w * (x + input offset)
(int8; int16 has no offset) into the scratch at output row iy * stride - pad + fy (column
likewise), skipping rows and columns outside the output; then each output is scratch plus
bias, requantized (int8: int32 scratch and double rounding; int16: int64 scratch and the
int64 requantization, codegen/ops/_requant.py), plus the output zero point (int8), clamped.
The scratch, one accumulator per output element, is declared to the memory planner.

Quirks reproduced: the weight zero point is never read (refused when non-zero, as for the
convolutions); int16 reads neither activation zero point (both 0); an int16 bias of a 16x8
layer is widened to int64 first. An int8 layer with an int64 bias, and a 16x8 layer with an
int32 bias, would have TFLM read the bias as the wrong type, and are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.model.validate import BIAS_SCALE_TOLERANCE
from codegen.ops import _conv, _dot16, _litert, _requant
from codegen.ops._dot16 import DotInt16, int16_bias, int32_bias, rq_params
from codegen.ops._window import axis, require_nhwc, spatial_options
from codegen.ops.base import (
    CArray,
    only_output,
    operand,
    require_dtype,
    require_zero_point_zero,
    unsupported,
    where,
)

OPCODES = ("TRANSPOSE_CONV",)
_OUTPUT_SHAPE, _WEIGHTS, _INPUT, _BIAS = 0, 1, 2, 3


@dataclass(frozen=True)
class _TypeSpec:
    """What differs between the int8 and the 16x8 kernel."""

    accumulator: str  # "int32" / "int64": the scratch and the requantization
    biases: tuple[DType, ...]  # bias types TFLM reads as that type
    magnitude: int  # bound on |x + input offset|
    symmetric: bool  # the kernel reads no zero point: they must be 0


_SPECS = {
    DType.INT8: _TypeSpec("int32", (DType.INT32,), 255, False),
    DType.INT16: _TypeSpec("int64", (DType.INT64, DType.INT16), 32768, True),
}


@dataclass
class TransposeConv(DotInt16):
    template: ClassVar[str] = "kernels/transpose_conv.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        n = inputs[0].shape[0]
        x = inputs[0].reshape(-1, *self.in_tensor().shape[1:]).astype(np.float64)
        x += int(p["input_offset"])
        sh, sw, kh, kw = (int(p[k]) for k in ("stride_h", "stride_w", "taps_h", "taps_w"))
        images, h, w, _ = x.shape
        oh, ow, pad_h, pad_w = (int(p[k]) for k in ("out_h", "out_w", "pad_h", "pad_w"))
        # Every tap scattered into a buffer that also holds the rows and columns TFLM skips.
        full_h = max((h - 1) * sh + kh, pad_h + oh)
        full_w = max((w - 1) * sw + kw, pad_w + ow)
        acc = np.zeros((images, full_h, full_w, int(p["out_c"])))
        weights = self.weights.astype(np.float64)
        for fy in range(kh):
            for fx in range(kw):
                # float64 is exact: every partial sum is an integer below 2^47 (checked).
                part = x @ weights[:, fy, fx, :].T
                acc[:, fy:fy + (h - 1) * sh + 1:sh, fx:fx + (w - 1) * sw + 1:sw, :] += part
        acc = acc[:, pad_h:pad_h + oh, pad_w:pad_w + ow, :].astype(np.int64)
        out = self.finish(acc, int(p["output_zero_point"]))
        return [out.astype(self.out_tensor().dtype.np).reshape(n, *self.out_tensor().shape)]

    def finish(self, acc: np.ndarray, zero_point: int = 0) -> np.ndarray:
        p = self.params
        if p["bias_data"] is not None:
            acc = acc + np.asarray(p["bias_data"], dtype=np.int64)
        out = quant.add_int32(self.rq.apply(acc), zero_point)  # wrapping, as TFLM's int32
        return np.clip(out, int(p["act_min"]), int(p["act_max"]))

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        scratch = ("scratch64",) if self.params["accumulator"] == "int64" else ()
        return (*self.rq.runtime, "clamp", *scratch)

    def scratch_bytes(self) -> int:
        return self.out_tensor().size * (4 if self.params["accumulator"] == "int32" else 8)

    def macs(self) -> int:
        p = self.params
        return self.in_tensor().size * int(p["out_c"]) * int(p["taps_h"]) * int(p["taps_w"])

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("window", f"{p['taps_h']}x{p['taps_w']} stride {p['stride_h']}x"
                           f"{p['stride_w']} {p['padding']} pad top/left {p['pad_h']}/"
                           f"{p['pad_w']}"),
                ("scratch", f"{self.scratch_bytes()} B of {p['accumulator']} accumulators"),
                *super().describe()]


def _check_output_shape(op: Operator, graph: Graph, y: Tensor) -> None:
    shape = operand(op, graph, _OUTPUT_SHAPE, "output_shape")
    if shape.data is None or shape.dtype is not DType.INT32:
        raise unsupported(op, "output_shape must be a constant int32 tensor")
    values = [int(v) for v in np.asarray(shape.data).ravel()]
    if values != list(y.shape):
        raise unsupported(op, f"output_shape {values} differs from the output tensor's shape "
                              f"{list(y.shape)}")


def _check_bias_scale(op: Operator, graph: Graph, x: Tensor, w: Tensor, y: Tensor) -> None:
    """bias scale == input scale x weight scale within TFLM's FULLY_CONNECTED tolerance, as
    validation checks the other convolutions (the kernel adds the bias as if it were)."""
    if len(op.inputs) <= _BIAS or op.inputs[_BIAS] < 0:
        return
    b = graph.tensors[op.inputs[_BIAS]]
    if b.quant is None:
        return
    for c, w_scale in enumerate(w.quant.scales):
        product = x.quant.scale * w_scale
        bias_scale = b.quant.scales[c] if len(b.quant.scales) == len(w.quant.scales) \
            else b.quant.scales[0]
        if abs(product - bias_scale) / y.quant.scale > BIAS_SCALE_TOLERANCE:
            raise unsupported(op, f"bias '{b.name}' has scale {bias_scale:.9g}, but input scale "
                                  f"x weight scale is {product:.9g}; re-export the model")


def _prepare(op: Operator, graph: Graph, dtype: DType) -> TransposeConv:
    spec = _SPECS[dtype]
    w = operand(op, graph, _WEIGHTS, "weights")
    x = operand(op, graph, _INPUT, "input")
    y = only_output(op, graph)
    require_dtype(op, y, (dtype,), "output")
    _conv.require_activations(op, x, y)
    require_nhwc(op, x, "input")
    require_nhwc(op, y, "output")
    _check_output_shape(op, graph, y)
    if spec.symmetric:
        for tensor, role in ((x, "input"), (y, "output")):
            require_zero_point_zero(op, tensor, role)
    if len(w.shape) != 4:
        raise unsupported(op, f"weights must be 4-D [out, h, w, in], found {list(w.shape)}")
    out_c, kh, kw, in_c = (int(d) for d in w.shape)
    if in_c != x.shape[3] or out_c != y.shape[3] or x.shape[0] != y.shape[0]:
        raise unsupported(op, f"weights {list(w.shape)} do not map input {list(x.shape)} to "
                              f"output {list(y.shape)}")
    padding, sh, sw, _, _ = spatial_options(op, dilations=False)
    rows = axis(padding, int(y.shape[1]), kh, sh, 1)
    cols = axis(padding, int(y.shape[2]), kw, sw, 1)
    multipliers, shifts = _conv.prepare_quantization(op, x, w, y, out_c, channel_axis=0)
    _check_bias_scale(op, graph, x, w, y)
    bias = int32_bias(int16_bias(op, graph, _BIAS, out_c, spec.biases), spec.accumulator, out_c)
    rq = _requant.for_accumulator(spec.accumulator, multipliers, shifts)
    weights = np.asarray(w.data, dtype=np.int64)
    bound = np.abs(weights).reshape(out_c, -1).sum(axis=1) * spec.magnitude + (
        0 if bias is None else np.abs(bias))
    rq.check(where(op), bound)
    activation, act_min, act_max = _conv.activation_bounds(op, y)
    _, h, wd, _ = (int(d) for d in x.shape)
    params: dict[str, object] = {
        "padding": padding, "batches": int(x.shape[0]),
        "in_h": h, "in_w": wd, "in_c": in_c, "out_h": int(y.shape[1]), "out_w": int(y.shape[2]),
        "out_c": out_c, "taps_h": kh, "taps_w": kw, "stride_h": sh, "stride_w": sw,
        "pad_h": rows.pad, "pad_w": cols.pad, "filter_size": kh * kw * in_c,
        "input_offset": -x.quant.zero_point, "output_zero_point": y.quant.zero_point,
        "c_type": dtype.c_type,
        "activation": activation, "act_min": act_min, "act_max": act_max,
        "weights_data": weights, "bias_data": bias, "accumulator": spec.accumulator,
        **rq_params(rq),
    }
    return TransposeConv(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


def prepare_int8(op: Operator, graph: Graph) -> TransposeConv:
    return _prepare(op, graph, DType.INT8)


def prepare_int16(op: Operator, graph: Graph) -> TransposeConv:
    return _prepare(op, graph, DType.INT16)


KERNELS = {DType.INT8: prepare_int8, DType.INT16: prepare_int16}


@dataclass
class TransposeConvXnnpack(TransposeConv):
    """Numerics mode litert, int8: XNNPACK's deconvolution, the same int32 accumulator (bias
    included) requantized by its fp32 scheme (`_litert.fp32_params`: a float32 scale per
    channel, round to nearest even, XNNPACK's activation bounds)."""

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("add_wrap", "requantize_fp32", "clamp")

    def finish(self, acc: np.ndarray, zero_point: int = 0) -> np.ndarray:
        p = self.params
        acc = quant.wrap_int32(acc + np.asarray(p["bias_data"], dtype=np.int64))
        return _requant.requantize_fp32(acc, np.asarray(p["fp32_scales"], np.float32),
                                        zero_point, int(p["act_min"]), int(p["act_max"]))

    def constants(self) -> list[CArray]:
        arrays = [a for a in super().constants() if a.name not in ("multiplier", "shift")]
        if self.params["fp32_per_channel"]:
            arrays.append(CArray("scale", np.asarray(self.params["fp32_scales"], np.float32)))
        return arrays


def litert_ref(layer: TransposeConv) -> TransposeConv:
    """Numerics mode litert-ref: LiteRT's reference TRANSPOSE_CONV is TFLM's; its Prepare
    refuses a 16x8 layer's int16 bias (TFLM widens it)."""
    if layer.params["accumulator"] == "int64":
        _litert.check_16x8_bias(layer, "litert-ref", _BIAS)
    return layer


def litert(layer: TransposeConv) -> TransposeConv:
    """Numerics mode litert: XNNPACK takes an int8 layer (above; checked against the oracle
    on the operator test models); LiteRT's default interpreter runs a 16x8 layer with an
    int64 scratch on the reference kernel, TFLM's arithmetic (XNNPACK takes no int16); a
    16x8 layer whose options ask for int32 biases (TransposeConvV2) is not reproduced."""
    if layer.params["accumulator"] != "int64":
        w = layer.graph.tensors[layer.op.inputs[_WEIGHTS]]
        channels = int(layer.params["out_c"])
        scales = w.quant.scales if w.quant.per_channel else [w.quant.scale] * channels
        params = {**layer.params,
                  **_litert.fp32_params(layer, scales, str(layer.params["activation"]))}
        return TransposeConvXnnpack(layer.op, layer.graph, inputs=layer.inputs,
                                    outputs=layer.outputs, params=params)
    _litert.check_16x8_bias(layer, "litert", _BIAS)
    if int(layer.op.options.get("quantized_bias_type", 0) or 0) == _dot16.TENSOR_TYPE_INT32:
        raise _litert.refuse(layer, "litert", "LiteRT's optimized 16x8 TRANSPOSE_CONV with "
                             "int32 biases")
    return layer


NUMERICS = {"litert-ref": litert_ref, "litert": litert}
