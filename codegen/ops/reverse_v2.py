"""REVERSE_V2: int8, int32 or bool in/out (int8 quantized alike), up to 6-D, a constant int32
list of axes (negative included) that are neighbours once sorted.

TFLM: reverse.cc. Prepare: a 1-D int32 axis tensor with at most rank entries, equal input and
output types (float32, int8, uint8, int16, int32, int64, bool). Eval resolves negative axes,
sorts them and fails unless they are contiguous ("Non-contiguous axes not supported"; so
are repeated ones), then reference_ops::Reverse copies with those axes reversed. Here: one
gather nest with negative steps along the reversed axes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _typed
from codegen.ops._copy import CopyLayer, Nest, dense_strides
from codegen.ops.base import unsupported

OPCODES = ("REVERSE_V2",)
MAX_DIMS = 6
# Types of TFLM's kernel that an int8 model carries (int16 too: not yet here).
_TYPES = (DType.INT8, DType.INT32, DType.BOOL)


@dataclass
class ReverseV2(CopyLayer):
    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        axes = tuple(a + 1 for a in self.params["axes"])  # type: ignore[attr-defined]
        return [np.ascontiguousarray(np.flip(inputs[0], axis=axes))]

    def describe(self) -> list[tuple[str, str]]:
        return [("axes", str(list(self.params["axes"])))]  # type: ignore[call-overload]


def prepare(op: Operator, graph: Graph) -> ReverseV2:
    _typed.input_count(op, 2)
    x = _typed.input_tensor(op, graph, 0, "input", _TYPES)
    y = _typed.output_tensor(op, graph, (x.dtype,))
    _typed.same_quantization(op, [x, y], "REVERSE_V2 copies values and cannot requantize")
    rank = len(x.shape)
    if not 1 <= rank <= MAX_DIMS:
        raise unsupported(op, f"{rank}-D input; 1 to {MAX_DIMS} dimensions are supported")
    values = _typed.constant_values(op, graph, 1, "axis", _typed.INT32)
    if values.ndim != 1 or not 1 <= values.size <= rank:
        raise unsupported(op, f"axis must be a list of 1 to {rank} values, found shape "
                          f"{list(values.shape)}")
    axes = sorted(_typed.normalized_axis(op, int(a), rank) for a in values)
    if any(b != a + 1 for a, b in itertools.pairwise(axes)):
        raise unsupported(op, f"axes {values.tolist()} are not contiguous (TFLM refuses them)")
    _typed.require_shape(op, y, x.shape)
    strides = dense_strides(x.shape)
    steps = [-s if d in axes else s for d, s in enumerate(strides)]
    base = sum((int(x.shape[d]) - 1) * strides[d] for d in axes)
    layer = ReverseV2(op, graph, inputs=(x.index,), outputs=(y.index,),
                      params={"axes": tuple(axes)})
    layer.set_steps([Nest.gather("input0", "output0", x.shape, steps, base)])
    return layer
