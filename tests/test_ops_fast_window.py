"""The speed paths of DEPTHWISE_CONV_2D (3x3 line buffer, in place) and of the global
AVERAGE_POOL_2D against TFLM.

The 3x3 depthwise kernel (templates/runtime/depthwise3x3.c.j2) has its own code paths that
the general window tests reach only partly: groups of 6 (stride 1, assembly), 4, 2 and 1
outputs along a line,
lines along rows or along columns, channel counts that are and are not multiples of 4,
channel groups smaller than the layer (a line buffer bounded by the input size), the
saturating variants with and without the tie fixup (assembly on the DSP cores, groups of
four outputs and tails of 1-3) and the general (clamp, left shifts) variants, strides 1 and
2 on either axis, batches of images, and running in place over its input; its Helium driver
(templates/runtime/depthwise3x3_mve.c.j2, cortex-m55) passes of three outputs with every
tail and channel groups with every tail, and the layers it leaves to the line buffer. The
global average pool sums four channels at a time in int16 pairs up to 255 values and in
int32 beyond (on Helium: four channels per vector, divided by a reciprocal multiply). Each
model is checked as usual: the reference against TFLM, the generated C against the reference
on every target (the DSP path runs on cortex-m4/m7/m33, plain C elsewhere) and under the
sanitizers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support.builder import ModelBuilder, Q, bias_scales
from support.conv_models import Branch, branch_model, depthwise_options, out_size
from support.policy import SHARED_MODELS, require_file
from support.verify import (
    C_TARGETS,
    c_matches_reference,
    edge_inputs,
    inputs_with_edges,
    reference_matches_tflm,
)

from codegen import quant
from codegen.ops import prepare_layer
from codegen.ops.average_pool_2d import GlobalAveragePool2D, _reciprocal
from codegen.ops.depthwise_conv_2d import (
    WHOLE_LINES,
    DepthwiseConv2D3x3,
    _shared_shift_words,
    with_whole_lines,
)
from codegen.program import load_program

TFLM_SAMPLES = 500


def _dw(stride=(1, 1), padding="SAME", activation="NONE", output=(0.1, 0), **extra) -> Branch:
    return Branch("depthwise", (3, 3), padding=padding, stride=stride, activation=activation,
                  output=output, **extra)


# Branch models: every branch reads the model input.
_SHIFT_BRANCHES = ((1, 5, 16, 9), (0.03, -128), [
    _dw(activation="RELU", output=(0.1, -128), scale_range=(0.0005, 4.0)),
    _dw(stride=(2, 2), activation="RELU", output=(0.05, -128), scale_range=(0.0005, 4.0)),
    _dw(padding="VALID", activation="RELU", output=(0.05, -128), scale_range=(0.0005, 4.0)),
    _dw(stride=(2, 2), padding="VALID", activation="RELU", output=(0.2, -128),
        scale_range=(0.0005, 4.0)),
])
BRANCHES: dict[str, tuple[tuple[int, ...], tuple[float, int], list[Branch]]] = {
    # 17 channels (4 groups of 4 and one left over), lines of 11 (two groups of 4, a pair and
    # one), every activation, strides on either axis, SAME and VALID, per-tensor weights, no
    # bias, multipliers above 1 (left shifts: the general variant).
    "rows": ((1, 9, 11, 17), (0.05, -7), [
        _dw(activation="RELU", output=(0.1, -128)),
        _dw(stride=(2, 2), activation="RELU6", output=(0.05, -20)),
        _dw(padding="VALID", output=(0.2, 5)),
        _dw(padding="VALID", stride=(2, 2), activation="RELU_N1_TO_1", output=(0.01, 3)),
        _dw(stride=(1, 2), output=(0.3, -1)),
        _dw(stride=(2, 1), weight_scale=0.004, output=(0.08, 100)),
        _dw(bias_range=1000000, output=(0.15, -60)),
        _dw(scale_base=0.3, output=(0.002, 9)),  # real multipliers above 1
        _dw(stride=(2, 2), activation="RELU", output=(0.1, -128)),  # no tie fixup, stride 2
        Branch("avg", (9, 11), padding="VALID", activation="RELU"),  # global, 99 values
        Branch("avg", (13, 15), stride=(9, 11), activation="RELU6"),  # global over padding
    ]),
    # Taller than wide: lines along the columns. 5 channels, lines of 13 and 7.
    "columns": ((1, 13, 3, 5), (0.5, 113), [
        _dw(activation="RELU", output=(0.4, -128)),
        _dw(stride=(2, 2), output=(0.3, 7)),
        _dw(padding="VALID", stride=(1, 2), activation="RELU6", output=(0.2, -128)),
        _dw(stride=(2, 1), weight_scale=0.01, output=(0.6, 0)),
    ]),
    # Tiny images: one pixel, one row, one column; 1 and 3 channels; two images per sample.
    "tiny_1": ((2, 1, 1, 3), (0.02, -128), [
        _dw(output=(0.05, -128)),
        _dw(stride=(2, 2), activation="RELU", output=(0.05, -128)),
        Branch("avg", (1, 1), padding="VALID"),  # global, one value, 3 channels
    ]),
    "tiny_2": ((1, 1, 6, 1), (0.1, 20), [
        _dw(output=(0.05, 10)),
        _dw(stride=(2, 2), output=(0.05, 10)),
    ]),
    "tiny_3": ((1, 7, 1, 4), (0.1, 0), [
        _dw(activation="RELU", output=(0.05, -128)),
        _dw(stride=(2, 2), output=(0.05, -5)),
    ]),
    # Stride-1 lines of 20, 18 and 14 (the assembly's groups of six, then the groups of four
    # and tails over what is left): input zero point 127, output zero points at the ends.
    "six": ((1, 4, 20, 6), (0.04, 127), [
        _dw(output=(0.1, 127)),
        _dw(activation="RELU", output=(0.1, -128)),
        _dw(padding="VALID", output=(0.2, -128)),
        _dw(stride=(1, 2), output=(0.3, 2)),
        Branch("avg", (4, 20), padding="VALID"),  # so that the line buffer stays small
    ]),
    "six_odd": ((1, 3, 15, 5), (0.06, -128), [  # lines of 15 and 13
        _dw(activation="RELU", output=(0.1, -128)),
        _dw(padding="VALID", output=(0.1, 0)),
    ]),
    # Per-channel right shifts over a range (scales over 0.0005-4 of the base), the variants
    # without the tie fixup: the assembly's lines of one shared shift where the shifts span
    # at most 7 (here exactly 7: weights scaled by up to 2^8, -128 to -2^15), and where they
    # span more (the channels of a shift at or above the shared one with words of their
    # own); stride 2 in whole groups of four (the lean loop). The same layers twice: the two
    # names' seeds (their lengths, `_branches`) draw scales whose shifts span at most 7 in
    # "shift" and more in "shift_range_wide" (test_models_reach_every_path checks both).
    "shift": _SHIFT_BRANCHES,
    "shift_range_wide": _SHIFT_BRANCHES,
    # The same layers with biases near 2^30: no shared shift (a channel's bias scaled by 4
    # leaves int32), the lines of each channel's own shift.
    "shift_bias": (_SHIFT_BRANCHES[0], _SHIFT_BRANCHES[1],
                   [replace(br, bias_range=(1 << 30) - (1 << 21)) for br in _SHIFT_BRANCHES[2]]),
    # Lines of exactly six outputs, one shared shift (DSP cores: one group of six per
    # channel, asm_lines_single): 7 channels in passes of 4 and 3, a stride of 2 across the
    # lines, and along them.
    "six_lines": ((1, 5, 6, 7), (0.04, -128), [
        _dw(activation="RELU", output=(0.1, -128)),
        _dw(stride=(2, 1), activation="RELU", output=(0.08, -128), scale_range=(0.0005, 4.0)),
    ]),
    "six_lines_s2": ((1, 3, 12, 7), (0.04, -20), [  # and of stride 2
        _dw(stride=(2, 2), activation="RELU", output=(0.1, -128)),
        _dw(stride=(1, 2), activation="RELU", output=(0.08, -128), scale_range=(0.0005, 4.0)),
    ]),
    # Lines of exactly three outputs, one shared shift (DSP cores: two channels per pass,
    # asm_lines_three): 10 channels in passes of 4, 4 and 2, SAME and VALID, stride 1 (lines
    # of 6 int16)
    "three_lines": ((1, 3, 3, 10), (0.05, -128), [
        _dw(activation="RELU", output=(0.1, -128)),
        _dw(stride=(2, 1), activation="RELU", output=(0.06, -128), scale_range=(0.0005, 4.0)),
    ]),
    "three_lines_valid": ((1, 3, 5, 10), (0.05, 3), [
        _dw(padding="VALID", activation="RELU", output=(0.1, -128)),
        _dw(padding="VALID", activation="RELU", output=(0.2, -128), scale_range=(0.0005, 4.0)),
    ]),
    # and of stride 2 (lines of 10 int16)
    "three_lines_s2": ((1, 5, 5, 10), (0.05, -128), [
        _dw(stride=(2, 2), activation="RELU", output=(0.1, -128)),
        _dw(stride=(2, 2), activation="RELU", output=(0.07, -128), scale_range=(0.0005, 4.0)),
    ]),
    "three_lines_s2_valid": ((1, 5, 7, 10), (0.05, -9), [
        _dw(padding="VALID", stride=(2, 2), activation="RELU", output=(0.1, -128)),
        _dw(padding="VALID", stride=(2, 2), activation="RELU", output=(0.2, -128),
            scale_range=(0.0005, 4.0)),
    ]),
    # More channels than one pass holds: the line buffer takes channel groups of 4 and more.
    "groups": ((1, 16, 16, 23), (0.03, 12), [
        _dw(activation="RELU", output=(0.05, -128)),
        _dw(stride=(2, 2), output=(0.07, 0)),
        Branch("avg", (16, 16), padding="VALID"),  # global, 256 values: int32 sums
    ]),
}


def _chain(shape: Sequence[int], specs: Sequence[tuple[Branch, tuple[float, int]]],
           seed: int) -> bytes:
    """input -> op 0 -> op 1 -> ... -> output: each depthwise reads the previous one's output,
    which dies there, so that stride-1 layers run in place."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder("depthwise chain")
    n, h, w, c = shape
    q_in = (0.05, -3)
    x = b.add_tensor("input", tuple(shape), "int8", quant=Q(*q_in))
    current, q_cur = x, q_in
    for i, (br, q_out) in enumerate(specs):
        oh = out_size(br.padding, h, 3, br.stride[0])
        ow = out_size(br.padding, w, 3, br.stride[1])
        scales = list(0.02 * rng.uniform(0.25, 4.0, size=c))
        wt = b.add_tensor(f"w{i}", (1, 3, 3, c), "int8", quant=Q(scales, 0, axis=3),
                          data=rng.integers(-128, 128, size=(1, 3, 3, c)))
        bias = b.add_tensor(f"b{i}", (c,), "int32",
                            quant=Q(bias_scales(q_cur[0], scales), 0, axis=0),
                            data=rng.integers(-4000, 4001, size=c))
        y = b.add_tensor(f"y{i}", (n, oh, ow, c), "int8", quant=Q(*q_out))
        b.add_op("DEPTHWISE_CONV_2D", [current, wt, bias], [y],
                 depthwise_options(br.padding, br.stride, (1, 1), br.activation))
        current, q_cur, h, w = y, q_out, oh, ow
    b.set_io([x], [current])
    return b.build()


