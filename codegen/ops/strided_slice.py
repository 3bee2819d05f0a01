"""STRIDED_SLICE: int8 or int16 in/out, constant int32 begin/end/strides (negative indices and
strides included), begin_mask, end_mask and shrink_axis_mask, up to 4-D; input and output
quantized alike; no ellipsis_mask, new_axis_mask or offset (TFLM ignores them).

TFLM: StridedSlicePrepare (kernels/strided_slice_common.cc) and the 5-D
reference_ops::StridedSlice. Per axis, the first index comes from StridedSliceStartForAxis
(negative begin + size, clamped to [0, size] for a positive stride and to [-1, size-1] for a
negative one, begin_mask -> 0 or size-1) and the stop from StridedSliceEndForAxis (the same
for end, end_mask -> size or -1; a shrunk axis stops at start+1); the output is written in
order over `for (i = start; stride > 0 ? i < stop : i > stop; i += stride)` on every axis.

Refused, because TFLM does not implement them: more than 4 dimensions (Prepare rejects
them), ellipsis_mask and new_axis_mask (TFLM's params zero them, so it would slice as if
they were absent) and offset=true (TFLM never reads the option, so it would slice as if
offset were false). Also refused: slices TFLM's Eval would not fill, which happens with
shrink_axis_mask on an axis with a negative stride (quirk: the shrunk axis stops at
start+1, which a negative stride never reaches, so TFLM writes nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops._copy import (
    CopyLayer,
    Nest,
    activation_input,
    constant_vector,
    dense_strides,
    require_same_quantization,
    require_shape,
    single_output,
)
from codegen.ops.base import unsupported

OPCODES = ("STRIDED_SLICE",)
MAX_DIMS = 4


@dataclass
class StridedSlice(CopyLayer):
    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = inputs[0]
        ranges = [np.arange(a, b, s, dtype=np.int64) for a, b, s in self.params["ranges"]]
        picked = x[np.ix_(np.arange(x.shape[0]), *ranges)]
        return [picked.reshape(x.shape[0], *self.out_tensor().shape)]

    def describe(self) -> list[tuple[str, str]]:
        return [("ranges (start, stop, stride)", str(self.params["ranges"]))]


def _mask(mask: int, axis: int) -> bool:
    return bool(mask >> axis & 1)


def _clamp(v: int, lo: int, hi: int) -> int:
    return hi if v > hi else lo if v < lo else v


def start_for_axis(begin: int, stride: int, size: int, begin_masked: bool) -> int:
    """StridedSliceStartForAxis."""
    start = begin + size if begin < 0 else begin
    start = _clamp(start, 0, size) if stride > 0 else _clamp(start, -1, size - 1)
    if begin_masked:
        start = 0 if stride > 0 else size - 1
    return start


def end_for_axis(end: int, stride: int, size: int, start: int, end_masked: bool,
                 shrink: bool) -> int:
    """StridedSliceEndForAxis (offset is never set in TFLM)."""
    if shrink:
        return start if start >= size else start + 1
    stop = end + size if end < 0 else end
    stop = _clamp(stop, 0, size) if stride > 0 else _clamp(stop, -1, size - 1)
    if end_masked:
        stop = size if stride > 0 else -1
    return stop


def prepare_shape(begin: int, end: int, stride: int, size: int, begin_masked: bool,
                  end_masked: bool, shrink: bool) -> int:
    """The extent CheckOutputSize expects (StartForAxis / StopForAxis and a float ceil)."""
    start = start_for_axis(begin, stride, size, begin_masked) if size else 0
    if shrink:
        stop = start + 1
    elif size == 0:
        stop = 0
    else:
        stop = end_for_axis(end, stride, size, start, end_masked, False)
    extent = math.ceil(float(np.float32(stop - start) / np.float32(stride)))
    return max(extent, 0)


def prepare(op: Operator, graph: Graph) -> StridedSlice:
    x = activation_input(op, graph, 0)
    y = single_output(op, graph)
    require_same_quantization(op, x, y)
    rank = len(x.shape)
    if not 1 <= rank <= MAX_DIMS:
        raise unsupported(op, f"{rank}-D input; TFLM slices 1 to {MAX_DIMS} dimensions")
    begin = constant_vector(op, graph, 1, "begin", rank)
    end = constant_vector(op, graph, 2, "end", rank)
    strides = constant_vector(op, graph, 3, "strides", rank)
    o = op.options
    for name in ("ellipsis_mask", "new_axis_mask"):
        if int(o.get(name, 0) or 0):
            raise unsupported(op, f"{name} is not supported (TFLM ignores it)")
    if o.get("offset"):
        raise unsupported(op, "offset=true is not supported (TFLM ignores the option)")
    if any(s == 0 for s in strides):
        raise unsupported(op, f"strides {strides} contain 0")
    begin_mask = int(o.get("begin_mask", 0) or 0)
    end_mask = int(o.get("end_mask", 0) or 0)
    shrink_mask = int(o.get("shrink_axis_mask", 0) or 0)

    expected: list[int] = []
    ranges: list[tuple[int, int, int]] = []
    for axis, size in enumerate(x.shape):
        bm, em, sh = (_mask(m, axis) for m in (begin_mask, end_mask, shrink_mask))
        stride = strides[axis]
        if not sh:
            expected.append(prepare_shape(begin[axis], end[axis], stride, size, bm, em, sh))
        start = start_for_axis(begin[axis], stride, size, bm)
        stop = end_for_axis(end[axis], stride, size, start, em, sh)
        ranges.append((start, stop, stride))
    require_shape(op, y, expected)
    counts = [len(range(*r)) for r in ranges]
    if math.prod(counts) != y.size:
        raise unsupported(op, "TFLM would leave the output unwritten (shrink_axis_mask on an "
                              "axis with a negative stride, or an empty shrunk axis)")

    in_strides = dense_strides(x.shape)
    steps = [s * st for (_, _, s), st in zip(ranges, in_strides, strict=True)]
    base = sum(start * st for (start, _, _), st in zip(ranges, in_strides, strict=True))
    layer = StridedSlice(op, graph, inputs=(x.index,), outputs=(y.index,),
                         params={"ranges": ranges})
    layer.set_steps([Nest.gather("input0", "output0", counts, steps, base)])
    return layer


KERNELS = dict.fromkeys((DType.INT8, DType.INT16), prepare)
