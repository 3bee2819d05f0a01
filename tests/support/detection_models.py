"""SSD-style heads ending in DETECTION_POSTPROCESS (TFLM's custom operator
`TFLite_Detection_PostProcess`), written with the flatbuffer builder: the converter writes the
operator only from TensorFlow's object-detection export, so the tests write it themselves,
with its options as a flexbuffer map (the `flatbuffers` package's flexbuffers module).

`head(...)` makes the operator's usual context in an int8 model: int8 box encodings and class
predictions (graph inputs standing for the detector's last layers) through DEQUANTIZE into the
operator, constant float32 anchors, four float32 outputs. `float_inputs=True` feeds float32
graph inputs straight in, as TFLM's own kernel test does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from flatbuffers import flexbuffers

from support.builder import ModelBuilder, Q
from support.verify import assert_same

CUSTOM_CODE = "TFLite_Detection_PostProcess"
# Box coordinates may differ from TFLM's by this much relative to the box's largest
# coordinate magnitude (at least 1): our e^x and the C library's differ in the last bit of
# the double for about 1.6% of arguments (codegen/ops/_exp.py), which moves a float32
# coordinate by at most about one unit in its last place, and that rarely.
BOX_TOLERANCE = 2.0**-21
BOX_Q = Q(0.05, 3)  # box encodings of about +-6.4 (y/x_scale 10, h/w_scale 5: +-0.64, e^+-1.3)
SCORE_Q = Q(1 / 256, -128)  # sigmoid scores in [0, 1)


def flex_options(values: dict[str, object]) -> bytes:
    """A flexbuffer map: bool, int and float values as the Python builder types them
    (floats exact in float32 stored as 32-bit floats, others as doubles)."""
    fbb = flexbuffers.Builder()
    with fbb.Map():
        for key, value in values.items():
            if value is None:
                fbb.Key(key)
                fbb.Null()
            elif isinstance(value, bool):
                fbb.Bool(key, value)
            elif isinstance(value, int):
                fbb.Int(key, value)
            else:
                fbb.Float(key, float(value))
    return bytes(fbb.Finish())


def detection_options(*, max_detections: int = 5, max_classes_per_detection: int = 1,
                      detections_per_class: int | None = 100, use_regular_nms: bool = False,
                      nms_score_threshold: float = 0.3, nms_iou_threshold: float = 0.5,
                      num_classes: int = 3, scales: tuple[float, ...] = (10.0, 10.0, 5.0, 5.0),
                      **extra: object) -> dict[str, object]:
    """The options the object-detection export writes (TFLM reads these eleven keys)."""
    options: dict[str, object] = {
        "max_detections": max_detections,
        "max_classes_per_detection": max_classes_per_detection,
        "use_regular_nms": use_regular_nms,
        "nms_score_threshold": nms_score_threshold,
        "nms_iou_threshold": nms_iou_threshold,
        "num_classes": num_classes,
        "y_scale": scales[0], "x_scale": scales[1], "h_scale": scales[2], "w_scale": scales[3],
    }
    if detections_per_class is not None:
        options["detections_per_class"] = detections_per_class
    options.update(extra)
    return options


def grid_anchors(rows: int, cols: int, sizes: tuple[float, ...] = (0.3, 0.5),
                 aspect: float = 1.5) -> np.ndarray:
    """(y, x, h, w) anchors on a rows x cols grid over the unit square, one per size and
    orientation, so that neighbours overlap."""
    anchors = []
    for r in range(rows):
        for c in range(cols):
            y, x = (r + 0.5) / rows, (c + 0.5) / cols
            for size in sizes:
                anchors.append((y, x, size, size * aspect))
                anchors.append((y, x, size * aspect, size))
    return np.array(anchors, dtype=np.float32)


@dataclass
class Head:
    """One DETECTION_POSTPROCESS layer and its inputs."""

    anchors: np.ndarray
    options: dict[str, object]
    background: bool = True
    values_per_box: int = 4
    float_inputs: bool = False
    int_type: str = "int8"  # the quantized inputs' type: int8, or int16 (a 16x8 model)
    box_q: Q = BOX_Q
    score_q: Q = SCORE_Q
    output_slots: int | None = None  # detections the outputs hold (default max_detections)
    custom_options: bytes | None = None  # raw options bytes in place of `options`
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def boxes(self) -> int:
        return len(self.anchors)

    @property
    def columns(self) -> int:
        return int(self.options["num_classes"]) + (1 if self.background else 0)


def add_head(b: ModelBuilder, head: Head, prefix: str = "") -> tuple[list[int], list[int]]:
    """The head's graph inputs and outputs, added to `b` (names start with `prefix`)."""
    n = head.boxes
    dtype = "float32" if head.float_inputs else head.int_type
    box_in = b.add_tensor(f"{prefix}box_encodings", (1, n, head.values_per_box), dtype,
                          quant=None if head.float_inputs else head.box_q)
    cls_in = b.add_tensor(f"{prefix}class_predictions", (1, n, head.columns), dtype,
                          quant=None if head.float_inputs else head.score_q)
    box, cls = box_in, cls_in
    if not head.float_inputs:
        box = b.add_tensor(f"{prefix}box_float", (1, n, head.values_per_box), "float32")
        cls = b.add_tensor(f"{prefix}class_float", (1, n, head.columns), "float32")
        b.add_op("DEQUANTIZE", [box_in], [box])
        b.add_op("DEQUANTIZE", [cls_in], [cls])
    anchors = b.add_tensor(f"{prefix}anchors", head.anchors.shape, "float32", data=head.anchors)
    slots = head.output_slots or int(head.options["max_detections"])  # type: ignore[call-overload]
    outs = [b.add_tensor(f"{prefix}detection_boxes", (1, slots, 4), "float32"),
            b.add_tensor(f"{prefix}detection_classes", (1, slots), "float32"),
            b.add_tensor(f"{prefix}detection_scores", (1, slots), "float32"),
            b.add_tensor(f"{prefix}num_detections", (1,), "float32")]
    raw = head.custom_options if head.custom_options is not None else flex_options(head.options)
    b.add_op("CUSTOM", [box, cls, anchors], outs, custom_code=CUSTOM_CODE, custom_options=raw)
    return [box_in, cls_in], outs


