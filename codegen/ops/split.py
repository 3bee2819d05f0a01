"""SPLIT, SPLIT_V: int8 or int16 in/out along a constant int32 axis (negative included), any number
of outputs, each quantized like the input.

TFLM: SplitEval / SplitVEval (kernels/split.cc, split_v.cc) read the axis as int32 and copy,
for every index of the axes before it, consecutive chunks of the input to output 0, 1, ...
The chunk sizes come from the output shapes (SPLIT uses output 0's for all, SPLIT_V each
output's own; size_splits is never read). Every output keeps the input's quantization.
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
    outputs_of,
    require_same_quantization,
    require_shape,
)
from codegen.ops.base import unsupported

OPCODES = ("SPLIT", "SPLIT_V")


@dataclass
class Split(CopyLayer):
    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        axis, sizes = int(self.params["axis"]), self.params["sizes"]
        edges = np.cumsum(sizes)[:-1]
        return [np.ascontiguousarray(a) for a in np.split(inputs[0], edges, axis=axis + 1)]

    def describe(self) -> list[tuple[str, str]]:
        return [("axis", str(self.params["axis"])), ("sizes", str(self.params["sizes"]))]


def prepare(op: Operator, graph: Graph) -> Split:
    if op.opcode == "SPLIT":
        data_position, axis_position = 1, 0
    else:
        data_position, axis_position = 0, 2
    x = activation_input(op, graph, data_position)
    outs = outputs_of(op, graph)
    rank = len(x.shape)
    (axis,) = constant_vector(op, graph, axis_position, "axis", 1)
    if not -rank <= axis < rank:
        raise unsupported(op, f"axis {axis} is out of range for a {rank}-D input")
    axis %= rank
    num_splits = int(op.options.get("num_splits", 0) or 0)
    if num_splits != len(outs):
        raise unsupported(op, f"num_splits is {num_splits} but there are {len(outs)} outputs")

    if op.opcode == "SPLIT":
        if x.shape[axis] % len(outs):
            raise unsupported(op, f"{x.shape[axis]} is not divisible into {len(outs)} splits")
        sizes = [x.shape[axis] // len(outs)] * len(outs)
    else:
        sizes = [t.shape[axis] if len(t.shape) == rank else -1 for t in outs]
        if sum(sizes) != x.shape[axis] or min(sizes) < 0:
            raise unsupported(op, f"output sizes {sizes} along axis {axis} do not add up to "
                                  f"{x.shape[axis]}")
    in_strides = dense_strides(x.shape)
    steps = []
    offset = 0
    for i, (t, size) in enumerate(zip(outs, sizes, strict=True)):
        require_same_quantization(op, x, t)
        shape = list(x.shape)
        shape[axis] = size
        require_shape(op, t, shape, f"output {i}")
        steps.append(Nest.gather("input0", f"output{i}", shape, in_strides,
                                 offset * in_strides[axis]))
        offset += size
    layer = Split(op, graph, inputs=(x.index,), outputs=tuple(t.index for t in outs),
                  params={"axis": axis, "sizes": sizes})
    layer.set_steps(steps)
    return layer


KERNELS = dict.fromkeys((DType.INT8, DType.INT16), prepare)
