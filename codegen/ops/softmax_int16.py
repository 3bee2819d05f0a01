"""SOFTMAX: over the last dimension, int16 -> int16 (16x8; output scale 2^-15, zero point 0),
any beta, with TFLM's exp and reciprocal lookup tables.

TFLM: the int16 case of CalculateSoftmaxParams (softmax_common.cc) and
reference_ops::SoftmaxInt16:
  - Prepare: zero points 0, the output scale within 0.001 / 32768 of 1 / 32768;
    QuantizeMultiplier(input_scale * beta / (10 / 65535)) in double, so that input - max in
    [-65535, 0] maps to [-10, 0]; two 513-entry tables by LUTPopulate<int16_t> (float32
    arithmetic): exp over [-10, 0] into [-1, 1), and 1 / (1 + x) over [0, 1];
  - Eval per row: the maximum; per value the scaled difference (MultiplyByQuantizedMultiplier,
    double rounding) plus 32767, saturated to int16, through the exp table (LUTLookup: the
    high 9 bits index, the low 7 interpolate), the exps summed in int32; the sum normalised
    by its leading zeros and rounded to 15 bits, minus 1.5 * 2^16, saturated, through the
    reciprocal table; each output (exp * reciprocal + round) >> (31 - leading zeros),
    clamped to [0, 32767].
Generation time builds both tables exactly as LUTPopulate does (float32 operations, the exp
correctly rounded to float32); the reference and the C read them. Rows of more than 65535
values are refused (the int32 sum of exps could overflow).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _fixedpoint as fp
from codegen.ops._binary import multiplier
from codegen.ops.base import (
    CArray,
    Layer,
    only_output,
    operand,
    require_dtype,
    require_per_tensor,
    require_zero_point_zero,
    unsupported,
)

OPCODES = ("SOFTMAX",)
_RANGE = 65535  # int16 max - int16 min
_MAX_DEPTH = 65535
_F = np.float32


def _round(x: np.float32) -> np.float32:
    """TfLiteRound on a float: half away from zero."""
    return _F(math.copysign(math.floor(abs(float(x)) + 0.5), float(x)))


def lut_populate(input_scale: np.float32, input_zero_point: int, output_scale: np.float32,
                 output_zero_point: int,
                 transform: Callable[[np.float32], np.float32]) -> np.ndarray:
    """TFLM's LUTPopulateInt16<float>: 512 samples, each corrected by half the error of
    linear interpolation at its midpoint, plus the value at the top of the input range."""
    input_min = _F(input_scale * _F(-32768 - input_zero_point))
    input_max = _F(input_scale * _F(32767 - input_zero_point))
    output_min = _F(output_scale * _F(-32768 - output_zero_point))
    output_max = _F(output_scale * _F(32767 - output_zero_point))
    steps = 512
    step = _F((input_max - input_min) / _F(steps))
    half_step = _F(step / _F(2))
    scaling_inv = _F(_F(65536) / _F(output_max - output_min))
    lut = np.zeros(steps + 1, dtype=np.int64)
    for i in range(steps):
        start = _F(input_min + _F(_F(i) * step))
        val = transform(start)
        val_midpoint = transform(_F(start + half_step))
        val_next = transform(_F(input_min + _F(_F(i + 1) * step)))
        sample = _round(_F(val * scaling_inv))
        interpolated = _round(_F(_F(_F(val_next * scaling_inv) + sample) / _F(2)))
        midpoint = _round(_F(val_midpoint * scaling_inv))
        bias = _round(_F(_F(interpolated - midpoint) / _F(2)))
        lut[i] = int(min(max(float(_F(sample - bias)), -32768.0), 32767.0))
    top = _round(_F(transform(input_max) * scaling_inv))
    lut[steps] = int(min(max(float(top), -32768.0), 32767.0))
    return lut


def _exp(value: np.float32) -> np.float32:
    return _F(math.exp(float(value)))  # std::exp(float), taken as correctly rounded


def _one_over_one_plus(value: np.float32) -> np.float32:
    return _F(_F(1) / _F(_F(1) + value))


def lut_lookup(value: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """TFLM's int16 LUTLookup: index 256 + (value >> 7), interpolated by the low 7 bits."""
    index = 256 + (value >> 7)
    offset = value & 0x7F
    base = lut[index]
    slope = lut[index + 1] - base
    return _wrap16(base + ((slope * offset + 64) >> 7))


