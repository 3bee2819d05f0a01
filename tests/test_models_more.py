"""Whole models of issue 13 built with Keras and TensorFlow's int8 converter
(support.more_keras_models): a segmentation head (RESIZE_BILINEAR, ARG_MAX), a dilated
temporal convolution network, a one-block transformer encoder (BATCH_MATMUL, SOFTMAX,
LayerNormalization), and the held-out check of the issue's other operators: three models of
plain TensorFlow ops (reductions and indices; spatial moves; elementwise arithmetic,
comparisons and logic) and a tiny SSD detector exported as the object-detection API does
(DETECTION_POSTPROCESS, regular and fast). Each is checked end to end: the reference against
TFLM (bit for bit; the detector within the documented box tolerance), the C against the
reference on the host and on cortex-m4 (the operator tests cover every target) and under the
sanitizers. Also int32 and bool tensors at a model's edges: `codegen run` with them, and the
C API's types and macros.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import detection_models as dm
from support import more_keras_models as km
from support import more_models as mm
from support.tflm import run_tflm
from support.verify import (
    c_matches_reference,
    edge_inputs,
    inputs_with_edges,
    reference_matches_tflm,
)

from codegen.emit import emit_model
from codegen.errors import UnsupportedError
from codegen.execute import execute
from codegen.program import load_program

TFLM_SAMPLES = 300
NAMES = [*km.MODELS, *km.HELD_OUT]
ALL = {**km.MODELS, **km.HELD_OUT, **km.DETECTION}
# The operators issue 13 names, each in a converter-built model here (support.more_keras_models
# says why the others cannot be: the converter keeps them float or folds them away).
HELD_OUT_OPERATORS = {
    "reductions_and_indices": {"ARG_MIN", "REDUCE_MAX", "REDUCE_MIN", "SUM", "GATHER",
                               "GATHER_ND"},
    "spatial_moves": {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "DEPTH_TO_SPACE",
                      "SPACE_TO_DEPTH", "MIRROR_PAD", "REVERSE_V2", "BROADCAST_TO"},
    "elementwise_and_logic": {"DIV", "ABS", "RSQRT", "SQUARED_DIFFERENCE", "LOG_SOFTMAX",
                              "L2_NORMALIZATION", "EQUAL", "GREATER", "GREATER_EQUAL", "LESS",
                              "LESS_EQUAL", "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT",
                              "SELECT_V2"},
    "ssd_head_regular": {"DETECTION_POSTPROCESS", "DEQUANTIZE", "LOGISTIC"},
    "ssd_head_fast": {"DETECTION_POSTPROCESS"},
}


@pytest.mark.tf
@pytest.mark.tflm
@pytest.mark.parametrize("name", NAMES)
def test_reference_matches_tflm(name: str) -> None:
    model = ALL[name]()
    reference_matches_tflm(model, inputs_with_edges(model, TFLM_SAMPLES, seed=1))


@pytest.mark.tf
@pytest.mark.tflm
@pytest.mark.parametrize("name", list(km.DETECTION))
def test_detector_matches_tflm_within_the_tolerance(name: str) -> None:
    """The converter's SSD detector: classes, scores, order and count as TFLM's, boxes
    within the documented tolerance (support.detection_models.BOX_TOLERANCE)."""
    model = km.DETECTION[name]()
    program = load_program(model)
    inputs = inputs_with_edges(model, TFLM_SAMPLES, seed=1)
    ours = dm.in_operator_order(program, execute(program, "reference", inputs))
    theirs = dm.in_operator_order(program, run_tflm(model, inputs))
    (layer,) = [la for la in program.layers if la.opcode == "DETECTION_POSTPROCESS"]
    options = {"max_detections": layer.params["max_detections"],
               "use_regular_nms": layer.params["regular"]}
    compared, _ = dm.assert_detections_match(ours, theirs, options, label=name)
    counts = ours[3].ravel()
    assert compared > 0 and len(set(counts.tolist())) > 1, np.bincount(counts.astype(int))


@pytest.mark.tf
@pytest.mark.parametrize("target", ["host", "cortex-m4"])
@pytest.mark.parametrize("name", list(ALL))
def test_generated_c_matches_reference(name: str, target: str, tmp_path: Path) -> None:
    model = ALL[name]()
    c_matches_reference(model, target, tmp_path, seed=3, samples=200 if target == "host" else 50,
                        extra=edge_inputs(load_program(model)))


@pytest.mark.tf
@pytest.mark.parametrize("name", list(ALL))
def test_generated_c_is_clean_under_sanitizers(name: str, tmp_path: Path) -> None:
    model = ALL[name]()
    c_matches_reference(model, "host", tmp_path, seed=4, sanitize=True, samples=100,
                        extra=edge_inputs(load_program(model)))


@pytest.mark.tf
@pytest.mark.parametrize("name", list(HELD_OUT_OPERATORS))
def test_held_out_models_use_the_operators(name: str) -> None:
    opcodes = {layer.opcode for layer in load_program(ALL[name]()).layers}
    assert HELD_OUT_OPERATORS[name] <= opcodes, HELD_OUT_OPERATORS[name] - opcodes


@pytest.mark.tf
def test_models_use_the_new_operators() -> None:
    opcodes = {name: {layer.opcode for layer in load_program(km.MODELS[name]()).layers}
               for name in km.MODELS}
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


def _index_and_mask_model() -> bytes:
    """int8 table values + int32 indices -> GATHER (int8); int8 x int8 -> LESS (bool);
    bool -> LOGICAL_NOT (bool): int32 and bool at the model's edges."""
    b = mm.ModelBuilder()
    values = b.add_tensor("values", (6, 3), "int8", quant=mm.Q(0.1, -2))
    indices = b.add_tensor("indices", (4,), "int32")
    gathered = b.add_tensor("gathered", (4, 3), "int8", quant=mm.Q(0.1, -2))
    b.add_op("GATHER", [values, indices], [gathered], mm.options("Gather", axis=0))
    less = b.add_tensor("less", (6, 3), "bool")
    zero = b.add_tensor("zero", (1,), "int8", quant=mm.Q(0.5, 0), data=[0])
    b.add_op("LESS", [values, zero], [less])
    mask = b.add_tensor("mask", (5,), "bool")
    flipped = b.add_tensor("flipped", (5,), "bool")
    b.add_op("LOGICAL_NOT", [mask], [flipped])
    b.set_io([values, indices, mask], [gathered, less, flipped])
    return b.build()


