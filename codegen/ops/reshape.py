"""RESHAPE, SQUEEZE, EXPAND_DIMS: any element type; the bytes do not change.

The kernel is a copy when the planner gives input and output different buffers, and
nothing at all when they share one. SQUEEZE and EXPAND_DIMS are checked as TFLM's Prepare
checks them (SqueezePrepare: every squeeze_dims entry, negative ones counted from the end,
names a dimension of size 1, and no squeeze_dims squeezes every size-1 dimension;
ExpandDimsPrepare: a constant int32 axis, negative ones counted from the end of the output,
and an output that is the input with a 1 inserted there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops.base import Layer, only_output, operand, unsupported

OPCODES = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
TYPES = (DType.INT8, DType.INT16)  # and every other type: the bytes are not looked at


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
    if op.opcode == "SQUEEZE":
        _check_squeeze(op, x.shape, y.shape)
    elif op.opcode == "EXPAND_DIMS":
        _check_expand_dims(op, graph, x.shape, y.shape)
    params = {"nbytes": x.nbytes}
    return Reshape(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


def _check_squeeze(op: Operator, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
    rank = len(in_shape)
    dims = [int(d) for d in (op.options.get("squeeze_dims") or ())]
    if not dims:
        squeezed = {k for k, d in enumerate(in_shape) if d == 1}
    else:
        squeezed = set()
        for d in dims:
            k = d + rank if d < 0 else d
            if not (0 <= k < rank and in_shape[k] == 1):
                raise unsupported(op, f"squeeze_dims {dims} names a dimension that is not "
                                      f"of size 1 in {list(in_shape)}")
            squeezed.add(k)
    expected = [d for k, d in enumerate(in_shape) if k not in squeezed]
    if list(out_shape) != expected:
        raise unsupported(op, f"output shape {list(out_shape)}, expected {expected}")


def _check_expand_dims(op: Operator, graph: Graph, in_shape: tuple[int, ...],
                       out_shape: tuple[int, ...]) -> None:
    axis_tensor = operand(op, graph, 1, "axis")
    if axis_tensor.data is None:
        raise unsupported(op, "axis must be constant")
    if axis_tensor.dtype is not DType.INT32 or axis_tensor.size != 1:
        raise unsupported(op, "axis must be one int32 value")
    axis = int(axis_tensor.data.ravel()[0])
    if axis < 0:
        axis += len(in_shape) + 1
    if not 0 <= axis <= len(in_shape):
        raise unsupported(op, f"axis {int(axis_tensor.data.ravel()[0])} is out of range for "
                              f"a {len(in_shape)}-D input")
    expected = [*in_shape[:axis], 1, *in_shape[axis:]]
    if list(out_shape) != expected:
        raise unsupported(op, f"output shape {list(out_shape)}, expected {expected}")