CHAINS = {
    # rows, then columns (the second and third run in place), then a stride-2 layer
    "inplace": ((1, 6, 10, 12), [
        (_dw(activation="RELU"), (0.1, -128)),
        (_dw(), (0.2, 4)),
        (_dw(activation="RELU6"), (0.05, -100)),
        (_dw(stride=(2, 2)), (0.1, 0)),
    ]),
    "inplace_columns": ((1, 11, 4, 9), [
        (_dw(), (0.1, -2)),
        (_dw(activation="RELU"), (0.15, -128)),
    ]),
}


# -- dwd (issue 14): the driver's ring of three buffer lines and the line loads -------------
# Chains of stride-2 layers shrink the image so that one model walks lines of 13, 7, 4, 2
# and 1 pixels (the assembly load's quads, its pair and its single pixel, and lines of fewer
# than four), heights down to 1 (output lines reading a first and a last line of padding,
# stride 2 over odd and even heights), each stride-1 layer in place over its input; 9, 6 and
# 5 channels (groups of four and the rest), two images per sample, output zero points at the
# ends of the range.
DWD_CHAINS = {
    "dwd_ring": ((1, 11, 13, 9), [
        (_dw(), (0.1, -128)),
        (_dw(stride=(2, 2)), (0.1, 127)),
        (_dw(activation="RELU"), (0.08, -128)),
        (_dw(stride=(2, 2)), (0.1, 0)),
        (_dw(), (0.2, 127)),
        (_dw(stride=(2, 2)), (0.1, -128)),
        (_dw(), (0.1, 3)),
        (_dw(stride=(2, 2)), (0.15, -20)),
        (_dw(activation="RELU6"), (0.05, -128)),
    ]),
    "dwd_ring_batches": ((2, 5, 12, 6), [
        (_dw(padding="VALID"), (0.1, -128)),
        (_dw(stride=(2, 2)), (0.1, 127)),
        (_dw(), (0.2, -1)),
        (_dw(stride=(2, 2)), (0.1, -128)),
        (_dw(activation="RELU"), (0.1, -128)),
    ]),
    "dwd_ring_axes": ((1, 9, 11, 5), [
        (_dw(stride=(2, 1)), (0.1, 127)),
        (_dw(stride=(1, 2)), (0.1, -128)),
        (_dw(activation="RELU"), (0.2, 5)),
        (_dw(padding="VALID", stride=(2, 2)), (0.1, -128)),
    ]),
}
CHAINS.update(DWD_CHAINS)

