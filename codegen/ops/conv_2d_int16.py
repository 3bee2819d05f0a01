"""CONV_2D: int16 in/out (16x8), int8 weights per-channel (axis 0) or per-tensor (zero point
0), optional int64 or int32 bias, SAME/VALID padding, any strides and dilations, groups,
fused NONE/RELU/RELU6/RELU_N1_TO_1.

TFLM: the int16 case of ConvEval, reference_integer_ops::ConvPerChannel instantiated on the
bias type (int64, or int32 for an int32 bias; without a bias the options' quantized_bias_type
decides): the sum of w * x over the taps inside the image, plus the bias, requantized
per channel (`codegen/ops/_dot16.py`). Quirk reproduced: the kernel reads neither zero point
(both are 0 in a 16x8 model, which validation requires).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _conv, _gemm16, _litert, _requant
from codegen.ops._dot16 import (
    WindowInt16,
    accumulator_type,
    gemm16_constants,
    int16_bias,
    int32_bias,
    rq_params,
    window_params,
)
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

OPCODES = ("CONV_2D",)


@dataclass
class Conv2DInt16(WindowInt16):
    template: ClassVar[str] = "kernels/conv_2d_int16.c.j2"

    def products(self, xs: np.ndarray) -> np.ndarray:
        # Partial sums stay below 2^47 (checked): float64 is exact.
        return self.window.conv_sums(xs, self.weights, int(self.params["groups"]))

    def macs(self) -> int:
        p = self.params
        return (int(p["batches"]) * int(p["out_h"]) * int(p["out_w"]) * int(p["out_c"])
                * int(p["filter_size"]))


@dataclass
class Conv2DInt16Gemm(Conv2DInt16):
    """The 16x8 matrix-product engine (codegen/ops/_gemm16.py), two output pixels per pass:
    a 1x1 convolution copies each pixel's channels into the columns, any other window its
    receptive field (zeros at padded taps) through a field buffer."""

    template: ClassVar[str] = "kernels/conv_2d_int16_fast.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.params["epilogue"].runtime, "column16")

    def constants(self) -> list[CArray]:
        return gemm16_constants(self)

    def scratch_bytes(self) -> int:
        kpad = int(self.params["kpad"])
        return 4 * kpad + (0 if self.params["pointwise"] else 2 * kpad)

    def inplace_inputs(self) -> tuple[int, ...]:
        # 1x1, stride 1: a pass copies its two pixels' channels before it writes their
        # outputs, which take no more bytes than the inputs.
        p = self.params
        return (0,) if p["pointwise"] and p["unit_stride"] and p["out_c"] <= p["in_c"] else ()

    def describe(self) -> list[tuple[str, str]]:
        return [*super().describe(), ("kernel", f"16x8 engine, depth padded to "
                                                f"{self.params['kpad']}")]


def _gemm16_params(params: dict[str, object], weights: np.ndarray) -> dict[str, object] | None:
    """The engine's parameters, or None when the layer keeps the plain kernel (groups, or a
    channel whose sum could leave int32)."""
    out_c = int(params["out_c"])
    if int(params["groups"]) != 1 or not _gemm16.fits(weights.reshape(out_c, -1)):
        return None
    depth = int(params["filter_size"])
    kpad = _gemm16.padded_depth(depth)
    return {
        "kpad": kpad, "kiter": kpad // _gemm16.K_STEP, "depth": depth,
        "pointwise": (int(params["taps_h"]), int(params["taps_w"])) == (1, 1),
        "unit_stride": (int(params["stride_h"]), int(params["stride_w"])) == (1, 1),
        "pixels": int(params["out_h"]) * int(params["out_w"]),
        "row_values": int(params["taps_w"]) * int(params["in_c"]),
    }


def prepare(op: Operator, graph: Graph) -> Conv2DInt16:
    x = operand(op, graph, 0, "input")
    w = operand(op, graph, 1, "weights")
    y = only_output(op, graph)
    require_dtype(op, y, (DType.INT16,), "output")
    _conv.require_activations(op, x, y)
    for tensor, role in ((x, "input"), (y, "output")):
        require_zero_point_zero(op, tensor, role)  # the kernel reads neither
    require_nhwc(op, x, "input")
    require_nhwc(op, y, "output")
    if len(w.shape) != 4:
        raise unsupported(op, f"weights must be 4-D [out, h, w, in], found {list(w.shape)}")
    out_c, kh, kw, group_c = (int(d) for d in w.shape)
    in_c = int(x.shape[3])
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
    multipliers, shifts = _conv.prepare_quantization(op, x, w, y, out_c, channel_axis=0)
    bias = int16_bias(op, graph, 2, out_c, (DType.INT64, DType.INT32))
    accumulator = accumulator_type(op, graph, 2)
    bias = int32_bias(bias, accumulator, out_c)
    rq = _requant.for_accumulator(accumulator, multipliers, shifts)
    weights = np.asarray(w.data, dtype=np.int64)
    bound = np.abs(weights).reshape(out_c, -1).sum(axis=1) * 32768 + (
        0 if bias is None else np.abs(bias))
    rq.check(where(op), bound)
    activation, act_min, act_max = _conv.activation_bounds(op, y)
    params: dict[str, object] = {
        **window_params(win, x.shape, y.shape),
        "groups": groups, "group_c": group_c, "per_group": out_c // groups,
        "filter_size": kh * kw * group_c,
        "activation": activation, "act_min": act_min, "act_max": act_max,
        "weights_data": weights, "bias_data": bias, "accumulator": accumulator,
        **rq_params(rq),
    }
    gemm = _gemm16_params(params, weights)
    if gemm is not None:
        params.update(gemm, epilogue=_gemm16.epilogue(rq, bias, bound))
        return Conv2DInt16Gemm(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
    return Conv2DInt16(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


KERNELS = {DType.INT16: prepare}
# LiteRT's reference and optimized 16x8 kernels (XNNPACK takes no int16) compute TFLM's
# (checked on the 16x8 test models), but fail to prepare without a bias, and read an int32
# bias as int64 unless the options say int32.
NUMERICS = {mode: lambda layer, mode=mode: _litert.check_16x8_bias(
    _litert.require_bias(layer, mode), mode, 2) for mode in ("litert-ref", "litert")}
