"""ELU: int8 -> int8 with per-tensor quantization, as TFLM's own 256-entry table.

TFLM: elu.cc PopulateLookupTable, in float32 at Prepare: for each int8 value x,
d = s_in * (x - zp_in); e = d < 0 ? expf(d) - 1 : d; q = (int32)(roundf(e * (1 / s_out))
+ zp_out), clamped to int8. Generation time repeats it with numpy float32 (expf as the
correctly rounded float32 of exp in double). Where the rounded value leaves the int32 range
the C++ cast is undefined (x86 gives INT32_MIN, Arm saturates); the table saturates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.model.ir import Graph, Operator
from codegen.ops._lut import LutLayer, elementwise_operands

OPCODES = ("ELU",)


@dataclass
class Elu(LutLayer):
    def function(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        s_in, s_out = np.float32(p["input_scale"]), np.float32(p["output_scale"])
        inverse_scale = np.float32(1) / s_out
        d = s_in * (x - int(p["input_zero_point"])).astype(np.float32)
        expf = np.exp(np.minimum(d, 0).astype(np.float64)).astype(np.float32)
        e = np.where(d < 0, expf - np.float32(1), d)
        scaled = (e.astype(np.float32) * inverse_scale).astype(np.float64)
        rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)  # roundf, exact in double
        q = np.float32(rounded) + np.float32(p["output_zero_point"])
        q = np.clip(np.trunc(q.astype(np.float64)), -(2**31), 2**31 - 1)
        return np.clip(q, -128, 127).astype(np.int64)

    def summary(self) -> str:
        return "ELU: TFLM's float32 table, computed at generation time"


def prepare(op: Operator, graph: Graph) -> Elu:
    x, y = elementwise_operands(op, graph)
    params: dict[str, object] = {"input_scale": x.quant.scale, "output_scale": y.quant.scale,
                                 "input_zero_point": x.quant.zero_point,
                                 "output_zero_point": y.quant.zero_point}
    return Elu(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
