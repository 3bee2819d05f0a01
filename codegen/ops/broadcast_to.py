"""BROADCAST_TO: int8, int32 or bool in/out (int8 quantized alike), up to 5-D, a constant
int32 or int64 shape the input broadcasts to (each input dimension 1 or equal, leading ones
added).

TFLM: broadcast_to.cc. Prepare: at most 5 dimensions, a constant 1-D int32/int64 shape equal
to the output's, every input dimension 1 or the shape's; Eval (reference_ops::BroadcastTo)
copies with the broadcast dimensions repeated. Here: one gather nest with step 0 along them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _typed
from codegen.ops._copy import CopyLayer, Nest, dense_strides
from codegen.ops.base import unsupported

OPCODES = ("BROADCAST_TO",)
MAX_DIMS = 5
_TYPES = (DType.INT8, DType.INT32, DType.BOOL)


@dataclass
class BroadcastTo(CopyLayer):
    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        n = inputs[0].shape[0]
        x = inputs[0].reshape(n, *self.params["extended"])  # type: ignore[misc]
        return [np.ascontiguousarray(np.broadcast_to(x, (n, *self.out_tensor().shape)))]

    def describe(self) -> list[tuple[str, str]]:
        return [("shape", f"{list(self.in_tensor().shape)} -> {list(self.out_tensor().shape)}")]


def prepare(op: Operator, graph: Graph) -> BroadcastTo:
    _typed.input_count(op, 2)
    x = _typed.input_tensor(op, graph, 0, "input", _TYPES)
    y = _typed.output_tensor(op, graph, (x.dtype,))
    _typed.same_quantization(op, [x, y], "BROADCAST_TO copies values and cannot requantize")
    shape = _typed.constant_values(op, graph, 1, "shape")
    if shape.ndim != 1:
        raise unsupported(op, f"shape must be 1-D, found {list(shape.shape)}")
    rank = shape.size
    if not len(x.shape) <= rank <= MAX_DIMS:
        raise unsupported(op, f"broadcasting {len(x.shape)}-D to {rank}-D; TFLM takes up to "
                          f"{MAX_DIMS}-D and no fewer dimensions than the input")
    extended = (1,) * (rank - len(x.shape)) + tuple(x.shape)
    for d, (a, b) in enumerate(zip(extended, shape.tolist(), strict=True)):
        if a not in (1, b):
            raise unsupported(op, f"input shape {list(x.shape)} does not broadcast to "
                              f"{shape.tolist()} (dimension {d})")
    _typed.require_shape(op, y, shape.tolist())
    strides = dense_strides(extended)
    steps = [0 if a == 1 else s for a, s in zip(extended, strides, strict=True)]
    layer = BroadcastTo(op, graph, inputs=(x.index,), outputs=(y.index,),
                        params={"extended": extended})
    layer.set_steps([Nest.gather("input0", "output0", y.shape, steps)])
    return layer
