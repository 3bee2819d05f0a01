"""LOG_SOFTMAX over the last dimension: int8 in (any quantization), int8 out with TFLM's fixed
output quantization (scale 16/256, zero point 127).

TFLM: log_softmax.cc CalculateOpData (int8: output scale 16/256 and zero point 127 required;
PreprocessLogSoftmaxScalingExp(beta 1, s_in, 5): the input multiplier and left shift of
SOFTMAX, and the reverse scaling divisor QuantizeMultiplierSmallerThanOneExp(2^(31 - shift) /
multiplier); diff_min = -CalculateInputRadius(5, shift)) and reference_ops::LogSoftmax, per
row: the maximum; the Q12.19 sum of Rescale<12>(exp(MBQM(x - max))) over the differences >=
diff_min; its Q5.26 logarithm (log_x_for_x_greater_than_or_equal_to_1, codegen/ops/_log.py);
adjusted = max(diff_min - 1, MBQM(log + INT32_MIN, divisor, -shift)); then every difference
above `adjusted` gives clamp(RoundingDivideByPOT(MBQM(x - max) - log, 22) + 127) and the
others -128. Generation time tabulates MBQM(diff) and the exponential for the 256 possible
differences; the C keeps the row maximum, the sum, the logarithm and the rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.model.ir import Graph, Operator
from codegen.ops import _fixedpoint as fp
from codegen.ops import _scaling, _typed
from codegen.ops._log import log_x_ge_1
from codegen.ops.base import CArray, Layer, unsupported
from codegen.ops.softmax import greater_than_one_multiplier

OPCODES = ("LOG_SOFTMAX",)
_TYPES = _typed.INT8
_SCALED_DIFF_INTEGER_BITS = 5
_ACCUMULATION_INTEGER_BITS = 12
_OUTPUT_INTEGER_BITS = 4
_OUTPUT_SCALE = 16.0 / 256.0
_OUTPUT_ZERO_POINT = 127
_MAX_DEPTH = 4095  # the Q12.19 sum holds 4095 exps of 1


@dataclass
class LogSoftmax(Layer):
    runtime: ClassVar[tuple[str, ...]] = ("requantize", "clamp", "log_x")
    template: ClassVar[str] = "kernels/log_softmax.c.j2"

    def tables(self, diffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(MBQM(diff) in Q5.26, Rescale<12>(exp) in Q12.19) of differences <= 0; both 0 for
        differences below diff_min (never used: skipped from the sum and written as -128)."""
        p = self.params
        kept = diffs >= int(p["diff_min"])
        scaled = fp.srdhm(np.where(kept, diffs, 0) << int(p["input_left_shift"]),
                          int(p["input_multiplier"]))
        exps = fp.rdbp(fp.exp_on_negative_values(scaled, _SCALED_DIFF_INTEGER_BITS),
                       _ACCUMULATION_INTEGER_BITS)
        return np.where(kept, scaled, 0), np.where(kept, exps, 0)

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        depth = int(p["depth"])
        x = inputs[0].astype(np.int64).reshape(-1, depth)
        diff = x - x.max(axis=1, keepdims=True)
        scaled, exps = self.tables(diff)
        log_sum = log_x_ge_1(exps.sum(axis=1, keepdims=True))
        shifted = quant.wrap_int32(log_sum + quant.INT32_MIN)
        adjusted = np.maximum(int(p["diff_min"]) - 1, quant.multiply_by_quantized_multiplier(
            shifted, int(p["reverse_divisor"]), -int(p["reverse_right_shift"])))
        shift = 31 - _SCALED_DIFF_INTEGER_BITS - _OUTPUT_INTEGER_BITS
        out = fp.rdbp(quant.wrap_int32(scaled - log_sum), shift) + _OUTPUT_ZERO_POINT
        out = np.where(diff > adjusted, np.clip(out, -128, 127), -128)
        return [out.astype(np.int8).reshape(inputs[0].shape)]

    def constants(self) -> list[CArray]:
        scaled, exps = self.tables(-np.arange(256, dtype=np.int64))
        return [CArray("scaled", scaled.astype(np.int32)), CArray("exp", exps.astype(np.int32))]

    def inplace_inputs(self) -> tuple[int, ...]:
        return (0,)  # a row is read whole before its first write, then element by element

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("input multiplier", f"{p['input_multiplier']} shift {p['input_left_shift']}"),
                ("reverse divisor", f"{p['reverse_divisor']} shift -{p['reverse_right_shift']}"),
                ("diff_min", str(p["diff_min"]))]


def prepare(op: Operator, graph: Graph) -> LogSoftmax:
    _typed.input_count(op, 1)
    x = _typed.input_tensor(op, graph, 0, "input", _TYPES)
    y = _typed.output_tensor(op, graph, _TYPES)
    _typed.quantized(op, x, "input")
    _typed.quantized(op, y, "output")
    if not x.shape:
        raise unsupported(op, "the input is a scalar")
    _typed.require_shape(op, y, x.shape)
    if (float(np.float32(y.quant.scale)), y.quant.zero_point) != (_OUTPUT_SCALE,
                                                                   _OUTPUT_ZERO_POINT):
        raise unsupported(op, f"output must have scale 16/256 and zero point 127 (TFLM's), "
                          f"found {y.quant.scale:g} and {y.quant.zero_point}")
    depth = int(x.shape[-1])
    if depth > _MAX_DEPTH:
        raise unsupported(op, f"rows of {depth} values could overflow TFLM's Q12.19 sum")
    scale = float(np.float32(x.quant.scale))
    real = min(scale * float(1 << (31 - _SCALED_DIFF_INTEGER_BITS)), float((1 << 31) - 1))
    if not real > 1.0:
        raise unsupported(op, f"input scale * 2^26 = {real:g} must be above 1 (TFLM's "
                          "QuantizeMultiplierGreaterThanOne aborts otherwise)")
    multiplier, shift = greater_than_one_multiplier(real)
    reverse = (1 << (31 - shift)) / float(multiplier)
    divisor, divisor_shift = _scaling.multiplier_below_one(op, reverse, "reverse scaling")
    max_rescaled = (((1 << _SCALED_DIFF_INTEGER_BITS) - 1)
                    * float(1 << (31 - _SCALED_DIFF_INTEGER_BITS)) / float(1 << shift))
    params: dict[str, object] = {
        "input_multiplier": multiplier, "input_left_shift": shift,
        "reverse_divisor": divisor, "reverse_right_shift": -divisor_shift,
        "diff_min": -math.floor(max_rescaled), "depth": depth, "outer": x.size // depth,
        "output_shift": 31 - _SCALED_DIFF_INTEGER_BITS - _OUTPUT_INTEGER_BITS,
    }
    return LogSoftmax(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