def _branches(name: str) -> Callable[[], bytes]:
    shape, input_q, branches = BRANCHES[name]
    return lambda: branch_model(shape, input_q, branches, seed=len(name), description=name)


def _chain_model(name: str) -> Callable[[], bytes]:
    shape, specs = CHAINS[name]
    return lambda: _chain(shape, specs, seed=len(name))


MODELS: dict[str, Callable[[], bytes]] = {
    **{f"dw_{n}": _branches(n) for n in BRANCHES},
    **{f"dw_{n}": _chain_model(n) for n in CHAINS},
}


@pytest.mark.tflm
@pytest.mark.parametrize("name", list(MODELS))
def test_reference_matches_tflm(name: str) -> None:
    model = MODELS[name]()
    inputs = inputs_with_edges(model, TFLM_SAMPLES, seed=1)
    reference_matches_tflm(model, inputs)


@pytest.mark.parametrize("target", C_TARGETS)
@pytest.mark.parametrize("name", list(MODELS))
def test_generated_c_matches_reference(name: str, target: str, tmp_path: Path) -> None:
    model = MODELS[name]()
    c_matches_reference(model, target, tmp_path, seed=2, extra=edge_inputs(load_program(model)))


@pytest.mark.parametrize("name", list(MODELS))
def test_generated_c_is_clean_under_sanitizers(name: str, tmp_path: Path) -> None:
    model = MODELS[name]()
    c_matches_reference(model, "host", tmp_path, seed=3, sanitize=True,
                        extra=edge_inputs(load_program(model)))