@pytest.mark.tflm
@pytest.mark.parametrize("target", ["reference", "host"])
def test_codegen_run_with_int32_and_bool_io(target: str, tmp_path: Path) -> None:
    model = tmp_path / "edges.tflite"
    model.write_bytes(_index_and_mask_model())
    rng = np.random.default_rng(5)
    values = rng.integers(-128, 128, size=(40, 6, 3)).astype(np.int8)
    indices = rng.integers(0, 6, size=(40, 4)).astype(np.int32)
    mask = rng.integers(0, 2, size=(40, 5)).astype(np.bool_)
    np.savez(tmp_path / "in.npz", values=values, indices=indices, mask=mask)
    result = subprocess.run([sys.executable, "-m", "codegen", "run", str(model), "--target",
                             target, "--input", str(tmp_path / "in.npz"), "--output",
                             str(tmp_path / "out.npz")], capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    expected = run_tflm(model.read_bytes(), [values, indices, mask])
    with np.load(tmp_path / "out.npz") as out:
        for name, want in zip(("gathered", "less", "flipped"), expected, strict=True):
            assert out[name].dtype == want.dtype, name
            np.testing.assert_array_equal(out[name], want)


def test_header_types_for_int32_and_bool_io() -> None:
    header = emit_model(load_program(_index_and_mask_model()), "edges")["edges.h"]
    assert ("int edges_invoke(const int8_t *input0, const int32_t *input1, "
            "const uint8_t *input2, int8_t *output0, uint8_t *output1, uint8_t *output2);"
            in header), header
    assert "EDGES_INPUT0_SCALE" in header and "EDGES_INPUT1_SCALE" not in header
    assert "EDGES_OUTPUT1_ZERO_POINT" not in header


def test_inspect_names_an_unsupported_operator_and_its_index(tmp_path: Path) -> None:
    """An operator TFLM has no int8 kernel for (EXP) after supported ones: `codegen inspect`
    still lists the model, naming the operator and its index."""
    b = mm.ModelBuilder()
    x = b.add_tensor("x", (1, 6), "int8", quant=mm.Q(0.05, -3))
    axis = b.add_tensor("axis", (1,), "int32", data=[1])
    index = b.add_tensor("index", (1,), "int32")
    b.add_op("ARG_MAX", [x, axis], [index],
             mm.options("ArgMax", outputType=mm.schema.TensorType.INT32))
    y = b.add_tensor("y", (1, 6), "int8", quant=mm.Q(0.1, 0))
    b.add_op("EXP", [x], [y])
    b.set_io([x], [index, y])
    model = tmp_path / "exp.tflite"
    model.write_bytes(b.build())
    result = subprocess.run([sys.executable, "-m", "codegen", "inspect", str(model)],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert "1 operator(s) cannot be generated" in result.stdout
    assert "[0] ARG_MAX\n" in result.stdout
    assert "[1] EXP  ** UNSUPPORTED **" in result.stdout
    assert "operator 1 (EXP) is not supported" in result.stdout
