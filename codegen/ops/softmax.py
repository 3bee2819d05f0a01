"""SOFTMAX over the last dimension, int8 -> int8 (output scale 1/256, zero point -128) or
int8 -> int16 (scale 1/65536, zero point -32768), any beta.

TFLM: SoftmaxPrepare / CalculateSoftmaxParams (softmax_common.cc) and the int8 path of
reference_ops::Softmax:
  - PreprocessSoftmaxScaling(beta, input_scale, 5): min(beta * input_scale * 2**26,
    2**31 - 1) in double, through QuantizeMultiplierGreaterThanOne (which aborts unless it
    is above 1) into a multiplier and a left shift;
  - diff_min = -CalculateInputRadius(5, left_shift) = -floor(31 * 2**26 / 2**left_shift);
  - per row: the maximum; for every input, diff = input - max; diffs below diff_min are
    skipped (output -128); the others are scaled to Q5.26 (MultiplyByQuantizedMultiplier-
    GreaterThanOne), gemmlowp's exp_on_negative_values gives Q0.31 and the row sum is
    accumulated in Q12.19 (Rescale<12>);
  - GetReciprocal: the sum shifted by its leading zeros, minus 1, one_over_one_plus_x;
  - output = RoundingDivideByPOT(reciprocal * exp, num_bits_over_unit + 31 - bits) plus the
    output type's minimum, clamped to it (bits: 8 for int8 output, 16 for int16).

Generation time tabulates exp_on_negative_values for the 256 possible diffs (0 for the
skipped ones: they then add 0 to the sum and come out as -128, as in TFLM); the C does the
row maximum, the sum, the reciprocal and the final rounding. The reference computes the
exponentials from the inputs, so the table is checked.

Limits: the Q12.19 sum overflows int32 beyond 4095 equal maxima, so rows longer than 4095
are refused. From 512 values on, a row whose exps sum to 512 or more makes the final
shift exceed 31 and TFLM abort (TFLITE_CHECK); the reference and the C then give the
limit of the rounding instead, -128 everywhere in the row (the quotient is below 1/2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.emit import c_float
from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _fixedpoint as fp
from codegen.ops.base import (
    CArray,
    Layer,
    only_output,
    operand,
    require_dtype,
    require_per_tensor,
    unsupported,
)

OPCODES = ("SOFTMAX",)
_SCALED_DIFF_INTEGER_BITS = 5
_ACCUMULATION_INTEGER_BITS = 12
_MAX_DEPTH = 4095  # the Q12.19 sum of exps holds 4095 exps of 1
_SAFE_DEPTH = 511  # up to here the final shift never exceeds 31


@dataclass
class Softmax(Layer):
    runtime: ClassVar[tuple[str, ...]] = ("fixedpoint", "clamp")
    template: ClassVar[str] = "kernels/softmax.c.j2"

    def exp_of_diffs(self, diff: np.ndarray) -> np.ndarray:
        """TFLM's exp of input - max (<= 0) in Q0.31; 0 where TFLM skips the diff."""
        p = self.params
        return _exps(diff, int(p["input_multiplier"]), int(p["input_left_shift"]),
                     int(p["diff_min"]))

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        depth = int(self.params["depth"])
        x = inputs[0].astype(np.int64).reshape(-1, depth)
        diff = x - x.max(axis=1, keepdims=True)
        exps = self.exp_of_diffs(diff)
        sums = fp.rescale(exps, 0, _ACCUMULATION_INTEGER_BITS).sum(axis=1, keepdims=True)
        # GetReciprocal
        headroom_plus_one = fp.count_leading_zeros(sums)
        num_bits_over_unit = _ACCUMULATION_INTEGER_BITS - headroom_plus_one
        shifted_sum_minus_one = ((sums << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
        reciprocal = fp.one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
        dtype = self.out_tensor().dtype
        exponent = num_bits_over_unit + 31 - 8 * dtype.itemsize
        # Beyond 31 (TFLM aborts there) numpy's shift still gives the rounding's limit, 0.
        out = fp.rdbp(fp.srdhm(reciprocal, exps), exponent) + dtype.qmin
        out = np.where(diff >= int(self.params["diff_min"]),
                       np.clip(out, dtype.qmin, dtype.qmax), dtype.qmin)
        return [out.astype(dtype.np).reshape(inputs[0].shape)]

    def constants(self) -> list[CArray]:
        p = self.params
        return [CArray("exp", _exp_table(int(p["input_multiplier"]), int(p["input_left_shift"]),
                                         int(p["diff_min"])))]

    def inplace_inputs(self) -> tuple[int, ...]:
        # Each row is read whole (maximum, sum) before its first write, and then element c
        # is read before it is written.
        return (0,)

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("beta", f"{p['beta']:g}"),
                ("input multiplier", f"{p['input_multiplier']} shift {p['input_left_shift']}"),
                ("diff_min", str(p["diff_min"])),
                ("rows", f"{p['outer']} x {p['depth']}")]


@lru_cache(maxsize=1024)
def _exp_table(multiplier: int, left_shift: int, diff_min: int) -> np.ndarray:
    """The exps of the diffs 0, -1, ..., -255 (read-only): computed once per set of
    parameters (a table costs the fixed-point arithmetic on 256 values, and a model often
    repeats a softmax)."""
    table = _exps(-np.arange(256, dtype=np.int64), multiplier, left_shift, diff_min)
    table = table.astype(np.int32)
    table.setflags(write=False)
    return table


def _exps(diff: np.ndarray, multiplier: int, left_shift: int, diff_min: int) -> np.ndarray:
    kept = diff >= diff_min
    # Kept diffs times 2**shift stay below 31 * 2**26; the others are never scaled.
    scaled = np.where(kept, diff, 0) << left_shift
    rescaled = fp.srdhm(scaled, multiplier)
    return np.where(kept, fp.exp_on_negative_values(rescaled, _SCALED_DIFF_INTEGER_BITS), 0)


def greater_than_one_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier (double rounding) for a real above 1: shifts up to 31 allowed."""
    q, shift = math.frexp(real)
    q_fixed = quant.round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    return q_fixed, shift


def _int8_output(op: Operator, y) -> None:
    if y.quant.zero_point != -128 or np.float32(y.quant.scale) != np.float32(1.0 / 256.0):
        raise unsupported(op, f"output must have scale 1/256 and zero point -128, found "
                          f"{y.quant.scale:g} and {y.quant.zero_point}")


def _int16_output(op: Operator, y) -> None:
    """TFLM: zero point -32768, scale within 0.001 / 65536 of 1 / 65536 (in float)."""
    target = np.float32(1.0 / 65536)
    if y.quant.zero_point != -32768 or abs(np.float32(y.quant.scale) - target) > (
            np.float32(0.001) * target):
        raise unsupported(op, f"an int16 output must have scale 1/65536 and zero point "
                          f"-32768, found {y.quant.scale:g} and {y.quant.zero_point}")


# The output types of an int8 SOFTMAX and what TFLM requires of their quantization.
_OUTPUTS = {DType.INT8: _int8_output, DType.INT16: _int16_output}


def prepare(op: Operator, graph: Graph) -> Softmax:
    x = operand(op, graph, 0, "input")
    y = only_output(op, graph)
    require_dtype(op, x, (DType.INT8,), "input")
    require_dtype(op, y, tuple(_OUTPUTS), "output")
    if x.is_constant:
        raise unsupported(op, "a constant input is not supported")
    require_per_tensor(op, x, "input")
    require_per_tensor(op, y, "output")
    if not x.shape or tuple(x.shape) != tuple(y.shape):
        raise unsupported(op, f"input shape {list(x.shape)} and output shape {list(y.shape)} "
                          "must be equal and not scalar")
    _OUTPUTS[y.dtype](op, y)
    depth = int(x.shape[-1])
    if not 1 <= depth <= _MAX_DEPTH:
        raise unsupported(op, f"rows of {depth} values are not supported (1 to {_MAX_DEPTH}: "
                          "TFLM's Q12.19 sum of exps would overflow)")

    beta = float(np.float32(op.options.get("beta", 0.0)))  # the schema default
    scale = float(np.float32(x.quant.scale))
    real = min(beta * scale * float(1 << (31 - _SCALED_DIFF_INTEGER_BITS)), float((1 << 31) - 1))
    if not real > 1.0:
        raise unsupported(op, f"beta * input scale * 2^26 = {real:g} must be above 1 "
                          "(TFLM's QuantizeMultiplierGreaterThanOne aborts otherwise)")
    multiplier, shift = greater_than_one_multiplier(real)
    max_rescaled = (((1 << _SCALED_DIFF_INTEGER_BITS) - 1)
                    * float(1 << (31 - _SCALED_DIFF_INTEGER_BITS)) / float(1 << shift))
    diff_min = -math.floor(max_rescaled)
    params: dict[str, object] = {
        "beta": beta,
        "input_multiplier": multiplier,
        "input_left_shift": shift,
        "diff_min": diff_min,
        "depth": depth,
        "outer": x.size // depth,
        "exponent_base": _ACCUMULATION_INTEGER_BITS + 31 - 8 * y.dtype.itemsize,
        "accumulation_shift": _ACCUMULATION_INTEGER_BITS,
        "may_exceed_shift": depth > _SAFE_DEPTH and y.dtype is DType.INT8,
        "c_type": y.dtype.c_type, "qmin": y.dtype.qmin, "qmax": y.dtype.qmax,
    }
    return Softmax(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


def litert_table(input_scale: float, beta: float) -> np.ndarray:
    """LiteRT's PopulateSoftmaxLookupTable (optimized_ops.h): table[255 - v] =
    expf(scale * v) for v in 0..255, scale = -input_scale * beta, all in float32, expf as
    glibc computes it (codegen/ops/_expf.py; tests/test_numerics.py checks the tables
    against the C library's)."""
    from codegen.ops._expf import expf

    scale = np.float32(-np.float32(input_scale)) * np.float32(beta)
    with np.errstate(over="ignore", invalid="ignore"):
        args = scale * np.arange(256, dtype=np.float32)
    exps = np.array([expf(float(a)) for a in args], dtype=np.float32)
    return exps[::-1].copy()


@dataclass
class SoftmaxLiteRT(Layer):
    """Numerics mode litert: LiteRT's optimized int8 SOFTMAX (XNNPACK does not take it):
    a float32 table of exp(-input_scale * beta * d) for d = max - x, per row the sum of the
    row's entries in float32, in order, inv = 1 / (sum * output_scale), then each output
    round(entry * inv) (half away from zero) + output zero point, clamped to the output type
    (int8, or int16 from an int8 input: the same template). The C does the same float32
    operations in the same order."""

    runtime: ClassVar[tuple[str, ...]] = ("clamp",)
    template: ClassVar[str] = "kernels/softmax_litert.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        depth = int(p["depth"])
        x = inputs[0].astype(np.int64).reshape(-1, depth)
        table = np.asarray(p["table"], np.float32)
        entries = table[255 - x.max(axis=1, keepdims=True) + x]  # float32 (rows, depth)
        total = np.zeros(x.shape[0], dtype=np.float32)
        for c in range(depth):  # in order, in float32, as the kernel sums
            total = (total + entries[:, c]).astype(np.float32)
        inv = np.float32(1.0) / (total * np.float32(p["output_scale"]))
        prob = (entries * inv[:, None]).astype(np.float32).astype(np.float64)
        rounded = np.floor(prob + 0.5)  # round half away from zero; prob >= 0
        out = np.clip(rounded.astype(np.int64) + int(p["output_zero_point"]), int(p["qmin"]),
                      int(p["qmax"]))
        return [out.astype(self.out_tensor().dtype.np).reshape(inputs[0].shape)]

    def constants(self) -> list[CArray]:
        return [CArray("table", np.asarray(self.params["table"], np.float32))]

    def inplace_inputs(self) -> tuple[int, ...]:
        return (0,)

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("beta", f"{p['beta']:g}"), ("rows", f"{p['outer']} x {p['depth']}"),
                ("arithmetic", "float32 table of exps, LiteRT's optimized kernel")]


def litert(layer: Softmax) -> Layer:
    """The layer as LiteRT's default interpreter computes it (numerics litert)."""
    from codegen.ops import _litert

    y = layer.out_tensor()
    if y.dtype not in (DType.INT8, DType.INT16):
        raise _litert.refuse(layer, "litert", "only int8 and int16 outputs are reproduced")
    x = layer.in_tensor()
    p = dict(layer.params)
    p.update(table=litert_table(x.quant.scale, float(p["beta"])),
             out_type=f"{y.dtype.numpy_name}_t", qmin=y.dtype.qmin, qmax=y.dtype.qmax,
             output_scale=float(np.float32(y.quant.scale)),
             output_scale_c=c_float(y.quant.scale),
             output_zero_point=y.quant.zero_point)
    return SoftmaxLiteRT(layer.op, layer.graph, inputs=layer.inputs, outputs=layer.outputs,
                         params=p)


KERNELS = {DType.INT8: prepare}
NUMERICS = {"litert": litert}
