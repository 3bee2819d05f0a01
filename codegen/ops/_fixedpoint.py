"""gemmlowp's fixed-point arithmetic (fixedpoint/fixedpoint.h) as TFLM's activation kernels use
it, on numpy int64 arrays that hold int32 (or int16) values.

A fixed-point value with `integer_bits` m is a raw int32 read as raw / 2**(31 - m). Products
are SaturatingRoundingDoublingHighMul on the raws (the integer bits add up), and `rescale`
changes m with a saturating left shift or a rounding right shift. The functions below follow
gemmlowp's own evaluation order step by step, because the roundings of every intermediate
product are part of the result:
  - exp_on_negative_values: exp(x) for x <= 0, a Taylor polynomial around -1/8 on the last
    quarter plus a barrel shifter of constant multipliers exp(-2**k) for the rest,
  - one_over_one_plus_x_for_x_in_0_1 / one_minus_x_over_one_plus_x_for_x_in_0_1: three
    Newton-Raphson steps from the 48/17 - 32/17 x starting guess,
  - logistic and tanh, built from those two.
The int16 helpers at the end are the ones reference_ops::HardSwish uses.
"""

from __future__ import annotations

import numpy as np

from codegen.quant import (
    INT32_MAX,
    INT32_MIN,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap_int32,
)

INT16_MIN = -(2**15)
INT16_MAX = 2**15 - 1

# Raw Q0.31 / Q2.29 constants, as gemmlowp writes them.
_EXP_MINUS_ONE_EIGHTH = 1895147668  # exp(-1/8), Q0.31
_ONE_THIRD = 715827883  # 1/3, Q0.31
_FORTY_EIGHT_OVER_17 = 1515870810  # 48/17, Q2.29
_MINUS_32_OVER_17 = -1010580540  # -32/17, Q2.29
# exp(-2**k) in Q0.31 for k = -2 .. 4: the barrel shifter of exp_on_negative_values.
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))

srdhm = saturating_rounding_doubling_high_mul
rdbp = rounding_divide_by_pot


def _i64(x: np.ndarray | int) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def add(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp Add on int32 (wraps like the hardware where C++ leaves overflow undefined)."""
    return wrap_int32(_i64(a) + _i64(b))


def sub(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    return wrap_int32(_i64(a) - _i64(b))


def saturating_left_shift(x: np.ndarray, exponent: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT with a positive exponent: x * 2**exponent, saturated
    to int32 beyond +-(2**(31 - exponent) - 1)."""
    x = _i64(x)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX,
                    np.where(x < -threshold, INT32_MIN, wrap_int32(x << exponent)))


