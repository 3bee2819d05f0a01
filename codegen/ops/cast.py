"""CAST: int8, int32 or bool in, int8 or int32 out, same shape; the raw values converted as
C++'s static_cast does (int32 -> int8 keeps the low byte, bool gives 0 or 1), whatever the
quantization.

TFLM: cast.cc. Inputs int8, int16, int32, uint32, float32 and bool; outputs int8, int16,
int32, uint32 and float32 (no bool); std::transform with static_cast, quantization ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _typed
from codegen.ops._elementwise import ElementwiseLayer, activation_inputs, prepare_elementwise
from codegen.ops.base import unsupported

OPCODES = ("CAST",)
_INPUTS = (DType.INT8, DType.INT32, DType.BOOL)
_OUTPUTS = (DType.INT8, DType.INT32)


@dataclass
class Cast(ElementwiseLayer):
    template: ClassVar[str] = "kernels/cast.c.j2"

    def combine(self, values: list[np.ndarray]) -> np.ndarray:
        # astype wraps int64 to the output's width like the C conversion (two's complement)
        return values[0].astype(np.int64)

    def describe(self) -> list[tuple[str, str]]:
        return [("conversion", f"{self.in_tensor().dtype_name} -> "
                               f"{self.out_tensor().dtype_name}")]


def prepare(op: Operator, graph: Graph) -> Cast:
    _typed.input_count(op, 1)
    x = _typed.input_tensor(op, graph, 0, "input", _INPUTS)
    if op.outputs and op.outputs[0] >= 0 and graph.tensors[op.outputs[0]].dtype is DType.BOOL:
        raise unsupported(op, "a bool output is not supported (nor by TFLM)")
    y = _typed.output_tensor(op, graph, _OUTPUTS)
    _typed.require_shape(op, y, x.shape)
    params = prepare_elementwise(op, (x,), y, len(x.shape))
    return Cast(op, graph, inputs=activation_inputs(params), outputs=(y.index,), params=params)
