"""How a layer scales its accumulator to the output: one description, chosen once per layer.

TFLM's MultiplyByQuantizedMultiplier has two overloads, and a kernel's accumulator type picks
one (common.cc, double-rounding build):
  - int32 accumulator (every int8 kernel; 16x8 kernels given an int32 bias): gemmlowp's
    SaturatingRoundingDoublingHighMul by the Q31 multiplier, then RoundingDivideByPOT, with
    a left shift first for positive shifts (`DoubleRounding`, C `cg_requantize`);
  - int64 accumulator (16x8 kernels with an int64 bias or none): the multiplier rounded to
    16 bits (`(m + 2^15) >> 16`, or 0x7FFF from 0x7FFF0000 up), then one rounding shift:
    `(x * reduced + 2^(14 - shift)) >> (15 - shift)` (`SingleRounding64`,
    C `cg_requantize64`). TFLM asserts |x| < 2^47 and shift < 8; layers outside those
    bounds are refused (`check`), so the C never overflows.
A layer keeps its description in `params["rq"]`; the reference calls `apply` and the
template names `function` and the per-channel constants `constants()` gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.errors import UnsupportedError

_X_LIMIT = 1 << 47  # TFLM's assertion on the int64 overload's input
_SHIFT_LIMIT = 8  # ... and on its shift


@dataclass(frozen=True)
class Requantization:
    """Per-channel (or one) multipliers and shifts as QuantizeMultiplier gives them."""

    multipliers: np.ndarray  # int64 [channels]
    shifts: np.ndarray  # int64 [channels]
    function: ClassVar[str] = ""  # the C helper
    runtime: ClassVar[tuple[str, ...]] = ()  # the snippets defining it
    accumulator: ClassVar[str] = ""  # C type of the accumulator it takes
    name: ClassVar[str] = ""

    @property
    def per_channel(self) -> bool:
        return bool(np.any(self.multipliers != self.multipliers[0])
                    or np.any(self.shifts != self.shifts[0]))

    def apply(self, acc: np.ndarray) -> np.ndarray:
        """acc: int64 array whose last axis is the channel -> int32-range int64 values."""
        raise NotImplementedError

    def arguments(self) -> tuple[np.ndarray, np.ndarray]:
        """The two per-channel int32 arrays the C helper takes after the accumulator."""
        raise NotImplementedError

    def check(self, op_where: str, bound: np.ndarray) -> None:
        """Refuse accumulators (bounded per channel by `bound`) outside the exact range."""


@dataclass(frozen=True)
class DoubleRounding(Requantization):
    function: ClassVar[str] = "cg_requantize"
    runtime: ClassVar[tuple[str, ...]] = ("requantize",)
    accumulator: ClassVar[str] = "int32_t"
    name: ClassVar[str] = "int32 accumulator, gemmlowp double rounding"

    def apply(self, acc: np.ndarray) -> np.ndarray:
        return quant.multiply_by_quantized_multiplier(quant.wrap_int32(acc), self.multipliers,
                                                      self.shifts)

    def arguments(self) -> tuple[np.ndarray, np.ndarray]:
        return self.multipliers.astype(np.int32), self.shifts.astype(np.int32)

    def check(self, op_where: str, bound: np.ndarray) -> None:
        if int(np.max(bound)) > quant.INT32_MAX:
            raise UnsupportedError(
                f"{op_where}: an accumulator could reach {int(np.max(bound))}, beyond the "
                "int32 accumulator TFLM uses with an int32 bias (its sum would overflow)")


def reduced_multiplier(multiplier: np.ndarray) -> np.ndarray:
    """TFLM's Q31 -> Q15 rounding of the int64 overload."""
    m = np.asarray(multiplier, dtype=np.int64)
    return np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)


@dataclass(frozen=True)
class SingleRounding64(Requantization):
    function: ClassVar[str] = "cg_requantize64"
    runtime: ClassVar[tuple[str, ...]] = ("requantize64",)
    accumulator: ClassVar[str] = "int64_t"
    name: ClassVar[str] = "int64 accumulator, 16-bit multiplier, single rounding"

    @property
    def reduced(self) -> np.ndarray:
        return reduced_multiplier(self.multipliers)

    @property
    def total_shifts(self) -> np.ndarray:
        return 15 - self.shifts

    def apply(self, acc: np.ndarray) -> np.ndarray:
        total = self.total_shifts
        x = np.asarray(acc, dtype=np.int64) * self.reduced + (np.int64(1) << (total - 1))
        # The int64 result is narrowed to int32 as C narrows it (modulo 2^32).
        return quant.wrap_int32(x >> total)

    def arguments(self) -> tuple[np.ndarray, np.ndarray]:
        return self.reduced.astype(np.int32), self.total_shifts.astype(np.int32)

    def check(self, op_where: str, bound: np.ndarray) -> None:
        if int(np.max(self.shifts)) >= _SHIFT_LIMIT:
            raise UnsupportedError(
                f"{op_where}: requantization shift {int(np.max(self.shifts))} (a multiplier of "
                f"2^{_SHIFT_LIMIT - 1} or more); TFLM's 64-bit requantization takes shifts "
                f"below {_SHIFT_LIMIT}; check the model's scales")
        if int(np.max(bound)) >= _X_LIMIT:
            raise UnsupportedError(
                f"{op_where}: an accumulator could reach {int(np.max(bound))}, beyond TFLM's "
                "64-bit requantization (|x| < 2^47); check the bias")


