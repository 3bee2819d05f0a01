"""What AVERAGE_POOL_2D and MAX_POOL_2D share: TFLM's PoolingPrepare and the window walk.

TFLM (pooling_common.cc) requires the input and output to share their quantization (scales
within 1e-6 of each other, equal zero points), so pooling works on the raw int8 (or int16)
values; the fused activation clamps with bounds computed from the output's scale and zero
point. Eval clips each window to the image: only in-bounds elements are read (and, for the
average, counted). int16 (reference_integer_ops::AveragePool / MaxPool for int16) is the same
arithmetic on int16 values, with an int32 sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops._conv import activation_bounds, require_activations
from codegen.ops._window import Window, require_nhwc, window
from codegen.ops.base import Layer, only_output, operand, require_dtype, unsupported


@dataclass
class PoolLayer(Layer):
    runtime: ClassVar[tuple[str, ...]] = ("clamp",)

    @property
    def window(self) -> Window:
        return self.params["window"]  # type: ignore[return-value]

    def _taps(self, xs: np.ndarray):
        """Views of the padded input (S, OH, OW, C), one per filter tap."""
        return (view for _, _, view in self.window.taps(xs))

    def _padded(self, inputs: list[np.ndarray], fill: int) -> np.ndarray:
        _, h, w, c = self.in_tensor().shape
        win = self.window
        samples = inputs[0].reshape(-1, h, w, c).astype(np.int64)
        pads = ((0, 0), (win.rows.pad, win.rows.pad_after), (win.cols.pad, win.cols.pad_after),
                (0, 0))
        return np.pad(samples, pads, constant_values=fill)

    def _finish(self, inputs: list[np.ndarray], values: np.ndarray) -> list[np.ndarray]:
        p = self.params
        out = np.clip(values, int(p["act_min"]), int(p["act_max"]))
        out = out.astype(self.out_tensor().dtype.np)
        return [out.reshape(inputs[0].shape[0], *self.out_tensor().shape)]

    def macs(self) -> int:
        return 0

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [
            ("window", self.window.describe()),
            ("activation", f"{p['activation']} -> clamp [{p['act_min']}, {p['act_max']}]"),
        ]


def prepare_pool(op: Operator, graph: Graph,
                 dtype: DType) -> tuple[int, int, dict[str, object]]:
    """(input, output, parameters): checks common to both poolings (TFLM's PoolingPrepare)
    for activations of type `dtype`."""
    x = operand(op, graph, 0, "input")
    y = only_output(op, graph)
    require_dtype(op, y, (dtype,), "output")
    require_activations(op, x, y)
    require_nhwc(op, x, "input")
    require_nhwc(op, y, "output")
    if y.shape[0] != x.shape[0] or y.shape[3] != x.shape[3]:
        raise unsupported(op, f"output shape {list(y.shape)} does not match input "
                              f"{list(x.shape)}")
    if abs(x.quant.scale - y.quant.scale) > 1.0e-6 or x.quant.zero_point != y.quant.zero_point:
        raise unsupported(
            op, f"input and output quantization differ (scale {x.quant.scale:g} zp "
            f"{x.quant.zero_point} vs {y.quant.scale:g} zp {y.quant.zero_point}); TFLM "
            "requires them equal"
        )
    taps_h = int(op.options.get("filter_height", 0))
    taps_w = int(op.options.get("filter_width", 0))
    win = window(op, x, y, taps_h, taps_w, dilations=False)
    rows = [len(win.rows.inside(o)) for o in range(win.rows.out)]
    cols = [len(win.cols.inside(o)) for o in range(win.cols.out)]
    if min(rows) == 0 or min(cols) == 0:
        # TFLM's AveragePool returns early on an empty window, leaving outputs unwritten.
        raise unsupported(op, "a pooling window lies entirely in the padding")
    activation, act_min, act_max = activation_bounds(op, y)
    _, h, w, c = x.shape
    return x.index, y.index, {
        "window": win,
        "counts": np.outer(rows, cols).astype(np.int64),
        "batches": int(x.shape[0]),
        "in_h": h, "in_w": w, "in_c": c,
        "in_image": h * w * c, "in_row": w * c,
        "out_image": win.rows.out * win.cols.out * c,
        "out_h": win.rows.out, "out_w": win.cols.out,
        "taps_h": taps_h, "taps_w": taps_w,
        "stride_h": win.rows.stride, "stride_w": win.cols.stride,
        "pad_h": win.rows.pad, "pad_w": win.cols.pad,
        "activation": activation,
        "act_min": act_min,
        "act_max": act_max,
        "c_type": dtype.c_type,
        "qmin": dtype.qmin,
    }
