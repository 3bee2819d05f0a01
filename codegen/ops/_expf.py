"""expf as glibc computes it (sysdeps/ieee754/flt-32/e_expf.c, Arm's optimized-routines
algorithm), for the table of LiteRT's optimized SOFTMAX (numerics litert), which calls the C
library's expf at Prepare time. glibc's expf is not correctly rounded (about 1 result in
2,000 differs from exp rounded to float32), so the generator reproduces it operation by
operation in double precision:

    z = 32/ln2 * x;  k = round(z) (by adding 1.5 * 2^52);  r = z - k
    s = 2^(k/32) from a 32-entry table of 2^(i/32) with k's high part added to the exponent
    y = s * ((C0 * r + C1) * r^2 + (C2 * r + 1))

glibc picks an FMA-compiled copy on x86-64 CPUs with FMA (and aarch64 always contracts):
there every a * b + c above is one fused operation, as `fused=True` computes (the products
exactly, with fractions). tests/test_numerics.py checks the result against the C library.
"""

from __future__ import annotations

import struct
from fractions import Fraction

import numpy as np

_N = 32
# 2^(i/32) as double bits, less i << 47 (exp2f_data.c, EXP2F_TABLE_BITS = 5)
_TABLE = (
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
)
_SHIFT = float.fromhex("0x1.8p+52")
_INV_LN2_N = float.fromhex("0x1.71547652b82fep+0") * _N
_C = (float.fromhex("0x1.c6af84b912394p-5") / _N / _N / _N,
      float.fromhex("0x1.ebfce50fac4f3p-3") / _N / _N,
      float.fromhex("0x1.62e42ff0c52d6p-1") / _N)
_UNDERFLOW = float(np.float32(float.fromhex("-0x1.9fe368p6")))  # below: 0
_OVERFLOW = float(np.float32(float.fromhex("0x1.62e42ep6")))  # above: inf


def _fma(a: float, b: float, c: float) -> float:
    """a * b + c rounded once (float(Fraction) rounds correctly)."""
    return float(Fraction(a) * Fraction(b) + Fraction(c))


def _bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def _double(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits & 0xFFFFFFFFFFFFFFFF))[0]


def expf(x: float, *, fused: bool = True) -> np.float32:
    """glibc's expf of the float32 `x` (finite or -inf), FMA or plain build."""
    xd = float(np.float32(x))
    if xd < _UNDERFLOW:  # -inf included
        return np.float32(0.0)
    if xd > _OVERFLOW:
        return np.float32(np.inf)
    if fused:
        kd = _fma(_INV_LN2_N, xd, _SHIFT)
        ki = _bits(kd)
        kd -= _SHIFT
        r = _fma(_INV_LN2_N, xd, -kd)
    else:
        z = _INV_LN2_N * xd
        kd = z + _SHIFT
        ki = _bits(kd)
        kd -= _SHIFT
        r = z - kd
    s = _double(_TABLE[ki % _N] + (ki << (52 - 5)))
    if fused:
        z = _fma(_C[0], r, _C[1])
        y = _fma(z, r * r, _fma(_C[2], r, 1.0))
    else:
        y = (_C[0] * r + _C[1]) * (r * r) + (_C[2] * r + 1.0)
    return np.float32(y * s)
