"""The convolution engine's run variant (runtime/_gemm_engines.j2, conv_engine with `run`):
a 1x1 convolution of stride 1 whose depth is a multiple of 8 below 512 and whose output
channels are whole blocks of four makes one engine call per image, the engine widening
each pass's two columns itself; the last pixel of an odd count takes the one-pixel engine
(runtime/gemm_conv_one.c.j2) after the run.

Edge cases in generated C against the reference (the DSP assembly on M4, M7 and M33, the
pair loop in plain C on the host, under the sanitizers too): odd pixel counts, images of
one pixel, two images, depth 504 (the widening's 16-bit sums near their limit) with a
filter of all -128, depths 8, 16, 32 and 48 (the engine without its loop and with loops of
four and eight k-pairs), the tie fixup, the clamping variants, and next to layers that keep
the pair loop (stride 2, tail channels).
"""

from __future__ import annotations

import re

import numpy as np
from support.builder import ModelBuilder, Q, bias_scales
from support.conv_models import conv_options, out_size
from support.op_tests import op_tests

from codegen.emit import emit_model
from codegen.ops.conv_2d import HALF_ENTRY, ONE_KPAIRS, ONE_PASS, Conv2DGemm
from codegen.program import load_program

INPUT_Q = (0.05, -3)


def _conv(b: ModelBuilder, rng: np.random.Generator, x: int, shape: tuple[int, ...],
          weights: np.ndarray, output_q: tuple[float, int], *, padding: str = "SAME",
          stride: tuple[int, int] = (1, 1), activation: str = "NONE",
          input_scale: float = INPUT_Q[0]) -> tuple[int, tuple[int, ...]]:
    n, h, w, _ = shape
    out_c, kh, kw, _ = weights.shape
    i = int(rng.integers(1 << 30))
    scales = list(0.01 * rng.uniform(0.3, 3.0, size=out_c))
    oh = out_size(padding, h, kh, stride[0])
    ow = out_size(padding, w, kw, stride[1])
    wt = b.add_tensor(f"w{i}", weights.shape, "int8", quant=Q(scales, 0, axis=0), data=weights)
    bt = b.add_tensor(f"b{i}", (out_c,), "int32", quant=Q(bias_scales(input_scale, scales), 0,
                                                         axis=0),
                      data=rng.integers(-3000, 3001, size=out_c))
    out_shape = (n, oh, ow, out_c)
    y = b.add_tensor(f"y{i}", out_shape, "int8", quant=Q(*output_q))
    b.add_op("CONV_2D", [x, wt, bt], [y], conv_options(padding, stride, (1, 1), activation))
    return y, out_shape


def _run_edges() -> bytes:
    rng = np.random.default_rng(21)
    shape = (2, 5, 7, 504)  # 35 pixels an image: 17 passes and one of a pixel
    b = ModelBuilder("run edges")
    x = b.add_tensor("input", shape, "int8", quant=Q(*INPUT_Q))
    outs = []

    def w(out_c: int, in_c: int, kh: int = 1, kw: int = 1) -> np.ndarray:
        return rng.integers(-128, 128, size=(out_c, kh, kw, in_c))

    deep = w(8, 504)
    deep[0] = -128
    outs.append(_conv(b, rng, x, shape, w(4, 504), (0.3, -128))[0])  # shr, loops of four
    outs.append(_conv(b, rng, x, shape, deep, (0.5, 5))[0])  # tie fixup, all -128
    t, t_shape = _conv(b, rng, x, shape, w(8, 504), (0.2, -128))
    q = (0.2, -128)
    outs.append(_conv(b, rng, t, t_shape, w(12, 8), (0.1, 3), input_scale=q[0])[0])  # depth 8
    outs.append(_conv(b, rng, t, t_shape, w(16, 8), (0.05, -20), activation="RELU6",
                      input_scale=q[0])[0])  # a clamp
    t2, t2_shape = _conv(b, rng, t, t_shape, w(32, 8), q, input_scale=q[0])
    outs.append(_conv(b, rng, t2, t2_shape, w(24, 32), (0.3, -128), input_scale=q[0])[0])
    outs.append(_conv(b, rng, t2, t2_shape, w(16, 32), (0.02, 3), activation="RELU_N1_TO_1",
                      input_scale=q[0])[0])  # the fixup and a clamp
    t3, t3_shape = _conv(b, rng, t2, t2_shape, w(48, 32), q, input_scale=q[0])
    outs.append(_conv(b, rng, t3, t3_shape, w(8, 48), (0.4, 7), input_scale=q[0])[0])
    t4, t4_shape = _conv(b, rng, t2, t2_shape, w(64, 32), q, input_scale=q[0])
    outs.append(_conv(b, rng, t4, t4_shape, w(8, 64), (0.4, -128), input_scale=q[0])[0])
    one, one_shape = _conv(b, rng, t, t_shape, w(16, 8, 5, 7), q, padding="VALID",
                           input_scale=q[0])  # one pixel an image
    outs.append(_conv(b, rng, one, one_shape, w(8, 16), (0.3, -128), input_scale=q[0])[0])
    outs.append(_conv(b, rng, t, t_shape, w(8, 8), (0.2, -128), padding="VALID", stride=(2, 2),
                      input_scale=q[0])[0])  # the pair loop: stride 2
    outs.append(_conv(b, rng, t, t_shape, w(6, 8), (0.2, -128), input_scale=q[0])[0])  # tail
    b.set_io([x], outs)
    return b.build()


