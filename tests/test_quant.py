"""codegen.quant against TensorFlow Lite Micro.

TFLM does not expose QuantizeMultiplier, so each scale is probed through a FULLY_CONNECTED
layer with one input (K=1): unit j computes acc = (x - input_zp) * w_j + b_j, and TFLM
derives its multiplier from input_scale * weight_scale_j / output_scale (in double, from the
float32 scales). Weights and biases are chosen so that the accumulators are *sensitive*: the
clamped int8 result with our (multiplier, shift) differs from the result with multiplier +- 1
or with single rounding, so an off-by-one multiplier or the wrong rounding shows. Each scale
also gets the int32 extremes, the only accumulators that can round to +-1 near 2^-32.

Such accumulators exist in the observable int8 window only for some reals: M +- 1 moves
acc * real by about acc / 2^(31 - shift), so for reals above about 2^-13 few or none of the
accumulators that give an unclamped output can tell M from M +- 1. The "sensitive" group
therefore nudges its scales until they can; the other groups aim at specific edges (ties
in the Q31 significand, rounding up to 2^31, the flush below 2^-32, reals >= 1).

Expected values come only from TFLM; the prediction under test is codegen.quant (which also
guides the choice of accumulators, apart from the extremes).
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from support.builder import Q, fc_model
from support.tflm import run_tflm

from codegen.errors import UnsupportedError
from codegen.quant import (
    INT32_MAX,
    INT32_MIN,
    activation_range,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    quantize_multipliers,
)

pytestmark = pytest.mark.tflm

QMIN, QMAX = -128, 127
ACC_LIMIT = 2**31 - 2**12  # accumulators stay clear of int32 overflow for every input
MAX_WEIGHT = 4
ALL_INPUTS = np.arange(QMIN, QMAX + 1, dtype=np.int8).reshape(-1, 1, 1)


def f32(value: float) -> float:
    return float(np.float32(value))


def f32_step(value: float, ulps: int) -> float:
    """The float32 `ulps` representable values above (or below) float32(value)."""
    bits = np.array([value], dtype=np.float32).view(np.int32) + np.int32(ulps)
    return float(bits.view(np.float32)[0])


def effective_scale(in_scale: float, weight_scale: float, out_scale: float) -> float:
    """TFLM's requantization scale: float32 scales widened to double, (in * w) / out."""
    return in_scale * weight_scale / out_scale


# -- the arithmetic the probe must tell apart ----------------------------------------------


def single_rounding(acc: np.ndarray, multiplier: np.ndarray | int,
                    shift: np.ndarray | int) -> np.ndarray:
    """TFLite's TFLITE_SINGLE_ROUNDING variant: one rounding of acc * m / 2**(31 - shift).

    |acc * m| < 2**62 and the rounding term is at most 2**61, so int64 holds it exactly.
    """
    total = 31 - np.asarray(shift, dtype=np.int64)
    product = np.asarray(acc, dtype=np.int64) * np.asarray(multiplier, dtype=np.int64)
    return (product + (np.int64(1) << (total - 1))) >> total


def requantize(acc: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int,
               zero_point: int, lo: int = QMIN, hi: int = QMAX) -> np.ndarray:
    """Our prediction of FULLY_CONNECTED's output for accumulators `acc` (int64)."""
    scaled = multiply_by_quantized_multiplier(acc, multiplier, shift)
    return np.clip(scaled + zero_point, lo, hi)


@dataclass
class Sensitivity:
    """Which wrong answers each accumulator would expose."""

    plus: np.ndarray  # multiplier + 1 gives another output
    minus: np.ndarray  # multiplier - 1 gives another output
    single: np.ndarray  # single rounding gives another output

    @property
    def any(self) -> np.ndarray:
        return self.plus | self.minus | self.single


