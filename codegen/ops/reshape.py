"""RESHAPE: any element type; the bytes do not change.

The kernel is a copy when the planner gives input and output different buffers, and
nothing at all when they share one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import Graph, Operator
from codegen.ops.base import Layer, only_output, operand, unsupported

OPCODES = ("RESHAPE",)


@dataclass
class Reshape(Layer):
    template: ClassVar[str] = "kernels/reshape.c.j2"
    alias: ClassVar[bool] = True

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        n = inputs[0].shape[0]
        return [inputs[0].reshape(n, *self.out_tensor().shape)]


def prepare(op: Operator, graph: Graph) -> Reshape:
    x = operand(op, graph, 0, "input")
    y = only_output(op, graph)
    if x.is_constant:
        raise unsupported(op, "a constant input is not supported")
    if x.dtype != y.dtype:
        raise unsupported(op, f"input is {x.dtype_name} but output is {y.dtype_name}")
    if x.size != y.size:
        raise unsupported(op, f"cannot reshape {list(x.shape)} into {list(y.shape)}")
    if x.quant != y.quant:
        raise unsupported(op, "input and output quantization differ")
    params = {"nbytes": x.nbytes}
    return Reshape(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
