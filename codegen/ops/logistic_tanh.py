"""LOGISTIC and TANH, int8 -> int8, as a 256-entry table.

TFLM: CalculateArithmeticOpDataLogistic (logistic_common.cc) and tanh.cc's
CalculateArithmeticOpData prepare, reference_integer_ops::Logistic / Tanh evaluate:
  - input real multiplier = input_scale * 2**27 (the input becomes Q4.27), split by frexp
    into a Q31 multiplier (TfLiteRound(q * 2**31), not QuantizeMultiplier) and a left shift;
  - input_range_radius = CalculateInputRadius(4, shift, 31) = floor(15 * 2**27 / 2**shift):
    inputs (minus the zero point) at or below -radius give -128, at or above +radius 127;
  - otherwise MultiplyByQuantizedMultiplier to Q4.27, gemmlowp::logistic / tanh to Q0.31,
    RoundingDivideByPOT by 23 (logistic, then the -128 zero point) or 24 (tanh), clamp.

Quirks reproduced:
  - the output scale is never read: LOGISTIC's output is 1/256 with zero point -128 (TFLM
    checks the zero point only) and TANH's 1/128 with zero point 0 (TFLM checks neither);
  - when the radius is 0 (input scales of 2**4 and more) the `<= -radius` test comes first, so
    an input equal to the zero point gives -128.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from codegen import quant
from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _fixedpoint as fp
from codegen.ops._lut import LutLayer, elementwise_operands
from codegen.ops.base import unsupported

OPCODES = ("LOGISTIC", "TANH")
_INPUT_INTEGER_BITS = 4


@dataclass
class SigmoidTanh(LutLayer):
    def function(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        radius = int(p["input_range_radius"])
        value = x - int(p["input_zero_point"])
        inside = (value > -radius) & (value < radius)
        # Outside the radius the multiplication could overflow; TFLM never computes it there.
        q4 = quant.multiply_by_quantized_multiplier(np.where(inside, value, 0),
                                                    int(p["input_multiplier"]),
                                                    int(p["input_left_shift"]))
        if self.opcode == "LOGISTIC":
            q0 = fp.logistic(q4, _INPUT_INTEGER_BITS)
            out = fp.rdbp(q0, 31 - 8) - 128
        else:
            q0 = fp.tanh(q4, _INPUT_INTEGER_BITS)
            out = fp.rdbp(q0, 31 - 7)
        out = np.clip(out, -128, 127)
        return np.where(value <= -radius, -128, np.where(value >= radius, 127, out))

    def summary(self) -> str:
        p = self.params
        return (f"{self.opcode}: input multiplier {p['input_multiplier']} shift "
                f"{p['input_left_shift']}, radius {p['input_range_radius']}")

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("input multiplier", f"{p['input_multiplier']} shift {p['input_left_shift']}"),
                ("input range radius", str(p["input_range_radius"]))]


def input_scaling(op: Operator, input_scale: float, integer_bits: int) -> tuple[int, int, int]:
    """(multiplier, left shift, range radius) of an input on Q(integer_bits), as TFLM's
    LOGISTIC / TANH Prepare compute them (frexp and TfLiteRound, CalculateInputRadius)."""
    real = float(np.float32(input_scale)) * float(1 << (31 - integer_bits))
    q, shift = math.frexp(real)
    multiplier = quant.round_half_away(q * (1 << 31))
    # frexp's exponent feeds `1LL << shift` in CalculateInputRadius: outside [0, 62] that
    # shift is undefined in C, so TFLM's result would depend on the platform.
    if not 0 <= shift <= 62 or multiplier >= 1 << 31:
        raise unsupported(op, f"input scale {input_scale:g} is out of the range TFLM's "
                          f"fixed-point {op.opcode} handles")
    max_rescaled = ((1 << integer_bits) - 1) * float(1 << (31 - integer_bits)) / float(1 << shift)
    return multiplier, shift, math.floor(max_rescaled)


def prepare(op: Operator, graph: Graph) -> SigmoidTanh:
    x, y = elementwise_operands(op, graph)
    if op.opcode == "LOGISTIC" and y.quant.zero_point != -128:
        raise unsupported(op, f"output zero point must be -128, found {y.quant.zero_point}")
    multiplier, shift, radius = input_scaling(op, x.quant.scale, _INPUT_INTEGER_BITS)
    params: dict[str, object] = {
        "input_zero_point": x.quant.zero_point,
        "input_multiplier": multiplier,
        "input_left_shift": shift,
        "input_range_radius": radius,
    }
    return SigmoidTanh(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


KERNELS = {DType.INT8: prepare}


# -- numerics modes litert-ref and litert (codegen/numerics.py) ------------------------------

def litert_ref(layer: SigmoidTanh) -> SigmoidTanh:
    """LiteRT's reference LOGISTIC and TANH (the fixed-point kernels) compute TFLM's
    arithmetic, but LiteRT's LOGISTIC fails to prepare unless its output is 1/256 with zero
    point -128; TFLM's quirk on other output scales (never read) is not LiteRT's, and TANH
    with another output than 1/128 and zero point 0 has not been checked against it."""
    from codegen.ops import _litert

    y = layer.out_tensor()
    wanted = (1 / 256, -128) if layer.opcode == "LOGISTIC" else (1 / 128, 0)
    if (np.float32(y.quant.scale), y.quant.zero_point) != (np.float32(wanted[0]), wanted[1]):
        raise _litert.refuse(layer, "litert-ref", f"LiteRT's {layer.opcode} takes an output "
                             f"scale of {wanted[0]:g} and zero point {wanted[1]} only")
    return layer


@dataclass
class SigmoidTanhXnnpack(LutLayer):
    """XNNPACK's int8 LOGISTIC and TANH: a table built by its reference operator on every int8
    value: x = (float(q) - zp_in) * s_in in float32; sigmoid as e / (1 + e) with e = exp(x)
    in double (0 below -100, 1 above 100), tanh in float; then nearbyint(y * (1 / s_out) +
    zp_out) in float32, clamped. The table is computed here (Python's libm `exp`, `tanh`),
    never in the C; a TANH whose table depends on the last bits of tanhf is refused
    (`stable`)."""

    def function(self, x: np.ndarray) -> np.ndarray:
        return self._values()[np.asarray(x, dtype=np.int64) + 128]

    def _values(self, ulps: int = 0) -> np.ndarray:
        """The outputs for the inputs -128 ... 127, the float result moved by `ulps` units
        in the last place (`stable`)."""
        p = self.params
        f32 = np.float32
        scale, zp_in = f32(p["input_scale"]), f32(p["input_zero_point"])
        inv, zp_out = f32(1.0) / f32(p["output_scale"]), f32(p["output_zero_point"])
        out = np.empty(256, dtype=np.int64)
        for i, q in enumerate(range(-128, 128)):
            v = (f32(q) - zp_in) * scale
            if self.opcode == "LOGISTIC":
                if v > 100:
                    r = f32(1.0)
                elif v < -100:
                    r = f32(0.0)
                else:
                    e = math.exp(float(v))
                    r = f32(e / (1.0 + e))
            else:
                r = f32(math.tanh(float(v)))
            for _ in range(abs(ulps)):
                r = np.nextafter(r, f32(np.inf if ulps > 0 else -np.inf))
            y = np.rint(f32(r * inv) + zp_out)
            out[i] = int(min(max(y, f32(-128.0)), f32(127.0)))
        return out

    def stable(self) -> bool:
        """Whether the table is the same with the float result off by 2 units in the last
        place either way. TANH's is the C library's tanhf, which is not correctly rounded (and
        which one LiteRT was linked with is not known here), so an entry near a rounding tie
        cannot be promised. LOGISTIC's is a double exp (glibc's is within 0.502 units in the
        last place of double) rounded to float32 after a double division: settled."""
        if self.opcode == "LOGISTIC":
            return True
        table = self._values()
        return all(np.array_equal(table, self._values(u)) for u in (-2, -1, 1, 2))


def litert(layer: SigmoidTanh) -> SigmoidTanhXnnpack:
    """LiteRT's default interpreter: XNNPACK takes int8 LOGISTIC and TANH."""
    x, y = layer.in_tensor(), layer.out_tensor()
    params = {"input_scale": float(x.quant.scale), "input_zero_point": x.quant.zero_point,
              "output_scale": float(y.quant.scale), "output_zero_point": y.quant.zero_point}
    adapted = SigmoidTanhXnnpack(layer.op, layer.graph, inputs=layer.inputs,
                                 outputs=layer.outputs, params=params)
    if not adapted.stable():
        from codegen.ops import _litert

        raise _litert.refuse(layer, "litert", "an entry of XNNPACK's TANH table falls near a "
                             "rounding tie of the C library's tanhf")
    return adapted


NUMERICS = {"litert-ref": litert_ref, "litert": litert}
