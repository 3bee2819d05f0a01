"""L2_NORMALIZATION: int8 in/out over the last dimension, up to 4-D, no fused activation; the
output quantized as TFLM's arithmetic assumes (scale 1/128, zero point 0).

TFLM: l2norm.cc (rank <= 4, activation NONE, int8 or float32) and
reference_integer_ops::L2Normalization, per row of `depth` values:
    acc = sum (x - zp)^2                                (int32)
    m, s = GetInvSqrtQuantizedMultiplierExp(acc, -1)
    out = clamp(MultiplyByQuantizedMultiplier(x - zp, m, s + 7))
TFLM does not look at the output's quantization: the result is in units of 1/128 with zero
point 0, which the converter gives the output; other output quantizations would make it
meaningless and are refused. Rows longer than 2^31 / 255^2 could overflow the sum: refused.
The C computes the inverse square root per row (templates/runtime/inv_sqrt.c.j2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.model.ir import Graph, Operator
from codegen.ops import _typed
from codegen.ops._invsqrt import inv_sqrt_multiplier
from codegen.ops.base import Layer, unsupported

OPCODES = ("L2_NORMALIZATION",)
_TYPES = _typed.INT8
_OUTPUT_SCALE = 1.0 / 128.0
_MAX_DEPTH = quant.INT32_MAX // (255 * 255)


@dataclass
class L2Normalization(Layer):
    runtime: ClassVar[tuple[str, ...]] = ("requantize", "clamp", "inv_sqrt")
    template: ClassVar[str] = "kernels/l2_normalization.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = inputs[0].astype(np.int64) - int(p["zero_point"])
        acc = (x * x).sum(axis=-1, keepdims=True)
        m, s = inv_sqrt_multiplier(acc, -1)
        out = quant.multiply_by_quantized_multiplier(x, m, s + 7)
        return [np.clip(out, -128, 127).astype(np.int8)]

    def macs(self) -> int:
        return 2 * self.out_tensor().size

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("rows", f"{p['rows']} of {p['depth']}")]


def prepare(op: Operator, graph: Graph) -> L2Normalization:
    _typed.input_count(op, 1)
    x = _typed.input_tensor(op, graph, 0, "input", _TYPES)
    y = _typed.output_tensor(op, graph, _TYPES)
    _typed.require_shape(op, y, x.shape)
    _typed.require_rank(op, x, 1, 4, "input")
    _typed.quantized(op, x, "input")
    _typed.quantized(op, y, "output")
    activation = str(op.options.get("fused_activation_function", "NONE"))
    if activation != "NONE":
        raise unsupported(op, f"fused activation {activation}; TFLM takes NONE only")
    if (float(np.float32(y.quant.scale)), y.quant.zero_point) != (_OUTPUT_SCALE, 0):
        raise unsupported(op, f"output '{y.name}' has scale {y.quant.scale:g} and zero point "
                          f"{y.quant.zero_point}; TFLM's arithmetic writes scale 1/128 and "
                          "zero point 0 whatever the output says")
    depth = int(x.shape[-1])
    if depth > _MAX_DEPTH:
        raise unsupported(op, f"{depth} values per row could overflow TFLM's int32 sum")
    params: dict[str, object] = {"zero_point": x.quant.zero_point, "depth": depth,
                                 "rows": x.size // depth}
    return L2Normalization(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
