"""Edge cases of the 3x3 depthwise line kernels (templates/runtime/_depthwise3x3_lines.c.j2)
on the DSP cores: lines of every width from 1 to 13 outputs along B at strides 1 and 2
(groups of six and four, every rest after them, the lone last output, lines of exactly six
and three), SAME and VALID, odd channel counts, weights of -128, the input's extreme values
(`edge_inputs`); the shared-shift lines (RELU, output zero point -128) and, per model, one
layer of the tie fixup (no activation). Checked against the reference on the host, the
cores with the DSP extension, and under the sanitizers.
"""

from __future__ import annotations

from collections.abc import Callable

from support.conv_models import Branch, branch_model
from support.op_tests import op_tests

from codegen.ops.depthwise_conv_2d import DepthwiseConv2D3x3
from codegen.program import load_program

TARGETS = ("host", "cortex-m4", "cortex-m7", "cortex-m33")


def _dw(stride: int, padding: str, shared: bool = True) -> Branch:
    if shared:
        return Branch("depthwise", (3, 3), padding=padding, stride=(stride, stride),
                      activation="RELU", output=(0.1, -128))
    return Branch("depthwise", (3, 3), padding=padding, stride=(stride, stride),
                  output=(0.2, 3))


_LAYERS = [_dw(1, "SAME"), _dw(1, "VALID"), _dw(2, "SAME"), _dw(2, "VALID"),
           _dw(1, "VALID", shared=False)]

# (input width, channels): three rows, lines along the width; the stride-1 lines of W and
# W - 2 outputs, the stride-2 lines of ceil(W / 2) and (W - 3) // 2 + 1 (the fixup's: W - 2);
# 20: an odd count of six-groups (three), which the lean loop (two per pass) leaves to the
# general one; 6: input lines of six pixels, which cg_dw3x3_load4 widens a group of four
# channels per step.
WIDTHS = ((26, 3), (22, 5), (20, 3), (17, 1), (13, 7), (12, 2), (9, 5), (8, 3), (6, 9), (5, 9),
          (4, 1), (3, 6))


def _model(width: int, channels: int) -> Callable[[], bytes]:
    return lambda: branch_model((1, 3, width, channels), (0.05, 7), _LAYERS, seed=width,
                                description=f"dwk lines {width}x{channels}")


MODELS = {f"w{w}c{c}": _model(w, c) for w, c in WIDTHS}
# lines of six along the columns (six rows, three columns): the outputs' step, 3 x 280,
# beyond the immediate offsets of the six-output lines, which take it from a register
MODELS["tall"] = lambda: branch_model((1, 6, 3, 280), (0.05, 7), _LAYERS[:1], seed=1,
                                      description="dwk lines of six along columns")
# and of three (three rows, two columns): step 2 x 420
MODELS["tall3"] = lambda: branch_model((1, 3, 2, 420), (0.05, 7), _LAYERS[:1], seed=2,
                                       description="dwk lines of three along columns")
# input lines of one and two pixels of eight channels (cg_dw3x3_load4 without quads)
MODELS["p1"] = lambda: branch_model((1, 1, 1, 8), (0.05, 7), _LAYERS[:1], seed=3,
                                    description="dwk lines of one pixel")
MODELS["p2"] = lambda: branch_model((1, 2, 2, 8), (0.05, 7), _LAYERS[:1], seed=4,
                                    description="dwk lines of two pixels")

# input lines of twelve pixels (cg_dw3x3_load4's three quads per group), of multiples of
# eight (its loop of quad pairs and group ends without dispatch), and of twenty (an even
# count that takes the general code: an odd count of quads), each of two or three groups
QUADS = ((12, 9), (16, 8), (24, 12), (20, 8))


def _quads(width: int, channels: int) -> Callable[[], bytes]:
    return lambda: branch_model((1, 3, width, channels), (0.05, 7), _LAYERS[:1], seed=width,
                                description=f"dwk input lines of {width} pixels")


MODELS.update({f"q{w}": _quads(w, c) for w, c in QUADS})


def test_lines_of_every_width() -> None:
    """Shared-shift lines of 1-13 outputs along B at both strides, and the fixup's rests
    after the six-groups of 0-5 (the tests must reach them)."""
    layers = [la for make in MODELS.values() for la in load_program(make()).layers
              if isinstance(la, DepthwiseConv2D3x3)]
    shared = [la.params for la in layers if la.params["shared_shift"]]
    for stride in (1, 2):
        widths = {p["out_b"] for p in shared if p["stride_b"] == stride}
        assert widths >= set(range(1, 14)), (stride, sorted(widths))
        # lines of six take asm_lines_single
        assert any(p["six"] for p in shared if p["stride_b"] == stride), stride
    loaded = {la.params["in_b"] for la in layers if la.params["group"] >= 4}
    assert loaded >= {1, 2, 3, 6} | {w for w, _ in QUADS}, sorted(loaded)
    # both kinds of output step of the six- and three-output lines
    for kind in ("six", "three"):
        assert {p["six_step"] is None for p in shared if p[kind]} == {True, False}, kind
    fixup = [la.params for la in layers if la.params["variant"] == "s1"]
    assert {p["out_b"] % 6 for p in fixup if p["out_b"] >= 6} == set(range(6))


# no TFLM test here: the reference's 3x3 depthwise is checked against TFLM in
# test_ops_fast_window.py; these models exercise the C kernels
_, test_lines_match_reference, test_lines_clean_under_sanitizers = op_tests(
    MODELS, list(MODELS), tflm_samples=0, seeds=(0, 5, 6), targets=TARGETS)