def multiply_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT<exponent>: saturating left shift or rounding right shift."""
    if exponent > 0:
        return saturating_left_shift(x, exponent)
    if exponent < 0:
        return rdbp(x, -exponent)
    return _i64(x)


def rescale(x: np.ndarray, src_integer_bits: int, dst_integer_bits: int) -> np.ndarray:
    """gemmlowp::Rescale<dst>(FixedPoint<int32, src>)."""
    return multiply_by_pot(x, src_integer_bits - dst_integer_bits)


def one(integer_bits: int) -> int:
    """FixedPoint<int32, m>::One(): the largest raw for m = 0, exactly 2**(31 - m) otherwise."""
    return INT32_MAX if integer_bits == 0 else 1 << (31 - integer_bits)


def rounding_half_sum(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """(a + b) / 2 rounded half away from zero (the sum in 64 bits, C division truncating)."""
    total = _i64(a) + _i64(b)
    nudged = total + np.where(total >= 0, 1, -1)
    return np.where(nudged >= 0, nudged // 2, -((-nudged) // 2))


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    """exp(a) for a Q0.31 a in [-1/4, 0): Taylor expansion around -1/8."""
    x = add(a, 1 << 28)  # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbp(x4, 2)
    poly = rdbp(add(srdhm(add(x4_over_4, x3), _ONE_THIRD), x2), 1)
    return add(_EXP_MINUS_ONE_EIGHTH, srdhm(_EXP_MINUS_ONE_EIGHTH, add(x, poly)))


def exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """exp(a) as Q0.31 for a <= 0 given as a raw Q(integer_bits).(31 - integer_bits)."""
    a = _i64(a)
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_one_quarter = sub(a & (one_quarter - 1), one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = sub(a_mod_quarter_minus_one_quarter, a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = (remainder >> (fractional_bits + exponent)) & 1
            result = np.where(bit != 0, srdhm(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))  # -32.0
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, one(0), result)


def _newton_reciprocal(a: np.ndarray) -> np.ndarray:
    """The Q2.29 approximation of 1 / ((1 + a) / 2) shared by the two divisions below."""
    half_denominator = rounding_half_sum(a, one(0))
    x = add(_FORTY_EIGHT_OVER_17, srdhm(half_denominator, _MINUS_32_OVER_17))
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus_half_denominator_times_x = sub(one(2), half_denominator_times_x)
        x = add(x, rescale(srdhm(x, one_minus_half_denominator_times_x), 4, 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """1 / (1 + a) as Q0.31, for a Q0.31 a in [0, 1)."""
    # ExactMulByPot<-1> reads the Q2.29 raw as Q1.30; Rescale<0> then shifts it by 1.
    return rescale(_newton_reciprocal(a), 1, 0)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """(1 - a) / (1 + a) as Q0.31, for a Q0.31 a in [0, 1)."""
    return rescale(sub(_newton_reciprocal(a), one(2)), 2, 0)


def logistic(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """gemmlowp::logistic: 1 / (1 + exp(-a)) as Q0.31, for a raw Q(integer_bits) a."""
    a = _i64(a)
    positive = a > 0
    abs_input = np.where(positive, a, -a)
    if_positive = one_over_one_plus_x_for_x_in_0_1(
        exp_on_negative_values(-abs_input, integer_bits))
    if_negative = sub(one(0), if_positive)
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, if_negative))


def tanh(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """gemmlowp::tanh as Q0.31, for a raw Q(integer_bits) a."""
    a = _i64(a)
    negative = a < 0
    n = np.where(negative, a, -a)  # -|a|
    # neg_tanh_on_negative_values: ExactMulByPot<1> reads n as one more integer bit (2n).
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(negative, -t, t))


def count_leading_zeros(x: np.ndarray) -> np.ndarray:
    """CountLeadingZeros of uint32 values (32 for 0)."""
    x = _i64(x) & 0xFFFFFFFF
    _, bit_length = np.frexp(x.astype(np.float64))  # exact: x < 2**53; 0 gives 0
    return 32 - bit_length.astype(np.int64)


# ---------------------------------------------------------------------------------------
# int16 arithmetic of reference_ops::HardSwish.


def wrap_int16(x: np.ndarray) -> np.ndarray:
    """static_cast<int16_t> of an int: the two's-complement wrap."""
    return ((_i64(x) + 2**15) & 0xFFFF) - 2**15


