"""BATCH_TO_SPACE_ND: int8 3-D (NHC) or 4-D (NHWC) in/out with one quantization, constant
int32 block shape (>= 1) and crops (>= 0).

TFLM: batch_to_space_nd.cc (3-D or 4-D, equal types) and reference_ops::BatchToSpaceND:
input batch ib goes to output batch ib % B_out at the block offset (ib / B_out) / bw,
(ib / B_out) % bw: output[ib % B_out, ih * bh + sh - crop_top, iw * bw + sw - crop_left] =
input[ib, ih, iw], positions outside the output (the crops) dropped. The generated code is one
copy nest per input batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.model.ir import Graph, Operator
from codegen.ops._copy import (
    CopyLayer,
    Nest,
    require_shape,
)
from codegen.ops.base import unsupported
from codegen.ops.space_to_batch_nd import DYNAMIC_BATCH_HINT, spatial_prepare

OPCODES = ("BATCH_TO_SPACE_ND",)


@dataclass
class BatchToSpaceNd(CopyLayer):
    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = inputs[0].reshape(inputs[0].shape[0], *p["shape4"])  # type: ignore[misc]
        n, batches, height, width, depth = x.shape
        bh, bw = p["block"]  # type: ignore[misc]
        (ct, cb), (cl, cr) = p["crops"]  # type: ignore[misc]
        out_b = batches // (bh * bw)
        blocks = x.reshape(n, bh, bw, out_b, height, width, depth)
        full = blocks.transpose(0, 3, 4, 1, 5, 2, 6).reshape(n, out_b, height * bh,
                                                              width * bw, depth)
        out = full[:, :, ct:height * bh - cb, cl:width * bw - cr]
        return [np.ascontiguousarray(out).reshape(n, *self.out_tensor().shape)]

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("block", str(list(p["block"]))),  # type: ignore[call-overload]
                ("crops", str([list(q) for q in p["crops"]]))]  # type: ignore[attr-defined]


def prepare(op: Operator, graph: Graph) -> BatchToSpaceNd:
    s = spatial_prepare(op, graph, "crops")
    x, y, block, crops = s.x, s.y, s.block, s.amounts
    batches, height, width, depth = s.shape4
    bh, bw = block
    if batches % (bh * bw):
        hint = f": {DYNAMIC_BATCH_HINT}" if batches == 1 else ""
        raise unsupported(op, f"input batch {batches} is not divisible by the block "
                          f"{list(block)}{hint}")
    out_h, out_w = height * bh - sum(crops[0]), width * bw - sum(crops[1])
    if out_h < 1 or out_w < 1:
        raise unsupported(op, f"crops {[list(c) for c in crops]} leave no output")
    out_b = batches // (bh * bw)
    out4 = (out_b, out_h, out_w, depth)
    require_shape(op, y, out4 if len(x.shape) == 4 else (out_b, out_h, depth))
    layer = BatchToSpaceNd(op, graph, inputs=(x.index,), outputs=(y.index,),
                           params={"block": block, "crops": crops,
                                   "shape4": (batches, height, width, depth)})
    top, left = crops[0][0], crops[1][0]
    steps: list[Nest | dict[str, object]] = []
    for ib in range(batches):
        ob, sh, sw = ib % out_b, (ib // out_b) // bw, (ib // out_b) % bw
        rows = [r for r in range(height) if 0 <= r * bh + sh - top < out_h]
        cols = [c for c in range(width) if 0 <= c * bw + sw - left < out_w]
        if not rows or not cols:
            continue
        src = ((ib * height + rows[0]) * width + cols[0]) * depth
        dst = ((ob * out_h + rows[0] * bh + sh - top) * out_w + cols[0] * bw + sw - left) * depth
        steps.append(Nest("input0", "output0", (len(rows), len(cols), depth),
                          (width * depth, depth, 1), (bh * out_w * depth, bw * depth, 1),
                          src, dst))
    layer.set_steps(steps)
    return layer