def sensitivity(acc: np.ndarray, reals: np.ndarray | float, zero_point: int) -> Sensitivity:
    """For accumulators `acc` (broadcast against `reals`), which errors would show."""
    mult, shift = quantize_multipliers(np.atleast_1d(np.asarray(reals, dtype=np.float64)))
    mult = mult.astype(np.int64).reshape(np.shape(reals))
    shift = shift.astype(np.int64).reshape(np.shape(reals))
    ours = requantize(acc, mult, shift, zero_point)
    plus = requantize(acc, mult + 1, shift, zero_point)
    minus = requantize(acc, np.maximum(mult - 1, 0), shift, zero_point)
    single = np.clip(single_rounding(acc, mult, shift) + zero_point, QMIN, QMAX)
    return Sensitivity(ours != plus, ours != minus, ours != single)


def boundary_accumulators(reals: np.ndarray, zero_point: int) -> np.ndarray:
    """(len(reals), C): for each real, the accumulators next to each rounding boundary.

    Only these can be sensitive: M +- 1 moves acc * real by about acc / 2**(31 - shift),
    far less than one accumulator step unless the real is tiny, so a sensitive accumulator
    is one of the nearest to some boundary between two observable outputs.
    """
    mult, shift = quantize_multipliers(reals)
    quantized = np.where(mult > 0, mult * np.ldexp(1.0, shift.astype(np.int64) - 31), reals)
    boundaries = np.arange(QMIN - zero_point, QMAX - zero_point) + 0.5
    centres = np.round(boundaries[None, :] / quantized[:, None])
    acc = centres[:, :, None] + np.arange(-2, 3)[None, None, :]
    acc = np.clip(acc, -ACC_LIMIT, ACC_LIMIT)
    return acc.reshape(len(reals), -1).astype(np.int64)


def pick_accumulators(real: float, zero_point: int, rng: np.random.Generator,
                      count: int) -> list[int]:
    """`count` accumulators: one exposing each kind of error where one exists, then others.

    The int32 extremes always come along: near 2^-32 only they can round to +-1, and they
    keep the probe independent of what quantize_multiplier says for such scales.
    """
    near = boundary_accumulators(np.array([real]), zero_point)[0]
    window = min(ACC_LIMIT, int(300 / real) + 1) if real > 0 else ACC_LIMIT
    extremes = [INT32_MIN, INT32_MIN + 1, INT32_MAX - 1, INT32_MAX]
    acc = np.unique(np.concatenate([near, rng.integers(-window, window + 1, 64),
                                    rng.integers(-ACC_LIMIT, ACC_LIMIT + 1, 16), extremes]))
    sens = sensitivity(acc, real, zero_point)
    chosen: list[int] = []
    for mask in (sens.plus, sens.minus, sens.single, sens.any):
        pool = [int(a) for a in acc[mask] if int(a) not in chosen]
        if pool and len(chosen) < count:
            chosen.append(int(rng.choice(pool)))
    while len(chosen) < count:
        chosen.append(int(rng.choice(acc)))
    return [*chosen, INT32_MIN, INT32_MAX]


def place(acc: int, input_zp: int, rng: np.random.Generator) -> tuple[int, int]:
    """(weight, bias) so that some input x0 gives accumulator `acc` and no input overflows.

    Beyond ACC_LIMIT, x0 is the input extreme from which every other input moves `acc`
    toward zero.
    """
    weight = int(rng.choice([-1, 1]) * rng.integers(1, MAX_WEIGHT + 1))
    if abs(acc) <= ACC_LIMIT:
        x0 = int(rng.integers(QMIN, QMAX + 1))
    else:
        x0 = QMAX if (acc > 0) == (weight > 0) else QMIN
    return weight, acc - (x0 - input_zp) * weight


# -- the probe model -----------------------------------------------------------------------


@dataclass
class ProbeGroup:
    """Scales that share one probe model: one input and one output quantization."""

    name: str
    in_scale: float
    out_scale: float
    weight_scales: list[float]
    output_zp: int = 0

    def reals(self) -> list[float]:
        return [effective_scale(self.in_scale, w, self.out_scale) for w in self.weight_scales]


