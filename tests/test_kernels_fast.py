"""The matrix-product engine under FULLY_CONNECTED and CONV_2D (codegen/ops/_gemm.py).

  - its arithmetic in numpy, without C: the packed weight words and 16-bit columns, put
    through SMLAD's wrap-around arithmetic, give the exact dot products; the short
    requantization equals TFLM's MultiplyByQuantizedMultiplier wherever the generator
    accepts a layer, ties and extreme shifts included;
  - which layers take it: every CONV_2D and FULLY_CONNECTED of the MLPerf Tiny models (a
    layer that silently fell back to the plain kernel would cost 3-5x), and the ones that
    must not (accumulators out of its range);
  - the int8 Helium engines (codegen/ops/_gemm_mve.py): the packing in numpy, the edge
    cases on cortex-m55 with the inline assembly (-O2) and with the intrinsics (-O0);
  - its edge cases in generated C against the reference on every target (the plain-C path
    on the host, M0 and M3, the DSP path on M4, M7 and M33) and under the sanitizers:
    odd channel and pixel counts, depths that are not a multiple of 8, widening straight
    from the image with padding, strides and dilations, constant channels, the clamping
    variant, 1x1 convolutions in place, fallbacks next to engine layers, depths of one
    pass of the engine's loop, gathered columns with their rows split (few input channels),
    1x1 columns of two pixels widened in one loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.builder import ModelBuilder, Q, bias_scales, fc_options
from support.conv_models import conv_options, out_size
from support.policy import SHARED_MODELS, require_file
from support.verify import C_TARGETS, assert_same, c_matches_reference, edge_inputs, random_inputs

from codegen import quant
from codegen.build import build_firmware
from codegen.execute import HARNESS_NAME, execute, run_executable, write_harness_sources
from codegen.ops import _gemm, _gemm_mve
from codegen.ops.conv_2d import Conv2D, Conv2DGemm, split_order
from codegen.ops.fully_connected import FullyConnectedGemm
from codegen.program import load_program
from codegen.targets import get_target

# -- the arithmetic, in numpy --------------------------------------------------------------

_MASK = 0xFF00FF00


def _halves(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed low and high 16-bit halves of uint32 words."""
    w = words.astype(np.int64) & 0xFFFFFFFF
    lo, hi = w & 0xFFFF, w >> 16
    return lo - ((lo & 0x8000) << 1), hi - ((hi & 0x8000) << 1)


