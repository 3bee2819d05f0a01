"""Whole models of issue 13 built with Keras and TensorFlow's int8 converter
(support.more_keras_models): a segmentation head (RESIZE_BILINEAR, ARG_MAX), a dilated
temporal convolution network, a one-block transformer encoder (BATCH_MATMUL, SOFTMAX,
LayerNormalization). Each is checked end to end: the reference against TFLM, the C against
the reference on the host and on cortex-m4 (the operator tests cover every target) and under
the sanitizers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import more_keras_models as km
from support.verify import (
    c_matches_reference,
    edge_inputs,
    inputs_with_edges,
    reference_matches_tflm,
)

from codegen.errors import UnsupportedError
from codegen.program import load_program

TFLM_SAMPLES = 300
NAMES = list(km.MODELS)


@pytest.mark.tf
@pytest.mark.tflm
@pytest.mark.parametrize("name", NAMES)
def test_reference_matches_tflm(name: str) -> None:
    model = km.MODELS[name]()
    reference_matches_tflm(model, inputs_with_edges(model, TFLM_SAMPLES, seed=1))


@pytest.mark.tf
@pytest.mark.parametrize("target", ["host", "cortex-m4"])
@pytest.mark.parametrize("name", NAMES)
def test_generated_c_matches_reference(name: str, target: str, tmp_path: Path) -> None:
    model = km.MODELS[name]()
    c_matches_reference(model, target, tmp_path, seed=3, samples=200 if target == "host" else 50,
                        extra=edge_inputs(load_program(model)))


@pytest.mark.tf
@pytest.mark.parametrize("name", NAMES)
def test_generated_c_is_clean_under_sanitizers(name: str, tmp_path: Path) -> None:
    model = km.MODELS[name]()
    c_matches_reference(model, "host", tmp_path, seed=4, sanitize=True, samples=100,
                        extra=edge_inputs(load_program(model)))


@pytest.mark.tf
def test_models_use_the_new_operators() -> None:
    opcodes = {name: {layer.opcode for layer in load_program(km.MODELS[name]()).layers}
               for name in NAMES}
    assert {"RESIZE_BILINEAR", "ARG_MAX"} <= opcodes["segmentation_head"]
    assert {"RESIZE_BILINEAR", "ARG_MAX"} <= opcodes["segmentation_head_align_corners"]
    assert {"BATCH_MATMUL", "SOFTMAX", "SQUARED_DIFFERENCE", "RSQRT", "NEG",
            "MEAN"} <= opcodes["transformer_encoder"]
    program = load_program(km.MODELS["temporal_conv_net"]())
    dilations = [layer.window.cols.dilation for layer in program.layers
                 if layer.opcode == "CONV_2D"]
    assert dilations == [1, 2, 4]


@pytest.mark.tf
def test_dynamic_batch_dilated_convolution_is_refused_with_the_way_out() -> None:
    """TFLM computes the converter's batch-1 SPACE_TO_BATCH_ND chain into tensors too small
    for it (wrong results); codegen says how to convert instead."""
    with pytest.raises(UnsupportedError) as error:
        load_program(km.dynamic_batch_dilated_conv1d())
    text = str(error.value)
    assert "operator 0 (SPACE_TO_BATCH_ND)" in text and "batch_size=1" in text, text