@dataclass
class Probe:
    """A FULLY_CONNECTED model with one unit per (scale, accumulator) pair."""

    model: bytes
    reals: np.ndarray  # per unit
    weights: np.ndarray  # per unit, int64
    biases: np.ndarray  # per unit, int64
    input_zp: int
    output_zp: int

    def accumulators(self) -> np.ndarray:
        """(256 inputs, units) accumulators, as TFLM forms them."""
        x = ALL_INPUTS.reshape(-1, 1).astype(np.int64)
        return (x - self.input_zp) * self.weights[None, :] + self.biases[None, :]

    def predict(self) -> np.ndarray:
        mult, shift = (np.array(p, dtype=np.int64) for p in zip(
            *(quantize_multiplier(float(r)) for r in self.reals), strict=True))
        return requantize(self.accumulators(), mult[None, :], shift[None, :], self.output_zp)


def make_probe(group: ProbeGroup, rng: np.random.Generator, per_channel: bool,
               weight_scales: list[float] | None = None, per_scale: int = 4) -> Probe:
    """Units for each weight scale, each placing one chosen accumulator at a random input."""
    input_zp = int(rng.integers(QMIN, QMAX + 1))
    scales, reals, weights, biases = [], [], [], []
    for w_scale in weight_scales if weight_scales is not None else group.weight_scales:
        real = effective_scale(group.in_scale, w_scale, group.out_scale)
        for acc in pick_accumulators(real, group.output_zp, rng, per_scale):
            weight, bias = place(acc, input_zp, rng)
            scales.append(w_scale)
            reals.append(real)
            weights.append(weight)
            biases.append(bias)
    weight_q = Q(scales, 0) if per_channel else Q(scales[0], 0)
    model = fc_model(np.array(weights, dtype=np.int8).reshape(-1, 1),
                     input_q=Q(group.in_scale, input_zp), weight_q=weight_q,
                     output_q=Q(group.out_scale, group.output_zp),
                     bias=np.array(biases, dtype=np.int64))
    return Probe(model, np.array(reals), np.array(weights, dtype=np.int64),
                 np.array(biases, dtype=np.int64), input_zp, group.output_zp)


def run_probe(probe: Probe) -> np.ndarray:
    (out,) = run_tflm(probe.model, [ALL_INPUTS])
    return out.reshape(len(ALL_INPUTS), -1).astype(np.int64)


# -- scales --------------------------------------------------------------------------------


def near_powers_of_two(rng: np.random.Generator) -> ProbeGroup:
    """2^k * (1 +- a few float32 ulps) for reals from 2^-35 (flushed) to 2^9."""
    in_scale, out_scale = 2.0**-3, 2.0**-1  # real = weight_scale / 4, exactly
    weights = [f32_step(4 * 2.0**k, ulps) for k in range(-35, 10) for ulps in (-2, -1, 0, 1, 2)]
    return ProbeGroup("near powers of two", in_scale, out_scale, weights, -3)


def halfway_scales(rng: np.random.Generator, count: int = 48) -> ProbeGroup:
    """Reals whose Q31 significand ends in exactly .5 or one product-ulp either side.

    in_scale * weight_scale is exact in double (two 24-bit significands), so scanning the
    float32 weight scale walks through every residue of the 17 bits below the Q31 point.
    """
    in_scale, out_scale = f32(0.0123), 2.0**-7
    weights: list[float] = []
    for k in rng.integers(-30, 6, count):
        start = f32(rng.uniform(0.5, 1.0) * 2.0**k * out_scale / in_scale)
        bits = np.array([start], np.float32).view(np.int32)[0] + np.arange(1 << 17, dtype=np.int32)
        candidates = bits.view(np.float32).astype(np.float64)
        reals = in_scale * candidates / out_scale
        _, exponent = np.frexp(reals)
        q31 = reals * np.ldexp(1.0, 31 - exponent)
        fraction = q31 - np.floor(q31)
        wanted = 0.5 + float(rng.choice([-1, 0, 1])) * 2.0**-17
        weights.append(float(candidates[int(np.argmin(np.abs(fraction - wanted)))]))
    return ProbeGroup("halfway significands", in_scale, out_scale, weights, 11)


