"""ABS, RSQRT: int8 -> int8 with per-tensor quantization, as a 256-entry table.

TFLM: elementwise.cc, PrepareAbsRsqrt and AbsEvalQuantized / RsqrtEvalQuantized.
- ABS: |x - zp_in|; when the input and output scales differ (float32 comparison),
  MultiplyByQuantizedMultiplier by QuantizeMultiplier(double(s_in / s_out)) (the ratio
  in float32); plus zp_out, clamped.
- RSQRT: the multiplier is QuantizeMultiplier(1 / double(sqrtf(s_in) * s_out)) (the product
  in float32). For v = x - zp_in > 0: GetInvSqrtQuantizedMultiplierExp(v, -1) gives (m, s),
  then MBQM(MBQM(1, m, s + 20), multiplier, shift - 20) + zp_out, clamped; v = 0 gives 127.
  TFLM fails the whole invoke when an input lies below its zero point (a negative real
  value); the generated code writes 127 there, as for 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen import quant
from codegen.model.ir import Graph, Operator
from codegen.ops._binary import multiplier
from codegen.ops._invsqrt import inv_sqrt_multiplier
from codegen.ops._lut import LutLayer, elementwise_operands

OPCODES = ("ABS", "RSQRT")
_RSQRT_SHIFT = 20  # TFLM's kShift "to keep value integer"
_REVERSE_SHIFT = -1


@dataclass
class AbsRsqrt(LutLayer):
    def function(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        value = x - int(p["input_zero_point"])
        if self.opcode == "ABS":
            out = np.abs(value)
            if p["rescale"]:
                out = quant.multiply_by_quantized_multiplier(out, int(p["multiplier"]),
                                                             int(p["shift"]))
            return np.clip(out + int(p["output_zero_point"]), -128, 127)
        m, s = inv_sqrt_multiplier(np.maximum(value, 0), _REVERSE_SHIFT)
        data = quant.multiply_by_quantized_multiplier(np.ones_like(value), m, s + _RSQRT_SHIFT)
        out = quant.multiply_by_quantized_multiplier(data, int(p["multiplier"]),
                                                     int(p["shift"]) - _RSQRT_SHIFT)
        out = np.clip(out + int(p["output_zero_point"]), -128, 127)
        return np.where(value <= 0, 127, out)

    def summary(self) -> str:
        p = self.params
        if self.opcode == "ABS" and not p["rescale"]:
            return "ABS: |x - zero point| + output zero point (equal scales)"
        return f"{self.opcode}: multiplier {p['multiplier']} shift {p['shift']}"

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        if self.opcode == "ABS" and not p["rescale"]:
            return [("rescale", "none (equal scales)")]
        return [("multiplier", f"{p['multiplier']} shift {p['shift']}")]


def prepare(op: Operator, graph: Graph) -> AbsRsqrt:
    x, y = elementwise_operands(op, graph)
    s_in, s_out = np.float32(x.quant.scale), np.float32(y.quant.scale)
    params: dict[str, object] = {"input_zero_point": x.quant.zero_point,
                                 "output_zero_point": y.quant.zero_point,
                                 "rescale": bool(s_in != s_out), "multiplier": 0, "shift": 0}
    if op.opcode == "ABS":
        if params["rescale"]:
            real = float(np.float32(s_in / s_out))
            params["multiplier"], params["shift"] = multiplier(op, real, "output multiplier")
    else:
        # sqrt(input scale) x output scale in float32, as TFLM: it may underflow to 0
        denominator = float(np.float32(np.sqrt(s_in) * s_out))
        real = 1.0 / denominator if denominator else float("inf")
        params["multiplier"], params["shift"] = multiplier(
            op, real, f"output multiplier 1 / (sqrt('{x.name}' scale) x '{y.name}' scale)")
    return AbsRsqrt(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