def test_run_edges_take_the_run_engine() -> None:
    layers = [la for la in load_program(_run_edges()).layers if isinstance(la, Conv2DGemm)]
    assert [bool(la.params["run"]) for la in layers] == [True] * 12 + [False, True, False, False]
    runs = [la.params for la in layers if la.params["run"]]
    assert sorted({p["pixels"] for p in runs}) == [1, 35]
    assert {p["engine"][len("cg_gemm_conv_"):] for p in runs} == {
        "shr10_sat_k4", "fix_sat_k4", "floor_clamp_k4_once", "shr10_sat_k16_once",
        "fix_clamp_k16_once", "fix_sat_k8", "shr10_sat_k32_once", "shr8_sat_k8_once"}
    assert {p["kpad"] for p in runs} == {8, 16, 32, 48, 64, 504}


# The run engine of 32 k-pairs (depths a multiple of 64) and its second entry at k-pair 17
# (`half`, codegen/ops/conv_2d.py, _share_halves): depths 32 and 96 with the final shift of
# a looping engine of 32 k-pairs take it; depths 64 (no loop), 128 and 192 (loops of one
# and more), the tie fixup with filters of all -128, the clamps; odd pixel counts. Depths
# of one pass of its loop (32 and 64 with the final shift) leave it without its end test
# (ONE_PASS, _flag_single_passes).


def _run32_edges() -> bytes:
    rng = np.random.default_rng(32)
    shape = (1, 3, 5, 128)  # 15 pixels: 7 passes and one of a pixel
    b = ModelBuilder("run32 edges")
    x = b.add_tensor("input", shape, "int8", quant=Q(*INPUT_Q))
    q = (0.2, -128)

    def w(out_c: int, in_c: int) -> np.ndarray:
        return rng.integers(-128, 128, size=(out_c, 1, 1, in_c))

    deep = w(8, 128)
    deep[0] = -128
    outs = [_conv(b, rng, x, shape, deep, (0.5, 5))[0],  # the tie fixup, all -128
            _conv(b, rng, x, shape, w(16, 128), (0.05, -20), activation="RELU6")[0]]
    t32, s32 = _conv(b, rng, x, shape, w(32, 128), q)  # shr, loops of 32
    outs.append(_conv(b, rng, t32, s32, w(8, 32), (0.3, -128), input_scale=q[0])[0])  # 16
    t96, s96 = _conv(b, rng, x, shape, w(96, 128), q)
    outs.append(_conv(b, rng, t96, s96, w(8, 96), (0.6, -128), input_scale=q[0])[0])  # 48
    t192, s192 = _conv(b, rng, t96, s96, w(192, 96), q, input_scale=q[0])
    outs.append(_conv(b, rng, t192, s192, w(4, 192), (0.9, -128), input_scale=q[0])[0])
    t64, s64 = _conv(b, rng, x, shape, w(64, 128), q)
    outs.append(_conv(b, rng, t64, s64, w(8, 64), (0.02, 3), activation="RELU_N1_TO_1",
                      input_scale=q[0])[0])  # no loop, the fixup and a clamp
    outs.append(_conv(b, rng, t64, s64, w(8, 64), (0.7, -128), input_scale=q[0])[0])  # one pass
    outs.append(t192)
    b.set_io([x], outs)
    return b.build()


def test_run32_edges_take_both_entries() -> None:
    runs = [la.params for la in load_program(_run32_edges()).layers
            if isinstance(la, Conv2DGemm)]
    assert all(p["run"] for p in runs)
    engines = {p["kpad"]: (p["run_variant"][1:], p["run_scale"]) for p in runs
               if p["run_variant"][0].startswith("shr")}
    assert engines[32] == (("sat", "k32"), HALF_ENTRY | ONE_PASS)
    assert engines[96] == (("sat", "k32"), HALF_ENTRY)
    assert engines[64] == (("sat", "k32"), ONE_PASS)
    assert engines[128] == engines[192] == (("sat", "k32"), 0)
    others = {p["run_variant"][1:] for p in runs if not p["run_variant"][0].startswith("shr")}
    assert others == {("sat", "k32"), ("clamp", "k32"), ("clamp", "k32", "once")}


def test_odd_last_pixel_takes_the_one_pixel_engine() -> None:
    """An image's odd last pixel: one call of the one-pixel engine after the run (never a
    run pass of a pair of itself, twice the work), of at most ONE_KPAIRS k-pairs per
    iteration (an engine without its loop keeps its depth)."""
    for model, pixels in ((_run_edges, {1, 35}), (_run32_edges, {15})):
        program = load_program(model())
        runs = [la.params for la in program.layers
                if isinstance(la, Conv2DGemm) and la.params["run"]]
        assert {p["pixels"] for p in runs} == pixels
        for p in runs:
            kpairs = int(p["one_variant"][2][1:])
            assert p["one_variant"][:2] == p["engine_variant"][:2]
            assert (p["one_variant"] == p["engine_variant"] if "once" in p["engine_variant"]
                    else kpairs == min(int(p["engine_variant"][2][1:]), ONE_KPAIRS))
        calls = re.findall(r"/\* the run engine: .*?#else", emit_model(program, "m")["m.c"], re.S)
        for p, c in zip(runs, calls, strict=True):
            assert c.count("_run(cols") == (p["pixels"] >= 2), c
            assert c.count("_one(cols") == 1, c


# the DSP assembly on the cores with the DSP extension, the pair loop in plain C on the host
_, test_run_edges_match_reference, test_run_edges_are_clean_under_sanitizers = op_tests(
    {"run": _run_edges, "run32": _run32_edges}, ["run", "run32"], tflm_samples=0,
    seeds=(0, 6, 7), targets=("host", "cortex-m4", "cortex-m7", "cortex-m33"))