def _smlad_sum(words: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """sum over the last axis of SMLAD(word, col), wrapped to int32 as the hardware does."""
    wl, wh = _halves(words)
    xl, xh = _halves(cols)
    return quant.wrap_int32((wl * xl + wh * xh).sum(axis=-1))


def _widen(x: np.ndarray, padded: int) -> np.ndarray:
    """cg_widen: values in k-pair slot order, (x0, x2) then (x1, x3) per four, as words."""
    full = np.zeros(padded, dtype=np.int64)
    full[:x.size] = x
    groups = full.reshape(-1, 4)
    pairs = np.stack([groups[:, [0, 2]], groups[:, [1, 3]]], axis=1).reshape(-1, 2)
    return (pairs[:, 0] & 0xFFFF) | ((pairs[:, 1] & 0xFFFF) << 16)


@pytest.mark.parametrize("channels,depth", [(1, 1), (2, 8), (5, 13), (8, 27), (7, 640)])
@pytest.mark.parametrize("group", [1, 2])
def test_packed_words_give_exact_dot_products(channels: int, depth: int, group: int) -> None:
    rng = np.random.default_rng(channels * 100 + depth)
    weights = rng.integers(-128, 128, size=(channels, depth))
    weights[0, :] = -128  # the extremes of both byte encodings
    weights[-1, : depth // 2] = 127
    packed = _gemm.pack_weights(weights, group).astype(np.int64) & 0xFFFFFFFF
    kpad = _gemm.padded_depth(depth)
    slots = kpad // 2
    pairs = packed.size // slots
    words = packed.reshape(pairs // group, slots, group).transpose(0, 2, 1).reshape(pairs, slots)
    for x in (rng.integers(-128, 128, size=depth), np.full(depth, -128), np.full(depth, 127)):
        col = _widen(x, kpad)
        raw = _smlad_sum(words, col)
        high = _smlad_sum(words & _MASK, col)
        even = quant.wrap_int32(raw - high - 128 * x.sum())  # cg_gemm_even before scaling
        odd = high >> 8  # cg_gemm_odd
        got = np.stack([even, odd], axis=1).ravel()[:channels]
        np.testing.assert_array_equal(got, weights @ x)


def _sxtb16_ror8(words: np.ndarray) -> np.ndarray:
    """SXTB16(w ror 8): bytes 1 and 3 of each word, sign-extended into its 16-bit halves."""
    w = words.astype(np.int64) & 0xFFFFFFFF
    b1, b3 = (w >> 8) & 0xFF, (w >> 24) & 0xFF
    return (b1 | ((b1 & 0x80) * 0x1FE)) | ((b3 | ((b3 & 0x80) * 0x1FE)) << 16)


def _engine_case(channels: int, depth: int) -> tuple[np.random.Generator, np.ndarray,
                                                     _gemm.Requant]:
    """Random weights with a row of -128 and a half row of 127, and their requantization
    plan for the convolution engines."""
    rng = np.random.default_rng(channels * 100 + depth)
    weights = rng.integers(-128, 128, size=(channels, depth))
    weights[0, :] = -128
    weights[-1, : depth // 2] = 127
    mult, shift = quant.quantize_multipliers(rng.uniform(0.001, 0.5, size=channels))
    rq = _gemm.plan_requant(weights, rng.integers(-999, 999, size=channels), mult, shift, -3,
                            -128, 127, channel_pad=_gemm.CONV_BLOCK)
    assert rq is not None
    return rng, weights, rq


@pytest.mark.parametrize("channels,depth", [(1, 1), (4, 8), (5, 13), (8, 27), (11, 64)])
def test_block_stream_gives_exact_dot_products(channels: int, depth: int) -> None:
    """The convolution engine's stream: per block of four channels, both pairs' words slot
    by slot, then the block's requantization rows. SMLAD of a word and of its SXTB16(ror 8)
    (the assembly), or of the word and of the word AND 0xFF00FF00 (the plain C), with r
    started at -128 * sum(x), decode both channels of a pair exactly."""
    rng, weights, rq = _engine_case(channels, depth)
    stream = _gemm.block_stream(weights, rq, _gemm.CONV_BLOCK).astype(np.int64) & 0xFFFFFFFF
    kpad = _gemm.padded_depth(depth)
    blocks = -(-channels // 4)
    assert stream.size == blocks * (kpad + 16)
    for x in (rng.integers(-128, 128, size=depth), np.full(depth, -128), np.full(depth, 127)):
        col = _widen(x, kpad)
        got = []
        for block in stream.reshape(blocks, kpad + 16):
            words = block[:kpad].reshape(-1, 2).T  # [pair, slot]
            np.testing.assert_array_equal(block[kpad:], rq.table[len(got):len(got) + 4].ravel()
                                          & 0xFFFFFFFF)
            for pair in words:
                r = quant.wrap_int32(_smlad_sum(pair, col) - 128 * x.sum())
                h = _smlad_sum(_sxtb16_ror8(pair), col)
                h256 = _smlad_sum(pair & _MASK, col)
                np.testing.assert_array_equal(h256, h * 256)
                got += [int(quant.wrap_int32(r - 256 * h)), int(h)]
        np.testing.assert_array_equal(got[:channels], weights @ x)
        assert not any(got[channels:])  # padded channels have zero filters


@pytest.mark.parametrize("channels,depth", [(1, 1), (4, 16), (5, 17), (8, 27), (11, 64)])
def test_mve_weights_give_exact_dot_products(channels: int, depth: int) -> None:
    """The int8 Helium engine's weights (codegen/ops/_gemm_mve.py): per block of four
    channels, per sixteen depth values, the four channels' bytes; sixteen-lane dot products
    with a column whose lanes past the depth are zero (the predicated tail) give S exactly;
    the requantization rows per block field by field, the right shift negated."""
    rng, weights, rq = _engine_case(channels, depth)
    k16, blocks = _gemm_mve.padded_depth(depth), -(-channels // 4)
    packed = _gemm_mve.pack(weights).astype(np.int64).reshape(blocks, k16 // 16, 4, 16)
    table = _gemm_mve.table(rq, channels).astype(np.int64).reshape(blocks, 4, 4)
    for x in (rng.integers(-128, 128, size=depth), np.full(depth, -128), np.full(depth, 127)):
        col = np.zeros(k16, np.int64)
        col[:depth] = x
        sums = np.einsum("bkcl,kl->bc", packed, col.reshape(-1, 16)).ravel()
        np.testing.assert_array_equal(sums[:channels], weights @ x)
        assert not any(sums[channels:])  # padded channels have zero filters
    rows = table.transpose(0, 2, 1).reshape(-1, 4)[:channels]
    np.testing.assert_array_equal(rows[:, :3], rq.table[:channels, :3])
    np.testing.assert_array_equal(rows[:, 3], -rq.table[:channels, 3])


def _short_requantize(acc: np.ndarray, rq: _gemm.Requant) -> np.ndarray:
    """cg_gemm_rq on v = acc * scale + bias2 for every channel (rows of acc's last axis)."""
    bias2, mult, add, right = (rq.table[: acc.shape[-1], i] for i in range(4))
    v = acc * rq.scale + bias2
    assert np.all(np.abs(v) < 2**31)
    product = v * mult
    y = (product >> 32) + ((product & 0xFFFFFFFF) >> 31)
    return (y + add + (v >> 63)) >> right


def _random_channels(rng: np.random.Generator, channels: int, max_depth: int, bias_bits: int,
                     exponents: tuple[int, int]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weights [channels, depth < max_depth] (channel 3 all zero: its output is the
    requantized bias), biases within 2^bias_bits, multipliers and shifts of scales
    2^-e x [0.5, 1) with e in `exponents` (channel 5's multiplier flushed to zero)."""
    depth = int(rng.integers(1, max_depth))
    weights = rng.integers(-128, 128, size=(channels, depth))
    weights[3] = 0
    bias = rng.integers(-(1 << bias_bits), 1 << bias_bits, size=channels)
    reals = rng.uniform(0.5, 1.0, size=channels) * 2.0 ** -rng.integers(*exponents, size=channels)
    multipliers, shifts = quant.quantize_multipliers(reals)
    multipliers[5] = 0
    return weights, bias, multipliers, shifts


def _sums_and_tflm(rng: np.random.Generator, weights: np.ndarray, bias: np.ndarray,
                   multipliers: np.ndarray, shifts: np.ndarray, zero_point: int, lo: int,
                   hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Accumulators of 4,000 rows of inputs (the first all -128, the second all 127) and 500
    around multiples of 2^right, where the roundings tie; and TFLM's outputs for them."""
    x = rng.integers(-128, 128, size=(4000, weights.shape[1]))
    x[:2] = [[-128], [127]]
    sums = x @ weights.T
    right = np.maximum(-shifts, 1)
    ties = (rng.integers(-50, 50, size=(500, weights.shape[0])) << right) + (1 << (right - 1)) \
        - bias
    sums = np.concatenate([sums, np.clip(ties, sums.min(0), sums.max(0))])
    return sums, quant.requantize(sums + bias, multipliers, shifts, zero_point, lo, hi)


@pytest.mark.parametrize("seed", range(6))
def test_short_requantization_is_tflms(seed: int) -> None:
    rng = np.random.default_rng(seed)
    weights, bias, multipliers, shifts = _random_channels(rng, 12, 300, 20, (1, 20))
    zero_point = int(rng.integers(-128, 128))
    lo, hi = sorted(int(v) for v in rng.integers(-128, 128, size=2))
    rq = _gemm.plan_requant(weights, bias, multipliers, shifts, zero_point, lo, hi, 4)
    assert rq is not None
    sums, expected = _sums_and_tflm(rng, weights, bias, multipliers, shifts, zero_point, lo, hi)
    np.testing.assert_array_equal(np.clip(_short_requantize(sums, rq), lo, hi), expected)


def _shifted_requantize(acc: np.ndarray, shift: int, rq: _gemm.Requant) -> np.ndarray:
    """The DSP assembly's shrR variant (runtime/_gemm_engines.j2,
    conv_asm_channel_shifted): v' = acc * s + bias', SMMLA (the high word, no rounding)
    with add', SSAT's ASR #shift."""
    bias2, mult, add, scale = (rq.table[: acc.shape[-1], i] for i in range(4))
    v = acc * scale + bias2
    assert np.all(np.abs(v) < 2**31)
    t = add + ((v * mult) >> 32)
    assert np.all(np.abs(t) < 2**31)
    return np.clip(t >> shift, -128, 127)


@pytest.mark.parametrize("seed", range(6))
def test_shifted_requantization_is_tflms(seed: int) -> None:
    """plan_shifted's constants (one final shift for the layer, per-channel scales) give
    TFLM's requantization wherever the activation needs no tie fixup (lo >= zero point),
    ties, constant channels and the padded channels included."""
    rng = np.random.default_rng(seed)
    # right shifts of 4 to 10 (d up to 7): the accumulators keep the headroom
    weights, bias, multipliers, shifts = _random_channels(rng, 10, 100, 16, (4, 11))
    channels = weights.shape[0]
    zero_point = int(rng.integers(-128, 0))
    lo, hi = zero_point + int(rng.integers(0, 20)), int(rng.integers(20, 128))
    rq = _gemm.plan_requant(weights, bias, multipliers, shifts, zero_point, lo, hi, 4)
    assert rq is not None
    planned = _gemm.plan_shifted(weights, rq)
    assert planned is not None
    shift, table = planned
    assert shift == int(-shifts[multipliers != 0].min()) + 1
    assert table.table.shape == rq.table.shape  # the padded channels too
    sums, expected = _sums_and_tflm(rng, weights, bias, multipliers, shifts, zero_point, lo, hi)
    got = _shifted_requantize(np.pad(sums, ((0, 0), (0, 2))), shift, table)
    np.testing.assert_array_equal(np.clip(got[:, :channels], lo, hi), expected)
    assert not got[:, channels:].any()  # padded channels: 0


def test_shifted_requantization_refuses_what_it_cannot_fit() -> None:
    """No shared shift where a channel's accumulator, scaled by 2^d more, would leave int32,
    nor a shift past _MAX_SHIFT."""
    weights = np.full((2, 256), 127)
    mult = np.array([1 << 30] * 2)
    rq = _gemm.plan_requant(weights, np.zeros(2), mult, np.array([-1, -1]), -128, -128, 127, 2)
    assert rq is not None and _gemm.plan_shifted(weights, rq) is not None
    rq = _gemm.plan_requant(weights, np.zeros(2), mult, np.array([-1, -9]), -128, -128, 127, 2)
    assert rq is not None and _gemm.plan_shifted(weights, rq) is None  # |v| * 2^9 >= 2^31
    rq = _gemm.plan_requant(weights[:, :1], np.zeros(2), mult, np.array([-23, -23]), -128,
                            -128, 127, 2)
    assert rq is not None and _gemm.plan_shifted(weights[:, :1], rq) is None  # shift 24


def test_requantization_refuses_accumulators_out_of_range() -> None:
    weights = np.full((2, 640), 127)
    mult, shift = np.array([1 << 30] * 2), np.array([-8, -8])
    # 256 * S_b could wrap: the odd channel of a pair cannot decode it.
    assert _gemm.plan_requant(weights, np.zeros(2), mult, shift, 0, -128, 127, 2) is None
    assert _gemm.plan_requant(weights[:1], np.zeros(1), mult[:1], shift[:1], 0, -128, 127,
                              2) is not None
    # acc * 2 must fit in int32.
    assert _gemm.plan_requant(weights[:1, :4], np.array([1 << 30]), mult[:1], shift[:1], 0,
                              -128, 127, 2) is None
    # A multiplier above 1 (no right shift) keeps TFLM's long form.
    assert _gemm.plan_requant(weights[:1, :4], np.zeros(1), mult[:1], np.array([1]), 0, -128,
                              127, 2) is None


# -- which layers take the engine ---------------------------------------------------------

MLPERF = ("kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8")


@pytest.mark.parametrize("name", MLPERF)
def test_every_mlperf_conv_and_fc_layer_runs_on_the_engine(name: str) -> None:
    program = load_program(require_file(SHARED_MODELS / f"{name}.tflite").read_bytes())
    engine = {"CONV_2D": Conv2DGemm, "FULLY_CONNECTED": FullyConnectedGemm}
    for layer in program.layers:
        if layer.opcode in engine:
            assert isinstance(layer, engine[layer.opcode]), (name, layer.index)


def test_vww_conv_layers_share_one_final_shift_per_engine() -> None:
    """vww's 1x1 layers (ReLU, output zero point -128) take the DSP assembly's one final
    shift (shrR), the largest of their kind their bounds allow (conv_2d.share_engines):
    one copy of the sixteen-k-pair engine, not one per shift; the run engine of 32 k-pairs
    has that shift too, and the layers of 16 k-pairs run on it (its second entry)."""
    program = load_program(require_file(SHARED_MODELS / "vww_96_int8.tflite").read_bytes())
    gemm = [la.params for la in program.layers if isinstance(la, Conv2DGemm)]
    engines = [p["engine"] for p in gemm]
    assert all(e.startswith("cg_gemm_conv_shr") for e in engines)
    assert len({e for e in engines if "_k16" in e}) == 1
    assert len({e.split("_")[3] for e in engines if "_k16" in e or "_k32" in e}) == 1
    assert len(set(engines)) == 4
    runs = {p["run_variant"] for p in gemm if p["run"] and p["kpad"] >= 32}
    assert len(runs) == 1 and next(iter(runs))[2:] == ("k32",)


# -- edge cases in generated C --------------------------------------------------------------

INPUT_Q = (0.05, -3)


def _weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-128, 128, size=shape)


def _conv_branch(b: ModelBuilder, x: int, shape: tuple[int, ...], i: int, weights: np.ndarray,
                 bias: np.ndarray, scales: list[float], output_q: tuple[float, int], *,
                 padding: str = "SAME", stride: tuple[int, int] = (1, 1),
                 dilation: tuple[int, int] = (1, 1), activation: str = "NONE") -> int:
    n, h, w, _ = shape
    out_c, kh, kw, _ = weights.shape
    oh = out_size(padding, h, kh, stride[0], dilation[0])
    ow = out_size(padding, w, kw, stride[1], dilation[1])
    wt = b.add_tensor(f"w{i}", weights.shape, "int8", quant=Q(scales, 0, axis=0), data=weights)
    bt = b.add_tensor(f"b{i}", (out_c,), "int32",
                      quant=Q(bias_scales(INPUT_Q[0], scales), 0, axis=0), data=bias)
    y = b.add_tensor(f"y{i}", (n, oh, ow, out_c), "int8", quant=Q(*output_q))
    b.add_op("CONV_2D", [x, wt, bt], [y], conv_options(padding, stride, dilation, activation))
    return y


def _conv_edges() -> bytes:
    """One input with twelve channels (widened straight from the image; depths that are not
    a multiple of 8), two images; one branch per case. Channel 1 of branch 0 has all-zero
    weights and channel 3 a scale that flushes the multiplier to 0: constant outputs."""
    rng = np.random.default_rng(11)
    shape = (2, 7, 9, 12)
    b = ModelBuilder("engine edges")
    x = b.add_tensor("input", shape, "int8", quant=Q(*INPUT_Q))
    outs = []

    def branch(weights: np.ndarray, output_q=(0.2, 5), scales=None, big_bias=False,
               **options) -> None:
        out_c = weights.shape[0]
        scales = scales or list(0.01 * rng.uniform(0.3, 3.0, size=out_c))
        bias = rng.integers(-3000, 3001, size=out_c)
        if big_bias:
            bias[1] = -(1 << 30) - 77
        outs.append(_conv_branch(b, x, shape, len(outs), weights, bias, scales, output_q,
                                 **options))

    w0 = _weights(rng, (5, 3, 3, 12))
    w0[1] = 0
    scales0 = list(0.01 * rng.uniform(0.3, 3.0, size=5))
    scales0[3] = 1e-12
    branch(w0, scales=scales0, activation="RELU6")  # odd channels, clamp, constant channels
    branch(_weights(rng, (4, 3, 3, 12)), stride=(2, 1), dilation=(2, 2))  # taps one by one
    branch(_weights(rng, (6, 1, 1, 12)), padding="VALID", stride=(2, 2))  # 1x1 with strides
    branch(_weights(rng, (12, 1, 1, 12)), output_q=(0.3, -100))  # 1x1, as many channels
    branch(_weights(rng, (3, 1, 1, 12)), activation="RELU")  # 1x1, fewer channels
    branch(_weights(rng, (4, 2, 5, 12)), padding="VALID", output_q=(0.5, 0))
    # RELU down to the zero point -128: no tie fixup, saturation; RELU_N1_TO_1: a clamp
    # below the zero point, with the fixup. Block tails of 3 and 2 channels.
    branch(_weights(rng, (7, 3, 3, 12)), activation="RELU", output_q=(0.3, -128))
    branch(_weights(rng, (10, 1, 1, 12)), activation="RELU_N1_TO_1", output_q=(0.01, 3))
    branch(_weights(rng, (5, 2, 4, 12)))  # depth 96: sixteen k-pairs per iteration
    branch(_weights(rng, (3, 3, 3, 12)), big_bias=True)  # |acc| beyond 2^30
    wide = np.where(rng.random((2, 9, 9, 12)) < 0.5, -127, 127)  # 256 * S_b could wrap
    branch(wide, output_q=(40.0, 0))
    b.set_io([x], outs)
    return b.build()


def _inplace_chain() -> bytes:
    """conv 3x3 -> 1x1 -> 3x3 -> 5x5 (RELU6) on eight channels, width 7 (passes straddle
    rows): every layer but the first overwrites its input, which dies there; the 3x3 and 5x5
    ones keep a ring of 3 and 4 input rows."""
    rng = np.random.default_rng(12)
    shape = (1, 5, 7, 8)
    b = ModelBuilder("in place")
    x = b.add_tensor("input", shape, "int8", quant=Q(*INPUT_Q))
    t = x
    for i, (kernel, activation) in enumerate([(3, "RELU"), (1, "NONE"), (3, "NONE"),
                                              (5, "RELU6")]):
        scales = list(0.01 * rng.uniform(0.3, 3.0, size=8))
        bias = rng.integers(-3000, 3001, size=8)
        t = _conv_branch(b, t, shape, i, _weights(rng, (8, kernel, kernel, 8)), bias, scales,
                         INPUT_Q, activation=activation)
    b.set_io([x], [t])
    return b.build()


def _fc_edges() -> bytes:
    """Three rows of depth 24 into 7 units (per-channel, RELU6, a zero row and a zero
    scale), 1 unit, and 5 units with a bias beyond the engine's range; a depth of 13 (not a
    multiple of 8) keeps the plain kernel; 11 units (a block of eight and three) with RELU
    down to the zero point -128 (no tie fixup, saturation) and 16 with RELU_N1_TO_1 (the
    fixup and a clamp); rows of depth 48 into 23 units and of depth 32 into 33 (the engine's
    loops of four and eight input words), and of depth 32 into 9 units (under
    SMALL_FC_MACS: the compact loop of two words)."""
    rng = np.random.default_rng(13)
    b = ModelBuilder("fc edges")
    rows = {depth: b.add_tensor(f"input{depth}", (3, depth), "int8", quant=Q(*INPUT_Q))
            for depth in (24, 13, 48, 32)}
    outs = []
    output_q = {4: (0.1, -128), 5: (0.01, 3)}
    depths = {3: 13, 6: 48, 7: 32, 8: 32}
    for i, (units, activation) in enumerate([(7, "RELU6"), (1, "NONE"), (5, "RELU"),
                                             (4, "NONE"), (11, "RELU"),
                                             (16, "RELU_N1_TO_1"), (23, "NONE"), (33, "RELU"),
                                             (9, "NONE")]):
        depth = depths.get(i, 24)
        weights = _weights(rng, (units, depth))
        scales = list(0.01 * rng.uniform(0.3, 3.0, size=units))
        if units == 7:
            weights[2] = 0
            scales[4] = 1e-12
        wt = b.add_tensor(f"w{i}", weights.shape, "int8", quant=Q(scales, 0, axis=0),
                          data=weights)
        bias = rng.integers(-5000, 5001, size=units)
        if units == 5:
            bias[3] = (1 << 30) + 99  # beyond the engine's range
        bt = b.add_tensor(f"b{i}", (units,), "int32",
                          quant=Q(bias_scales(INPUT_Q[0], scales), 0, axis=0), data=bias)
        y = b.add_tensor(f"y{i}", (3, units), "int8", quant=Q(*output_q.get(i, (0.1, -20))))
        b.add_op("FULLY_CONNECTED", [rows[depth], wt, bt], [y], fc_options(activation))
        outs.append(y)
    b.set_io(list(rows.values()), outs)
    return b.build()


def _mve_edges() -> bytes:
    """For the int8 Helium engine: an input of 17 channels at the extreme zero point 127 (the
    padded taps' value; 35 pixels, an odd count), and depths 17, 153, 68 and 17 (a full
    sixteen and a predicated tail of 1, 9, 4 and 1 lanes); 1, 5, 6 and 4 output channels
    (blocks of four and tails); output zero points -128 and 127; effective scales just
    below 1/2 (a multiplier near 2^31), exactly 1/4 (ties) and 1e-7 (a right shift of 23)."""
    rng = np.random.default_rng(14)
    shape, input_q = (1, 5, 7, 17), (0.02, 127)
    b = ModelBuilder("mve edges")
    x = b.add_tensor("input", shape, "int8", quant=Q(*input_q))
    outs = []
    cases = [((1, 1, 1, 17), (0.3, -128), {}, None),
             ((5, 3, 3, 17), (0.5, 127), {"stride": (2, 2)}, None),
             ((6, 2, 2, 17), (0.05, -7), {"padding": "VALID", "dilation": (2, 1),
                                          "activation": "RELU6"}, None),
             ((4, 1, 1, 17), (0.5, 3), {"stride": (2, 2)}, [0.4999, 0.25, 1e-7, 0.01])]
    for i, (wshape, output_q, options, effective) in enumerate(cases):
        weights = _weights(rng, wshape)
        if effective is None:
            scales = list(0.01 * rng.uniform(0.3, 3.0, size=wshape[0]))
        else:
            scales = [e * output_q[0] / input_q[0] for e in effective]
        wt = b.add_tensor(f"w{i}", wshape, "int8", quant=Q(scales, 0, axis=0), data=weights)
        bt = b.add_tensor(f"b{i}", (wshape[0],), "int32",
                          quant=Q(bias_scales(input_q[0], scales), 0, axis=0),
                          data=rng.integers(-3000, 3001, size=wshape[0]))
        padding = options.get("padding", "SAME")
        stride, dilation = options.get("stride", (1, 1)), options.get("dilation", (1, 1))
        oh = out_size(padding, shape[1], wshape[1], stride[0], dilation[0])
        ow = out_size(padding, shape[2], wshape[2], stride[1], dilation[1])
        y = b.add_tensor(f"y{i}", (1, oh, ow, wshape[0]), "int8", quant=Q(*output_q))
        b.add_op("CONV_2D", [x, wt, bt], [y],
                 conv_options(padding, stride, dilation, options.get("activation", "NONE")))
        outs.append(y)
    b.set_io([x], outs)
    return b.build()


def test_mve_edges_take_the_int8_engine() -> None:
    layers = load_program(_mve_edges()).layers
    assert all(type(la) is Conv2DGemm for la in layers)
    assert [(la.params["mve"]["kfull"], la.params["mve"]["ktail"]) for la in layers] == [
        (1, 1), (9, 9), (4, 4), (1, 1)]
    assert [(la.params["blocks"], la.params["tail"]) for la in layers] == [
        (0, 1), (1, 1), (1, 2), (1, 0)]
    assert layers[3].params["mve"]["table"][12:16].tolist()[2] == -23  # the 1e-7 channel
    assert not any(la.params["mve"]["single"] for la in layers)
    # depths of at most 16 (conv_edges' 1x1 layers on 12 channels): one step per block
    single = [la.params["mve"] for la in load_program(_conv_edges()).layers
              if isinstance(la, Conv2DGemm) and la.params["mve"]["single"]]
    assert [(m["kfull"], m["ktail"], m["engine"][-2:]) for m in single] == [(0, 12, "k1")] * 4


@pytest.mark.qemu
@pytest.mark.parametrize("target", ["cortex-m55", "cortex-m4"])
def test_mve_edges_match_reference(target: str, tmp_path: Path) -> None:
    model = _mve_edges()
    c_matches_reference(model, target, tmp_path, seed=6, extra=edge_inputs(load_program(model)))


@pytest.mark.qemu
@pytest.mark.parametrize("name", ["mve_edges", "fc_edges"])
def test_mve_engine_intrinsics_match_reference(name: str, tmp_path: Path) -> None:
    """At -O0 the int8 Helium engines run their intrinsics loops (the inline assembly needs
    the registers a frame pointer takes; clang compiles the same loops): bit-exact too."""
    program = load_program(_mve_edges() if name == "mve_edges" else _fc_edges())
    inputs = [np.concatenate([e, x]) for e, x in zip(
        edge_inputs(program), random_inputs(program, 4, seed=7), strict=True)]
    source = tmp_path / "src"
    source.mkdir()
    write_harness_sources(program, source)
    executable = build_firmware(source, HARNESS_NAME, get_target("cortex-m55"),
                                tmp_path / "build", optimization="0")
    assert_same(run_executable(program, "cortex-m55", executable, inputs),
                execute(program, "reference", inputs), "cortex-m55 -O0 vs reference")


# Gathered columns (input channels not a multiple of 4): (input shape, input zero point,
# branches of (filters, kernel, padding, stride, dilation)). Without dilation along the width a
# filter row's first values (a multiple of 4) are widened straight from the image and the
# rest of each row gathered (codegen/ops/conv_2d.py, split_order): rests of 0-3 values,
# interiors and borders, pixels with no interior at all; extreme input zero points.
_GATHERED = [
    ((2, 6, 7, 3), -128, [(5, (3, 3), "SAME", (1, 1), (1, 1)),     # rows of 9: 8 + 1
                          (4, (3, 3), "VALID", (2, 2), (1, 1)),    # no border
                          (3, (2, 3), "SAME", (2, 1), (2, 1), "RELU6"),  # dilated rows
                          (6, (3, 2), "SAME", (1, 2), (1, 1), "RELU6"),  # rows of 6: 4 + 2
                          (2, (2, 5), "SAME", (1, 1), (1, 1)),     # rows of 15: 12 + 3
                          (3, (3, 3), "SAME", (1, 1), (1, 2))]),   # dilated columns: gathered
    ((1, 5, 6, 1), 127, [(3, (2, 4), "SAME", (1, 1), (1, 1)),      # rows of 4: no rest
                         (5, (3, 5), "VALID", (1, 1), (1, 1)),     # rows of 5: 4 + 1
                         (2, (3, 3), "SAME", (2, 2), (1, 1))]),    # rows of 3: gathered
    ((1, 2, 2, 2), 5, [(3, (3, 3), "SAME", (1, 1), (1, 1), "RELU6")]),  # rows of 6, all border
    ((1, 4, 5, 7), -3, [(9, (3, 1), "SAME", (1, 1), (1, 1), "RELU6"),  # rows of 7: 4 + 3
                        (4, (2, 3), "SAME", (2, 2), (1, 1), "RELU6")]),  # rows of 21: 20 + 1
]


def _gathered_columns() -> bytes:
    rng = np.random.default_rng(14)
    b = ModelBuilder("gathered columns")
    inputs, outs = [], []
    for k, (shape, zero_point, branches) in enumerate(_GATHERED):
        q_in = (0.04, zero_point)
        x = b.add_tensor(f"input{k}", shape, "int8", quant=Q(*q_in))
        inputs.append(x)
        n, h, w, c = shape
        for filters, (kh, kw), padding, stride, dilation, *activation in branches:
            i = len(outs)
            scales = list(0.01 * rng.uniform(0.3, 3.0, size=filters))
            wt = b.add_tensor(f"w{i}", (filters, kh, kw, c), "int8", quant=Q(scales, 0, axis=0),
                              data=_weights(rng, (filters, kh, kw, c)))
            bt = b.add_tensor(f"b{i}", (filters,), "int32",
                              quant=Q(bias_scales(q_in[0], scales), 0, axis=0),
                              data=rng.integers(-3000, 3001, size=filters))
            oh = out_size(padding, h, kh, stride[0], dilation[0])
            ow = out_size(padding, w, kw, stride[1], dilation[1])
            y = b.add_tensor(f"y{i}", (n, oh, ow, filters), "int8", quant=Q(0.2, 5 - 3 * i))
            b.add_op("CONV_2D", [x, wt, bt], [y],
                     conv_options(padding, stride, dilation, *activation or ["NONE"]))
            outs.append(y)
    b.set_io(inputs, outs)
    return b.build()


def _pointwise_pairs() -> bytes:
    """1x1 layers whose depth is 8 or a multiple of 8 from 32 (both pixels' columns widened
    at once, cg_widen_pair: one pass in C, or a loop in assembly): 40, 32 and 8 channels, odd
    pixel counts (the last pass pairs a pixel with itself), strides, two images; shifted,
    saturating and clamping variants."""
    rng = np.random.default_rng(15)
    b = ModelBuilder("pointwise pairs")
    inputs, outs = [], []
    branches = [(9, (0.3, -128), {"activation": "RELU"}),  # one final shift, a tail of 1
                (6, (0.2, 5), {"padding": "VALID", "stride": (2, 2)}),  # pixels apart
                (8, (0.2, 5), {"activation": "RELU6"})]  # the clamp
    for k, shape in enumerate([(2, 5, 7, 40), (1, 3, 3, 32), (1, 3, 5, 8)]):
        x = b.add_tensor(f"input{k}", shape, "int8", quant=Q(*INPUT_Q))
        inputs.append(x)
        for out_c, output_q, options in branches:
            scales = list(0.01 * rng.uniform(0.3, 3.0, size=out_c))
            bias = rng.integers(-3000, 3001, size=out_c)
            weights = _weights(rng, (out_c, 1, 1, shape[3]))
            weights[0] = -128  # the extreme weight, a whole filter of it
            outs.append(_conv_branch(b, x, shape, len(outs), weights, bias, scales, output_q,
                                     **options))
    b.set_io(inputs, outs)
    return b.build()


MODELS = {"conv_edges": _conv_edges, "inplace_chain": _inplace_chain, "fc_edges": _fc_edges,
          "gathered_columns": _gathered_columns, "pointwise_pairs": _pointwise_pairs}


def test_gathered_columns_split_their_rows() -> None:
    """Every layer of the gathered-columns model takes the engine through a gathered column;
    the split ones cover rests of 0 to 3 values, with and without an interior and a border,
    and their weights are packed in the split order."""
    layers = load_program(_gathered_columns()).layers
    assert all(type(la) is Conv2DGemm and la.params["gather"] for la in layers)
    p = [la.params for la in layers]
    assert [q["split"] for q in p] == [True, True, True, True, True, False, True, True, False,
                                       True, True, True]
    assert [q["row_rest"] for q in p if q["split"]] == [1, 1, 1, 2, 3, 0, 1, 2, 3, 1]
    # depths of one pass (no loop) for each number of k-pairs per iteration, and of several
    assert {q["engine"][len("cg_gemm_conv_"):] for q in p} == {
        "fix_sat_k4_once", "fix_sat_k8_once", "fix_sat_k16_once", "floor_clamp_k4",
        "floor_clamp_k8"}
    split = [q for q in p if q["split"]]
    assert {(q["has_interior"], q["has_border"]) for q in split} == {
        (True, True), (True, False), (False, True)}
    order = split_order(3, 9)
    assert list(order) == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20,
                           21, 22, 23, 24, 25, 8, 17, 26]


def test_edge_models_reach_every_path() -> None:
    conv = load_program(_conv_edges()).layers
    assert [type(la) for la in conv] == [Conv2DGemm] * 9 + [Conv2D] * 2
    p = [la.params for la in conv[:9]]
    assert [q["pointwise"] for q in p] == [False, False, True, True, True, False, False, True,
                                           False]
    assert [q["inplace"] for q in p] == [False, False, False, True, True, False, False, True,
                                         False]
    # depth 16 (one pass of eight k-pairs): without the loop only where the model has no
    # looping engine of the same kind (share_engines)
    assert [q["engine"][len("cg_gemm_conv_"):] for q in p] == [
        "floor_clamp_k8", "fix_sat_k8", "fix_sat_k8", "fix_sat_k8", "floor_clamp_k8",
        "fix_sat_k4", "shr10_sat_k8", "fix_clamp_k8_once", "fix_sat_k16"]
    assert [(q["blocks"], q["tail"]) for q in p] == [(1, 1), (1, 0), (1, 2), (3, 0), (0, 3),
                                                      (1, 0), (1, 3), (2, 2), (1, 1)]
    assert (p[0]["kpad"], p[3]["kpad"], p[8]["kpad"]) == (112, 16, 96)  # depths 108, 12, 96
    assert [q["local"] for q in p] == [False, False, True, True, True, False, False, True,
                                       False]
    chain = load_program(_inplace_chain())
    plan = chain.plan
    assert [plan.locations[la.inputs[0]] == plan.locations[la.outputs[0]]
            for la in chain.layers] == [False, True, True, True]
    assert [la.params["ring_rows"] for la in chain.layers] == [3, 0, 3, 4]
    fc = load_program(_fc_edges()).layers
    assert [type(la) is FullyConnectedGemm for la in fc] == [True, True, False, False, True,
                                                            True, True, True, True]
    q = [fc[i].params for i in (0, 1, 4, 5, 6, 7, 8)]
    assert [p["engine"][len("cg_gemm_fc_"):] for p in q] == [
        "floor_clamp_x2", "fix_sat_x2", "floor_sat_x2", "fix_clamp_x2", "fix_sat_x4",
        "floor_clamp_x8", "fix_sat_x2"]
    assert [(p["blocks"], p["tail"]) for p in q] == [(0, 7), (0, 1), (1, 3), (2, 0), (2, 7),
                                                      (4, 1), (1, 1)]


@pytest.mark.parametrize("target", C_TARGETS)
@pytest.mark.parametrize("name", MODELS)
def test_generated_c_matches_reference(name: str, target: str, tmp_path: Path) -> None:
    model = MODELS[name]()
    c_matches_reference(model, target, tmp_path, seed=4, extra=edge_inputs(load_program(model)))


@pytest.mark.parametrize("name", MODELS)
def test_generated_c_is_clean_under_sanitizers(name: str, tmp_path: Path) -> None:
    model = MODELS[name]()
    c_matches_reference(model, "host", tmp_path, seed=5, sanitize=True,
                        extra=edge_inputs(load_program(model)))
