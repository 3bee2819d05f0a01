"""The scalar RISC-V engines (codegen/ops/_gemm_rv.py, templates/runtime/_gemm_engines_rv.j2:
CG_GEMM_RV, the riscv32 target).

  - their arithmetic in numpy, without C: the stream's words (two channels to a word in
    16-bit lanes) through 32-bit wrap-around MUL arithmetic, a chunk of two depth indices per
    sum Q, A = sum Q and H = sum (Q + 2^15) >> 16, give the exact dot products, with weights
    and inputs at their extremes; a chunk with two -128 weights of one channel is refused;
  - the quad and oct FULLY_CONNECTED engines (the high lane once per two or four chunks) at
    their bounds, and the blocks they refuse (a group of weights summing to 256);
  - CONV_2D and FULLY_CONNECTED layers with channel counts that reach every pass of the
    engines (the wide pass, one more block, a partial last block), odd pixel counts,
    strides, padding, depths that are not a multiple of the unrolling, weights at -128 next
    to 127 (the chunk bound reached), and a layer that keeps the DSP stream: riscv32 under
    QEMU against the reference, all-minimum and all-maximum inputs among the samples.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from support.builder import ModelBuilder, Q, bias_scales, fc_options
from support.conv_models import conv_options, out_size
from support.policy import require_tool
from support.verify import c_matches_reference, edge_inputs, random_inputs

from codegen.build import build_firmware
from codegen.execute import HARNESS_NAME, execute, run_executable, write_harness_sources
from codegen.ops import _gemm, _gemm_rv
from codegen.ops.conv_2d import Conv2DGemm
from codegen.ops.fully_connected import FullyConnectedGemm
from codegen.program import load_program
from codegen.targets import get_target

_M32 = (1 << 32) - 1


def _wrap(v: np.ndarray) -> np.ndarray:
    """int64 values as the int32 they wrap to."""
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def _requant(bias: np.ndarray) -> _gemm.Requant:
    """A table with the folded biases `bias` (scale 2); its other fields do not matter here.
    Rows as the engines' blocks pad them."""
    rows = np.tile(np.array([[0, 1 << 30, 1, 1]], np.int64), (len(bias), 1))
    rows[:, 0] = 2 * np.asarray(bias, np.int64)
    return _gemm.Requant(2, rows)


def _sums(words: np.ndarray, block: int, kpad: int, x: np.ndarray) -> np.ndarray:
    """The engine's acc = S + bias' per channel of blocks of `block` channels from their
    stream `words` and the input values x [kpad // 2 chunks, 2] in the stream's chunk
    order."""
    pairs = block // 2
    per_block = _gemm_rv.block_words(kpad, block)
    blocks = words.reshape(-1, per_block).astype(np.int64)
    start = blocks[:, :2 * pairs].reshape(-1, pairs, 2) & _M32
    w = blocks[:, 2 * pairs:2 * pairs + block * kpad // 2].reshape(len(blocks), kpad // 2,
                                                                   pairs, 2)
    q = (w[..., 0] * x[None, :, 0, None] + w[..., 1] * x[None, :, 1, None]) & _M32
    a = (start[..., 0] + q.sum(axis=1)) & _M32  # [blocks, pairs]
    h = _wrap(start[..., 1]) + (_wrap((q + (1 << 15)) & _M32) >> 16).sum(axis=1)
    acc_a = _wrap((a - (h << 16)) & _M32)
    return np.stack([acc_a, h], axis=2).reshape(-1)


def _extreme_weights(rng: np.random.Generator, channels: int, depth: int,
                     chunks: np.ndarray) -> np.ndarray:
    """Random weights, with every chunk of channel 0 at (-128, 127) and channel 1 at
    (127, -128): the chunk bound |L| <= 128 * 255 reached."""
    w = rng.integers(-128, 128, size=(channels, depth))
    for c, (first, second) in ((0, (-128, 127)), (1, (127, -128))):
        if c < channels:
            for k0, k1 in chunks:
                if k1 < depth:
                    w[c, k0], w[c, k1] = first, second
    for row in w:  # no chunk with two -128 in a channel (refused: test_two_minus_128s...)
        for k0, k1 in chunks:
            if k1 < depth and row[k0] == row[k1] == -128:
                row[k1] = -127
    return w


