"""EQUAL, NOT_EQUAL, GREATER, GREATER_EQUAL, LESS, LESS_EQUAL: int8 (each input with its own
scale below 1 and zero point) or int32 inputs of one type, EQUAL and NOT_EQUAL also on bool;
bool output; numpy-style broadcasting up to 4-D (any rank when the shapes agree), a constant
operand included.

TFLM: comparisons.cc. ComparisonsPrepare, for int8 only: input offsets -zp, a left shift of 8
and QuantizeMultiplierSmallerThanOneExp(scale) per input (TFLITE_CHECK: the scale must be
below 1, else TFLM aborts; refused here). Eval (reference_ops ComparisonWithScaling /
BroadcastComparison4DSlowWithScaling) compares
    MultiplyByQuantizedMultiplierSmallerThanOneExp((x - zp) << 8, m, shift)
of both inputs; int32 and bool compare raw values (...NoScaling). The rounding may make two
different int8 values equal, which is why the scaled values are compared and not the raw ones.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _scaling, _typed
from codegen.ops._elementwise import ElementwiseLayer, activation_inputs, prepare_elementwise
from codegen.ops.base import require_dtype, unsupported

OPCODES = ("EQUAL", "NOT_EQUAL", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL")
_MAX_BROADCAST_RANK = 4
_LEFT_SHIFT = 8
_C_OPERATORS = {"EQUAL": "==", "NOT_EQUAL": "!=", "GREATER": ">", "GREATER_EQUAL": ">=",
                "LESS": "<", "LESS_EQUAL": "<="}
_NUMPY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "EQUAL": operator.eq, "NOT_EQUAL": operator.ne, "GREATER": operator.gt,
    "GREATER_EQUAL": operator.ge, "LESS": operator.lt, "LESS_EQUAL": operator.le,
}
# Input types of TFLM's kernels on the integer path (int16: GREATER only, not yet here).
_TYPES = (DType.INT8, DType.INT32)
_EQUALITY_TYPES = (DType.INT8, DType.INT32, DType.BOOL)


@dataclass
class Comparison(ElementwiseLayer):
    template: ClassVar[str] = "kernels/comparisons.c.j2"

    @property  # type: ignore[override]
    def runtime(self) -> tuple[str, ...]:
        return ("requantize",) if self.params["scaled"] else ()

    def combine(self, values: list[np.ndarray]) -> np.ndarray:
        a, b = values
        p = self.params
        if p["scaled"]:
            a = _scaling.scaled(a, int(p["offset1"]), _LEFT_SHIFT, int(p["multiplier1"]),
                                int(p["shift1"]))
            b = _scaling.scaled(b, int(p["offset2"]), _LEFT_SHIFT, int(p["multiplier2"]),
                                int(p["shift2"]))
        return _NUMPY[self.opcode](a, b)

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        if not p["scaled"]:
            return [("compares", "raw values")]
        return [("input1 scaling", f"offset {p['offset1']}, << {_LEFT_SHIFT}, multiplier "
                 f"{p['multiplier1']} shift {p['shift1']}"),
                ("input2 scaling", f"offset {p['offset2']}, << {_LEFT_SHIFT}, multiplier "
                 f"{p['multiplier2']} shift {p['shift2']}")]


def prepare(op: Operator, graph: Graph) -> Comparison:
    _typed.input_count(op, 2)
    types = _EQUALITY_TYPES if op.opcode in ("EQUAL", "NOT_EQUAL") else _TYPES
    x1 = _typed.input_tensor(op, graph, 0, "input1", types, constant=None)
    x2 = _typed.input_tensor(op, graph, 1, "input2", types, constant=None)
    require_dtype(op, x2, (x1.dtype,), "input2")
    y = _typed.output_tensor(op, graph, _typed.BOOL)
    params = prepare_elementwise(op, (x1, x2), y, _MAX_BROADCAST_RANK)
    params.update({"scaled": x1.dtype is DType.INT8, "c_operator": _C_OPERATORS[op.opcode],
                   "left_shift": _LEFT_SHIFT})
    if x1.dtype is DType.INT8:
        for k, t in ((1, x1), (2, x2)):
            _typed.quantized(op, t, f"input{k}")
            m, s = _scaling.multiplier_below_one(op, float(t.quant.scale),
                                                 f"the scale of input{k} '{t.name}'")
            params.update({f"offset{k}": -t.quant.zero_point, f"multiplier{k}": m,
                           f"shift{k}": s})
    elif x1.is_constant and x2.is_constant:
        raise unsupported(op, "every input is constant")
    return Comparison(op, graph, inputs=activation_inputs(params), outputs=(y.index,),
                      params=params)