def _wrap16(x: np.ndarray) -> np.ndarray:
    return ((x + 32768) & 0xFFFF) - 32768


@dataclass
class SoftmaxInt16(Layer):
    runtime: ClassVar[tuple[str, ...]] = ("clz32", "requantize", "clamp")
    template: ClassVar[str] = "kernels/softmax_int16.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        depth = int(p["depth"])
        x = inputs[0].astype(np.int64).reshape(-1, depth)
        diff = x - x.max(axis=1, keepdims=True)
        scaled = quant.multiply_by_quantized_multiplier(diff, int(p["input_multiplier"]),
                                                        int(p["input_shift"]))
        exps = lut_lookup(np.clip(quant.add_int32(scaled, 32767), -32768, 32767), p["exp_lut"])
        sums = exps.sum(axis=1, keepdims=True)
        headroom_plus_one = fp.count_leading_zeros(sums)
        shifted = ((sums << (headroom_plus_one - 1)) + (1 << 13)) >> 14
        reciprocal = lut_lookup(np.clip(shifted - ((1 << 15) + (1 << 16)), -32768, 32767),
                                p["reciprocal_lut"])
        right = 31 - headroom_plus_one
        out = (exps * reciprocal + (np.int64(1) << (right - 1))) >> right
        return [np.clip(out, 0, 32767).astype(np.int16).reshape(inputs[0].shape)]

    def constants(self) -> list[CArray]:
        p = self.params
        return [CArray("exp", np.asarray(p["exp_lut"]).astype(np.int16)),
                CArray("reciprocal", np.asarray(p["reciprocal_lut"]).astype(np.int16))]

    def inplace_inputs(self) -> tuple[int, ...]:
        # A row is read whole (maximum) before its first write; then element c is read
        # before its exp is written there (TFLM caches the exps in the output).
        return (0,)

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("beta", f"{p['beta']:g}"),
                ("input multiplier", f"{p['input_multiplier']} shift {p['input_shift']}"),
                ("rows", f"{p['outer']} x {p['depth']}")]


