"""SLICE: int8 or int16 in/out, constant int32 or int64 begin and size (-1: to the end), up to 5-D;
input and output quantized alike.

TFLM: SliceEval (kernels/slice.cc) validates begin in [0, dim] and a size of -1 (to the
end) or within what remains, then reference_ops::Slice copies the box
[begin, begin + size) in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops._copy import (
    CopyLayer,
    Nest,
    activation_input,
    constant_vector,
    dense_strides,
    require_same_quantization,
    require_shape,
    single_output,
)
from codegen.ops.base import operand, unsupported

OPCODES = ("SLICE",)
MAX_DIMS = 5


@dataclass
class Slice(CopyLayer):
    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        box = tuple(slice(b, b + s) for b, s in zip(self.params["begin"], self.params["size"],
                                                    strict=True))
        return [inputs[0][(slice(None), *box)]]

    def describe(self) -> list[tuple[str, str]]:
        return [("begin", str(self.params["begin"])), ("size", str(self.params["size"]))]


def prepare(op: Operator, graph: Graph) -> Slice:
    x = activation_input(op, graph, 0)
    y = single_output(op, graph)
    require_same_quantization(op, x, y)
    rank = len(x.shape)
    if not 1 <= rank <= MAX_DIMS:
        raise unsupported(op, f"{rank}-D input; TFLM slices 1 to {MAX_DIMS} dimensions")
    kinds = (DType.INT32, DType.INT64)
    begin = constant_vector(op, graph, 1, "begin", rank, kinds)
    size = constant_vector(op, graph, 2, "size", rank, kinds)
    if operand(op, graph, 1, "begin").dtype != operand(op, graph, 2, "size").dtype:
        raise unsupported(op, "begin and size must have the same type")
    resolved = []
    for axis, (b, s, dim) in enumerate(zip(begin, size, x.shape, strict=True)):
        if not 0 <= b <= dim:
            raise unsupported(op, f"begin {b} is outside [0, {dim}] on axis {axis}")
        s = dim - b if s == -1 else s
        if not 0 <= s <= dim - b:
            raise unsupported(op, f"size {size[axis]} does not fit from {b} in {dim} on "
                                  f"axis {axis}")
        resolved.append(s)
    require_shape(op, y, resolved)

    in_strides = dense_strides(x.shape)
    base = sum(b * st for b, st in zip(begin, in_strides, strict=True))
    layer = Slice(op, graph, inputs=(x.index,), outputs=(y.index,),
                  params={"begin": begin, "size": resolved})
    layer.set_steps([Nest.gather("input0", "output0", resolved, in_strides, base)])
    return layer


KERNELS = dict.fromkeys((DType.INT8, DType.INT16), prepare)