@pytest.mark.parametrize(("channels", "depth"), [(1, 1), (3, 8), (9, 13), (16, 64),
                                                 (21, 300)])
@pytest.mark.parametrize("kind", ["conv", "fc"])
def test_stream_gives_exact_dot_products(kind: str, channels: int, depth: int) -> None:
    rng = np.random.default_rng(channels * 1000 + depth)
    kpad = _gemm.padded_depth(depth)
    chunks = _gemm_rv.conv_chunks(kpad) if kind == "conv" else _gemm_rv.fc_chunks(kpad)
    w = _extreme_weights(rng, channels, depth, chunks)
    block = 8 if kind == "conv" else 16
    bias = rng.integers(-(1 << 20), 1 << 20, size=channels)
    words = _gemm_rv.stream(w, _requant(bias), block, chunks)
    assert words is not None
    for x in (rng.integers(-128, 128, size=depth), np.full(depth, -128), np.full(depth, 127)):
        padded = np.zeros(kpad, np.int64)
        padded[:depth] = x
        got = _sums(words, block, kpad, padded[chunks])[:channels]
        assert np.array_equal(got, w @ x + bias)


def test_split_stream_counts_and_offsets() -> None:
    w = np.ones((21, 16), np.int64)
    chunks = _gemm_rv.conv_chunks(16)
    split = _gemm_rv.split_stream(w, _requant(np.zeros(24, np.int64)), 8, 4, chunks)
    assert split is not None
    assert (split["wide_blocks"], split["blocks"], split["partial"]) == (2, 1, 1)
    wide, block = _gemm_rv.block_words(16, 8), _gemm_rv.block_words(16, 4)
    assert (split["block_offset"], split["tail_offset"]) == (2 * wide, 2 * wide + block)
    assert len(split["stream"]) == 2 * wide + 2 * block  # the partial block padded


def test_small_tail_takes_only_its_pairs() -> None:
    """The FULLY_CONNECTED split (`small_tail`): the partial block as few pairs as it needs."""
    chunks = _gemm_rv.fc_chunks(16)
    wide, block = _gemm_rv.block_words(16, 16), _gemm_rv.block_words(16, 8)
    for channels, pairs in [(1, 1), (4, 2), (21, 3), (31, 4), (24, 0)]:
        w = np.ones((channels, 16), np.int64)
        split = _gemm_rv.split_stream(w, _requant(np.zeros(channels, np.int64)), 16, 8,
                                      chunks, small_tail=True)
        assert split is not None
        assert split["tail_pairs"] == pairs
        full = split["wide_blocks"] * wide + split["blocks"] * block
        assert len(split["stream"]) == full + _gemm_rv.block_words(16, 2 * pairs)


# Per level (chunks per high lane) the first channel of a block: in each group of eight depth
# indices, |w| summing to 255 over eight (the oct bound reached), to 256 over eight but 255
# over the first four (the quad bound), to 256 over four (the single engine); the second
# channel has 127 and -128 at the group's end.
_LEVELS = {4: (-128, -127, 0, 0, 0, 0, 0, 0), 2: (-128, -127, 0, 0, 1, 0, 0, 0),
           1: (-128, -127, 1, 0, 0, 0, 0, 0)}


def _group_weights(rng: np.random.Generator, channels: int, depth: int, levels: list[int]
                   ) -> np.ndarray:
    """Small random weights (|w| <= 15: eight of them fit any bound), each block of sixteen
    channels with its first two channels as `_LEVELS` gives for its level."""
    w = rng.integers(-15, 16, size=(channels, depth))
    for b, level in enumerate(levels):
        c = 16 * b
        for g in range(0, depth - 7, 8):
            w[c, g:g + 8] = _LEVELS[level]
            if c + 1 < channels:
                w[c + 1, g:g + 8] = (0, 0, 0, 0, 0, 0, 127, -128)
    return w


