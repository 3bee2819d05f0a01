"""Fixed-point quantization arithmetic, as TensorFlow Lite Micro's reference kernels do it.

Generation-time helpers (`quantize_multiplier`, `activation_range`) turn real scales into
integer constants; the numpy helpers (`multiply_by_quantized_multiplier` and the gemmlowp
primitives under it) are the run-time arithmetic of the reference, operating elementwise on
int64 arrays that hold int32 values.
"""

from __future__ import annotations

import math

import numpy as np

from codegen.errors import UnsupportedError

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

# Fused activations as they appear in TFLite options.
ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")


def round_half_away(x: float) -> int:
    """C's round(): halfway cases away from zero (TFLite's TfLiteRound)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float, what: str = "") -> tuple[int, int]:
    """Split a real multiplier into a Q31 significand and a power-of-two exponent.

    real ~= multiplier * 2**(shift - 31), multiplier in [2**30, 2**31). Mirrors TFLite's
    QuantizeMultiplier built with double rounding: a significand that rounds up to 2**31
    is halved with the exponent raised, and exponents below -31 flush to (0, 0). `what`
    says where `real` comes from (e.g. "input 'x' scale x weights 'w' scale / output 'y'
    scale"), for the errors.
    """
    if real == 0.0:
        return 0, 0
    source = f" ({what})" if what else ""
    if not math.isfinite(real):
        raise UnsupportedError(
            f"the requantization multiplier{source} is {real!r}: the scales overflow (or "
            "underflow) the arithmetic; check those tensors' quantization scales "
            "(re-quantize the model)")
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise UnsupportedError(
            f"requantization multiplier{source} {real:g} is too large (2^{shift - 1} or "
            "more); check the model's scales"
        )
    return q_fixed, shift


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """quantize_multiplier over an array; returns (int32 multipliers, int32 shifts).

    The same double arithmetic elementwise (frexp, round half away from zero, the halving
    of a significand rounded up to 2**31, the flush below 2**-31), so that a layer of
    millions of channels costs milliseconds; a value quantize_multiplier refuses is handed
    to it, for its error."""
    flat = np.asarray(reals, dtype=np.float64).ravel()
    finite = np.isfinite(flat)
    if not np.all(finite):
        quantize_multiplier(float(flat[np.argmin(finite)]))  # raises, naming the problem
    significand, exponent = np.frexp(flat)
    scaled = significand * float(1 << 31)
    q_fixed = np.copysign(np.floor(np.abs(scaled) + 0.5), scaled).astype(np.int64)
    carry = q_fixed == 1 << 31
    q_fixed = np.where(carry, q_fixed // 2, q_fixed)
    shift = exponent.astype(np.int64) + carry
    too_large = shift > 30
    if np.any(too_large):
        quantize_multiplier(float(flat[np.argmax(too_large)]))  # raises, naming the problem
    flushed = (shift < -31) | (flat == 0.0)
    mult = np.where(flushed, 0, q_fixed).astype(np.int32)
    return mult, np.where(flushed, 0, shift).astype(np.int32)


def _quantize_f32(value: float, scale: float, zero_point: int) -> int:
    """TFLite's activation-range quantizer: zero_point + round(f / scale) in float32."""
    ratio = float(np.float32(value) / np.float32(scale))
    if not abs(ratio) < 2.0**31:
        # TFLM refuses such a model in Prepare (the bound does not fit an int32).
        raise UnsupportedError(
            f"fused activation bound {value:g} is {ratio:.3g} steps of the output scale "
            f"{scale:g}, beyond int32; the output scale is implausibly small"
        )
    return zero_point + round_half_away(ratio)


def activation_range(activation: str, scale: float, zero_point: int, qmin: int,
                     qmax: int) -> tuple[int, int]:
    """Clamp bounds of a fused activation on a quantized output (CalculateActivationRange)."""
    if activation == "NONE":
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, _quantize_f32(0.0, scale, zero_point)), qmax
    if activation == "RELU6":
        return (max(qmin, _quantize_f32(0.0, scale, zero_point)),
                min(qmax, _quantize_f32(6.0, scale, zero_point)))
    if activation == "RELU_N1_TO_1":
        return (max(qmin, _quantize_f32(-1.0, scale, zero_point)),
                min(qmax, _quantize_f32(1.0, scale, zero_point)))
    raise UnsupportedError(f"fused activation {activation} is not supported")


# ---------------------------------------------------------------------------------------
# Run-time arithmetic of the reference (gemmlowp double rounding), on int64 arrays.


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values into the int32 range (C's modular cast)."""
    return ((x + 2**31) & 0xFFFFFFFF) - 2**31


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values held in int64.

    gemmlowp adds a nudge of 2^30 (ab >= 0) or 1 - 2^30 (ab < 0) and divides by 2^31
    truncating; for ab < 0 that is ceil((ab + 1 - 2^30) / 2^31) = floor((ab + 2^30) / 2^31),
    the same expression as for ab >= 0: one arithmetic shift (rounding half up). The one
    saturating case, a = b = INT32_MIN, is the only product of int32 values whose quotient
    exceeds INT32_MAX (ab = 2^62; the next largest is 2^62 - 2^31)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    return np.minimum((a * b + (1 << 30)) >> 31, INT32_MAX)  # |a*b| <= 2**62: exact


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: arithmetic shift right, rounding half away from zero."""
    x = np.asarray(x, dtype=np.int64)
    if isinstance(exponent, int) and 1 <= exponent <= 31:  # (int32 values: no overflow)
        # With x = q 2^e + r (0 <= r < 2^e) gemmlowp gives q + (r >= 2^(e-1) + (x < 0)),
        # which is floor((x + 2^(e-1) - (x < 0)) / 2^e).
        return (x + ((1 << (exponent - 1)) - (x < 0))) >> exponent
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: np.ndarray | int,
                                     shift: np.ndarray | int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (double rounding) on int32 values in int64."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    scaled = wrap_int32(np.asarray(x, dtype=np.int64) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(scaled, multiplier), right)


def requantize(acc: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int,
               zero_point: int, lo: int, hi: int) -> np.ndarray:
    """Scale an int32 accumulator to the output: MBQM, add the zero point, clamp.

    TFLM adds the zero point in int32: a result of MBQM within 128 of the int32 limits (a
    bias near them, a multiplier near 1) wraps around there, and so it does here."""
    scaled = add_int32(multiply_by_quantized_multiplier(acc, multiplier, shift), zero_point)
    return np.clip(scaled, lo, hi)


def add_int32(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """a + b in int32 arithmetic as TFLM's compiled C++ does it: two's-complement wrap (the
    overflow is undefined behaviour in C++; in practice, and in the generated C, it wraps)."""
    return wrap_int32(np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64))


def fused_activation(options: dict[str, object]) -> str:
    return str(options.get("fused_activation_function", "NONE"))
