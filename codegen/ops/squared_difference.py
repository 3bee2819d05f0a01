"""SQUARED_DIFFERENCE: int8 (each input with its own scale and zero point, any output
quantization) or int32 in/out; numpy-style broadcasting up to 4-D (any rank when the shapes
agree), a constant operand included.

TFLM: squared_difference.cc. PrepareQuantized (int8): left shift 7, twice_max = 2 *
max(s1, s2) in double, input multipliers s_i / twice_max through
QuantizeMultiplierSmallerThanOneExp, output multiplier twice_max^2 / (2^14 * s_out) through
QuantizeMultiplier. Eval, per element:
    d   = MBQMSmallerThanOneExp((x1 - zp1) << 7, m1, e1)
          - MBQMSmallerThanOneExp((x2 - zp2) << 7, m2, e2)
    out = clamp(MultiplyByQuantizedMultiplier(d * d, m, e) + zp_out)
(|d| <= 2^15, so d * d fits int32). int32: (x1 - x2)^2 in int32, which wraps on overflow as
TFLM's does on two's-complement hardware (the C computes it in uint32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _scaling, _typed
from codegen.ops._binary import multiplier
from codegen.ops._elementwise import ElementwiseLayer, activation_inputs, prepare_elementwise
from codegen.ops.base import require_dtype

OPCODES = ("SQUARED_DIFFERENCE",)
_MAX_BROADCAST_RANK = 4
_LEFT_SHIFT = 7
# Types of TFLM's kernel on the integer path (int16 too, with zero points 0: not yet here).
_TYPES = (DType.INT8, DType.INT32)


@dataclass
class SquaredDifference(ElementwiseLayer):
    template: ClassVar[str] = "kernels/squared_difference.c.j2"

    @property  # type: ignore[override]
    def runtime(self) -> tuple[str, ...]:
        return ("requantize", "clamp") if self.params["quantized"] else ()

    def combine(self, values: list[np.ndarray]) -> np.ndarray:
        p = self.params
        a, b = values
        if not p["quantized"]:
            return quant.wrap_int32(quant.wrap_int32(a - b) ** 2)
        d = (_scaling.scaled(a, int(p["offset1"]), _LEFT_SHIFT, int(p["multiplier1"]),
                             int(p["shift1"]))
             - _scaling.scaled(b, int(p["offset2"]), _LEFT_SHIFT, int(p["multiplier2"]),
                               int(p["shift2"])))
        return quant.requantize(d * d, int(p["multiplier"]), int(p["shift"]),
                                int(p["output_offset"]), -128, 127)

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        if not p["quantized"]:
            return [("arithmetic", "int32, wrapping")]
        return [("input multipliers", f"{p['multiplier1']} shift {p['shift1']}, "
                 f"{p['multiplier2']} shift {p['shift2']} (after << {_LEFT_SHIFT})"),
                ("output multiplier", f"{p['multiplier']} shift {p['shift']}")]


def prepare(op: Operator, graph: Graph) -> SquaredDifference:
    _typed.input_count(op, 2)
    x1 = _typed.input_tensor(op, graph, 0, "input1", _TYPES, constant=None)
    x2 = _typed.input_tensor(op, graph, 1, "input2", _TYPES, constant=None)
    require_dtype(op, x2, (x1.dtype,), "input2")
    y = _typed.output_tensor(op, graph, (x1.dtype,))
    params = prepare_elementwise(op, (x1, x2), y, _MAX_BROADCAST_RANK)
    params.update({"quantized": x1.dtype is DType.INT8, "left_shift": _LEFT_SHIFT})
    if x1.dtype is DType.INT8:
        for t, role in ((x1, "input1"), (x2, "input2"), (y, "output")):
            _typed.quantized(op, t, role)
        s1, s2, s_out = (float(np.float32(t.quant.scale)) for t in (x1, x2, y))
        twice_max = 2.0 * max(s1, s2)
        for k, s in ((1, s1), (2, s2)):
            m, e = _scaling.multiplier_below_one(op, s / twice_max, f"input{k} multiplier")
            params.update({f"multiplier{k}": m, f"shift{k}": e})
        real = twice_max * twice_max / ((1 << (2 * _LEFT_SHIFT)) * s_out)
        params["multiplier"], params["shift"] = multiplier(op, real, "output multiplier")
        params.update({"offset1": -x1.quant.zero_point, "offset2": -x2.quant.zero_point,
                       "output_offset": y.quant.zero_point})
    return SquaredDifference(op, graph, inputs=activation_inputs(params), outputs=(y.index,),
                             params=params)