def test_models_reach_every_path() -> None:
    """The models above take the 3x3 kernel with every variant, both line directions,
    several channel groups, every tail of a line, and in place."""
    layers = [la for make in MODELS.values() for la in load_program(make()).layers]
    fast = [la for la in layers if isinstance(la, DepthwiseConv2D3x3)]
    depthwise = [la for la in layers if la.opcode == "DEPTHWISE_CONV_2D"]
    assert fast == depthwise
    pools = [la for la in layers if la.opcode == "AVERAGE_POOL_2D"]
    assert all(isinstance(la, GlobalAveragePool2D) for la in pools)
    assert {la.params["pairs"] for la in pools} == {True, False}
    # Helium's global pool: four channels per vector and a tail, its reciprocal division
    assert any(la.params["reciprocal"] and la.params["in_c"] % 4 for la in pools)
    params = [la.params for la in fast]
    assert {p["variant"] for p in params} == {"s1", "s2", "s1_floor", "s2_floor", "s1_general",
                                              "s2_general"}
    for stride in ("s1", "s2"):  # the assembly's groups of 4 and its tails of 1, 2 and 3
        assert {p["out_b"] % 4 for p in params if p["variant"] in (stride, f"{stride}_floor")} \
            == {0, 1, 2, 3}
    # stride 1: groups of six first, then what is left (0-5 outputs), with and without the
    # tie fixup
    for variant in ("s1", "s1_floor"):
        assert {p["out_b"] % 6 for p in params if p["variant"] == variant
                and p["out_b"] >= 6} == {0, 1, 2, 3, 4, 5}, variant
    # no fixup: the shared right shift (DSP cores), with every tail and stride 2's lean loop,
    # up to 7 more than a channel's own; and layers whose shifts span more
    shared = [p for p in params if p["shared_shift"]]
    assert {p["out_b"] % 6 for p in shared if p["stride_b"] == 1} == {0, 1, 2, 3, 4, 5}
    assert {p["out_b"] % 4 for p in shared if p["stride_b"] == 2} == {0, 1, 2, 3}
    assert max(p["shared_shift"] + max(p["shifts"]) for p in shared) == 7
    assert any(p["shared_shift"] <= -min(p["shifts"]) for p in shared)  # words of their own
    assert {p["stride_b"] for p in shared if p["six"] and p["group"] < p["channels"]} \
        == {1, 2}  # lines of six
    assert {p["stride_b"] for p in shared if p["three"] and p["group"] < p["channels"]} \
        == {1, 2}  # and of three
    assert {p["variant"] for p in params if p["variant"].endswith("_floor")
            and not p["shared_shift"]} == {"s1_floor", "s2_floor"}
    assert {p["variant"] for p in shared} == {"s1_floor", "s2_floor"}
    assert {p["transposed"] for p in params} == {True, False}
    assert any(p["group"] < p["channels"] and p["channels"] % p["group"] for p in params)
    assert {p["out_b"] % 4 for p in params} == {0, 1, 2, 3}
    assert {p["channels"] % 4 for p in params} >= {0, 1, 3}
    assert any(p["pad_a"] != p["pad_b"] or p["stride_a"] != p["stride_b"] for p in params)
    # The Helium driver (cortex-m55): passes of 3 outputs with every tail, channel tails,
    # both variants and strides, in place; and layers it leaves to the line buffer.
    helium = [p for p in params if p["mve"]]
    assert {p["mve"] for p in params} == {True, False}
    assert {p["out_b"] % 3 for p in helium} == {0, 1, 2}
    assert {p["channels"] % 4 for p in helium} >= {0, 1, 3}
    assert {p["variant"] for p in helium} == {p["variant"] for p in params}  # all six