def significand_rounds_to_two_pow_31(j: int) -> ProbeGroup:
    """Reals 2^k * (1 - j^2 * 2^-46): the Q31 significand is 2^31 - j^2 * 2^-15.

    in_scale = 1 - 2j * 2^-24 and weight_scale = (1 + j * 2^-23) * 2^k are float32 and their
    product is exactly that. j <= 128 rounds up to 2^31 (so the multiplier becomes 2^30 and
    the shift grows by one; j = 128 is the exact halfway case), j >= 129 rounds down to
    2^31 - 1. At k = -32 this decides between flushing to zero and shift -31.
    """
    in_scale = 1.0 - 2 * j * 2.0**-24
    weights = [(1.0 + j * 2.0**-23) * 2.0**k for k in (-33, -32, -31, -24, -12, -1, 0, 4)]
    return ProbeGroup(f"significand 2^31 - {j}^2 2^-15", in_scale, 1.0, weights, 1)


def random_scales(rng: np.random.Generator, count: int = 80) -> ProbeGroup:
    """Typical post-training scales: reals from about 1e-5 to 1."""
    in_scale, out_scale = f32(rng.uniform(0.002, 0.08)), f32(rng.uniform(0.01, 0.2))
    weights = [f32(w) for w in 10.0 ** rng.uniform(-4.5, -1.0, count)]
    return ProbeGroup("random", in_scale, out_scale, weights, int(rng.integers(-128, 128)))


def sensitive_scales(rng: np.random.Generator, count: int = 24) -> ProbeGroup:
    """Typical reals (2^-15 .. 2^-8) nudged until some observable output depends on M +- 1.

    For a real above about 2^-13 few int8-observable accumulators tell M from M +- 1, so
    each random weight scale is walked up through float32 neighbours until one has an
    accumulator sensitive to M + 1 and one (maybe another) sensitive to M - 1.
    """
    in_scale, out_scale, zero_point = f32(0.02), f32(0.05), int(rng.integers(-100, 100))
    weights: list[float] = []
    for base in 10.0 ** rng.uniform(-4.0, -2.0, count):
        bits = np.array([base], np.float32).view(np.int32)[0] + np.arange(256, dtype=np.int32)
        candidates = bits.view(np.float32).astype(np.float64)
        reals = in_scale * candidates / out_scale
        sens = sensitivity(boundary_accumulators(reals, zero_point), reals[:, None], zero_point)
        for mask in (sens.plus.any(axis=1), sens.minus.any(axis=1)):
            if mask.any():
                weights.append(float(candidates[int(np.argmax(mask))]))
    return ProbeGroup("sensitive", in_scale, out_scale, weights, zero_point)


def large_scales(rng: np.random.Generator) -> ProbeGroup:
    """Reals >= 1, where the multiplier shifts left (and wraps like int32 on overflow)."""
    reals = [1.0, 1.5, 2.0, 2.75, 3.0, 7.125, 100.3, 255.5, 1000.1, 4096.0, 2.0**20 * 1.25]
    return ProbeGroup("at least one", 2.0**-3, 2.0**-1, [f32(4 * r) for r in reals], 5)


def tiny_scales(rng: np.random.Generator, count: int = 24) -> ProbeGroup:
    """Reals around 2^-31 .. 2^-33, where TFLM flushes multipliers below 2^-32 to zero."""
    weights = [f32(4 * 2.0 ** rng.uniform(-33.5, -30.5)) for _ in range(count)]
    return ProbeGroup("tiny", 2.0**-3, 2.0**-1, weights, 0)


GROUP_FACTORIES: dict[str, Callable[[np.random.Generator], ProbeGroup]] = {
    "near_powers_of_two": near_powers_of_two,
    "halfway": halfway_scales,
    **{f"rounds_to_2_31_j{j}": (lambda _rng, j=j: significand_rounds_to_two_pow_31(j))
       for j in (1, 127, 128, 129, 181)},
    "random": random_scales,
    "sensitive": sensitive_scales,
    "large": large_scales,
    "tiny": tiny_scales,
}


@functools.cache
def probe_group(name: str) -> ProbeGroup:
    return GROUP_FACTORIES[name](np.random.default_rng(zlib.crc32(name.encode())))


# -- multiplier tests ----------------------------------------------------------------------