def _truncating_divide(x: np.ndarray, divisor: int) -> np.ndarray:
    return np.where(x >= 0, x // divisor, -((-x) // divisor))


def srdhm16(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul<int16_t>."""
    a, b = _i64(a), _i64(b)
    ab = a * b
    nudged = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    result = wrap_int16(_truncating_divide(nudged, 1 << 15))
    return np.where((a == b) & (a == INT16_MIN), INT16_MAX, result)


def sdhm16(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """HardSwish's SaturatingDoublingHighMul<int16_t>: like srdhm16 but truncating."""
    a, b = _i64(a), _i64(b)
    result = wrap_int16(_truncating_divide(a * b, 1 << 15))
    return np.where((a == b) & (a == INT16_MIN), INT16_MAX, result)


def rdbp16(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT<int16_t>. The mask (1 << exponent) - 1 is narrowed to
    int16, so for exponents of 16 and more it is -1 and the result is 1 for x >= 0 and -1
    for x < 0 (reproduced: such exponents come from extreme scale ratios only)."""
    x = _i64(x)
    mask = int(wrap_int16(np.int64((1 << exponent) - 1)))
    remainder = wrap_int16(x & mask)
    threshold = wrap_int16((mask >> 1) + (x < 0))
    return wrap_int16((x >> exponent) + (remainder > threshold))


def saturating_left_shift16(x: np.ndarray, amount: int) -> np.ndarray:
    """HardSwish's SaturatingLeftShift: x * 2**amount clamped to int16."""
    return np.clip(_i64(x) * (1 << amount), INT16_MIN, INT16_MAX)


# ---------------------------------------------------------------------------------------
# gemmlowp's logistic and tanh on FixedPoint<int16_t> (LiteRT's optimized int16 LOGISTIC and
# TANH): the int32 algorithm above on int16 raws, every sum wrapping to int16 (C++'s
# narrowing of the promoted int), the Q0.31 / Q2.29 constants rounding-shifted right by 16
# (RescaleConstantInitializer), and the one saturating sum (AddSaturatingIf16Bit).

def _c16(value: int) -> int:
    """RescaleConstantInitializer<int16>: RoundingDivideByPOT<int32>(value, 16)."""
    return int(rdbp(np.int64(value), 16))


def _add16(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    return wrap_int16(_i64(a) + _i64(b))


def _sub16(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    return wrap_int16(_i64(a) - _i64(b))


def _pot16(x: np.ndarray, exponent: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT<exponent> on int16."""
    x = _i64(x)
    if exponent > 0:
        threshold = (1 << (15 - exponent)) - 1
        return np.where(x > threshold, INT16_MAX,
                        np.where(x < -threshold, INT16_MIN, wrap_int16(x << exponent)))
    if exponent < 0:
        return rdbp16(x, -exponent)
    return x


def _one16(integer_bits: int) -> int:
    return INT16_MAX if integer_bits == 0 else 1 << (15 - integer_bits)


def _exp_quarter16(a: np.ndarray) -> np.ndarray:
    constant_term, one_third = _c16(_EXP_MINUS_ONE_EIGHTH), _c16(_ONE_THIRD)
    x = _add16(a, 1 << 12)
    x2 = srdhm16(x, x)
    x3 = srdhm16(x2, x)
    x4 = srdhm16(x2, x2)
    x4_over_4 = _pot16(x4, -2)
    poly = _pot16(_add16(srdhm16(_add16(x4_over_4, x3), one_third), x2), -1)
    return np.clip(constant_term + srdhm16(constant_term, _add16(x, poly)),
                   INT16_MIN, INT16_MAX)


def exp_on_negative_values16(a: np.ndarray, integer_bits: int) -> np.ndarray:
    a = _i64(a)
    fractional_bits = 15 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod = _sub16(a & (one_quarter - 1), one_quarter)
    result = _exp_quarter16(_pot16(a_mod, integer_bits))
    remainder = _sub16(a_mod, a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = remainder & wrap_int16(np.int64(1 << (fractional_bits + exponent)))
            result = np.where(bit != 0, srdhm16(result, _c16(multiplier)), result)
    return np.where(a == 0, _one16(0), result)


def _newton16(a: np.ndarray) -> np.ndarray:
    half_denominator = wrap_int16(rounding_half_sum(a, _one16(0)))
    x = _add16(_c16(_FORTY_EIGHT_OVER_17), srdhm16(half_denominator, _c16(_MINUS_32_OVER_17)))
    for _ in range(3):
        one_minus = _sub16(_one16(2), srdhm16(half_denominator, x))
        x = _add16(x, _pot16(srdhm16(x, one_minus), 2))
    return x


def logistic16(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """gemmlowp::logistic on FixedPoint<int16_t, integer_bits>: Q0.15 raws."""
    a = _i64(a)
    positive = a > 0
    abs_input = wrap_int16(np.where(positive, a, -a))
    if_positive = _pot16(_newton16(exp_on_negative_values16(wrap_int16(-abs_input),
                                                              integer_bits)), 1)
    if_negative = _sub16(_one16(0), if_positive)
    return np.where(a == 0, _c16(1 << 30), np.where(positive, if_positive, if_negative))


def tanh16(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """gemmlowp::tanh on FixedPoint<int16_t, integer_bits>: Q0.15 raws."""
    a = _i64(a)
    negative = a < 0
    n = wrap_int16(np.where(negative, a, -a))
    t = _pot16(_sub16(_newton16(exp_on_negative_values16(n, integer_bits + 1)), _one16(2)), 2)
    return np.where(a == 0, 0, np.where(negative, wrap_int16(-t), t))