def _halves(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The int16 halves (low, high) of int32 words."""
    w = words.astype(np.int64)
    return ((w & 0xFFFF) ^ 0x8000) - 0x8000, w >> 16


@pytest.mark.parametrize("seed", range(6))
def test_shared_shift_words_requantize_as_tflm(seed: int) -> None:
    """The DSP assembly's arithmetic on the words of one shared right shift R (SMLAD on the
    int16 weight pairs, SMMLA with the add, SSAT with ASR #R) is TFLM's requantization
    (codegen.quant, checked against TFLM elsewhere), at accumulators from the extreme
    inputs and around every rounding tie; right shifts over more than 7 values (a weight
    scaled by more than 2^8) get no such words."""
    rng = np.random.default_rng(seed)
    channels = 11
    taps = rng.integers(-128, 128, size=(3, 3, channels))
    taps[0, 0, :2], taps[1, 2, 2] = -128, 127
    bias = rng.integers(-4000, 4001, size=channels)
    spread = int(rng.integers(0, 7))  # right shifts over spread + 1 values, up to 7
    rights = int(rng.integers(1, 12)) + rng.integers(0, spread + 1, size=channels)
    rights[0] = rights.min() + spread
    reals = rng.uniform(0.5, 1.0, size=channels) * 2.0 ** -rights.astype(np.float64)
    multipliers, shifts = quant.quantize_multipliers(reals)
    zp = -128  # the variants without the tie fixup: act_min >= zero point, full int8 range
    got = _shared_shift_words(taps.astype(np.int8), shifts.astype(np.int32), bias,
                              multipliers, zp)
    assert got is not None
    shared, words = got
    assert -int(shifts.min()) < shared <= -int(shifts.max()) + 7
    x = rng.integers(-255, 256, size=(3000, 3, 3))
    x[0], x[1] = 255 * np.sign(taps[..., 0]), -255 * np.sign(taps[..., 0])
    acc = np.einsum("nij,ijc->nc", x, taps) + bias
    # inputs moved so that the accumulators sit on and around rounding ties
    right = -shifts.astype(np.int64)
    ties = (rng.integers(-40, 40, size=(600, channels)) << right) + (1 << (right - 1))
    ties += rng.integers(-1, 2, size=ties.shape)
    acc = np.concatenate([acc, ties])
    expected = quant.requantize(acc, multipliers, shifts, zp, -128, 127)
    # the words: the taps and bias times 2^(1 + R - the channel's right shift), in pairs
    scale = np.int64(1) << (1 + shared - right)
    low, high = _halves(words[:, :6])
    for row in range(3):
        w = taps[row].T * scale[:, None]  # [channel, tap]
        np.testing.assert_array_equal(np.stack([low[:, 2 * row], high[:, 2 * row],
                                                low[:, 2 * row + 1], high[:, 2 * row + 1]]),
                                      np.stack([w[:, 0], w[:, 1], w[:, 1], w[:, 2]]))
    np.testing.assert_array_equal(words[:, 6], bias * scale)
    # the assembly: SMLADs give acc * scale (in int32), SMMLA its high word plus the add
    # (in int32), SSAT with ASR #R the output
    scaled = acc * scale
    assert np.all(np.abs(scaled) < 2**31)
    high_word = (scaled * multipliers.astype(np.int64)
                 + (words[:, 8].astype(np.int64) << 32)) >> 32
    assert np.all(np.abs(high_word) < 2**31)
    np.testing.assert_array_equal(np.clip(high_word >> shared, -128, 127), expected)


def _assembly_outputs(words: np.ndarray, taps: np.ndarray, sums: np.ndarray, shared: int
                      ) -> np.ndarray:
    """The DSP assembly's outputs of one channel's shared-shift words at the weighted sums
    `sums` (sum of taps times inputs, no bias): the SMLADs give the sums times the weights'
    scale plus the bias word (in int32), SMMLA its high word plus the add (in int32), SSAT
    with ASR #R the output."""
    low, _ = _halves(words[None, :6])
    nonzero = np.flatnonzero(taps[:, 0])
    scale = int(low[0, 2 * nonzero[0]] // taps[nonzero[0], 0]) if nonzero.size else 0
    scaled = sums * scale + int(words[6])
    assert np.all(np.abs(scaled) < 2**31)
    high = (scaled * int(words[7]) + (int(words[8]) << 32)) >> 32
    assert np.all(np.abs(high) < 2**31)
    return np.clip(high >> shared, -128, 127)


@pytest.mark.parametrize("seed", range(4))
def test_wide_shift_words_requantize_as_tflm(seed: int) -> None:
    """Right shifts over more than 7 values: the channels of a shift at or above the shared
    one take words of their own (an output constant over every accumulator their inputs can
    give, or a multiplier and add searched and checked exact there); their outputs are
    TFLM's at every such accumulator (|input - zero point| <= 255); a narrow channel whose
    scaled bias leaves int32 leaves the layer no shared words."""
    rng = np.random.default_rng(100 + seed)
    channels = 12
    taps = rng.integers(-128, 128, size=(3, 3, channels))
    taps[0, 0, 0], taps[2, 1, 1] = -128, 127
    taps[:, :, 2] = rng.integers(-3, 4, size=(3, 3))  # small sums: few outputs, or one
    bias = rng.integers(-4000, 4001, size=channels)
    bias[3] = 60_000_000  # an output constant at a large shift
    rights = int(rng.integers(2, 6)) + rng.integers(0, 20, size=channels)
    reals = rng.uniform(0.5, 1.0, size=channels) * 2.0 ** -rights.astype(np.float64)
    multipliers, shifts = quant.quantize_multipliers(reals)
    zp = -128
    got = _shared_shift_words(taps.astype(np.int8), shifts.astype(np.int32), bias,
                              multipliers, zp)
    assert got is not None
    shared, words = got
    assert -int(shifts.min()) >= shared  # channels of their own words
    for c in range(channels):
        spread = 255 * int(np.abs(taps[:, :, c]).sum())
        sums = np.arange(-spread, spread + 1, dtype=np.int64)
        expected = quant.requantize(sums + int(bias[c]), int(multipliers[c]), int(shifts[c]),
                                    zp, -128, 127)
        np.testing.assert_array_equal(
            _assembly_outputs(words[c], taps[:, :, c], sums, shared), expected, err_msg=str(c))
    # a channel of the smallest shift (scaled by 4 at least) with a bias near 2^30
    narrow = bias.copy()
    narrow[int(np.argmax(shifts))] = (1 << 30) - (1 << 20)
    assert _shared_shift_words(taps.astype(np.int8), shifts.astype(np.int32), narrow,
                               multipliers, zp) is None


def test_pool_reciprocal_divides_exactly() -> None:
    """Helium's global pool: the high word of n * _reciprocal(count) is n // count for every
    n below 2^16 (|sum| + count // 2 of at most 255 int8 values) and count from 2 to 255."""
    n = np.arange(1 << 16, dtype=np.uint64)
    for count in range(2, 256):
        r = _reciprocal(count)
        assert 0 < r < 1 << 32
        np.testing.assert_array_equal((n * np.uint64(r)) >> np.uint64(32), n // count)
    assert _reciprocal(1) == _reciprocal(256) == 0


@pytest.mark.parametrize("name", list(CHAINS))
def test_stride_1_layers_run_in_place(name: str) -> None:
    program = load_program(MODELS[f"dw_{name}"]())
    plan = program.plan
    in_place = [la for la in program.layers
                if plan.locations[la.inputs[0]] == plan.locations[la.outputs[0]]]
    expected = [la for la in program.layers[1:] if la.params["stride_a"] == 1
                and la.params["stride_b"] == 1]
    assert in_place == expected and expected
    for la in in_place:
        assert la.index in plan.scratch


@pytest.mark.parametrize("model", ["vww_96_int8", "kws_ref_model"])
def test_whole_lines_without_preparing_again(model: str) -> None:
    """The whole-line variant the planner tries by default (codegen/plan.py) derives its
    parameters from the prepared layer: every one equals a fresh Prepare with WHOLE_LINES,
    on every 3x3 depthwise layer of the shared models."""
    program = load_program(require_file(SHARED_MODELS / f"{model}.tflite").read_bytes())
    layers = [la for la in program.layers if isinstance(la, DepthwiseConv2D3x3)]
    assert layers
    for layer in layers:
        plain = prepare_layer(replace(layer.op, options={
            k: v for k, v in layer.op.options.items() if k != WHOLE_LINES}), program.graph)
        got = with_whole_lines(plain)
        want = prepare_layer(replace(plain.op, options={**plain.op.options, WHOLE_LINES: True}),
                             program.graph)
        assert type(got) is type(want) and got.op == want.op
        assert got.params.keys() == want.params.keys()
        for key, value in want.params.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(got.params[key], value, err_msg=key)
            else:
                assert got.params[key] == value, key