def prepare(op: Operator, graph: Graph) -> SoftmaxInt16:
    x = operand(op, graph, 0, "input")
    y = only_output(op, graph)
    require_dtype(op, x, (DType.INT16,), "input")
    require_dtype(op, y, (DType.INT16,), "output")
    if x.is_constant:
        raise unsupported(op, "a constant input is not supported")
    for tensor, role in ((x, "input"), (y, "output")):
        require_per_tensor(op, tensor, role)
        require_zero_point_zero(op, tensor, role)
    if not x.shape or tuple(x.shape) != tuple(y.shape):
        raise unsupported(op, f"input shape {list(x.shape)} and output shape {list(y.shape)} "
                          "must be equal and not scalar")
    target = _F(1) / _F(32768)
    if abs(_F(y.quant.scale) - target) > _F(0.001) * target:
        raise unsupported(op, f"output scale {y.quant.scale:g} must be 1/32768 (TFLM's int16 "
                          "SOFTMAX requires it)")
    depth = int(x.shape[-1])
    if depth > _MAX_DEPTH:
        raise unsupported(op, f"rows of {depth} values are not supported (at most "
                          f"{_MAX_DEPTH}: the int32 sum of exps could overflow)")
    beta = float(np.float32(op.options.get("beta", 0.0)))
    real = float(np.float32(x.quant.scale)) * beta / (10.0 / 65535.0)
    input_multiplier, input_shift = multiplier(op, real, "input multiplier")
    params: dict[str, object] = {
        "beta": beta,
        "input_multiplier": input_multiplier,
        "input_shift": input_shift,
        "depth": depth,
        "outer": x.size // depth,
        "exp_lut": lut_populate(_F(_F(10) / _F(_RANGE)), 32767, _F(_F(2) / _F(_RANGE)), 0,
                                _exp),
        "reciprocal_lut": lut_populate(_F(_F(1) / _F(_RANGE)), -32768,
                                       _F(_F(2) / _F(_RANGE)), 0, _one_over_one_plus),
    }
    return SoftmaxInt16(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


KERNELS = {DType.INT16: prepare}


# -- numerics modes litert-ref and litert (codegen/numerics.py) ------------------------------

def _round_double(x: float) -> float:
    """TfLiteRound on a double (std::round: half away from zero), exactly."""
    a = abs(x)
    r = math.floor(a)
    if a - r >= 0.5:
        r += 1.0
    return math.copysign(r, x)


def lut_populate_double(input_scale: float, input_zero_point: int, output_scale: float,
                        output_zero_point: int, transform: Callable[[float], float]
                        ) -> np.ndarray:
    """LiteRT's LUTPopulateInt16<double> (the deprecated overload its int16 SOFTMAX still
    calls): `lut_populate`'s steps in double precision."""
    input_min = input_scale * float(-32768 - input_zero_point)
    input_max = input_scale * float(32767 - input_zero_point)
    output_min = output_scale * float(-32768 - output_zero_point)
    output_max = output_scale * float(32767 - output_zero_point)
    steps = 512
    step = (input_max - input_min) / steps
    half_step = step / 2
    scaling_inv = 65536.0 / (output_max - output_min)
    lut = np.zeros(steps + 1, dtype=np.int64)
    for i in range(steps):
        val = transform(input_min + i * step)
        val_midpoint = transform(input_min + i * step + half_step)
        val_next = transform(input_min + (i + 1) * step)
        sample = _round_double(val * scaling_inv)
        interpolated = _round_double((val_next * scaling_inv + sample) / 2)
        midpoint = _round_double(val_midpoint * scaling_inv)
        bias = _round_double((interpolated - midpoint) / 2)
        lut[i] = int(min(max(sample - bias, -32768.0), 32767.0))
    top = _round_double(transform(input_max) * scaling_inv)
    lut[steps] = int(min(max(top, -32768.0), 32767.0))
    return lut


def litert(layer: SoftmaxInt16) -> SoftmaxInt16:
    """LiteRT's int16 SOFTMAX (both modes: XNNPACK takes no int16; the builtin kernel is
    reference_ops::SoftmaxInt16, TFLM's Eval) with its own Prepare: both tables built in
    double precision (LUTPopulate<int16_t> on doubles, std::exp of a double) where TFLM
    builds them in float32, and the input multiplier of input_scale * beta multiplied in
    float32 (both operands are float) before the double division by 10 / 65535."""
    x = layer.in_tensor()
    beta = np.float32(layer.params["beta"])
    real = float(_F(x.quant.scale) * beta) / (10.0 / 65535.0)
    input_multiplier, input_shift = multiplier(layer.op, real, "input multiplier")
    params = {**layer.params, "input_multiplier": input_multiplier, "input_shift": input_shift,
              "exp_lut": lut_populate_double(10.0 / _RANGE, 32767, 2.0 / _RANGE, 0, math.exp),
              "reciprocal_lut": lut_populate_double(1.0 / _RANGE, -32768, 2.0 / _RANGE, 0,
                                                    lambda v: 1.0 / (1.0 + v))}
    return SoftmaxInt16(layer.op, layer.graph, inputs=layer.inputs, outputs=layer.outputs,
                        params=params)


NUMERICS = {"litert-ref": litert, "litert": litert}