def head_model(head: Head) -> bytes:
    b = ModelBuilder("detection head")
    ins, outs = add_head(b, head)
    b.set_io(ins, outs)
    return b.build()


def heads_model(heads: list[Head]) -> bytes:
    """Several heads side by side in one model (one C build covers them all)."""
    b = ModelBuilder("detection heads")
    ins: list[int] = []
    outs: list[int] = []
    for k, head in enumerate(heads):
        i, o = add_head(b, head, f"h{k}_")
        ins += i
        outs += o
    b.set_io(ins, outs)
    return b.build()


# -- inputs -------------------------------------------------------------------------------

_KINDS = 6


def head_inputs(head: Head, count: int, seed: int) -> list[np.ndarray]:
    """[box encodings, class predictions] batches of `count` samples cycling through: full
    range; a realistic mix (small offsets, mostly low scores); ties (one score for every box
    of a class, the same in every class, box pairs decoded alike); every score at the
    bottom (nothing passes the threshold); every score at the top with the boxes on their
    anchors (more candidates than max_detections, identical boxes); scores in few steps."""
    rng = np.random.default_rng(seed)
    n, e, k = head.boxes, head.values_per_box, head.columns
    boxes = np.zeros((count, 1, n, e))
    scores = np.zeros((count, 1, n, k))
    for s in range(count):
        kind = s % _KINDS
        if kind == 0:
            boxes[s] = rng.uniform(-1, 1, (1, n, e))
            scores[s] = rng.uniform(-1, 1, (1, n, k))
        elif kind == 1:
            boxes[s] = rng.uniform(-0.25, 0.25, (1, n, e))
            scores[s] = np.where(rng.random((1, n, k)) < 0.15, rng.uniform(0.2, 1, (1, n, k)),
                                 rng.uniform(-1, -0.6, (1, n, k)))
        elif kind == 2:
            boxes[s] = np.repeat(rng.uniform(-0.25, 0.25, (1, (n + 1) // 2, e)), 2, axis=1)[:, :n]
            scores[s] = np.broadcast_to(rng.uniform(0, 1), (1, n, k))
        elif kind == 3:
            boxes[s] = rng.uniform(-0.25, 0.25, (1, n, e))
            scores[s] = -1.0
        elif kind == 4:
            scores[s] = 1.0
        else:
            boxes[s] = rng.uniform(-0.5, 0.5, (1, n, e))
            scores[s] = rng.integers(0, 4, (1, n, k)) / 3.0 * 2 - 1
    return [_encode(boxes, head, box=True), _encode(scores, head, box=False)]


def _encode(values: np.ndarray, head: Head, *, box: bool) -> np.ndarray:
    """Values in [-1, 1] as the head's inputs: int8 over the full range, or floats (box
    encodings of +-3, scores in [0, 1])."""
    if head.float_inputs:
        return (values * 3.0 if box else (values + 1.0) / 2.0).astype(np.float32)
    info = np.iinfo(np.dtype(head.int_type))
    half = (int(info.max) - int(info.min)) / 2
    return np.clip(np.round(values * half - 0.5), info.min, info.max).astype(info.dtype)


# -- the cases ----------------------------------------------------------------------------

# What the converter adds to the options besides TFLM's keys (read past, never used).
CONVERTER_KEYS = {"_output_quantized": True, "_support_output_type_float_in_quantized_op": True}


def cases() -> dict[str, Head]:
    """Every path and option of the operator, each a head of its own."""
    opts = detection_options
    return {
        "fast": Head(grid_anchors(3, 3), opts(**CONVERTER_KEYS)),
        "fast_one_class": Head(grid_anchors(2, 3, (0.4,)), opts(
            num_classes=1, max_classes_per_detection=3, max_detections=4, nms_iou_threshold=0.3,
            nms_score_threshold=0.25), background=False),
        "fast_float": Head(grid_anchors(2, 2), opts(max_detections=3, nms_iou_threshold=0.1),
                           float_inputs=True, values_per_box=6, output_slots=5),
        "regular": Head(grid_anchors(3, 3), opts(use_regular_nms=True, detections_per_class=2,
                                                 max_detections=6)),
        "regular_default_per_class": Head(grid_anchors(3, 2), opts(
            use_regular_nms=True, detections_per_class=None, num_classes=4, max_detections=10,
            nms_score_threshold=0.0, nms_iou_threshold=1.0), background=False, output_slots=12),
        "regular_float": Head(grid_anchors(2, 2, (0.2, 0.6)), opts(
            use_regular_nms=True, detections_per_class=3, max_detections=4, num_classes=2,
            nms_score_threshold=0.0, nms_iou_threshold=0.45, scales=(8.0, 12.0, 3.0, 7.0)),
            float_inputs=True),
        "regular_int16": Head(grid_anchors(2, 3), opts(
            use_regular_nms=True, detections_per_class=4, max_detections=5, num_classes=2),
            int_type="int16", box_q=Q(0.05 / 256, 0), score_q=Q(1 / 32768, 0)),
        # Box sizes e^(h/5) down to e^-25: boxes collapse to a line (TFLM fails the invoke).
        "collapsing_boxes": Head(grid_anchors(2, 2), opts(max_detections=3), box_q=Q(1.0, 0)),
    }


# -- comparison with TFLM -------------------------------------------------------------


def assert_detections_match(got: list[np.ndarray], tflm: list[np.ndarray],
                            options: dict[str, object], *, label: str) -> tuple[int, int]:
    """got (the reference) against TFLM's outputs within the documented tolerance; returns
    (box coordinates compared, box coordinates not bit-equal)."""
    # TFLM's regular path zeroes the entries from the count to max_detections; the fast
    # path leaves every entry past the count as it was.
    zeroed = int(options["max_detections"]) if options["use_regular_nms"] else 0  # type: ignore[call-overload]
    boxes, classes, scores, counts = (a.reshape(a.shape[0], -1) for a in got)
    t_boxes, t_classes, t_scores, t_counts = (a.reshape(a.shape[0], -1) for a in tflm)
    assert_same([counts], [t_counts], f"{label}: number of detections")
    compared = differing = 0
    for s in range(len(counts)):
        n = int(counts[s, 0])
        where = f"{label} sample {s}"
        assert_same([classes[s, :n], scores[s, :n]], [t_classes[s, :n], t_scores[s, :n]],
                    f"{where}: classes and scores")
        ours, theirs = boxes[s, :4 * n].reshape(n, 4), t_boxes[s, :4 * n].reshape(n, 4)
        scale = np.maximum(np.abs(theirs).max(axis=1, initial=0.0), 1.0)[:, None]
        error = np.abs(ours.astype(np.float64) - theirs) / scale
        assert (error <= BOX_TOLERANCE).all(), f"{where}: boxes {ours} vs TFLM {theirs}"
        compared += ours.size
        differing += int((ours != theirs).sum())
        # The reference (and the C) zero every entry past the count.
        for ours_rest, theirs_rest in ((boxes[s, 4 * n:], t_boxes[s, 4 * n:4 * zeroed]),
                                       (classes[s, n:], t_classes[s, n:zeroed]),
                                       (scores[s, n:], t_scores[s, n:zeroed])):
            assert not ours_rest.any(), f"{where}: entries past the count are not zero"
            assert not theirs_rest.any(), f"{where}: TFLM's entries past the count"
    return compared, differing


def in_operator_order(program: object, outputs: list[np.ndarray]) -> list[np.ndarray]:
    """A model's outputs (graph order) as the DETECTION_POSTPROCESS operator writes them:
    boxes, classes, scores, count (the converter lists them in another order)."""
    from codegen.ops.detection_postprocess import DetectionPostprocess

    (layer,) = [la for la in program.layers  # type: ignore[attr-defined]
                if isinstance(la, DetectionPostprocess)]
    graph_outputs = list(program.graph.outputs)  # type: ignore[attr-defined]
    return [outputs[graph_outputs.index(t)] for t in layer.outputs]
