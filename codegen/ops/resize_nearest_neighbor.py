"""RESIZE_NEAREST_NEIGHBOR: int8 or int16 NHWC in/out, constant size, align_corners and
half_pixel_centers (TFLM's float32 index arithmetic, evaluated into tables at generation
time); input and output quantized alike.

TFLM: reference_ops::ResizeNearestNeighbor / GetNearestNeighbor
(kernels/internal/reference/resize_nearest_neighbor.h). The source row of output row y is
computed in float32:
    scale = align_corners && out > 1 ? (in - 1) / (float)(out - 1) : in / (float)out
    v     = ((float)y + (half_pixel_centers ? 0.5f : 0.0f)) * scale
    src   = min(align_corners ? (int32)roundf(v) : (int32)floorf(v), in - 1)
and, with half_pixel_centers, max(src, 0); columns likewise. Generation time evaluates this
with numpy float32 (the same IEEE single operations) into two offset tables, so the C only
looks offsets up and copies depth values per pixel. TFLM applies align_corners and
half_pixel_centers together when both are set (TensorFlow forbids the pair); so does this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops._copy import (
    activation_input,
    constant_vector,
    require_same_quantization,
    require_shape,
    single_output,
)
from codegen.ops.base import CArray, Layer, unsupported

OPCODES = ("RESIZE_NEAREST_NEIGHBOR",)


def nearest_sources(in_size: int, out_size: int, align_corners: bool,
                    half_pixel_centers: bool) -> np.ndarray:
    """GetNearestNeighbor for every output index, in float32 like TFLM."""
    if align_corners and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    offset = np.float32(0.5) if half_pixel_centers else np.float32(0.0)
    values = (np.arange(out_size, dtype=np.int64).astype(np.float32) + offset) * scale
    v = values.astype(np.float64)  # exact; the rounding below is then exact too
    if align_corners:
        rounded = np.sign(v) * np.floor(np.abs(v) + 0.5)  # roundf: half away from zero
    else:
        rounded = np.floor(v)
    sources = np.minimum(rounded.astype(np.int64), in_size - 1)
    if half_pixel_centers:
        sources = np.maximum(sources, 0)
    return sources


@dataclass
class ResizeNearestNeighbor(Layer):
    template: ClassVar[str] = "kernels/resize_nearest_neighbor.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        rows, cols = self.params["source_rows"], self.params["source_cols"]
        x = inputs[0]
        return [np.ascontiguousarray(x[:, :, rows][:, :, :, cols])]

    def constants(self) -> list[CArray]:
        return [CArray("rows", np.asarray(self.params["row_offsets"], dtype=np.int32)),
                CArray("cols", np.asarray(self.params["col_offsets"], dtype=np.int32))]

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("options", f"align_corners={p['align_corners']} "
                            f"half_pixel_centers={p['half_pixel_centers']}"),
                ("source rows", str(list(p["source_rows"]))),
                ("source cols", str(list(p["source_cols"])))]


def prepare(op: Operator, graph: Graph) -> ResizeNearestNeighbor:
    x = activation_input(op, graph, 0)
    y = single_output(op, graph)
    require_same_quantization(op, x, y)
    if len(x.shape) != 4:
        raise unsupported(op, f"input must be 4-D (NHWC), found {list(x.shape)}")
    out_h, out_w = constant_vector(op, graph, 1, "size", 2)
    if out_h <= 0 or out_w <= 0:
        raise unsupported(op, f"size {[out_h, out_w]} must be positive")
    batches, in_h, in_w, depth = x.shape
    require_shape(op, y, [batches, out_h, out_w, depth])
    align = bool(op.options.get("align_corners", False))
    half = bool(op.options.get("half_pixel_centers", False))
    rows = nearest_sources(in_h, out_h, align, half)
    cols = nearest_sources(in_w, out_w, align, half)
    params: dict[str, object] = {
        "align_corners": align,
        "half_pixel_centers": half,
        "source_rows": rows,
        "source_cols": cols,
        "row_offsets": rows * in_w * depth,
        "col_offsets": cols * depth,
        "batches": batches,
        "out_h": out_h,
        "out_w": out_w,
        "depth": depth,
        "depth_bytes": depth * x.dtype.itemsize,
        "c_type": x.dtype.c_type,
        "batch_stride": in_h * in_w * depth,
    }
    return ResizeNearestNeighbor(op, graph, inputs=(x.index,), outputs=(y.index,),
                                 params=params)


KERNELS = dict.fromkeys((DType.INT8, DType.INT16), prepare)
