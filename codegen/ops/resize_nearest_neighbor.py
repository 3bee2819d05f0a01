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
The tables have out_h + out_w int32 entries (at most the output's element count + 1), built a
block at a time; their total over the model is bounded with all constant data (program.py).
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
_BLOCK = 1 << 16  # output indices per step of the table computation
_SHOWN = 64  # source indices `describe` lists in full


def nearest_sources(in_size: int, out_size: int, align_corners: bool,
                    half_pixel_centers: bool) -> np.ndarray:
    """GetNearestNeighbor for every output index, in float32 like TFLM (int32 values,
    computed a block at a time: no wide temporaries of a long axis)."""
    sources = np.empty(out_size, dtype=np.int32)
    for start in range(0, out_size, _BLOCK):
        indices = np.arange(start, min(out_size, start + _BLOCK), dtype=np.int64)
        sources[start:start + _BLOCK] = _nearest(indices, in_size, out_size, align_corners,
                                                 half_pixel_centers)
    return sources


def _nearest(indices: np.ndarray, in_size: int, out_size: int, align_corners: bool,
             half_pixel_centers: bool) -> np.ndarray:
    if align_corners and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    offset = np.float32(0.5) if half_pixel_centers else np.float32(0.0)
    values = (indices.astype(np.float32) + offset) * scale
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

    def sources(self) -> tuple[np.ndarray, np.ndarray]:
        """The source row of each output row, and the source column of each column."""
        p = self.params
        return (np.asarray(p["row_offsets"]) // (int(p["in_w"]) * int(p["depth"])),
                np.asarray(p["col_offsets"]) // int(p["depth"]))

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        rows, cols = self.sources()
        x = inputs[0]
        return [np.ascontiguousarray(x[:, :, rows][:, :, :, cols])]

    def constants(self) -> list[CArray]:
        return [CArray("rows", self.params["row_offsets"]),  # type: ignore[arg-type]
                CArray("cols", self.params["col_offsets"])]  # type: ignore[arg-type]

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        rows, cols = self.sources()
        return [("options", f"align_corners={p['align_corners']} "
                            f"half_pixel_centers={p['half_pixel_centers']}"),
                ("source rows", _shown(rows)),
                ("source cols", _shown(cols))]


def _shown(values: np.ndarray) -> str:
    if values.size <= _SHOWN:
        return str([int(v) for v in values])
    head = ", ".join(str(int(v)) for v in values[:_SHOWN // 2])
    return f"[{head}, ...] ({values.size})"


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
    # Offsets into one input image (below its at most 2^24 elements): int32, in place.
    rows = nearest_sources(in_h, out_h, align, half)
    rows *= in_w * depth
    cols = nearest_sources(in_w, out_w, align, half)
    cols *= depth
    params: dict[str, object] = {
        "align_corners": align,
        "half_pixel_centers": half,
        "row_offsets": rows,
        "col_offsets": cols,
        "in_w": in_w,
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
