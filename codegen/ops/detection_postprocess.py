"""DETECTION_POSTPROCESS: TFLM's custom operator `TFLite_Detection_PostProcess` (the end of SSD
detectors): float32 box encodings and class predictions (in an int8 model, the outputs of
DEQUANTIZE), constant float32 anchors, the fast (one class per box) and the regular (per-class)
non-max suppression; four float32 outputs (boxes, classes, scores, number of detections);
float arithmetic in the generated C (see "Float arithmetic" below the table).

TFLM: detection_postprocess.cc. Init reads the flexbuffer options (codegen.model.flexbuffers:
the same keys and conversions, detections_per_class 100 and use_regular_nms false when
absent). Prepare ensures 3 inputs (box encodings and class predictions 3-D, anchors 2-D) and
4 outputs; Eval takes float32 inputs only (an int8 input fails the invoke), batch 1, at
least 4 values per box encoding (the first 4 are used), class predictions of the same boxes
with num_classes or num_classes + 1 (a background class first) columns.

Eval, operation for operation (the C template and `reference` below):
- decode each box with its anchor in double, as TFLM writes it: ycenter = (float)(y /
  y_scale * anchor_h + anchor_y), half_h = (float)(0.5 * exp(h / h_scale) * anchor_h), the
  corners ycenter -/+ half_h in float (likewise x, w); exp is codegen.ops._exp, not the C
  library's (see there for the last-bit difference this allows);
- a box with ymin >= ymax or xmin >= xmax fails TFLM's invoke (ValidateBoxes): here every
  output is then zero, the count included;
- single-class NMS (NonMaxSuppressionSingleClassHelper): the boxes whose score is >=
  nms_score_threshold, ordered by decreasing score with ties in box order (TFLM's stable
  merge sort), then greedily selected while fewer than the limit, each dropping the later
  candidates whose IoU with it (TFLM's float arithmetic, std::max/std::min's NaN behaviour)
  is > nms_iou_threshold;
- fast path: per box the first class with the highest score (std::partial_sort of one
  element scans with a strict >), NMS on those scores with max_detections as the limit;
- regular path: NMS per class with detections_per_class as the limit, each class's
  selection merged into the best max_detections so far by decreasing score, earlier entries
  first on ties (TFLM's partial sort of the appended list, ties broken by position);
- outputs: the selected boxes, class indices (background excluded) and scores as floats,
  their count; entries past the count are zero (the regular path writes zeros there; the
  fast path leaves TFLM's outputs as they were).

Refused, besides what TFLM refuses: max_classes_per_detection > 1 with more than one class
on the fast path (TFLM's loop then writes past its outputs), regular-path settings under
which TFLM's scratch buffers overflow (max_detections 1 with several classes, say),
non-finite anchors and zero or non-finite scale values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.flexbuffers import FlexbufferError, read_map
from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops import _exp
from codegen.ops.base import CArray, Layer, operand, require_dtype, unsupported
from codegen.plan import ALIGNMENT

OPCODES = ("DETECTION_POSTPROCESS",)
# Its own tensors are float32; the models it ends dequantize int8 or int16 activations.
TYPES = (DType.INT8, DType.INT16)

_FLOAT = (DType.FLOAT32,)
_INT_KEYS = ("max_detections", "max_classes_per_detection", "detections_per_class",
             "num_classes")
_FLOAT_KEYS = ("nms_score_threshold", "nms_iou_threshold", "y_scale", "x_scale", "h_scale",
               "w_scale")
_DEFAULT_DETECTIONS_PER_CLASS = 100  # TFLM's kNumDetectionsPerClass
_OUTPUT_ROLES = ("detection boxes", "detection classes", "detection scores",
                 "number of detections")


@dataclass
class DetectionPostprocess(Layer):
    template: ClassVar[str] = "kernels/detection_postprocess.c.j2"
    runtime: ClassVar[tuple[str, ...]] = ("detection_nms",)

    def constants(self) -> list[CArray]:
        return [CArray("anchors", self.params["anchors"])]

    def scratch_bytes(self) -> int:
        return int(self.params["scratch"]["bytes"])

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        path = ("regular (per class, " f"{p['detections_per_class']} per class)"
                if p["regular"] else "fast (one class per box)")
        return [
            ("boxes", f"{p['boxes']} anchors, {p['classes']} classes"
                      f"{' + background' if p['offset'] else ''}"),
            ("non-max suppression", path),
            ("thresholds", f"score >= {p['score_threshold']:g}, IoU > {p['iou_threshold']:g}"),
            ("max detections", str(p["max_detections"])),
        ]

    # -- the numpy reference -------------------------------------------------------------

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        n, boxes_count = inputs[0].shape[0], int(p["boxes"])
        encodings = inputs[0].reshape(n, boxes_count, -1)[:, :, :4].astype(np.float32)
        scores = inputs[1].reshape(n, boxes_count, int(p["columns"])).astype(np.float32)
        decoded = self._decode(encodings)
        valid = _valid(decoded)
        slots = int(p["output_slots"])
        out_boxes = np.zeros((n, slots, 4), np.float32)
        out_classes = np.zeros((n, slots), np.float32)
        out_scores = np.zeros((n, slots), np.float32)
        counts = np.zeros(n, np.float32)
        for b in np.flatnonzero(valid):
            anchors, classes, values = (self._regular(decoded[b], scores[b]) if p["regular"]
                                        else self._fast(decoded[b], scores[b]))
            count = len(anchors)
            out_boxes[b, :count] = decoded[b][anchors]
            out_classes[b, :count] = classes
            out_scores[b, :count] = values
            counts[b] = count
        return [out_boxes.reshape(n, *self.out_tensor(0).shape),
                out_classes.reshape(n, *self.out_tensor(1).shape),
                out_scores.reshape(n, *self.out_tensor(2).shape),
                counts.reshape(n, *self.out_tensor(3).shape)]

    def boxes_valid(self, box_encodings: np.ndarray) -> np.ndarray:
        """Per sample of a batch of box encodings: whether every decoded box passes TFLM's
        ValidateBoxes (TFLM fails the invoke otherwise, and the outputs here are zero)."""
        n = box_encodings.shape[0]
        encodings = box_encodings.reshape(n, int(self.params["boxes"]), -1)[:, :, :4]
        return _valid(self._decode(encodings.astype(np.float32)))

    def _decode(self, encodings: np.ndarray) -> np.ndarray:
        """(n, boxes, 4) centre-size encodings -> corners, in TFLM's double/float steps."""
        p = self.params
        anchors = p["anchors"].astype(np.float64).reshape(-1, 4)
        ay, ax, ah, aw = (anchors[:, i] for i in range(4))
        y, x, h, w = (encodings[..., i].astype(np.float64) for i in range(4))
        sy, sx, sh, sw = (np.float64(np.float32(p[k])) for k in
                          ("y_scale", "x_scale", "h_scale", "w_scale"))
        with np.errstate(all="ignore"):
            ycenter = ((y / sy) * ah + ay).astype(np.float32)
            xcenter = ((x / sx) * aw + ax).astype(np.float32)
            half_h = ((0.5 * _exp.exp(h / sh)) * ah).astype(np.float32)
            half_w = ((0.5 * _exp.exp(w / sw)) * aw).astype(np.float32)
            return np.stack([ycenter - half_h, xcenter - half_w,
                             ycenter + half_h, xcenter + half_w], axis=-1)

    def _nms(self, boxes: np.ndarray, scores: np.ndarray, limit: int) -> list[int]:
        """TFLM's NonMaxSuppressionSingleClassHelper: the selected box indices, in order."""
        p = self.params
        threshold = np.float32(p["score_threshold"])
        iou_threshold = np.float32(p["iou_threshold"])
        keep = np.flatnonzero(scores >= threshold)
        # TFLM's DecreasingArgSort is a stable merge sort (ties keep box order).
        order = keep[np.argsort(-scores[keep], kind="stable")]
        active = np.ones(len(order), dtype=bool)
        selected: list[int] = []
        size = min(len(order), limit)
        for i in range(len(order)):
            if len(selected) >= size or not active[i:].any():
                break
            if not active[i]:
                continue
            selected.append(int(order[i]))
            active[i] = False
            later = np.flatnonzero(active[i + 1:]) + i + 1
            if len(later):
                iou = _iou(boxes[order[i]], boxes[order[later]])
                active[later[iou > iou_threshold]] = False
        return selected

    def _fast(self, boxes: np.ndarray, scores: np.ndarray
              ) -> tuple[list[int], np.ndarray, np.ndarray]:
        p = self.params
        columns = scores[:, int(p["offset"]):]
        best = np.zeros(len(columns), dtype=np.int64)
        for c in range(1, columns.shape[1]):  # the first of equal maxima; NaN never wins
            best = np.where(columns[:, c] > columns[np.arange(len(columns)), best], c, best)
        top = columns[np.arange(len(columns)), best]
        selected = self._nms(boxes, top, int(p["max_detections"]))
        return selected, best[selected].astype(np.float32), top[selected]

    def _regular(self, boxes: np.ndarray, scores: np.ndarray
                 ) -> tuple[list[int], np.ndarray, np.ndarray]:
        p = self.params
        offset, limit = int(p["offset"]), int(p["max_detections"])
        best: list[tuple[float, int, int]] = []  # (score, box, class), best first
        for c in range(int(p["classes"])):
            column = scores[:, c + offset]
            new = [(column[a], a, c) for a in self._nms(boxes, column,
                                                        int(p["detections_per_class"]))]
            merged: list[tuple[float, int, int]] = []
            i = j = 0
            while len(merged) < min(len(best) + len(new), limit):
                if j < len(new) and (i >= len(best) or new[j][0] > best[i][0]):
                    merged.append(new[j])
                    j += 1
                else:
                    merged.append(best[i])
                    i += 1
            best = merged
        return ([a for _, a, _ in best], np.array([c for _, _, c in best], np.float32),
                np.array([s for s, _, _ in best], np.float32))


