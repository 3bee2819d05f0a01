"""SELECT_V2: bool condition, int8 values (input, output quantized alike), numpy-style
broadcasting of all three operands up to 5-D (any rank when the shapes agree), constant
operands included.

TFLM: select.cc. SelectPrepare: bool condition, x and y of one type (float32, int8, int16),
shapes that broadcast to the output's (CheckBroadcastShape). Eval: reference_ops::Select /
BroadcastSelect5DSlow copy `condition ? x : y` element by element, without looking at the
quantization; values keep their meaning only when x, y and the output share it, so other
models are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import Graph, Operator
from codegen.ops import _typed
from codegen.ops._elementwise import ElementwiseLayer, activation_inputs, prepare_elementwise
from codegen.ops.base import require_dtype

OPCODES = ("SELECT_V2",)
_MAX_BROADCAST_RANK = 5
# Value types of TFLM's kernel on the integer path (int16 too, not yet here).
_TYPES = _typed.INT8


@dataclass
class SelectV2(ElementwiseLayer):
    template: ClassVar[str] = "kernels/select_v2.c.j2"

    def combine(self, values: list[np.ndarray]) -> np.ndarray:
        return np.where(values[0], values[1], values[2])


def prepare(op: Operator, graph: Graph) -> SelectV2:
    _typed.input_count(op, 3)
    condition = _typed.input_tensor(op, graph, 0, "condition", _typed.BOOL, constant=None)
    x = _typed.input_tensor(op, graph, 1, "x", _TYPES, constant=None)
    y_in = _typed.input_tensor(op, graph, 2, "y", _TYPES, constant=None)
    require_dtype(op, y_in, (x.dtype,), "y")
    out = _typed.output_tensor(op, graph, (x.dtype,))
    _typed.same_quantization(op, [out, x, y_in], "SELECT_V2 copies values and cannot "
                             "requantize")
    params = prepare_elementwise(op, (condition, x, y_in), out, _MAX_BROADCAST_RANK)
    return SelectV2(op, graph, inputs=activation_inputs(params), outputs=(out.index,),
                    params=params)