def assert_probe_matches(probe: Probe, label: str) -> None:
    expected = run_probe(probe)
    predicted = probe.predict()
    bad = np.argwhere(expected != predicted)
    if len(bad):
        sample, unit = (int(i) for i in bad[0])
        acc = int(probe.accumulators()[sample, unit])
        real = float(probe.reals[unit])
        pytest.fail(
            f"{label}: {len(bad)} outputs differ; first: real {real!r} "
            f"(ours {quantize_multiplier(real)}), acc {acc}, TFLM {expected[sample, unit]}, "
            f"ours {predicted[sample, unit]}"
        )


@pytest.mark.parametrize("name", GROUP_FACTORIES)
def test_per_channel_multipliers_match_tflm(name: str) -> None:
    group = probe_group(name)
    probe = make_probe(group, np.random.default_rng(zlib.crc32(name.encode()) + 1), True)
    assert_probe_matches(probe, group.name)


@pytest.mark.parametrize("name", GROUP_FACTORIES)
def test_per_tensor_multipliers_match_tflm(name: str) -> None:
    group = probe_group(name)
    rng = np.random.default_rng(zlib.crc32(name.encode()) + 2)
    chosen = rng.choice(len(group.weight_scales), min(6, len(group.weight_scales)),
                        replace=False)
    for index in sorted(int(i) for i in chosen):
        w_scale = group.weight_scales[index]
        probe = make_probe(group, rng, per_channel=False, weight_scales=[w_scale])
        assert_probe_matches(probe, f"{group.name}, weight scale {w_scale!r}")


def scale_sensitivity(group: ProbeGroup) -> dict[str, int]:
    """How many of the group's scales get a probe unit exposing each kind of error."""
    probe = make_probe(group, np.random.default_rng(99), per_channel=True)
    acc = probe.accumulators()
    found: dict[float, np.ndarray] = {}
    for unit, real in enumerate(probe.reals):
        sens = sensitivity(acc[:, unit], float(real), probe.output_zp)
        flags = np.array([sens.plus.any(), sens.minus.any(), sens.single.any()])
        found[float(real)] = found.get(float(real), np.zeros(3, bool)) | flags
    flags = np.array(list(found.values()))
    return {"scales": len(found), "plus": int(flags[:, 0].sum()),
            "minus": int(flags[:, 1].sum()), "single": int(flags[:, 2].sum())}


def test_probes_are_sensitive() -> None:
    """The probes would notice multiplier +- 1 and single rounding (a check of the test)."""
    sensitive = scale_sensitivity(probe_group("sensitive"))
    assert sensitive["plus"] + sensitive["minus"] >= sensitive["scales"] >= 24, sensitive
    assert min(sensitive["plus"], sensitive["minus"]) >= 8, sensitive
    for name in ("random", "halfway", "near_powers_of_two"):
        counts = scale_sensitivity(probe_group(name))
        assert counts["single"] >= 0.8 * counts["scales"], (name, counts)
    halfway = scale_sensitivity(probe_group("halfway"))
    assert min(halfway["plus"], halfway["minus"]) >= 8, halfway


def test_constructed_significands_round_as_intended() -> None:
    """The 2^31-rounding groups really straddle the rounding point (a check of the test)."""
    for j, rounds_up in ((1, True), (127, True), (128, True), (129, False), (181, False)):
        real = significand_rounds_to_two_pow_31(j).reals()[3]  # k = -24
        expected = (2**30, -23) if rounds_up else (2**31 - 1, -24)
        assert quantize_multiplier(real) == expected, j
    flushed = significand_rounds_to_two_pow_31(129).reals()[1]  # k = -32
    assert quantize_multiplier(flushed) == (0, 0)
    kept = significand_rounds_to_two_pow_31(128).reals()[1]
    assert quantize_multiplier(kept) == (2**30, -31)


