"""LOGISTIC, TANH: int16 -> int16 (16x8), TFLM's table of sigmoid with linear interpolation.

TFLM: the int16 cases of CalculateArithmeticOpDataLogistic (logistic_common.cc) / TanhPrepare
and reference_integer_ops::Logistic / Tanh for int16:
  - Prepare: zero points 0, the output scale a power of two 2^-15 (CheckedLog2 in float32,
    within 1e-3), refused otherwise. The input is brought to the table's scale, 1/(3 * 4096)
    for LOGISTIC and twice that for TANH (tanh(x) = 2 sigmoid(2x) - 1): for an input scale of
    a power of two whose shift (15 - 3 + log2(scale)) is 0 (TANH: 0 or 1), multiplier
    3 << shift and no shift; otherwise the multiplier scale * 3 * 4096 doubled, with the shift
    counting the doublings, while it is at most 32767 / 2 (at most 31 times), truncated to int.
  - Eval: v = (x * multiplier + round) >> shift; |v| indexes the 256-entry table of
    sigmoid(i / 24) in Q0.16 by its high bits (|v| >> 9 for LOGISTIC, >> 8 for TANH) and the
    low bits interpolate linearly; from index 255 on the result saturates; the sign picks
    r or 1 - r; the result is shifted back to 16 bits (>> 10 for LOGISTIC, >> 8 for TANH).
The table (`SIGMOID_Q16`) holds TFLM's values, which are not exactly round(2^16 sigmoid(i/24))
(44 entries differ by one); they were read back from TFLM through TANH at the table's knots,
and tests/test_ops_int16.py reads them back again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.emit import render
from codegen.model.ir import DType, Graph, Operator
from codegen.ops._lut import elementwise_operands
from codegen.ops.base import CArray, Layer, require_zero_point_zero, unsupported

OPCODES = ("LOGISTIC", "TANH")

SIGMOID_Q16 = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
    40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
    47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
    53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
    60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
    62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
    64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
    65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
    65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
    65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
    65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
    65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535,
], dtype=np.int64)

_INPUT_INTEGER_BITS = 3
_OUTPUT_FRACTIONAL_BITS = 15
# Per opcode: the input shifts that count as a power-of-two scale, the bits below the table
# index (the interpolation), and the saturated result.
_POT_SHIFTS = {"LOGISTIC": (0,), "TANH": (0, 1)}
_INDEX_SHIFT = {"LOGISTIC": 9, "TANH": 8}
_SATURATED = {"LOGISTIC": 0x7FFF << 10, "TANH": 0xFFFF << 8}


def checked_log2(x: float) -> tuple[int, bool]:
    """TFLM's CheckedLog2 in float32: (rounded log2, whether x is within 1e-3 of 2^that)."""
    log2 = np.float32(np.float32(math.log(np.float32(x))) * np.float32(1.0 / math.log(2.0)))
    rounded = np.float32(math.copysign(math.floor(abs(float(log2)) + 0.5), float(log2)))
    return int(rounded), bool(abs(float(np.float32(log2 - rounded))) < 1e-3)


def input_scaling(op: Operator, scale: float) -> tuple[int, int]:
    """(multiplier, left shift) as the int16 Prepare computes them, with Eval's rewrite of
    the power-of-two case (multiplier 0) already applied."""
    log2, pot = checked_log2(scale)
    shift = (15 - _INPUT_INTEGER_BITS) + log2
    if pot and shift in _POT_SHIFTS[op.opcode]:
        return 3 << shift, 0
    multiplier = float(np.float32(scale)) * 4096.0 * 3.0
    shift = 0
    while multiplier <= 32767.0 / 2.0 and shift <= 30:
        shift += 1
        multiplier *= 2.0
    if not 1.0 <= multiplier <= 32767.0:
        # TFLM DCHECKs the multiplier against 32767; beyond it x * multiplier could
        # overflow, and a multiplier of 0 would be taken for the power-of-two case.
        raise unsupported(op, f"input scale {scale:g} is outside the range TFLM's int16 "
                              f"{op.opcode} handles (multiplier {multiplier:g})")
    return int(multiplier), shift


def interpolate(x: np.ndarray, opcode: str, multiplier: int, shift: int) -> np.ndarray:
    """TFLM's int16 Logistic (opcode "LOGISTIC") or Tanh ("TANH") of int64-held int16
    values, the input brought to the table's scale by (x * multiplier + round) >> shift."""
    rounding = (1 << (shift - 1)) if shift > 0 else 0
    v = (x * multiplier + rounding) >> shift
    magnitude = np.abs(v)
    index_shift = _INDEX_SHIFT[opcode]
    high = magnitude >> index_shift
    low = magnitude & ((1 << index_shift) - 1)
    inside = high < 255
    index = np.where(inside, high, 0)
    a, b = SIGMOID_Q16[index], SIGMOID_Q16[index + 1]
    result = np.where(inside, (a << index_shift) + low * (b - a), _SATURATED[opcode])
    if opcode == "LOGISTIC":
        result = np.where(v >= 0, result + (1 << 9), (1 << 25) - result + (1 << 9) - 1) >> 10
    else:
        result = np.where(v >= 0, result - (1 << 23) + (1 << 7),
                          -result + (1 << 23) + (1 << 7) - 1) >> 8
    # TFLM stores the int32 result into int16 as C narrows it.
    return ((result + 32768) & 0xFFFF) - 32768


