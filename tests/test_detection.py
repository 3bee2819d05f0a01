"""DETECTION_POSTPROCESS (TFLM's custom operator at the end of SSD detectors) on builder heads:
the reference against TFLM within the documented tolerance (box coordinates within 2^-21 of
the box's largest coordinate magnitude, at least 1; class indices, scores, their order and
the count exactly), the generated C against the reference exactly on every target and under
the sanitizers, what TFLM refuses (or runs into undefined behaviour with) refused in one line,
and its flexbuffer options through the bounded reader.

Where TFLM's fast path leaves its outputs as they were (the entries past the count), only
the reference's zeros are checked; samples whose boxes TFLM's ValidateBoxes rejects (it
fails the invoke) are checked to fail in TFLM and to give all-zero outputs here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import detection_models as dm
from support.builder import Q
from support.tflm import run_tflm
from support.verify import C_TARGETS, c_matches_reference

from codegen.errors import CodegenError, UnsupportedError
from codegen.execute import execute
from codegen.model.tflite import load_model
from codegen.ops import prepare_layer
from codegen.ops.detection_postprocess import DetectionPostprocess
from codegen.program import Program, load_program
from codegen.reference import reference_values

CASES = dm.cases()
TFLM_SAMPLES = 120
C_SAMPLES = {"host": 300}  # per target; QEMU targets take verify's default
EXTRA_SAMPLES = 60


def _layer(program: Program) -> DetectionPostprocess:
    (layer,) = [la for la in program.layers if isinstance(la, DetectionPostprocess)]
    return layer


def _valid(program: Program, inputs: list[np.ndarray]) -> np.ndarray:
    layer = _layer(program)
    return layer.boxes_valid(reference_values(program, inputs)[layer.inputs[0]])


@pytest.mark.tflm
@pytest.mark.parametrize("name", list(CASES))
def test_reference_matches_tflm(name: str) -> None:
    head = CASES[name]
    model = dm.head_model(head)
    program = load_program(model)
    inputs = dm.head_inputs(head, TFLM_SAMPLES, seed=1)
    valid = _valid(program, inputs)
    assert valid.sum() >= TFLM_SAMPLES // 2, f"{name}: too few samples TFLM can run"
    reference = execute(program, "reference", inputs)
    ours = [a[valid] for a in reference]
    tflm = run_tflm(model, [a[valid] for a in inputs])
    compared, _ = dm.assert_detections_match(ours, tflm, head.options, label=name)
    assert compared > 0
    counts = ours[3].ravel()
    limit = int(head.options["max_detections"])
    # The adversarial samples reach both ends: none found (unless every score passes the
    # threshold), and as many as allowed.
    assert (counts == limit).any(), np.bincount(counts.astype(int))
    if float(head.options["nms_score_threshold"]) > 0:
        assert (counts == 0).any(), np.bincount(counts.astype(int))
    for a in reference:
        assert not a[~valid].any(), f"{name}: a sample TFLM rejects gives detections"


@pytest.mark.tflm
def test_invalid_boxes_fail_in_tflm_and_give_nothing() -> None:
    """ValidateBoxes: TFLM fails the invoke on a collapsed box; codegen's answer is zero
    outputs (the count included), the README says so."""
    head = CASES["collapsing_boxes"]
    model = dm.head_model(head)
    program = load_program(model)
    inputs = dm.head_inputs(head, 24, seed=2)
    valid = _valid(program, inputs)
    assert (~valid).any() and valid.any()
    bad = int(np.flatnonzero(~valid)[0])
    with pytest.raises(RuntimeError):
        run_tflm(model, [a[bad:bad + 1] for a in inputs])
    outputs = execute(program, "reference", [a[bad:bad + 1] for a in inputs])
    assert all(not a.any() for a in outputs)


def _bundle_inputs(count: int, seed: int) -> list[np.ndarray]:
    arrays: list[np.ndarray] = []
    for k, head in enumerate(CASES.values()):
        arrays += dm.head_inputs(head, count, seed + k)
    return arrays


@pytest.mark.parametrize("target", C_TARGETS)
def test_generated_c_matches_reference(target: str, tmp_path: Path) -> None:
    """All heads in one model, one build per target: the adversarial samples, then random
    ones over the full input range (float inputs far past any real encoding)."""
    c_matches_reference(dm.heads_model(list(CASES.values())), target, tmp_path, seed=3,
                        extra=_bundle_inputs(EXTRA_SAMPLES, 7), samples=C_SAMPLES.get(target))


def test_generated_c_is_clean_under_sanitizers(tmp_path: Path) -> None:
    c_matches_reference(dm.heads_model(list(CASES.values())), "host", tmp_path, seed=4,
                        sanitize=True, extra=_bundle_inputs(EXTRA_SAMPLES, 9), samples=200)


def test_float_edge_values(tmp_path: Path) -> None:
    """Float inputs at the edges of e^x (overflow, underflow, NaN, infinities, -0.0) and NaN
    scores: the C equals the reference bit for bit (NaN compared as NaN)."""
    head = CASES["fast_float"]
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 3550.0, -3550.0, 3548.9, -3540.0,
                        1e-30, -1e30, 88.0, 709.0 * 5, -708.0 * 5], dtype=np.float32)
    rng = np.random.default_rng(11)
    count = 40
    boxes = rng.choice(special, size=(count, 1, head.boxes, head.values_per_box))
    scores = rng.choice(np.concatenate([special, np.linspace(0, 1, 9, dtype=np.float32)]),
                        size=(count, 1, head.boxes, head.columns)).astype(np.float32)
    inputs = [boxes.astype(np.float32), scores]
    model = dm.head_model(head)
    c_matches_reference(model, "host", tmp_path, seed=5, extra=inputs, samples=0,
                        sanitize=True)


def test_describe_and_constants() -> None:
    program = load_program(dm.heads_model(list(CASES.values())))
    layers = [la for la in program.layers if isinstance(la, DetectionPostprocess)]
    assert len(layers) == len(CASES)
    for layer, head in zip(layers, CASES.values(), strict=True):
        labels = dict(layer.describe())
        assert "regular" in labels["non-max suppression"] or "fast" in labels[
            "non-max suppression"]
        (anchors,) = layer.constants()
        assert anchors.c_type == "float" and anchors.values.size == head.anchors.size
        assert layer.scratch_bytes() % 4 == 0


# -- refusals ------------------------------------------------------------------------------

_ANCHORS = dm.grid_anchors(2, 2)


def _head(**options: object) -> dm.Head:
    head = {k: v for k, v in options.items() if k in dm.Head.__dataclass_fields__}
    opts = {k: v for k, v in options.items() if k not in head}
    head.setdefault("anchors", _ANCHORS)
    return dm.Head(options=dm.detection_options(**opts), **head)


def _string_option() -> bytes:
    from flatbuffers import flexbuffers

    fbb = flexbuffers.Builder()
    with fbb.Map():
        for key, value in dm.detection_options().items():
            if key == "num_classes":
                fbb.String(key, "3")
            elif isinstance(value, bool):
                fbb.Bool(key, value)
            elif isinstance(value, int):
                fbb.Int(key, value)
            else:
                fbb.Float(key, float(value))
    return bytes(fbb.Finish())



REFUSALS: dict[str, tuple[dm.Head, str]] = {
    "fast_several_classes_per_box": (_head(max_classes_per_detection=2), "writes past"),
    "fast_no_class_per_box": (_head(max_classes_per_detection=0), "at least 1"),
    "regular_no_detection_per_class": (_head(use_regular_nms=True, detections_per_class=0),
                                       "at least 1"),
    "regular_scratch_overflow": (_head(use_regular_nms=True, max_detections=1,
                                       detections_per_class=100), "scratch buffers"),
    "iou_zero": (_head(nms_iou_threshold=0.0), "(0, 1]"),
    "iou_above_one": (_head(nms_iou_threshold=1.5), "(0, 1]"),
    "score_nan": (_head(nms_score_threshold=float("nan")), "must be finite"),
    "scale_zero": (_head(scales=(10.0, 0.0, 5.0, 5.0)), "x_scale"),
    "no_classes": (_head(num_classes=0, background=False), "num_classes is 0"),
    "no_detections": (_head(max_detections=0), "max_detections is 0"),
    "outputs_too_small": (_head(max_detections=5, output_slots=3), "fewer than max_detections"),
    "anchors_not_finite": (_head(anchors=np.where(_ANCHORS[1, 2] == _ANCHORS, np.inf, _ANCHORS)
                                 .astype(np.float32)), "not finite"),
    "too_few_values_per_box": (_head(values_per_box=3), "at least 4"),
    "options_not_a_map": (_head(custom_options=b"\x05\x04\x01"), "not a map"),
    "options_truncated": (_head(custom_options=dm.flex_options(dm.detection_options())[:-9]),
                          "not the flexbuffer map"),
    "options_empty": (_head(custom_options=b""), "too few"),
    "option_string": (_head(custom_options=_string_option()), "option 'num_classes' is a string"),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_unsupported_is_refused(name: str) -> None:
    head, message = REFUSALS[name]
    graph = load_model(dm.head_model(head))
    op = next(o for o in graph.operators if o.opcode == "DETECTION_POSTPROCESS")
    with pytest.raises(UnsupportedError) as error:
        prepare_layer(op, graph)
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith(f"operator {op.index} (DETECTION_POSTPROCESS): "), text
    assert message in text, text


def test_int8_inputs_are_refused_as_tflm_fails() -> None:
    """TFLM's kernel takes float32 only: an int8 model must dequantize first."""
    head = dm.Head(_ANCHORS, dm.detection_options())
    model = dm.head_model(head)
    from support.builder import pack, read_model

    m = read_model(model)
    graph = m.subgraphs[0]
    # Feed the int8 graph inputs straight into the operator (drop the DEQUANTIZEs).
    graph.operators[2].inputs = [graph.inputs[0], graph.inputs[1], graph.operators[2].inputs[2]]
    graph.operators = graph.operators[2:]
    with pytest.raises(CodegenError, match=r"takes float32 only.*DEQUANTIZE"):
        load_program(pack(m))


