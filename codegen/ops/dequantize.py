"""DEQUANTIZE: int8/uint8/int16 -> float32 (a model's float output).

TFLM: reference_ops::Dequantize computes (float)(double(scale) * (q - zero_point)). The
product of a float32 scale and an integer of at most 17 bits is exact in double, so rounding
it once to float equals the float32 product `(float)(q - zero_point) * scale`, which the C
uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops.base import Layer, only_output, operand, require_dtype, require_per_tensor

OPCODES = ("DEQUANTIZE",)
_TYPES = (DType.INT8, DType.UINT8, DType.INT16)


@dataclass
class Dequantize(Layer):
    template: ClassVar[str] = "kernels/dequantize.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        q = inputs[0].astype(np.int64) - int(p["zero_point"])
        return [(float(p["scale"]) * q.astype(np.float64)).astype(np.float32)]


def prepare(op: Operator, graph: Graph) -> Dequantize:
    x = operand(op, graph, 0, "input")
    y = only_output(op, graph)
    require_dtype(op, x, _TYPES, "input")
    require_dtype(op, y, (DType.FLOAT32,), "output")
    require_per_tensor(op, x, "input")
    params = {"count": x.size, "in_type": x.dtype.c_type, "scale": x.quant.scale,
              "zero_point": x.quant.zero_point}
    return Dequantize(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


KERNELS = dict.fromkeys(_TYPES, prepare)