@dataclass
class SigmoidTanhInt16(Layer):
    template: ClassVar[str] = "kernels/logistic_tanh_int16.c.j2"

    def function(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        return interpolate(x, self.opcode, int(p["input_multiplier"]),
                           int(p["input_left_shift"]))

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        out = self.function(inputs[0].astype(np.int64))
        return [out.astype(np.int16).reshape(inputs[0].shape[0], *self.out_tensor().shape)]

    def constants(self) -> list[CArray]:
        return [CArray("sigmoid", SIGMOID_Q16.astype(np.uint16))]

    def inplace_inputs(self) -> tuple[int, ...]:
        return (0,)

    def kernel(self, symbol: str) -> str:
        return render(self.template, fn=symbol, layer=self, count=self.out_tensor().size,
                      index_shift=_INDEX_SHIFT[self.opcode], **self.params)

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("input multiplier", f"{p['input_multiplier']} shift {p['input_left_shift']}")]


def prepare(op: Operator, graph: Graph) -> SigmoidTanhInt16:
    x, y = elementwise_operands(op, graph, DType.INT16)
    require_zero_point_zero(op, x, "input")
    require_zero_point_zero(op, y, "output")
    log2, pot = checked_log2(y.quant.scale)
    if not pot or log2 != -_OUTPUT_FRACTIONAL_BITS:
        raise unsupported(op, f"output scale {y.quant.scale:g} must be 2^-15 (TFLM's int16 "
                              f"{op.opcode} requires it)")
    multiplier, shift = input_scaling(op, x.quant.scale)
    params: dict[str, object] = {"input_multiplier": multiplier, "input_left_shift": shift}
    return SigmoidTanhInt16(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


KERNELS = {DType.INT16: prepare}


# -- numerics modes litert-ref and litert (codegen/numerics.py) ------------------------------

def _power_of_two(layer: Layer) -> bool:
    """Whether the int16 Prepare took the power-of-two input scale branch (multiplier 0)."""
    log2, pot = checked_log2(layer.in_tensor().quant.scale)
    return pot and (15 - _INPUT_INTEGER_BITS) + log2 in _POT_SHIFTS[layer.opcode]


def _litert_checks(layer: Layer, mode: str) -> None:
    """LiteRT's Prepare takes TFLM's layers, save an int16 LOGISTIC whose output scale is not
    exactly 1/32768 (TFLM's CheckedLog2 admits 2^-15 within 1e-3)."""
    from codegen.ops import _litert

    if layer.opcode == "LOGISTIC" and np.float32(layer.out_tensor().quant.scale) != 1 / 32768:
        raise _litert.refuse(layer, mode, "LiteRT fails to prepare an int16 LOGISTIC whose "
                             "output scale is not exactly 1/32768")


def litert_ref(layer: Layer) -> Layer:
    """LiteRT's reference kernels: reference_integer_ops::Logistic and Tanh, TFLM's."""
    _litert_checks(layer, "litert-ref")
    return layer


@dataclass
class SigmoidTanhInt16Gemmlowp(SigmoidTanhInt16):
    """LiteRT's optimized int16 LOGISTIC and TANH (optimized_ops::Logistic / Tanh) of a
    power-of-two input scale: the input read as gemmlowp's FixedPoint<int16_t, 3> (TANH of
    scale 2^-11 first doubled, saturating), then gemmlowp's logistic or tanh in 16-bit fixed
    point (exp by a Taylor polynomial and a barrel shifter, the reciprocal by three
    Newton-Raphson steps), the Q0.15 result as the output. TFLM interpolates its table."""

    template: ClassVar[str] = "kernels/logistic_tanh_int16_gemmlowp.c.j2"
    runtime: ClassVar[tuple[str, ...]] = ("clamp", "gemmlowp16")

    def function(self, x: np.ndarray) -> np.ndarray:
        from codegen.ops import _fixedpoint as fp

        if self.opcode == "LOGISTIC":
            return fp.logistic16(x, _INPUT_INTEGER_BITS)
        doubled = fp._pot16(x, 1) if self.params["double_input"] else x
        return fp.tanh16(doubled, _INPUT_INTEGER_BITS)

    def constants(self) -> list[CArray]:
        return []

    def describe(self) -> list[tuple[str, str]]:
        return [("arithmetic", "gemmlowp's 16-bit fixed point (LiteRT's optimized kernel)"
                 + (", input doubled" if self.params["double_input"] else ""))]


def litert(layer: Layer) -> Layer:
    """LiteRT's default interpreter (XNNPACK takes no int16): the builtin kernel runs the
    reference kernel, TFLM's, unless the input scale is a power of two (the multiplier 0
    branch), where it runs gemmlowp's 16-bit fixed-point logistic / tanh (above)."""
    _litert_checks(layer, "litert")
    if not _power_of_two(layer):
        return layer
    log2, _ = checked_log2(layer.in_tensor().quant.scale)
    params = {**layer.params, "double_input": (15 - _INPUT_INTEGER_BITS) + log2 == 1}
    return SigmoidTanhInt16Gemmlowp(layer.op, layer.graph, inputs=layer.inputs,
                                    outputs=layer.outputs, params=params)


NUMERICS = {"litert-ref": litert_ref, "litert": litert}
