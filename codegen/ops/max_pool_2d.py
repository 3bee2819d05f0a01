"""MAX_POOL_2D: int8 or int16 in/out with equal quantization, SAME/VALID padding, any filter
size and strides, fused NONE/RELU/RELU6/RELU_N1_TO_1.

TFLM: reference_integer_ops::MaxPool (int8 and int16). The maximum starts at the type's
lowest value and runs over the in-bounds elements only (padding never wins), then is clamped
to the activation range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops._pool import PoolLayer, prepare_pool
from codegen.ops.base import RowAccess, window_rows

OPCODES = ("MAX_POOL_2D",)


@dataclass
class MaxPool2D(PoolLayer):
    template: ClassVar[str] = "kernels/max_pool_2d.c.j2"

    def row_access(self) -> RowAccess | None:
        # Images, output rows, pixels, channels; a pixel reads its window only.
        x, y, r = self.in_tensor(), self.out_tensor(), self.window.rows
        batches, h = int(x.shape[0]), int(x.shape[1])
        first = window_rows(batches, h, r.out, r.stride, r.pad)
        return RowAccess(x.nbytes // (batches * h), y.nbytes // (batches * r.out), first)

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        xs = self._padded(inputs, int(self.params["qmin"]))  # TFLM's starting maximum
        return self._finish(inputs, np.maximum.reduce(list(self._taps(xs))))


def _prepare(op: Operator, graph: Graph, dtype: DType) -> MaxPool2D:
    x, y, params = prepare_pool(op, graph, dtype)
    return MaxPool2D(op, graph, inputs=(x,), outputs=(y,), params=params)


def prepare_int8(op: Operator, graph: Graph) -> MaxPool2D:
    return _prepare(op, graph, DType.INT8)


def prepare_int16(op: Operator, graph: Graph) -> MaxPool2D:
    return _prepare(op, graph, DType.INT16)


KERNELS = {DType.INT8: prepare_int8, DType.INT16: prepare_int16}
