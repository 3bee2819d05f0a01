"""DEPTHWISE_CONV_2D: int16 in/out (16x8), int8 weights per-channel (axis 3) or per-tensor
(zero point 0), optional int64 bias, depth_multiplier >= 1, SAME/VALID padding, any strides
and dilations, fused NONE/RELU/RELU6/RELU_N1_TO_1.

TFLM: the int16 case of DepthwiseConvEval, reference_integer_ops::DepthwiseConvPerChannel
for int16: an int64 sum of w * x over the taps inside the image, the int64 bias, the int64
requantization (`codegen/ops/_dot16.py`). Unlike CONV_2D and FULLY_CONNECTED it has no int32
variant: it reads any bias as int64, so an int32 bias (read as garbage there) is refused.
Quirk reproduced: neither zero point is read (both are 0 in a 16x8 model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _conv, _gemm16, _litert, _requant
from codegen.ops._dot16 import WindowInt16, int16_bias, rq_params, window_params
from codegen.ops._window import require_nhwc, window
from codegen.ops.base import (
    CArray,
    only_output,
    operand,
    require_dtype,
    require_zero_point_zero,
    unsupported,
    where,
)

OPCODES = ("DEPTHWISE_CONV_2D",)


@dataclass
class DepthwiseConv2DInt16(WindowInt16):
    template: ClassVar[str] = "kernels/depthwise_conv_2d_int16.c.j2"

    def products(self, xs: np.ndarray) -> np.ndarray:
        return self.window.depthwise_sums(xs, self.weights[0].astype(np.int64),
                                          int(self.params["depth_multiplier"]))

    def macs(self) -> int:
        p = self.params
        return (int(p["batches"]) * int(p["out_h"]) * int(p["out_w"]) * int(p["out_c"])
                * int(p["taps_h"]) * int(p["taps_w"]))

    def describe(self) -> list[tuple[str, str]]:
        return [("depth multiplier", str(self.params["depth_multiplier"])),
                *super().describe()]


@dataclass
class DepthwiseConv2DInt16Fast(DepthwiseConv2DInt16):
    """Four channels at a time with the weights stored as int16 pairs of channels per tap
    (SMLABB / SMLATT with the DSP extension); depth multiplier 1, no dilation, an even
    number of channels."""

    template: ClassVar[str] = "kernels/depthwise_conv_2d_int16_fast.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.params["epilogue"].runtime, "gemm16_pairs")

    def constants(self) -> list[CArray]:
        p = self.params
        out_c = int(p["out_c"])
        taps = self.weights.reshape(-1, out_c) & 0xFFFF  # [taps, C]
        words = (taps[:, 0::2] | (taps[:, 1::2] << 16)).ravel()
        words = np.where(words >= 1 << 31, words - (1 << 32), words).astype(np.int32)
        arrays = _gemm16.epilogue_constants(p["epilogue"], self.rq, p["bias_data"], out_c)
        return [CArray("weights", words), *(CArray(name, values) for name, values in arrays)]

    def describe(self) -> list[tuple[str, str]]:
        return [*super().describe(), ("kernel", "four channels at a time, int16 weight pairs")]


def prepare(op: Operator, graph: Graph) -> DepthwiseConv2DInt16:
    x = operand(op, graph, 0, "input")
    w = operand(op, graph, 1, "weights")
    y = only_output(op, graph)
    require_dtype(op, y, (DType.INT16,), "output")
    _conv.require_activations(op, x, y)
    for tensor, role in ((x, "input"), (y, "output")):
        require_zero_point_zero(op, tensor, role)  # the kernel reads neither
    require_nhwc(op, x, "input")
    require_nhwc(op, y, "output")
    if len(w.shape) != 4 or w.shape[0] != 1:
        raise unsupported(op, f"weights must be [1, h, w, out], found {list(w.shape)}")
    _, kh, kw, out_c = (int(d) for d in w.shape)
    in_c = int(x.shape[3])
    mult = int(op.options.get("depth_multiplier", 1))
    if mult < 1 or in_c * mult != out_c:
        raise unsupported(op, f"depth_multiplier {mult} does not map {in_c} input channels "
                              f"to the filter's {out_c} output channels")
    if y.shape[0] != x.shape[0] or y.shape[3] != out_c:
        raise unsupported(op, f"output shape {list(y.shape)} does not match input "
                              f"{list(x.shape)} and {out_c} filters")
    win = window(op, x, y, kh, kw)
    multipliers, shifts = _conv.prepare_quantization(op, x, w, y, out_c, channel_axis=3)
    bias = int16_bias(op, graph, 2, out_c, (DType.INT64,))
    rq = _requant.for_accumulator("int64", multipliers, shifts)
    weights = np.asarray(w.data, dtype=np.int64)
    bound = np.abs(weights).reshape(-1, out_c).sum(axis=0) * 32768 + (
        0 if bias is None else np.abs(bias))
    rq.check(where(op), bound)
    activation, act_min, act_max = _conv.activation_bounds(op, y)
    params: dict[str, object] = {
        **window_params(win, x.shape, y.shape),
        "depth_multiplier": mult, "filter_row": kw * out_c,
        "activation": activation, "act_min": act_min, "act_max": act_max,
        "weights_data": weights, "bias_data": bias, "accumulator": "int64",
        **rq_params(rq),
    }
    if (mult == 1 and win.rows.dilation == win.cols.dilation == 1 and out_c % 2 == 0
            and _gemm16.fits(weights.reshape(-1, out_c).T)):
        params.update(tap_words=out_c // 2, epilogue=_gemm16.epilogue(rq, bias, bound))
        return DepthwiseConv2DInt16Fast(op, graph, inputs=(x.index,), outputs=(y.index,),
                                        params=params)
    return DepthwiseConv2DInt16(op, graph, inputs=(x.index,), outputs=(y.index,),
                                params=params)


KERNELS = {DType.INT16: prepare}
# LiteRT's reference and optimized 16x8 kernels (XNNPACK takes no int16) compute TFLM's
# (checked on the 16x8 test models), but fail to prepare without a bias or with a bias
# other than int64.
NUMERICS = {mode: lambda layer, mode=mode: _litert.check_16x8_bias(
    _litert.require_bias(layer, mode), mode, 2, (DType.INT64,))
    for mode in ("litert-ref", "litert")}