def _group_sums(words: np.ndarray, block: int, kpad: int, x: np.ndarray, group: int
                ) -> np.ndarray:
    """As `_sums`, with the high lane taken once per `group` chunks (the quad and oct
    engines)."""
    pairs = block // 2
    per_block = _gemm_rv.block_words(kpad, block)
    blocks = words.reshape(-1, per_block).astype(np.int64)
    start = blocks[:, :2 * pairs].reshape(-1, pairs, 2) & _M32
    w = blocks[:, 2 * pairs:2 * pairs + block * kpad // 2].reshape(
        len(blocks), kpad // (2 * group), group, pairs, 2)
    xs = x.reshape(kpad // (2 * group), group, 2)
    q = ((w[..., 0] * xs[None, :, :, 0, None] + w[..., 1] * xs[None, :, :, 1, None])
         .sum(axis=2)) & _M32
    a = (start[..., 0] + q.sum(axis=1)) & _M32
    h = _wrap(start[..., 1]) + (_wrap((q + (1 << 15)) & _M32) >> 16).sum(axis=1)
    acc_a = _wrap((a - (h << 16)) & _M32)
    return np.stack([acc_a, h], axis=2).reshape(-1)


@pytest.mark.parametrize(("channels", "depth"), [(16, 8), (21, 40), (48, 296)])
@pytest.mark.parametrize("level", [2, 4])
def test_group_sums_are_exact_where_they_fit(level: int, channels: int, depth: int) -> None:
    rng = np.random.default_rng(channels + depth + level)
    w = _group_weights(rng, channels, depth, [level] * -(-channels // 16))
    assert _gemm_rv.group_fits(w, 16, 2 * level).all()
    kpad = _gemm.padded_depth(depth)
    chunks = _gemm_rv.fc_chunks(kpad)
    bias = rng.integers(-(1 << 20), 1 << 20, size=channels)
    words = _gemm_rv.stream(w, _requant(bias), 16, chunks)
    assert words is not None
    for x in (rng.integers(-128, 128, size=depth), np.full(depth, -128), np.full(depth, 127)):
        padded = np.zeros(kpad, np.int64)
        padded[:depth] = x
        got = _group_sums(words, 16, kpad, padded[chunks], level)[:channels]
        assert np.array_equal(got, w @ x + bias)


def test_groups_beyond_255_are_refused() -> None:
    w = _group_weights(np.random.default_rng(5), 40, 40, [4, 2, 1])
    assert _gemm_rv.group_fits(w, 16, 8).tolist() == [True, False, False]
    assert _gemm_rv.group_fits(w, 16, 4).tolist() == [True, True, False]
    # blocks of eight: only channels 16-23 and 32-39 hold the groups of 256
    assert _gemm_rv.group_fits(w, 8, 8).tolist() == [True, True, False, True, False]
    split = _gemm_rv.split_stream(w, _requant(np.zeros(40, np.int64)), 16, 8,
                                  _gemm_rv.fc_chunks(40))
    assert split is not None
    runs = _gemm_rv.fc_runs(w, split, 16, 8)
    assert runs == {"runs": [(0, 1, 4), (1, 1, 2)], "rest_group": 1, "tail_group": 4}
    # below OCT_DEPTH the quad engine at most
    split = _gemm_rv.split_stream(w[:, :24], _requant(np.zeros(40, np.int64)), 16, 8,
                                  _gemm_rv.fc_chunks(24))
    assert split is not None
    assert _gemm_rv.fc_runs(w[:, :24], split, 16, 8)["runs"] == [(0, 2, 2)]


def test_two_minus_128s_in_a_chunk_are_refused() -> None:
    w = np.zeros((3, 8), np.int64)
    rq = _requant(np.zeros(8, np.int64))
    chunks = _gemm_rv.fc_chunks(8)
    assert _gemm_rv.stream(w, rq, 8, chunks) is not None
    w[2, 4] = w[2, 5] = -128  # chunk (4, 5) of channel 2
    assert _gemm_rv.stream(w, rq, 8, chunks) is None
    # the convolution's chunks pair k with k + 2: (4, 5) is not one of them
    assert _gemm_rv.stream(w, rq, 8, _gemm_rv.conv_chunks(8)) is not None


# -- generated C on riscv32 under QEMU --------------------------------------------------------

INPUT_Q = (0.05, -3)


def _conv_model() -> bytes:
    """One 5x7x20 input; branches: 3x3 SAME into 13 channels (a wide pass, a block of four, a
    partial block; -128 next to 127), 1x1 stride 2 into 17 (two wide passes and one channel
    left), 3x3 stride (2, 1) RELU into 6, 2x3 VALID into 9 with two -128 in one chunk (the
    DSP stream and the byte-wise engine), 2x2 VALID RELU6 into 10 (depth 80: the wide pass
    sixteen inputs per iteration)."""
    rng = np.random.default_rng(21)
    shape = (1, 5, 7, 20)
    b = ModelBuilder("riscv conv")
    x = b.add_tensor("input", shape, "int8", quant=Q(*INPUT_Q))
    outs = []
    cases = [((13, 3, 3), "SAME", (1, 1), "NONE", False),
             ((17, 1, 1), "VALID", (2, 2), "NONE", False),
             ((6, 3, 3), "SAME", (2, 1), "RELU", False),
             ((9, 2, 3), "VALID", (1, 1), "NONE", True),
             ((10, 2, 2), "VALID", (1, 1), "RELU6", False)]
    for i, ((out_c, kh, kw), padding, stride, activation, refuse) in enumerate(cases):
        depth = kh * kw * 20
        chunks = _gemm_rv.conv_chunks(_gemm.padded_depth(depth))
        weights = _extreme_weights(rng, out_c, depth, chunks)
        if refuse:
            weights[out_c - 1, :3] = -128  # chunk (0, 2)
        weights = weights.reshape(out_c, kh, kw, 20)
        scales = list(0.004 * rng.uniform(0.3, 3.0, size=out_c))
        bias = rng.integers(-3000, 3001, size=out_c)
        wt = b.add_tensor(f"w{i}", weights.shape, "int8", quant=Q(scales, 0, axis=0),
                          data=weights)
        bt = b.add_tensor(f"b{i}", (out_c,), "int32",
                          quant=Q(bias_scales(INPUT_Q[0], scales), 0, axis=0), data=bias)
        oh = out_size(padding, shape[1], kh, stride[0], 1)
        ow = out_size(padding, shape[2], kw, stride[1], 1)
        y = b.add_tensor(f"y{i}", (1, oh, ow, out_c), "int8", quant=Q(0.3, 7))
        b.add_op("CONV_2D", [x, wt, bt], [y], conv_options(padding, stride, (1, 1), activation))
        outs.append(y)
    b.set_io([x], outs)
    return b.build()


def _add_fc(b: ModelBuilder, suffix: str, xin: int, weights: np.ndarray,
            scales: list[float] | None, bias: np.ndarray, out_q: Q, activation: str) -> int:
    """A FULLY_CONNECTED layer of `xin` with per-channel weight `scales` (None: per-tensor,
    0.01) and its int32 bias; returns its output tensor."""
    units = weights.shape[0]
    wq = Q(0.01, 0) if scales is None else Q(scales, 0, axis=0)
    bq = (Q(INPUT_Q[0] * 0.01, 0) if scales is None
          else Q(bias_scales(INPUT_Q[0], scales), 0, axis=0))
    wt = b.add_tensor(f"w{suffix}", weights.shape, "int8", quant=wq, data=weights)
    bt = b.add_tensor(f"b{suffix}", (units,), "int32", quant=bq, data=bias)
    y = b.add_tensor(f"y{suffix}", (3, units), "int8", quant=out_q)
    b.add_op("FULLY_CONNECTED", [xin, wt, bt], [y], fc_options(activation))
    return y


def _fc_model() -> bytes:
    """Three rows of depth 48 (sixteen inputs per iteration) into 37 units (two wide passes, a
    partial block; -128 next to 127), 25 units RELU (a wide pass, a block of eight, one
    unit), and 3 units with two -128 in one chunk (the DSP stream); then the quad and oct
    engines at their bounds (`_group_weights`), block by block beside the single one: 53
    and 25 units (per-tensor weights) of the same rows, 37 units of rows of depth 40 (eight
    inputs per iteration)."""
    rng = np.random.default_rng(22)
    depth = 48
    b = ModelBuilder("riscv fc")
    x = b.add_tensor("input", (3, depth), "int8", quant=Q(*INPUT_Q))
    outs = []
    chunks = _gemm_rv.fc_chunks(depth)
    for i, (units, activation, refuse) in enumerate([(37, "NONE", False), (25, "RELU", False),
                                                     (3, "NONE", True)]):
        weights = _extreme_weights(rng, units, depth, chunks)
        if refuse:
            weights[0, 6:8] = -128
        scales = list(0.004 * rng.uniform(0.3, 3.0, size=units))
        bias = rng.integers(-5000, 5001, size=units)
        outs.append(_add_fc(b, str(i), x, weights, scales, bias, Q(0.2, -20), activation))
    x40 = b.add_tensor("input40", (3, 40), "int8", quant=Q(*INPUT_Q))
    # the quad and oct engines: (input, units, levels of the blocks, per-tensor weights)
    for i, (xin, units, levels, per_tensor) in enumerate([(x, 53, [4, 1, 2, 4], False),
                                                          (x, 25, [1, 2], True),
                                                          (x40, 37, [2, 4, 4], False)]):
        weights = _group_weights(rng, units, 48 if xin is x else 40, levels)
        scales = list(0.004 * rng.uniform(0.3, 3.0, size=units))
        bias = rng.integers(-5000, 5001, size=units)
        outs.append(_add_fc(b, f"q{i}", xin, weights, None if per_tensor else scales, bias,
                            Q(0.15, 5), "RELU" if i == 1 else "NONE"))
    # a few units: the tail engines of one, two and three pairs (writing into the output, or
    # through a buffer for an odd count), alone or after a block of eight
    # (the last: three units at the quad bound, the quad tail engine)
    for i, (xin, units) in enumerate([(x, 2), (x40, 14), (x, 4), (x40, 1), (x, 3)]):
        weights = (_group_weights(rng, units, 48, [2]) if i == 4 else
                   _extreme_weights(rng, units, 48 if xin is x else 40,
                                    _gemm_rv.fc_chunks(48 if xin is x else 40)))
        scales = list(0.004 * rng.uniform(0.3, 3.0, size=units))
        bias = rng.integers(-5000, 5001, size=units)
        outs.append(_add_fc(b, f"s{i}", xin, weights, scales, bias, Q(0.2, -20),
                            "RELU" if i == 2 else "NONE"))
    b.set_io([x, x40], outs)
    return b.build()


def test_models_reach_every_pass() -> None:
    conv = load_program(_conv_model()).layers
    assert all(type(la) is Conv2DGemm for la in conv)
    rv = [la.params["rv"] for la in conv]
    assert rv[3] is None and conv[3].params["rv_stream"] is None
    assert [(r["wide_blocks"], r["blocks"], r["partial"]) for i, r in enumerate(rv)
            if i != 3] == [(1, 1, 1), (2, 0, 1), (0, 1, 2), (1, 0, 2)]
    assert [la.params["kpad"] for la in conv] == [184, 24, 184, 120, 80]
    fc = load_program(_fc_model()).layers
    assert all(type(la) is FullyConnectedGemm for la in fc)
    rv = [la.params["rv"] for la in fc]
    assert rv[2] is None
    assert [(r["wide_blocks"], r["blocks"], r["partial"]) for r in rv[:2]] == [
        (2, 0, 5), (1, 1, 1)]
    assert [(r["runs"], r["rest_group"]) for r in rv[:2]] == [([(0, 2, 1)], 1), ([(0, 1, 1)], 1)]
    # the oct, quad and single engines by block
    assert [(r["wide_blocks"], r["blocks"], r["partial"], r["tail_pairs"], r["tail_group"])
            for r in rv[6:]] == [(0, 0, 2, 1, 1), (0, 1, 6, 3, 1), (0, 0, 4, 2, 1),
                                 (0, 0, 1, 1, 1), (0, 0, 3, 2, 2)]
    # the oct tail engines: five units after the wide passes
    assert [(r["partial"], r["tail_pairs"], r["tail_group"]) for r in (rv[3], rv[5])] == [
        (5, 3, 4), (5, 3, 4)]
    assert [(r["runs"], r["rest_group"]) for r in rv[3:6]] == [
        ([(0, 1, 4), (1, 1, 1), (2, 1, 2)], 4), ([(0, 1, 1)], 2), ([(0, 1, 2), (1, 1, 4)], 4)]


@pytest.mark.qemu
@pytest.mark.parametrize("make", [_conv_model, _fc_model], ids=["conv", "fc"])
def test_riscv32_matches_reference(make, tmp_path: Path) -> None:
    model = make()
    c_matches_reference(model, "riscv32", tmp_path, seed=3, extra=edge_inputs(load_program(model)))


def _modified_build_matches_reference(model: bytes, prefix: str, tmp_path: Path,
                                      optimization: str = "2") -> Path:
    """Builds the model's riscv32 firmware with `prefix` before model.c's text (in
    tmp_path/src) at `optimization`, checks its outputs against the reference (edge and
    random inputs) and returns the executable."""
    program = load_program(model)
    source = tmp_path / "src"
    write_harness_sources(program, source)
    model_c = source / "model.c"
    model_c.write_text(prefix + model_c.read_text())
    executable = build_firmware(source, HARNESS_NAME, get_target("riscv32"), tmp_path / "build",
                                optimization=optimization)
    inputs = random_inputs(program, 4, seed=4)
    edges = edge_inputs(program)
    inputs = [np.concatenate([edges[i], inputs[i]]) for i in range(len(inputs))]
    expected = execute(program, "reference", inputs)
    got = run_executable(program, "riscv32", executable, inputs)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert np.array_equal(g, e)
    return executable


@pytest.mark.qemu
@pytest.mark.parametrize("oct_loop", ["2", "0"])
def test_riscv32_oct_fallbacks_match_reference(oct_loop: str, tmp_path: Path) -> None:
    """The oct engines' other loops (CG_GEMM_RV_OCT: 2 with a register for 2^15, on request;
    0 the quad loop), forced in a -O2 build of the FULLY_CONNECTED model, against the
    reference (test_riscv32_matches_reference runs the default, 1)."""
    _modified_build_matches_reference(_fc_model(), f"#define CG_GEMM_RV_OCT {oct_loop}\n",
                                      tmp_path)
    assert "#if CG_GEMM_RV_OCT == 2" in (tmp_path / "src" / "model.c").read_text()


@pytest.mark.qemu
@pytest.mark.parametrize("level", ["g", "0"])
@pytest.mark.parametrize("make", [_conv_model, _fc_model], ids=["conv", "fc"])
def test_riscv32_debug_build_with_a_frame_pointer_matches_reference(
        make: Callable[[], bytes], level: str, tmp_path: Path) -> None:
    """The engines' assembly (at most 27 registers, the loops' ends pushed on the stack) in
    -Og and -O0 builds whose functions keep a frame pointer in s0 (ESP-IDF's debug default
    with its frame-pointer option; GCC's optimize pragma stands for -fno-omit-frame-pointer,
    which the build takes no flag for; -O0 keeps one anyway), against the reference. The
    engines are checked to set up s0 as the frame pointer."""
    executable = _modified_build_matches_reference(
        make(), '#pragma GCC optimize ("no-omit-frame-pointer")\n', tmp_path,
        optimization=level)
    listing = subprocess.run([require_tool("riscv64-unknown-elf-objdump"), "-d",
                              "--no-show-raw-insn", str(executable)], capture_output=True,
                             text=True, timeout=300, check=True).stdout
    engines = re.findall(r"<(cg_gemm_(?:conv|fc)_rv_[\w.]+)>:\n(.*?)\n\n", listing, flags=re.S)
    assert engines
    for name, body in engines:
        assert re.search(r"\sadd\s+s0,sp,\d+", body), name


@pytest.mark.parametrize("flags", [["-O2", "-fno-omit-frame-pointer"], ["-O0"], ["-Os"]])
def test_riscv32_default_compiles_with_a_frame_pointer(flags: list[str], tmp_path: Path) -> None:
    """The default oct loop (27 registers) compiles where GCC keeps a frame pointer: a user's
    -fno-omit-frame-pointer build must not meet an "impossible constraints" error."""
    source = tmp_path / "src"
    write_harness_sources(load_program(_fc_model()), source)
    gcc = require_tool("riscv64-unknown-elf-gcc")
    done = subprocess.run([gcc, "--specs=picolibc.specs", "-march=rv32imac", "-mabi=ilp32",
                           "-std=c99", "-Wall", "-Wextra", "-Werror", *flags, "-c",
                           str(source / "model.c"), "-o", str(tmp_path / "model.o")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
