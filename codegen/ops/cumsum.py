"""CUMSUM: int8 in/out of one shape (any input and output quantization), a constant int32
axis (negative included), exclusive and reverse.

TFLM: cumsum.cc (int8 or float32, one int32 axis value, equal shapes; ADD_N's scaling: left
shift 20, input multiplier 0.5, output multiplier 2 s_in / (2^20 s_out) through
QuantizeMultiplierSmallerThanOneExp, which aborts unless below 1: refused here) and
reference_ops::CumSum: along the axis (from its end with reverse) the accumulator starts at
TFLM's scaled -zero_point (ADD_N's quirk), adds each scaled input, and every output is the
accumulator after (or, exclusive, before) its own input, requantized and clamped. The int32
accumulator wraps past 15 extreme values as TFLM's does on two's-complement hardware (the C
adds in uint32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.model.ir import Graph, Operator
from codegen.ops import _scaling, _typed
from codegen.ops.add_n import LEFT_SHIFT, scaled_start
from codegen.ops.base import Layer, unsupported

OPCODES = ("CUMSUM",)
_TYPES = _typed.INT8


@dataclass
class CumSum(Layer):
    runtime: ClassVar[tuple[str, ...]] = ("requantize", "clamp")
    template: ClassVar[str] = "kernels/cumsum.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        axis = int(p["axis"]) + 1
        scaled = _scaling.scaled(inputs[0], int(p["input_offset"]), LEFT_SHIFT,
                                 int(p["input_multiplier"]), int(p["input_shift"]))
        if p["reverse"]:
            scaled = np.flip(scaled, axis=axis)
        sums = np.cumsum(scaled, axis=axis) + int(p["start"])
        if p["exclusive"]:
            sums = sums - scaled
        if p["reverse"]:
            sums = np.flip(sums, axis=axis)
        out = quant.requantize(quant.wrap_int32(sums), int(p["output_multiplier"]),
                               int(p["output_shift"]), int(p["output_zero_point"]), -128, 127)
        return [out.astype(np.int8)]

    def macs(self) -> int:
        return self.out_tensor().size

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        flags = (" exclusive" if p["exclusive"] else "") + (" reverse" if p["reverse"] else "")
        return [("axis", f"{p['axis']} ({p['depth']} values){flags}"),
                ("start", str(p["start"]))]


def prepare(op: Operator, graph: Graph) -> CumSum:
    _typed.input_count(op, 2)
    x = _typed.input_tensor(op, graph, 0, "input", _TYPES)
    y = _typed.output_tensor(op, graph, _TYPES)
    _typed.require_shape(op, y, x.shape)
    _typed.quantized(op, x, "input")
    _typed.quantized(op, y, "output")
    rank = len(x.shape)
    if rank < 1:
        raise unsupported(op, "the input is a scalar")
    axis = _typed.axis_value(op, graph, 1, rank)
    scale = float(np.float32(x.quant.scale))
    m_in, e_in = _scaling.multiplier_below_one(op, scale / (2.0 * scale), "input multiplier")
    m_out, e_out = _scaling.multiplier_below_one(
        op, 2.0 * scale / ((1 << LEFT_SHIFT) * float(np.float32(y.quant.scale))),
        "output multiplier")
    zp = int(x.quant.zero_point)
    params: dict[str, object] = {
        "axis": axis, "exclusive": bool(op.options.get("exclusive", False)),
        "reverse": bool(op.options.get("reverse", False)),
        "outer": int(np.prod(x.shape[:axis], dtype=np.int64)), "depth": int(x.shape[axis]),
        "inner": int(np.prod(x.shape[axis + 1:], dtype=np.int64)),
        "input_offset": -zp, "input_multiplier": m_in, "input_shift": e_in,
        "output_multiplier": m_out, "output_shift": e_out,
        "output_zero_point": y.quant.zero_point, "start": scaled_start(zp, m_in, e_in),
        "left_shift": LEFT_SHIFT,
    }
    return CumSum(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
