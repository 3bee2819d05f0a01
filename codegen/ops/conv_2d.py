"""CONV_2D: int8 in/out, int8 weights per-channel (axis 0) or per-tensor, optional int32
bias, SAME/VALID padding, any strides and dilations, groups, fused
NONE/RELU/RELU6/RELU_N1_TO_1.

TFLM: reference_integer_ops::ConvPerChannel. Weights are [out_c, kh, kw, in_c / groups];
TFLM infers groups = in_c / filter_in_c, and output channel c reads the input channels of
group c / (out_c / groups). The arithmetic and the zero-point folding are described in
`codegen/ops/_conv.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import Graph, Operator
from codegen.ops import _conv
from codegen.ops._window import require_nhwc, window
from codegen.ops.base import only_output, operand, unsupported

OPCODES = ("CONV_2D",)


@dataclass
class Conv2D(_conv.ConvLayer):
    template: ClassVar[str] = "kernels/conv_2d.c.j2"

    def _products(self, xs: np.ndarray) -> np.ndarray:
        p = self.params
        groups, group_c, per_group = int(p["groups"]), int(p["group_c"]), int(p["per_group"])
        weights = np.asarray(p["weights_data"], dtype=np.float64)
        acc = np.zeros((xs.shape[0], int(p["out_h"]), int(p["out_w"]), int(p["out_c"])))
        # float64 is exact here: every partial sum is an integer below 2**31 (MAX_TAPS).
        for fy, fx, view in self._taps(xs):
            values = view.astype(np.float64)
            for g in range(groups):
                ins = slice(g * group_c, (g + 1) * group_c)
                outs = slice(g * per_group, (g + 1) * per_group)
                acc[..., outs] += values[..., ins] @ weights[outs, fy, fx, :].T
        return acc.astype(np.int64)

    def macs(self) -> int:
        p = self.params
        return (int(p["batches"]) * int(p["out_h"]) * int(p["out_w"]) * int(p["out_c"])
                * int(p["filter_size"]))

    def describe(self) -> list[tuple[str, str]]:
        rows = super().describe()
        if int(self.params["groups"]) > 1:
            rows.insert(1, ("groups", str(self.params["groups"])))
        return rows


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
    weights = w.data.astype(np.int64)
    params = _conv.common_params(op, x, y, win, multipliers, shifts, bias,
                                 weights.reshape(out_c, -1).sum(axis=1), w.data)
    params.update(
        groups=groups,
        group_c=group_c,
        per_group=out_c // groups,
        filter_size=kh * kw * group_c,
        filter_row=kw * group_c,
    )
    return Conv2D(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
