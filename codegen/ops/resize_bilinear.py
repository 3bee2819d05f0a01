"""RESIZE_BILINEAR: int8 NHWC in/out with one quantization, constant size, align_corners or
half_pixel_centers (or neither); TFLM's integer arithmetic, with the interpolation
coordinates computed into tables at generation time.

TFLM: resize_bilinear.cc (4-D input, constant 1-D int32 size, align_corners together with
half_pixel_centers refused) and reference_ops::ResizeBilinearInteger. Per axis, in Q10:
    scale = ((1 << 10) * in + out / 2) / out     (align_corners and out > 1: in - 1, out - 1)
    v     = y * scale                           (half_pixel_centers: + scale / 2 - 512)
    y0    = max(v / 1024, 0)    y1 = min((v + 1023) / 1024, in - 1)    (C division: truncating)
and per channel, with fy = v - 1024 * y0 and fx likewise,
    acc = x[y0][x0] (1024 - fy)(1024 - fx) + x[y1][x0] fy (1024 - fx)
        + x[y0][x1] (1024 - fy) fx + x[y1][x1] fy fx
    out = (int8)((acc + (acc > 0 ? 2^19 : -2^19)) / 2^20)
The values are copied across scales unchanged, so input and output must share their
quantization. Quirks kept: with half_pixel_centers a first row or column upsampled from
v < 0 gets fy < 0 (weights outside [0, 1024], an extrapolation), and the cast to int8 then
wraps (the C wraps explicitly). TFLM reads outside the input where y0 exceeds in - 1, which
its rounded scale allows for some large upsamplings (2 -> 150 rows): refused here.
`acc` stays far inside int32 (at most 128 x 1536^2 in magnitude), so the C accumulates in 32
bits; the division by 2^20 is by a constant power of two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import Graph, Operator
from codegen.ops import _typed
from codegen.ops.base import CArray, Layer, unsupported

OPCODES = ("RESIZE_BILINEAR",)
_TYPES = _typed.INT8  # int16 too in TFLM's Eval? no: float32 and int8 only
_ONE = 1 << 10


def _trunc_div(a: np.ndarray, b: int) -> np.ndarray:
    return np.where(a >= 0, a // b, -((-a) // b))


def interpolation(in_size: int, out_size: int, align_corners: bool,
                  half_pixel_centers: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, upper, fraction in Q10) per output index: ComputeInterpolationValuesInteger."""
    if align_corners and out_size > 1:
        scale = (_ONE * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale = (_ONE * in_size + out_size // 2) // out_size
    value = np.arange(out_size, dtype=np.int64) * scale
    if half_pixel_centers:
        value = value + scale // 2 - (1 << 9)
    lower = np.maximum(_trunc_div(value, _ONE), 0)
    upper = np.minimum(_trunc_div(value + _ONE - 1, _ONE), in_size - 1)
    return lower, upper, value - _ONE * lower


@dataclass
class ResizeBilinear(Layer):
    template: ClassVar[str] = "kernels/resize_bilinear.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = inputs[0].astype(np.int64)
        y0, y1, fy = (np.asarray(p[k]) for k in ("y0", "y1", "fy"))
        x0, x1, fx = (np.asarray(p[k]) for k in ("x0", "x1", "fx"))
        fy = fy[None, None, :, None, None]  # (sample, batch, row, column, channel)
        fx = fx[None, None, None, :, None]
        acc = (x[:, :, y0][:, :, :, x0] * (_ONE - fy) * (_ONE - fx)
               + x[:, :, y1][:, :, :, x0] * fy * (_ONE - fx)
               + x[:, :, y0][:, :, :, x1] * (_ONE - fy) * fx
               + x[:, :, y1][:, :, :, x1] * fy * fx)
        nudged = acc + np.where(acc > 0, 1 << 19, -(1 << 19))
        value = _trunc_div(nudged, 1 << 20)
        return [(((value + 128) & 0xFF) - 128).astype(np.int8)]

    def constants(self) -> list[CArray]:
        p = self.params
        row = int(p["in_w"]) * int(p["depth"])
        return [
            CArray("rows0", (np.asarray(p["y0"]) * row).astype(np.int32)),
            CArray("rows1", (np.asarray(p["y1"]) * row).astype(np.int32)),
            CArray("fy", np.asarray(p["fy"]).astype(np.int16)),
            CArray("cols0", (np.asarray(p["x0"]) * int(p["depth"])).astype(np.int32)),
            CArray("cols1", (np.asarray(p["x1"]) * int(p["depth"])).astype(np.int32)),
            CArray("fx", np.asarray(p["fx"]).astype(np.int16)),
        ]

    def macs(self) -> int:
        return 4 * self.out_tensor().size

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("options", f"align_corners={p['align_corners']} "
                            f"half_pixel_centers={p['half_pixel_centers']}"),
                ("source rows", f"{list(p['y0'])} / {list(p['y1'])}"),  # type: ignore[call-overload]
                ("source cols", f"{list(p['x0'])} / {list(p['x1'])}")]  # type: ignore[call-overload]


def prepare(op: Operator, graph: Graph) -> ResizeBilinear:
    _typed.input_count(op, 2)
    x = _typed.input_tensor(op, graph, 0, "input", _TYPES)
    y = _typed.output_tensor(op, graph, (x.dtype,))
    _typed.same_quantization(op, [x, y], "RESIZE_BILINEAR interpolates the raw values and "
                             "cannot requantize")
    if len(x.shape) != 4:
        raise unsupported(op, f"input must be 4-D (NHWC), found {list(x.shape)}")
    size = _typed.constant_values(op, graph, 1, "size", _typed.INT32)
    if size.shape != (2,):
        raise unsupported(op, f"size must hold 2 values, found shape {list(size.shape)}")
    out_h, out_w = (int(v) for v in size)
    if out_h <= 0 or out_w <= 0:
        raise unsupported(op, f"size {[out_h, out_w]} must be positive")
    align = bool(op.options.get("align_corners", False))
    half = bool(op.options.get("half_pixel_centers", False))
    if align and half:
        raise unsupported(op, "align_corners and half_pixel_centers are both set; TFLM "
                          "refuses the pair")
    batches, in_h, in_w, depth = (int(d) for d in x.shape)
    _typed.require_shape(op, y, [batches, out_h, out_w, depth])
    rows = interpolation(in_h, out_h, align, half)
    cols = interpolation(in_w, out_w, align, half)
    for (lower, _, _), what, size_in in ((rows, "row", in_h), (cols, "column", in_w)):
        if int(lower.max()) > size_in - 1:
            raise unsupported(op, f"TFLM's rounded scale maps an output {what} to input "
                              f"{what} {int(lower.max())} of {size_in} (it would read outside "
                              "the input); resize in two steps")
    params: dict[str, object] = {
        "align_corners": align, "half_pixel_centers": half,
        "y0": rows[0], "y1": rows[1], "fy": rows[2],
        "x0": cols[0], "x1": cols[1], "fx": cols[2],
        "batches": batches, "in_w": in_w, "out_h": out_h, "out_w": out_w, "depth": depth,
        "batch_stride": in_h * in_w * depth,
        "wraps": bool(rows[2].min() < 0 or cols[2].min() < 0),
    }
    return ResizeBilinear(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