def _valid(decoded: np.ndarray) -> np.ndarray:
    """TFLM's ValidateBoxes per sample: no box with ymin >= ymax or xmin >= xmax."""
    return ~((decoded[..., 0] >= decoded[..., 2]) | (decoded[..., 1] >= decoded[..., 3])).any(
        axis=1)


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """TFLM's ComputeIntersectionOverUnion of one box with several, in float32, std::max
    (a < b ? b : a) and std::min (b < a ? b : a) with their NaN behaviour."""
    def fmax(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.where(a < b, b, a)

    def fmin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.where(b < a, b, a)

    with np.errstate(all="ignore"):
        area_i = (box[2] - box[0]) * (box[3] - box[1])
        area_j = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
        ymin, xmin = fmax(box[0], others[:, 0]), fmax(box[1], others[:, 1])
        ymax, xmax = fmin(box[2], others[:, 2]), fmin(box[3], others[:, 3])
        zero = np.float32(0.0)
        intersection = fmax(ymax - ymin, zero) * fmax(xmax - xmin, zero)
        iou = (intersection / ((area_i + area_j) - intersection)).astype(np.float32)
    return np.where((area_i <= 0) | (area_j <= 0), np.float32(0.0), iou)


# -- prepare --------------------------------------------------------------------------------


def _options(op: Operator) -> dict[str, object]:
    """The flexbuffer options as TFLM's Init reads them."""
    try:
        values = read_map(op.custom_options, (*_INT_KEYS, *_FLOAT_KEYS, "use_regular_nms"))
        options: dict[str, object] = {k: values[k].as_int32(k) for k in _INT_KEYS}
        options.update({k: values[k].as_float(k) for k in _FLOAT_KEYS})
        if values["detections_per_class"].is_null:
            options["detections_per_class"] = _DEFAULT_DETECTIONS_PER_CLASS
        nms = values["use_regular_nms"]
        options["use_regular_nms"] = False if nms.is_null else nms.as_bool("use_regular_nms")
    except FlexbufferError as exc:
        raise unsupported(op, f"its options are not the flexbuffer map TFLM reads ({exc}); "
                          "re-export the model") from None
    return options


def _check_options(op: Operator, o: dict[str, object]) -> None:
    for key in ("max_detections", "num_classes"):
        if int(o[key]) < 1:  # type: ignore[call-overload]
            raise unsupported(op, f"{key} is {o[key]}; it must be at least 1")
    score = float(o["nms_score_threshold"])  # type: ignore[arg-type]
    if not np.isfinite(score):
        raise unsupported(op, f"nms_score_threshold is {score:g}; it must be finite")
    iou = float(o["nms_iou_threshold"])  # type: ignore[arg-type]
    if not 0.0 < iou <= 1.0:
        raise unsupported(op, f"nms_iou_threshold is {iou:g}; TFLM requires it in (0, 1] "
                          "(it fails the invoke otherwise)")
    for key in ("y_scale", "x_scale", "h_scale", "w_scale"):
        value = float(o[key])  # type: ignore[arg-type]
        if not np.isfinite(value) or value == 0.0:
            raise unsupported(op, f"{key} is {value:g}; the box decoding divides by it, so it "
                              "must be finite and not 0")
    if o["use_regular_nms"]:
        if int(o["detections_per_class"]) < 1:  # type: ignore[call-overload]
            raise unsupported(op, f"detections_per_class is {o['detections_per_class']}; TFLM "
                              "requires at least 1 with use_regular_nms")
        return
    per_box = int(o["max_classes_per_detection"])  # type: ignore[call-overload]
    if per_box < 1:
        raise unsupported(op, f"max_classes_per_detection is {per_box}; TFLM requires at "
                          "least 1 without use_regular_nms")
    if min(per_box, int(o["num_classes"])) > 1:  # type: ignore[call-overload]
        raise unsupported(op, f"max_classes_per_detection is {per_box}: TFLM's fast "
                          "non-max suppression then writes past its outputs (it counts each "
                          "class of a box as a detection twice over); use 1, or "
                          "use_regular_nms")


def _check_regular_scratch(op: Operator, o: dict[str, object], boxes: int) -> None:
    """TFLM sizes the regular path's scratch buffers for max_detections x boxes entries and
    max(classes, max_detections) x boxes indices, but appends up to detections_per_class
    new ones to max_detections kept ones: past those sizes it writes outside them."""
    classes, limit = int(o["num_classes"]), int(o["max_detections"])  # type: ignore[call-overload]
    per_class = min(int(o["detections_per_class"]), boxes)  # type: ignore[call-overload]
    longest = per_class + (min(limit, (classes - 1) * per_class) if classes > 1 else 0)
    if longest > limit * boxes or longest > max(classes, limit) * boxes:
        raise unsupported(op, f"with {boxes} boxes, {classes} classes, max_detections {limit} "
                          f"and detections_per_class {o['detections_per_class']}, TFLM's "
                          "regular non-max suppression writes past its scratch buffers; "
                          "raise max_detections or lower detections_per_class")


def _inputs(op: Operator, graph: Graph, classes: int) -> tuple[Tensor, Tensor, Tensor, int]:
    if len(op.inputs) != 3:
        raise unsupported(op, f"expected 3 inputs (box encodings, class predictions, anchors), "
                          f"found {len(op.inputs)}")
    encodings = operand(op, graph, 0, "box encodings")
    predictions = operand(op, graph, 1, "class predictions")
    anchors = operand(op, graph, 2, "anchors")
    for t, role in ((encodings, "box encodings"), (predictions, "class predictions")):
        if t.dtype is not DType.FLOAT32:
            raise unsupported(op, f"{role} '{t.name}' is {t.dtype_name}; TFLM's kernel takes "
                              "float32 only (it fails the invoke on other types): put a "
                              "DEQUANTIZE before it")
        if t.is_constant:
            raise unsupported(op, f"constant {role} are not supported")
        if len(t.shape) != 3 or t.shape[0] != 1:
            raise unsupported(op, f"{role} '{t.name}' have shape {list(t.shape)}; TFLM takes "
                              "[1, boxes, values] (batch 1)")
    boxes = encodings.shape[1]
    if encodings.shape[2] < 4:
        raise unsupported(op, f"box encodings have {encodings.shape[2]} values per box; TFLM "
                          "needs at least 4 (y, x, h, w)")
    if predictions.shape[1] != boxes:
        raise unsupported(op, f"class predictions are for {predictions.shape[1]} boxes, the "
                          f"box encodings for {boxes}")
    columns = predictions.shape[2]
    if not classes <= columns <= classes + 1:
        raise unsupported(op, f"class predictions have {columns} columns for num_classes "
                          f"{classes}; TFLM takes num_classes or num_classes + 1 (background)")
    require_dtype(op, anchors, _FLOAT, "anchors")
    if not anchors.is_constant:
        raise unsupported(op, f"anchors '{anchors.name}' must be constant")
    if anchors.shape != (boxes, 4):
        raise unsupported(op, f"anchors have shape {list(anchors.shape)}, expected "
                          f"[{boxes}, 4] (y, x, h, w per box)")
    if not np.isfinite(anchors.data).all():
        raise unsupported(op, f"anchors '{anchors.name}' hold values that are not finite")
    return encodings, predictions, anchors, boxes


def _outputs(op: Operator, graph: Graph, limit: int) -> tuple[tuple[Tensor, ...], int]:
    if len(op.outputs) != 4 or min(op.outputs) < 0:
        raise unsupported(op, "expected 4 outputs (boxes, classes, scores, number of "
                          f"detections), found {len(op.outputs)}")
    outputs = tuple(graph.tensors[i] for i in op.outputs)
    for t, role in zip(outputs, _OUTPUT_ROLES, strict=True):
        require_dtype(op, t, _FLOAT, role)
    boxes, classes, scores, count = outputs
    slots = classes.size
    if (scores.size != slots or boxes.size != 4 * slots or boxes.shape[-1:] != (4,)
            or count.size != 1):
        raise unsupported(op, "the outputs have shapes " + ", ".join(
            str(list(t.shape)) for t in outputs) + "; expected [1, D, 4], [1, D], [1, D], [1]")
    if slots < limit:
        raise unsupported(op, f"the outputs hold {slots} detections, fewer than max_detections "
                          f"{limit} (TFLM would write past them)")
    return outputs, slots


def _scratch(boxes: int, limit: int, regular: bool) -> dict[str, int]:
    """Byte offsets of the kernel's working arrays in its scratch buffer."""
    words = {"decoded": 4 * boxes, "keep": boxes, "keep_scores": boxes, "order": boxes,
             "merge": boxes, "selected": boxes}
    if regular:
        words.update({"top_key": limit, "top_score": limit, "next_key": limit,
                      "next_score": limit})
    else:
        words.update({"best_class": boxes, "best_score": boxes})
    layout, at = {}, 0
    for name, count in words.items():
        layout[name] = at
        at += 4 * count
    layout["active"] = at
    layout["bytes"] = (at + boxes + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
    return layout


def prepare(op: Operator, graph: Graph) -> DetectionPostprocess:
    o = _options(op)
    _check_options(op, o)
    classes, limit = int(o["num_classes"]), int(o["max_detections"])  # type: ignore[call-overload]
    encodings, predictions, anchors, boxes = _inputs(op, graph, classes)
    regular = bool(o["use_regular_nms"])
    if regular:
        _check_regular_scratch(op, o, boxes)
    outputs, slots = _outputs(op, graph, limit)
    assert anchors.data is not None
    params: dict[str, object] = {
        "boxes": boxes,
        "stride": encodings.shape[2],
        "columns": predictions.shape[2],
        "classes": classes,
        "offset": predictions.shape[2] - classes,
        "max_detections": limit,
        "detections_per_class": int(o["detections_per_class"]),  # type: ignore[call-overload]
        "regular": regular,
        "score_threshold": o["nms_score_threshold"],
        "iou_threshold": o["nms_iou_threshold"],
        **{k: o[k] for k in ("y_scale", "x_scale", "h_scale", "w_scale")},
        "anchors": np.ascontiguousarray(anchors.data, dtype=np.float32).reshape(-1),
        "output_slots": slots,
        "scratch": _scratch(boxes, limit, regular),
        # Double literals that read back as the same doubles (Python's repr).
        "exp": {"inv_ln2": repr(_exp.INV_LN2), "ln2_hi": repr(_exp.LN2_HI),
                "ln2_lo": repr(_exp.LN2_LO), "overflow": repr(_exp.OVERFLOW),
                "underflow": repr(_exp.UNDERFLOW),
                "coefficients": [repr(c) for c in _exp.COEFFICIENTS]},
    }
    return DetectionPostprocess(op, graph, inputs=(encodings.index, predictions.index),
                                outputs=tuple(t.index for t in outputs), params=params)
