"""CONV_2D with few input channels (1-4, every MobileNet-style first layer): the kernel of
templates/kernels/_conv_2d_few.c.j2 (codegen/ops/conv_2d.py, _few_params), which the DSP
cores (cortex-m4/m7/m33) and plain C (host) take in place of the matrix-product engine:
input rows widened to int16 in a buffer of rows (kept between output rows), window rows
read as int16 pairs, two pixels by four channels per pass.

Edge shapes: 1, 2, 3 and 4 input channels; odd widths and heights (a last pass of one
pixel); strides 1 and 2 on either axis; SAME and VALID; windows 3x3, 5x5, 2x2, 1x3, 3x1; output
channels not a multiple of four (and fewer than four); input zero points -128 and 127;
output zero points at the ends; every activation; multipliers above 1 (left shifts);
per-tensor weights; two images per sample; the DSP assembly with one final shift (SHIFTED).
Each model: the reference against TFLM, the generated C against the reference on every
target and under the sanitizers.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from support.conv_models import Branch, branch_model
from support.op_tests import op_tests
from support.policy import SHARED_MODELS, require_file

from codegen.emit import emit_model
from codegen.ops.conv_2d import Conv2DGemm
from codegen.program import load_program

TFLM_SAMPLES = 200


def _conv(out_c: int, stride=(1, 1), padding="SAME", kernel=(3, 3), activation="NONE",
          output=(0.1, 0), **extra) -> Branch:
    return Branch("conv", kernel, padding=padding, stride=stride, activation=activation,
                  out_c=out_c, output=output, **extra)


BRANCHES: dict[str, tuple[tuple[int, ...], tuple[float, int], list[Branch]]] = {
    # vww's first layer's shape in small: 3 channels, stride 2, SAME, eight outputs.
    "c3": ((1, 11, 13, 3), (0.02, -128), [
        _conv(8, stride=(2, 2), activation="RELU6", output=(0.05, -128)),
        _conv(5, output=(0.3, 7)),
        _conv(6, stride=(2, 2), padding="VALID", activation="RELU", output=(0.1, -128)),
        _conv(3, padding="VALID", output=(0.2, 127)),
        _conv(9, stride=(1, 2), kernel=(2, 2), output=(0.4, -3)),
        _conv(4, stride=(2, 1), weight_scale=0.004, output=(0.08, 100)),
        _conv(2, bias_range=1000000, activation="RELU_N1_TO_1", output=(0.01, -3)),
    ]),
    "c1": ((2, 7, 9, 1), (0.05, 127), [
        _conv(4, output=(0.1, -128)),
        _conv(7, stride=(2, 2), padding="VALID", activation="RELU", output=(0.1, -128)),
        _conv(1, kernel=(1, 3), output=(0.03, 0)),
        _conv(11, stride=(2, 2), kernel=(3, 1), output=(0.05, 127)),
    ]),
    "c2": ((1, 8, 5, 2), (0.03, -100), [
        _conv(9, stride=(2, 2), activation="RELU", output=(0.1, -128)),
        _conv(8, padding="VALID", kernel=(5, 5), output=(0.3, 12)),
        _conv(3, stride=(2, 2), weight_scale=0.01, output=(0.2, -128)),
    ]),
    "c4": ((1, 6, 7, 4), (0.1, 0), [
        _conv(12, activation="RELU6", output=(0.06, -128)),
        _conv(6, stride=(2, 2), weight_scale=0.02, output=(0.4, 30)),
        _conv(5, stride=(2, 2), padding="VALID", output=(0.2, -5)),
    ]),
    # one pixel, one row
    "tiny": ((1, 1, 3, 3), (0.1, 5), [
        _conv(4, output=(0.1, 0)),
        _conv(5, stride=(2, 2), output=(0.1, 3)),
    ]),
}

# Layers the DSP assembly takes with one final shift (`_few_shifted`: full int8 range, no
# tie fixup, whole blocks of four channels): a pair loaded once for both pixels where the
# second's window starts an even number of values later (chains of 2 to 7 slots), not where
# it starts an odd number later; a last pixel alone; a single pixel per row.
SHIFTED: dict[str, tuple[tuple[int, ...], tuple[float, int], list[Branch]]] = {
    "s3": ((1, 9, 13, 3), (0.02, -128), [
        _conv(8, stride=(2, 2), activation="RELU6", output=(6 / 255, -128)),  # vww's
        _conv(4, activation="RELU", output=(0.1, -128)),
        _conv(12, stride=(2, 2), padding="VALID", activation="RELU", output=(0.2, -128)),
        _conv(8, stride=(1, 2), kernel=(2, 2), activation="RELU", output=(0.05, -128)),
        _conv(4, stride=(2, 1), weight_scale=0.004, activation="RELU", output=(0.08, -128)),
    ]),
    "s1": ((2, 7, 9, 1), (0.05, 127), [
        _conv(4, stride=(2, 2), kernel=(5, 5), activation="RELU", output=(0.1, -128)),
        _conv(8, stride=(2, 2), padding="VALID", kernel=(3, 1), activation="RELU",
              output=(0.1, -128)),
    ]),
    "s2": ((1, 8, 7, 2), (0.03, -100), [
        _conv(8, stride=(2, 2), activation="RELU", output=(0.1, -128)),
        _conv(4, kernel=(5, 5), padding="VALID", activation="RELU", output=(0.3, -128)),
        _conv(4, kernel=(1, 7), padding="VALID", activation="RELU", output=(0.3, -128)),
    ]),
    # vww's layer with the passes inner (the first pair load moving the window on) and rows
    # of 69 values: two of the widening's 32-value steps, then a tail of five
    "s3w": ((1, 5, 23, 3), (0.02, -128), [
        _conv(8, stride=(2, 2), activation="RELU6", output=(6 / 255, -128)),
        _conv(4, stride=(1, 2), activation="RELU", output=(0.1, -128)),
    ]),
    "s4": ((1, 6, 7, 4), (0.1, 0), [
        _conv(4, stride=(2, 2), activation="RELU", output=(0.4, -128)),
        _conv(8, stride=(1, 2), padding="VALID", bias_range=1000000, activation="RELU",
              output=(0.1, -128)),
    ]),
}

# The ring of input rows (`_few_ring`: rows kept in place, a stream per rotation) with
# strides 1 to 3 and windows of 2 to 5 rows, two images, a bottom row past the image; the
# assembly's packed pairs of two rows' odd last values (`_few_plan`) with 1 and 3 channels,
# two and four rows packed, a fifth row alone, rows of one value (packed pairs only), a pair
# loaded by the slot before (`reuse`) or not.
RING: dict[str, tuple[tuple[int, ...], tuple[float, int], list[Branch]]] = {
    "r3": ((2, 10, 11, 3), (0.03, 127), [
        _conv(4, stride=(3, 2), kernel=(5, 3), activation="RELU", output=(0.1, -128)),
        _conv(4, padding="VALID", kernel=(2, 3), output=(0.2, -128)),
        _conv(8, stride=(2, 2), output=(0.3, -128)),
    ]),
    "r1": ((1, 9, 8, 1), (0.05, -128), [
        _conv(4, stride=(2, 1), kernel=(5, 5), activation="RELU", output=(0.1, -128)),
        _conv(4, stride=(2, 2), padding="VALID", output=(0.05, -128)),
        _conv(4, stride=(2, 1), kernel=(5, 1), output=(0.1, -128)),
    ]),
}

# An odd row's last pixel in the assembly's one-pixel block (`_few_one`): kws's first layer
# in small (10x4x1, stride 2, rows of 5 pixels, four blocks: the blocks inside each pass),
# the passes inside each block (rows of 9 and 7 pixels), two rows' last values packed
# (3 values a row), input zero points at both ends; two layers of one shape sharing one
# row function on their own streams (as a streamed layer's bands do).
ODD: dict[str, tuple[tuple[int, ...], tuple[float, int], list[Branch]]] = {
    "o1": ((2, 13, 10, 1), (0.05, -128), [
        _conv(16, stride=(2, 2), kernel=(10, 4), activation="RELU", output=(0.1, -128)),
        _conv(16, stride=(2, 2), kernel=(10, 4), activation="RELU", output=(0.1, -128)),
        _conv(8, stride=(1, 2), kernel=(3, 3), activation="RELU", output=(0.05, -128)),
    ]),
    "o3": ((1, 6, 13, 3), (0.02, 127), [
        _conv(4, stride=(2, 1), kernel=(2, 3), activation="RELU", output=(0.1, -128)),
        _conv(12, stride=(2, 2), activation="RELU", output=(0.2, -128)),
    ]),
}

MODELS: dict[str, Callable[[], bytes]] = {
    f"few_{name}": (lambda n=name: branch_model(*{**BRANCHES, **SHIFTED, **RING, **ODD}[n],
                                                seed=len(n), description=n))
    for name in [*BRANCHES, *SHIFTED, *RING, *ODD]
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_layer_takes_the_few_channel_kernel(name: str) -> None:
    layers = load_program(MODELS[name]()).layers
    assert layers and all(isinstance(la, Conv2DGemm) and la.params["few"] is not None
                          for la in layers)


@pytest.mark.parametrize("name", list(SHIFTED))
def test_the_assembly_takes_one_final_shift(name: str) -> None:
    layers = load_program(MODELS[f"few_{name}"]()).layers
    assert all(la.params["few"]["shifted"] is not None for la in layers)


@pytest.mark.parametrize("name", list(RING))
def test_the_ring_keeps_rows_in_place_and_pairs_pack_last_values(name: str) -> None:
    reused: set[bool] = set()
    for la in load_program(MODELS[f"few_{name}"]()).layers:
        few = la.params["few"]
        assert few["ring"] == la.params["taps_h"] and few["shifted"] is not None
        packed = [slot for slot in few["shifted"]["plan"] if slot["merge"]]
        assert len(packed) == la.params["taps_h"] // 2
        reused.update(slot["reuse"] for slot in packed)
    assert reused == {False, True}


def test_the_assembly_takes_both_loop_orders() -> None:
    """The passes inside each block (few blocks, many passes: vww's) and the blocks inside
    each pass, both tested above."""
    orders = {la.params["few"]["shifted"]["passes_inner"]
              for name in [*SHIFTED, *RING] for la in load_program(MODELS[f"few_{name}"]()).layers}
    assert orders == {False, True}


def test_odd_rows_end_in_the_one_pixel_block() -> None:
    """Every ODD layer's row ends in the one-pixel block, with both loop orders and packed
    last values among them; even rows and single pixels do without it."""
    layers = [la for name in ODD for la in load_program(MODELS[f"few_{name}"]()).layers]
    shifted = [la.params["few"]["shifted"] for la in layers]
    assert all(sh is not None and sh["one"] for sh in shifted)
    assert {sh["passes_inner"] for sh in shifted} == {False, True}
    assert any(len(loads) == 2 for sh in shifted for loads in sh["one"])
    for name in ["tiny", *SHIFTED]:
        for la in load_program(MODELS[f"few_{name}"]()).layers:
            sh = la.params["few"]["shifted"]
            if sh is not None and (la.params["out_w"] % 2 == 0 or la.params["out_w"] == 1):
                assert sh["one"] is None


def test_layers_of_one_row_text_share_one_function() -> None:
    """o1's first two layers: one row function, the first's, its text once in the file (the
    second's name #defined to it); the third's rows (another shape) a function of its own.
    Each layer calls its own name."""
    source = emit_model(load_program(MODELS["few_o1"]()), "m")["m.c"]
    defined = re.findall(r"^static void __attribute__\(\(naked, noinline\)\) (\w+)\(", source,
                         re.M)
    assert defined == ["m_l0_conv_2d_row", "m_l2_conv_2d_row"], defined
    assert source.count("#define m_l1_conv_2d_row m_l0_conv_2d_row\n") == 1
    assert [source.count(f"m_l{k}_conv_2d_row(rows") for k in range(3)] == [1, 1, 1]


@pytest.mark.parametrize("model,shifted", [("vww_96_int8", True),
                                           ("pretrainedResnet_quant", True),
                                           ("kws_ref_model", True)])
def test_first_layers_take_it_where_it_reads_less(model: str, shifted: bool) -> None:
    """vww's and resnet's 3x3x3 (15 pairs against the engine's depth of 32); kws's 10x4x1
    (20 pairs, a depth of 40 without padding) for the assembly with one final shift only;
    no other layer."""
    path = require_file(SHARED_MODELS / f"{model}.tflite")
    conv = [la for la in load_program(path.read_bytes()).layers if isinstance(la, Conv2DGemm)]
    assert conv[0].params["few"] is not None
    assert (conv[0].params["few"]["shifted"] is not None) == shifted
    assert all(la.params["few"] is None for la in conv[1:])


def test_the_engine_keeps_a_layer_that_reads_as_much_without_the_assembly() -> None:
    """kws's first layer's shape (10x4x1, 20 pairs against a depth of 40) with a clamped
    activation (no one final shift): the engine's two channels per weight word."""
    branch = _conv(8, stride=(2, 2), kernel=(10, 4), activation="RELU6", output=(0.05, -128))
    layers = load_program(branch_model((1, 12, 6, 1), (0.1, 0), [branch], seed=1)).layers
    assert isinstance(layers[0], Conv2DGemm) and layers[0].params["few"] is None


# The reference against TFLM, the C against the reference on every target and under the
# sanitizers (support.op_tests).
(test_reference_matches_tflm, test_generated_c_matches_reference,
 test_generated_c_is_clean_under_sanitizers) = op_tests(
    MODELS, list(MODELS), tflm_samples=TFLM_SAMPLES)