@pytest.mark.parametrize("name", GROUP_FACTORIES)
def test_array_multipliers_equal_the_scalar_ones(name: str) -> None:
    """quantize_multipliers (vectorized, for layers of millions of channels) gives what
    quantize_multiplier, the one the TFLM probes check, gives for every probe scale, every
    power of two and its neighbours, and zero."""
    powers = 2.0 ** np.arange(-40.0, 31.0)
    reals = np.concatenate([probe_group(name).reals(), powers, np.nextafter(powers, 0.0),
                            powers * (1 - 2.0**-32), powers * (1 - 2.0**-33), [0.0, -0.0]])
    reals = reals[reals < 2.0**30 * (1 - 2.0**-31)]
    mult, shift = quantize_multipliers(reals)
    assert [(int(m), int(s)) for m, s in zip(mult, shift, strict=True)] == \
        [quantize_multiplier(float(r)) for r in reals]


def test_array_multipliers_refuse_what_the_scalar_refuses() -> None:
    for bad in (2.0**30, math.inf, -math.inf, math.nan):
        with pytest.raises(UnsupportedError):
            quantize_multipliers(np.array([0.5, bad, 0.25]))


def test_quantize_multiplier_rejects_what_it_cannot_represent() -> None:
    with pytest.raises(UnsupportedError):
        quantize_multiplier(2.0**30)
    with pytest.raises(UnsupportedError):
        quantize_multiplier(math.inf)
    with pytest.raises(UnsupportedError):
        quantize_multiplier(math.nan)
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0**30 * (1 - 2.0**-30)) == (2**31 - 2, 30)
    with pytest.raises(UnsupportedError):  # rounds up to 2^30
        quantize_multiplier(2.0**30 * (1 - 2.0**-40))


# -- activation ranges ---------------------------------------------------------------------


def boundary_scales(rng: np.random.Generator) -> list[float]:
    """Output scales where bound / scale lands on or next to a .5 in float32 arithmetic.

    Includes scales where float32 and double division round to different integers, so a
    double-precision activation range would be caught.
    """
    scales = [4.0, 12.0, 2.0, 0.5, 2.0**-7, 6.0 / 255]
    split: list[float] = []
    for bound in (1.0, 6.0):
        for k in rng.permutation(np.arange(1, 127))[:60]:
            for ulps in range(-4, 5):
                scale = f32_step(bound / (k + 0.5), ulps)
                by_float = float(np.float32(bound) / np.float32(scale))
                if by_float == k + 0.5 and bound / scale != k + 0.5:
                    split.append(scale)
    return scales + split[:12]


def activation_cases() -> list[tuple[str, float, int]]:
    rng = np.random.default_rng(5)
    scales = boundary_scales(rng) + [f32(s) for s in 10.0 ** rng.uniform(-4, 0.5, 12)]
    zero_points = [QMIN, QMAX, 0, -1, 1, 37, -101]
    cases = []
    for index, scale in enumerate(scales):
        zp = zero_points[index % len(zero_points)] if index < 14 else int(rng.integers(-128, 128))
        for activation in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            cases.append((activation, scale, zp))
    return cases


ACTIVATION_CASES = activation_cases()


def test_boundary_scales_include_float_double_splits() -> None:
    scales = boundary_scales(np.random.default_rng(5))
    assert len(scales) > 6 + 6


@pytest.mark.parametrize(("activation", "scale", "zero_point"), ACTIVATION_CASES)
def test_activation_range_matches_tflm(activation: str, scale: float, zero_point: int) -> None:
    """Identity layer (real multiplier 1) sweeping every output level, clamped by TFLM."""
    biases = np.array([-128, 0, 128], dtype=np.int64)
    model = fc_model(np.ones((3, 1), np.int8), input_q=Q(scale, 0), weight_q=Q(1.0, 0),
                     output_q=Q(scale, zero_point), bias=biases, activation=activation)
    (out,) = run_tflm(model, [ALL_INPUTS])
    acc = ALL_INPUTS.reshape(-1, 1).astype(np.int64) + biases[None, :]
    lo, hi = activation_range(activation, scale, zero_point, QMIN, QMAX)
    mult, shift = quantize_multiplier(effective_scale(scale, 1.0, scale))
    predicted = requantize(acc, mult, shift, zero_point, lo, hi)
    np.testing.assert_array_equal(out.reshape(predicted.shape), predicted)
