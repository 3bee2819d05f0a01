"""ARG_MAX, ARG_MIN: int8 input (any quantization) of any rank, constant int32 axis
(negative included), int32 output of the input's shape without that axis; the first index
of the extreme value wins.

TFLM: arg_min_max.cc has no Prepare; Eval takes int32 (or float) input, an int32 axis of
which it reads the first value, and only int32 indices (int64 output_type is refused there,
and here: convert with `output_type=tf.int32`). reference_ops::ArgMinMax keeps the running
extreme with a strict comparison (std::greater / std::less), so ties go to the lowest index,
as numpy's argmax/argmin. The raw int8 values are compared: the quantization is irrelevant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _typed
from codegen.ops.base import Layer, unsupported

OPCODES = ("ARG_MAX", "ARG_MIN")
# Input element types TFLM's kernel takes on the integer path (int16: none in TFLM).
_TYPES = _typed.INT8


@dataclass
class ArgMinMax(Layer):
    template: ClassVar[str] = "kernels/arg_min_max.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        axis = int(self.params["axis"]) + 1
        pick = np.argmax if self.params["is_max"] else np.argmin
        return [pick(inputs[0], axis=axis).astype(np.int32).reshape(
            inputs[0].shape[0], *self.out_tensor().shape)]

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("axis", f"{p['axis']} ({p['count']} values per index)")]


def prepare(op: Operator, graph: Graph) -> ArgMinMax:
    _typed.input_count(op, 2)
    x = _typed.input_tensor(op, graph, 0, "input", _TYPES)
    if op.outputs and op.outputs[0] >= 0 and graph.tensors[op.outputs[0]].dtype is DType.INT64:
        raise unsupported(op, "int64 indices are not supported (nor by TFLM); convert with "
                          "output_type=tf.int32")
    y = _typed.output_tensor(op, graph, _typed.INT32)
    rank = len(x.shape)
    if rank < 1:
        raise unsupported(op, "the input is a scalar; there is no axis to reduce")
    axis = _typed.axis_value(op, graph, 1, rank)
    _typed.require_shape(op, y, [d for k, d in enumerate(x.shape) if k != axis])
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    params: dict[str, object] = {
        "axis": axis,
        "is_max": op.opcode == "ARG_MAX",
        "outer": outer,
        "count": int(x.shape[axis]),
        "inner": inner,
        "c_type": x.dtype.c_type,
    }
    return ArgMinMax(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