def test_unknown_custom_operator_is_named() -> None:
    head = dm.Head(_ANCHORS, dm.detection_options())
    from support.builder import pack, read_model

    m = read_model(dm.head_model(head))
    code = m.operatorCodes[m.subgraphs[0].operators[2].opcodeIndex]
    code.customCode = "TFLite_Detection_PostProcess_v9"
    with pytest.raises(UnsupportedError, match=r"CUSTOM\(TFLite_Detection_PostProcess_v9\)"):
        load_program(pack(m))


def test_custom_options_format_is_checked() -> None:
    head = dm.Head(_ANCHORS, dm.detection_options())
    from support.builder import pack, read_model

    m = read_model(dm.head_model(head))
    m.subgraphs[0].operators[2].customOptionsFormat = 1
    with pytest.raises(CodegenError, match="unknown format"):
        load_model(pack(m))


def test_box_quantization_reaches_the_boxes() -> None:
    """A different box quantization changes the boxes (the DEQUANTIZE is really read)."""
    a, b = (dm.Head(_ANCHORS, dm.detection_options(nms_score_threshold=0.0), box_q=q)
            for q in (Q(0.05, 3), Q(0.07, 3)))
    inputs = dm.head_inputs(a, 6, seed=1)
    out_a = execute(load_program(dm.head_model(a)), "reference", inputs)
    out_b = execute(load_program(dm.head_model(b)), "reference", inputs)
    assert not np.array_equal(out_a[0], out_b[0])