def for_accumulator(accumulator: str, multipliers: np.ndarray,
                    shifts: np.ndarray) -> Requantization:
    """The description TFLM's overload resolution picks for an int32 or int64 accumulator."""
    kind = {"int32": DoubleRounding, "int64": SingleRounding64}[accumulator]
    return kind(np.asarray(multipliers, dtype=np.int64).ravel(),
                np.asarray(shifts, dtype=np.int64).ravel())


# -- numerics mode litert-ref: LiteRT's reference FULLY_CONNECTED ---------------------------

def litert_double_scale(input_scale: float, filter_scale: float, output_scale: float) -> float:
    """LiteRT's reference FULLY_CONNECTED's effective scale, in its order:
    double(s_in) * double(s_w) / double(s_out) (the float32 scales widened first, unlike
    TFLM's float product)."""
    return float(input_scale) * float(filter_scale) / float(output_scale)


def litert_double_scales(input_scale: float, weight_scales: tuple[float, ...], units: int,
                         output_scale: float) -> np.ndarray:
    """litert_double_scale for each of `units` output channels: one weight scale each, or
    one for all (per-tensor weights)."""
    each = weight_scales if len(weight_scales) > 1 else weight_scales * units
    return np.array([litert_double_scale(input_scale, s, output_scale) for s in each],
                    dtype=np.float64)


def requantize_double(acc: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """static_cast<int32_t>(round(double(acc) * scale)) as LiteRT's reference
    FULLY_CONNECTED computes it (round half away from zero). A rounded value outside int32
    (undefined in C++) becomes INT32_MIN, what x86-64's conversion gives; the C helper
    `cg_requantize_double` does the same. acc: int32-range int64, channel last."""
    v = np.asarray(acc, dtype=np.int64).astype(np.float64) * np.asarray(scales, np.float64)
    with np.errstate(invalid="ignore"):
        inside = (v < 2147483647.5) & (v > -2147483648.5)
        t = np.trunc(np.where(inside, v, 0.0))
        t = t + (v >= t + 0.5) - (v <= t - 0.5)
    return np.where(inside, t, float(quant.INT32_MIN)).astype(np.int64)


# -- numerics mode litert: XNNPACK's fp32 requantization -----------------------------------

def xnnpack_scale(input_scale: float, filter_scale: float, output_scale: float) -> np.float32:
    """XNNPACK's requantization scale, in float32 and its order:
    input_scale * kernel_scale / output_scale (convolution-nhwc.c, fully-connected-nc.c)."""
    return (np.float32(input_scale) * np.float32(filter_scale)) / np.float32(output_scale)


def xnnpack_bound(value: float, scale: float, zero_point: int) -> int:
    """xnn_qs8_quantize: lrintf(clamp(value / scale + zero_point, -128, 127)) in float32,
    XNNPACK's int8 bound of a fused activation's float range."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        v = np.float32(value) / np.float32(scale) + np.float32(zero_point)
    return int(np.rint(np.clip(v, np.float32(-128.0), np.float32(127.0))))


# The float range the TFLite XNNPACK delegate gives each fused activation.
_ACTIVATION_RANGES = {"NONE": (-np.inf, np.inf), "RELU": (0.0, np.inf), "RELU6": (0.0, 6.0),
                      "RELU_N1_TO_1": (-1.0, 1.0)}


def xnnpack_activation_bounds(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    lo, hi = _ACTIVATION_RANGES[activation]
    return xnnpack_bound(lo, scale, zero_point), xnnpack_bound(hi, scale, zero_point)


def requantize_fp32(acc: np.ndarray, scales: np.ndarray, zero_point: int, lo: int,
                    hi: int) -> np.ndarray:
    """XNNPACK's fp32 requantization of an int32 accumulator (its qs8 and qc8w GEMM, IGEMM
    and DWCONV microkernels): float(acc) * scale in float32, clamped to the output bounds
    less the zero point, rounded to nearest even, plus the zero point. C: cg_requantize_fp32.
    acc: int32-range values, channel last; scales float32 per channel."""
    v = np.asarray(acc, dtype=np.int64).astype(np.float32) * np.asarray(scales, np.float32)
    v = np.clip(v, np.float32(lo - zero_point), np.float32(hi - zero_point))
    return np.rint(v).astype(np.int64) + zero_point
