"""NEG: float32 only (as in TFLM), between a DEQUANTIZE and a QUANTIZE, as TensorFlow's
converter writes the mean of LayerNormalization; the three run as one int8 -> int8 table.

TFLM: neg.cc has float32 only, so the converter surrounds it with DEQUANTIZE and QUANTIZE.
codegen/fuse.py folds DEQUANTIZE -> NEG -> QUANTIZE into this operator on the int8 tensors
before validation (the float tensors in between disappear), and the table is TFLM's float
arithmetic run at generation time on all 256 inputs: Dequantize (float)(double(s_in) *
(q - zp_in)), the exact float negation, AffineQuantize (float division by s_out, rounding
half away from zero, zp_out added, clamped). No float code reaches the C. Any other NEG
(int8, as TFLM has none; float elsewhere in a graph) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops._lut import LutLayer
from codegen.ops.base import unsupported
from codegen.ops.quantize import quantize_float

OPCODES = ("NEG",)
# The options key the folding gives the operator (no flatbuffer option has a dot in its name).
FOLDED = "codegen.dequantize_quantize"


@dataclass
class FoldedNeg(LutLayer):
    def function(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        real = (float(p["input_scale"]) * (x - int(p["input_zero_point"])).astype(np.float64))
        negated = -real.astype(np.float32)
        return quantize_float(negated, float(p["output_scale"]), int(p["output_zero_point"]),
                              -128, 127).astype(np.int64)

    def summary(self) -> str:
        return "NEG between a DEQUANTIZE and a QUANTIZE, as TFLM's float arithmetic"

    def describe(self) -> list[tuple[str, str]]:
        return [("fused", "DEQUANTIZE -> NEG (float) -> QUANTIZE as one int8 table")]


def prepare(op: Operator, graph: Graph) -> FoldedNeg:
    if FOLDED not in op.options:
        x = graph.tensors[op.inputs[0]] if op.inputs and op.inputs[0] >= 0 else None
        kind = x.dtype_name if x is not None else "missing"
        raise unsupported(op, f"{kind} NEG: TFLM's NEG is float-only, which codegen runs only "
                          "between a DEQUANTIZE and a QUANTIZE (as the converter writes it)")
    if len(op.inputs) != 1 or len(op.outputs) != 1:
        raise unsupported(op, "expected 1 input and 1 output")
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    for t, role in ((x, "input"), (y, "output")):
        if t.dtype is not DType.INT8 or t.quant is None or t.quant.per_channel:
            raise unsupported(op, f"{role} '{t.name}' must be int8 quantized per tensor")
    if x.shape != y.shape:
        raise unsupported(op, f"input shape {list(x.shape)} differs from output shape "
                          f"{list(y.shape)}")
    params: dict[str, object] = {"input_scale": x.quant.scale,
                                 "input_zero_point": x.quant.zero_point,
                                 "output_scale": y.quant.scale,
                                 "output_zero_point": y.quant.zero_point}
    return FoldedNeg(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
