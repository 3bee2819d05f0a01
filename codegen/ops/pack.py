"""PACK, UNPACK: int8 or int16 in/out along any axis (negative included), any number of values, all
quantized alike.

TFLM: pack::Eval / UnpackEval (kernels/pack.cc, unpack.cc): the packed tensor is seen as
[outer, values_count, copy_size] around the axis, and value i is the [outer, copy_size] slab
at index i. They loop over values_count / num from the options, so those must equal the
number of tensors; every tensor keeps the same quantization.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops._copy import (
    CopyLayer,
    Nest,
    activation_input,
    dense_strides,
    outputs_of,
    require_same_quantization,
    require_shape,
    single_output,
)
from codegen.ops.base import unsupported

OPCODES = ("PACK", "UNPACK")


@dataclass
class Pack(CopyLayer):
    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        axis = int(self.params["axis"]) + 1
        if self.opcode == "PACK":
            return [np.stack(inputs, axis=axis)]
        x = inputs[0]
        return [np.ascontiguousarray(np.take(x, i, axis=axis)) for i in range(x.shape[axis])]

    def describe(self) -> list[tuple[str, str]]:
        return [("axis", str(self.params["axis"]))]


def _axis(op: Operator, axis: int, packed_rank: int) -> int:
    if not -packed_rank <= axis < packed_rank:
        raise unsupported(op, f"axis {axis} is out of range for a {packed_rank}-D packed tensor")
    return axis % packed_rank


def prepare(op: Operator, graph: Graph) -> Pack:
    if op.opcode == "PACK":
        return _prepare_pack(op, graph)
    return _prepare_unpack(op, graph)


def _prepare_pack(op: Operator, graph: Graph) -> Pack:
    y = single_output(op, graph)
    count = int(op.options.get("values_count", 0) or 0)
    if count != len(op.inputs) or count == 0:
        raise unsupported(op, f"values_count is {count} but there are {len(op.inputs)} inputs")
    xs = [activation_input(op, graph, i, f"input {i}") for i in range(count)]
    axis = _axis(op, int(op.options.get("axis", 0) or 0), len(y.shape))
    value_shape = list(y.shape[:axis]) + list(y.shape[axis + 1:])
    require_shape(op, y, [*value_shape[:axis], count, *value_shape[axis:]])
    out_strides = dense_strides(y.shape)
    steps = []
    for i, x in enumerate(xs):
        require_same_quantization(op, x, y)
        require_shape(op, x, value_shape, f"input {i}")
        dst_steps = out_strides[:axis] + out_strides[axis + 1:]
        steps.append(Nest.scatter(f"input{i}", "output0", value_shape, dst_steps,
                                  i * out_strides[axis]))
    layer = Pack(op, graph, inputs=tuple(x.index for x in xs), outputs=(y.index,),
                 params={"axis": axis})
    layer.set_steps(steps)
    return layer


def _prepare_unpack(op: Operator, graph: Graph) -> Pack:
    x = activation_input(op, graph, 0)
    outs = outputs_of(op, graph)
    num = int(op.options.get("num", 0) or 0)
    if num != len(outs):
        raise unsupported(op, f"num is {num} but there are {len(outs)} outputs")
    axis = _axis(op, int(op.options.get("axis", 0) or 0), len(x.shape))
    if x.shape[axis] != num:
        raise unsupported(op, f"input '{x.name}' has {x.shape[axis]} values along axis {axis}, "
                              f"not {num}")
    value_shape = list(x.shape[:axis]) + list(x.shape[axis + 1:])
    in_strides = dense_strides(x.shape)
    steps = []
    for i, t in enumerate(outs):
        require_same_quantization(op, x, t)
        require_shape(op, t, value_shape, f"output {i}")
        src_steps = in_strides[:axis] + in_strides[axis + 1:]
        steps.append(Nest.gather("input0", f"output{i}", value_shape, src_steps,
                                 i * in_strides[axis]))
    layer = Pack(op, graph, inputs=(x.index,), outputs=tuple(t.index for t in outs),
                 params={"axis": axis})
    layer.set_steps(steps)
    return layer


KERNELS = dict.fromkeys((DType.INT8, DType.INT16), prepare)
