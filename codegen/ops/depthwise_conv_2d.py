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

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import Graph, Operator
from codegen.ops import _conv
from codegen.ops._window import require_nhwc, window
from codegen.ops.base import only_output, operand, unsupported

OPCODES = ("DEPTHWISE_CONV_2D",)


@dataclass
class DepthwiseConv2D(_conv.ConvLayer):
    template: ClassVar[str] = "kernels/depthwise_conv_2d.c.j2"

    def _products(self, xs: np.ndarray) -> np.ndarray:
        p = self.params
        mult = int(p["depth_multiplier"])
        weights = np.asarray(p["weights_data"], dtype=np.int64)[0]
        acc = np.zeros((xs.shape[0], int(p["out_h"]), int(p["out_w"]), int(p["out_c"])),
                       dtype=np.int64)
        for fy, fx, view in self._taps(xs):
            # Output channel ic * mult + m: each input channel repeated mult times in a row.
            acc += (np.repeat(view, mult, axis=-1) if mult > 1 else view) * weights[fy, fx]
        return acc

    def macs(self) -> int:
        p = self.params
        return (int(p["batches"]) * int(p["out_h"]) * int(p["out_w"]) * int(p["out_c"])
                * int(p["taps_h"]) * int(p["taps_w"]))

    def describe(self) -> list[tuple[str, str]]:
        rows = super().describe()
        rows.insert(1, ("depth multiplier", str(self.params["depth_multiplier"])))
        return rows


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
    weights = w.data.astype(np.int64)
    params = _conv.common_params(op, x, y, win, multipliers, shifts, bias,
                                 weights.reshape(-1, out_c).sum(axis=0), w.data)
    params.update(
        depth_multiplier=mult,
        filter_row=kw * out_c,
    )
    return DepthwiseConv2D(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
