"""MUL: int8 or int16 in/out, numpy-style broadcasting up to 6-D (a constant operand and the same
tensor on both inputs included), fused NONE/RELU/RELU6/RELU_N1_TO_1.

TFLM: CalculateOpDataMul (mul_common.cc) and reference_integer_ops::MulElementwise /
BroadcastMul6DSlow. Prepare: QuantizeMultiplier(s1 * s2 / s_out) in double from the float32
scales (the shift may be positive). Per element
    out = clamp(MultiplyByQuantizedMultiplier((x1 - zp1) * (x2 - zp2), m, shift) + zp_out)
with the product (at most 256 * 256) exact in int32. int16 (16x8) is the same arithmetic
(MulElementwise / BroadcastMul6DSlow on int16, the product at most 2^30); TFLM requires zero
points of 0 there (validation requires them of every int16 tensor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.model.ir import DType, Graph, Operator
from codegen.ops._binary import (
    BinaryLayer,
    activation_bounds,
    activation_inputs,
    describe_levels,
    multiplier,
    prepare_binary,
)
from codegen.ops.base import require_zero_point_zero

OPCODES = ("MUL",)


@dataclass
class Mul(BinaryLayer):
    runtime: ClassVar[tuple[str, ...]] = ("requantize", "clamp")
    template: ClassVar[str] = "kernels/mul.c.j2"

    def combine(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        p = self.params
        product = (a + int(p["input1_offset"])) * (b + int(p["input2_offset"]))
        return quant.requantize(product, int(p["multiplier"]), int(p["shift"]),
                                int(p["output_offset"]), int(p["act_min"]), int(p["act_max"]))

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [
            ("activation", f"{p['activation']} -> clamp [{p['act_min']}, {p['act_max']}]"),
            ("multiplier", f"{p['multiplier']} shift {p['shift']}"),
            ("broadcast", describe_levels(p["levels"])),  # type: ignore[arg-type]
        ]


def _prepare(op: Operator, graph: Graph, dtype: DType) -> Mul:
    x1, x2, y, params = prepare_binary(op, graph, dtype)
    real = x1.quant.scale * x2.quant.scale / y.quant.scale
    mult, shift = multiplier(op, real, "output multiplier")
    activation, act_min, act_max = activation_bounds(op, y)
    params.update({
        "input1_offset": -x1.quant.zero_point,
        "input2_offset": -x2.quant.zero_point,
        "output_offset": y.quant.zero_point,
        "multiplier": mult, "shift": shift,
        "activation": activation, "act_min": act_min, "act_max": act_max,
    })
    return Mul(op, graph, inputs=activation_inputs(params["operands"]),  # type: ignore[arg-type]
               outputs=(y.index,), params=params)


def prepare_int8(op: Operator, graph: Graph) -> Mul:
    return _prepare(op, graph, DType.INT8)


def prepare_int16(op: Operator, graph: Graph) -> Mul:
    layer = _prepare(op, graph, DType.INT16)
    for position, t in enumerate((*(o.tensor for o in layer.operands), layer.out_tensor())):
        require_zero_point_zero(op, t, ("input1", "input2", "output")[position])
    return layer


def litert_ref(layer: Mul) -> Mul:
    """Numerics litert-ref: LiteRT's MUL Prepare computes the real multiplier in float32
    (s1 * s2 / s_out on the float scales, widened to double only at the end), TFLM's in
    double; the Eval (reference_integer_ops::Mul, int8 and int16) is the same."""
    x1, x2 = (o.tensor for o in layer.operands)
    y = layer.out_tensor()
    real = float(np.float32(np.float32(x1.quant.scale) * np.float32(x2.quant.scale))
                 / np.float32(y.quant.scale))
    mult, shift = multiplier(layer.op, real, "output multiplier")
    params = {**layer.params, "multiplier": mult, "shift": shift}
    return Mul(layer.op, layer.graph, inputs=layer.inputs, outputs=layer.outputs, params=params)


@dataclass
class MulXnnpack(Mul):
    """Numerics mode litert: XNNPACK's qs8 MUL (xnn_init_qs8_mul_minmax_scalar_params and its
    fp32 vmul microkernels): scale = (s1 * s2) / s_out in float32, then per element
    requantize_fp32((x1 - zp1) * (x2 - zp2)) with XNNPACK's bounds of the fused activation."""

    runtime: ClassVar[tuple[str, ...]] = ("requantize_fp32",)
    template: ClassVar[str] = "kernels/mul_xnnpack.c.j2"

    def combine(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        from codegen.ops import _requant

        p = self.params
        product = (a + int(p["input1_offset"])) * (b + int(p["input2_offset"]))
        return _requant.requantize_fp32(product, np.float32(p["xnn_scale"]),
                                        int(p["output_offset"]), int(p["act_min"]),
                                        int(p["act_max"]))

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [
            ("activation", f"{p['activation']} -> clamp [{p['act_min']}, {p['act_max']}] "
                           "(XNNPACK's bounds)"),
            ("scale", f"{p['fp32_scale']} (float32, XNNPACK)"),
            ("broadcast", describe_levels(p["levels"])),  # type: ignore[arg-type]
        ]


def litert(layer: Mul) -> Mul:
    """Numerics litert: XNNPACK takes an int8 MUL whose scale (s1 * s2) / s_out is in
    [2^-16, 2^8); LiteRT's builtin kernel (not reproduced) takes the other int8 ones, and
    every int16 one (reference_integer_ops::Mul, as in litert-ref)."""
    from codegen.emit import c_float
    from codegen.ops import _litert, _requant

    if layer.out_tensor().dtype is DType.INT16:  # XNNPACK takes no int16: LiteRT's kernel
        return litert_ref(layer)
    x1, x2 = (o.tensor for o in layer.operands)
    y = layer.out_tensor()
    scale = _requant.xnnpack_scale(x1.quant.scale, x2.quant.scale, y.quant.scale)
    if not np.float32(2.0 ** -16) <= scale < np.float32(256.0):
        raise _litert.refuse(layer, "litert", f"a product-to-output scale of {float(scale):g} "
                             "is outside XNNPACK's [2^-16, 2^8)")
    lo, hi = _requant.xnnpack_activation_bounds(str(layer.params["activation"]),
                                                y.quant.scale, y.quant.zero_point)
    params = {**layer.params, "xnn_scale": float(scale), "fp32_scale": c_float(float(scale)),
              "act_min": lo, "act_max": hi}
    return MulXnnpack(layer.op, layer.graph, inputs=layer.inputs, outputs=layer.outputs,
                      params=params)


KERNELS = {DType.INT8: prepare_int8, DType.INT16: prepare_int16}
NUMERICS = {"litert-ref": litert_ref, "litert": litert}
