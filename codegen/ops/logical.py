"""LOGICAL_AND, LOGICAL_OR, LOGICAL_NOT: bool in/out; AND and OR broadcast numpy-style up to
4-D (any rank when the shapes agree), a constant operand included.

TFLM: logical_common.cc LogicalImpl (BinaryFunction on equal shapes, else
BroadcastBinaryFunction4DSlow) and elementwise.cc LogicalNotEval (GenericPrepare: bool input
and output). In the generated C a bool is a byte: any nonzero byte reads as true, and the
kernels write 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import Graph, Operator
from codegen.ops import _typed
from codegen.ops._elementwise import ElementwiseLayer, activation_inputs, prepare_elementwise
from codegen.ops.base import unsupported

OPCODES = ("LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT")
_MAX_BROADCAST_RANK = 4


@dataclass
class Logical(ElementwiseLayer):
    template: ClassVar[str] = "kernels/logical.c.j2"

    def combine(self, values: list[np.ndarray]) -> np.ndarray:
        if self.opcode == "LOGICAL_NOT":
            return np.logical_not(values[0])
        if self.opcode == "LOGICAL_AND":
            return np.logical_and(values[0], values[1])
        return np.logical_or(values[0], values[1])


def prepare(op: Operator, graph: Graph) -> Logical:
    unary = op.opcode == "LOGICAL_NOT"
    _typed.input_count(op, 1 if unary else 2)
    operands = [_typed.input_tensor(op, graph, k, f"input{k + 1}" if not unary else "input",
                                    _typed.BOOL, constant=None)
                for k in range(len(op.inputs))]
    y = _typed.output_tensor(op, graph, _typed.BOOL)
    if unary and tuple(operands[0].shape) != tuple(y.shape):
        raise unsupported(op, f"input shape {list(operands[0].shape)} differs from output "
                          f"shape {list(y.shape)}")
    params = prepare_elementwise(op, operands, y, _MAX_BROADCAST_RANK)
    return Logical(op, graph, inputs=activation_inputs(params), outputs=(y.index,),
                   params=params)
