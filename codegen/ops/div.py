"""DIV: int8 (each input and the output with its own quantization) or int32 in/out,
numpy-style broadcasting up to 5-D (any rank when the shapes agree), a constant operand
included, fused NONE/RELU/RELU6/RELU_N1_TO_1.

TFLM: div.cc. int8: the multiplier QuantizeMultiplier(s1 / (s2 * s_out)) (the TFLM package
this project matches evaluates it in double, though its source reads as float32
arithmetic: the ties it decides say so), and per element (reference_ops::DivElementwise /
BroadcastDivSlowQuantized)
    v1 = x1 - zp1, v2 = x2 - zp2, both negated when v2 < 0
    r, rs = GetReciprocal(v2, 31)            (1 / v2 as a Q0.31 and a shift)
    h = CountLeadingSignBits(v1)
    q = SaturatingRoundingDoublingHighMul(v1 << h, r)
    out = clamp(zp_out + RoundingDivideByPOT(SRDHM(q, m), -(shift - rs - h)))
The generation time tabulates r and rs for the 256 divisors. TFLM shifts by 32 or more
(undefined in C++; x86 and Arm disagree) where shift - rs - h < -31, i.e. for small
dividends unless s1 / (s2 s_out) >= 2^(rs - 1): such models are refused. A divisor at its
zero point (a division by zero) is undefined in TFLM too; the generated code gives the
saturated output of the dividend's sign (the zero point for 0 / 0).
int32: a / b truncating, clamped to the activation range (CalculateActivationRange<int32>);
b = 0 gives 0 and INT32_MIN / -1 gives INT32_MIN where C++ has no answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _fixedpoint as fp
from codegen.ops import _typed
from codegen.ops._binary import activation_bounds, multiplier
from codegen.ops._elementwise import ElementwiseLayer, activation_inputs, prepare_elementwise
from codegen.ops.base import CArray, require_dtype, unsupported

OPCODES = ("DIV",)
_MAX_BROADCAST_RANK = 5
_TYPES = (DType.INT8, DType.INT32)
_INT32_ACTIVATIONS = {"NONE": (quant.INT32_MIN, quant.INT32_MAX), "RELU": (0, quant.INT32_MAX),
                      "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}


def reciprocal(v2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GetReciprocal(v2, 31): (Q0.31 reciprocal, shift) of positive int32 values."""
    v2 = np.asarray(v2, dtype=np.int64)
    headroom_plus_one = fp.count_leading_zeros(v2)
    shifted = quant.wrap_int32(((v2 << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return fp.one_over_one_plus_x_for_x_in_0_1(shifted), 31 - headroom_plus_one


def leading_sign_bits(v: np.ndarray) -> np.ndarray:
    """CountLeadingSignBits of int32 values (31 for 0, as __builtin_clrsb / TFLM)."""
    v = np.asarray(v, dtype=np.int64)
    magnitude = np.where(v < 0, ~v, v)
    return np.where(v == 0, 31, fp.count_leading_zeros(magnitude) - 1)


@dataclass
class Div(ElementwiseLayer):
    template: ClassVar[str] = "kernels/div.c.j2"

    @property  # type: ignore[override]
    def runtime(self) -> tuple[str, ...]:
        return ("requantize", "clamp") if self.params["quantized"] else ()

    def combine(self, values: list[np.ndarray]) -> np.ndarray:
        p = self.params
        a, b = values
        lo, hi = int(p["act_min"]), int(p["act_max"])
        if not p["quantized"]:
            safe = np.where(b == 0, 1, b)
            q = np.where(b == 0, 0, np.sign(a) * np.sign(safe) * (np.abs(a) // np.abs(safe)))
            return np.clip(quant.wrap_int32(q), lo, hi)
        v1, v2 = a - int(p["zero_point1"]), b - int(p["zero_point2"])
        v1 = np.where(v2 < 0, -v1, v1)
        v2 = np.abs(v2)
        inv, recip_shift = reciprocal(np.where(v2 == 0, 1, v2))
        headroom = leading_sign_bits(v1)
        unscaled = fp.srdhm(quant.wrap_int32(v1 << headroom), inv)
        exponent = -(int(p["shift"]) - recip_shift - headroom)
        exponent = np.clip(exponent, 0, 31)  # the generator checked the range where v1 != 0
        out = fp.rdbp(fp.srdhm(unscaled, int(p["multiplier"])), exponent)
        out = np.clip(quant.add_int32(out, int(p["output_zero_point"])), lo, hi)
        by_zero = np.where(v1 > 0, hi, np.where(v1 < 0, lo, np.clip(
            int(p["output_zero_point"]), lo, hi)))
        return np.where(v2 == 0, by_zero, out)

    def constants(self) -> list[CArray]:
        arrays = super().constants()
        if self.params["quantized"]:
            arrays += [CArray("reciprocal", np.asarray(self.params["reciprocals"], np.int32)),
                       CArray("reciprocal_shift",
                              np.asarray(self.params["reciprocal_shifts"], np.int8))]
        return arrays

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        if not p["quantized"]:
            return [("arithmetic", "int32, truncating"),
                    ("clamp", f"[{p['act_min']}, {p['act_max']}]")]
        return [("multiplier", f"{p['multiplier']} shift {p['shift']}"),
                ("reciprocals", "a table of the 256 divisors' GetReciprocal")]


def prepare(op: Operator, graph: Graph) -> Div:
    _typed.input_count(op, 2)
    x1 = _typed.input_tensor(op, graph, 0, "input1", _TYPES, constant=None)
    x2 = _typed.input_tensor(op, graph, 1, "input2", _TYPES, constant=None)
    require_dtype(op, x2, (x1.dtype,), "input2")
    y = _typed.output_tensor(op, graph, (x1.dtype,))
    params = prepare_elementwise(op, (x1, x2), y, _MAX_BROADCAST_RANK)
    params["quantized"] = x1.dtype is DType.INT8
    if x1.dtype is DType.INT32:
        activation = str(op.options.get("fused_activation_function", "NONE"))
        if activation not in _INT32_ACTIVATIONS:
            raise unsupported(op, f"fused activation {activation} is not supported")
        params["act_min"], params["act_max"] = _INT32_ACTIVATIONS[activation]
        return Div(op, graph, inputs=activation_inputs(params), outputs=(y.index,),
                   params=params)
    for t, role in ((x1, "input1"), (x2, "input2"), (y, "output")):
        _typed.quantized(op, t, role)
    _, params["act_min"], params["act_max"] = activation_bounds(op, y)
    s1, s2, so = (float(np.float32(t.quant.scale)) for t in (x1, x2, y))
    real = s1 / (s2 * so)  # in double: the TFLM this project matches rounds it once
    params["multiplier"], params["shift"] = multiplier(op, real, "output multiplier")
    zp1, zp2 = int(x1.quant.zero_point), int(x2.quant.zero_point)
    divisors = np.arange(-128, 128, dtype=np.int64) - zp2
    inv, recip_shift = reciprocal(np.where(divisors == 0, 1, np.abs(divisors)))
    dividends = np.arange(-128, 128, dtype=np.int64) - zp1
    headroom = leading_sign_bits(np.concatenate([dividends, -dividends]))
    valid = recip_shift[divisors != 0]
    lowest = int(params["shift"]) - int(valid.max()) - int(headroom.max())
    highest = int(params["shift"]) - int(valid.min()) - int(headroom.min())
    if lowest < -31 or highest > 0:
        raise unsupported(op, f"TFLM's int8 DIV arithmetic shifts by {-lowest} bits here "
                          "(undefined beyond 31; x86 and Arm disagree): its multiplier "
                          f"s1 / (s2 * s_out) = {real:g} is too small for these scales")
    params.update({"zero_point1": zp1, "zero_point2": zp2,
                   "output_zero_point": y.quant.zero_point,
                   "reciprocals": inv, "reciprocal_shifts": recip_shift,
                   "divisor_zero": 128 + zp2})
    return Div(op, graph, inputs=activation_inputs(params), outputs=(y.index,), params=params)
