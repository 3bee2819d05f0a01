"""MIRROR_PAD: int8 in/out with one quantization, constant int32 or int64 paddings (>= 0, at
most dim - 1 for REFLECT and dim for SYMMETRIC, as TensorFlow requires), REFLECT and
SYMMETRIC, any rank up to 5.

TFLM: mirror_pad.cc. Prepare: a 2-D paddings matrix with one row per input dimension, mode
REFLECT (offset 1) or anything else (SYMMETRIC, offset 0). Eval maps every output index
dimension by dimension (GetInputDimension): before the input, position p reads
left + offset - 1 - p; inside, p - left; after it, q = p - left - dim reads
dim - 1 - offset - q (TFLM clamps beyond TensorFlow's limits and would read outside the
input; such paddings are refused). Per dimension that is three runs of constant step (-1, 1,
-1), so the generated code is one copy nest per combination of runs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from codegen.model.ir import Graph, Operator
from codegen.ops import _typed
from codegen.ops._copy import (
    CopyLayer,
    Nest,
    activation_input,
    dense_strides,
    require_same_quantization,
    require_shape,
    single_output,
)
from codegen.ops.base import unsupported

OPCODES = ("MIRROR_PAD",)
MAX_DIMS = 5


@dataclass
class MirrorPad(CopyLayer):
    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        mode = "reflect" if p["offset"] else "symmetric"
        pads = [(0, 0), *(tuple(q) for q in p["paddings"])]  # type: ignore[attr-defined]
        return [np.pad(inputs[0], pads, mode=mode)]

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        mode = "REFLECT" if p["offset"] else "SYMMETRIC"
        return [("paddings", f"{[list(q) for q in p['paddings']]} {mode}")]  # type: ignore[attr-defined]


def _runs(size: int, left: int, right: int, offset: int) -> list[tuple[int, int, int, int]]:
    """(first output position, count, first input position, input step) of one dimension."""
    runs = [(0, left, left + offset - 1, -1), (left, size, 0, 1),
            (left + size, right, size - 1 - offset, -1)]
    return [r for r in runs if r[1] > 0]


def prepare(op: Operator, graph: Graph) -> MirrorPad:
    _typed.input_count(op, 2)
    x = activation_input(op, graph, 0)
    y = single_output(op, graph)
    require_same_quantization(op, x, y)
    rank = len(x.shape)
    if not 1 <= rank <= MAX_DIMS:
        raise unsupported(op, f"{rank}-D input; 1 to {MAX_DIMS} dimensions are supported")
    paddings = _typed.constant_values(op, graph, 1, "paddings")
    if paddings.shape != (rank, 2):
        raise unsupported(op, f"paddings has shape {list(paddings.shape)}, expected "
                          f"[{rank}, 2]")
    if (paddings < 0).any():
        raise unsupported(op, f"negative paddings {paddings.tolist()}")
    offset = 1 if op.options.get("mode", 0) == 0 else 0  # MirrorPadMode REFLECT = 0
    limit = "dimension - 1 (REFLECT)" if offset else "the dimension (SYMMETRIC)"
    for d, (left, right) in enumerate(paddings.tolist()):
        if max(left, right) > x.shape[d] - offset:
            raise unsupported(op, f"padding {[left, right]} of dimension {d} (size "
                              f"{x.shape[d]}) exceeds {limit}, which TensorFlow requires")
    out_shape = [int(d + a + b) for d, (a, b) in zip(x.shape, paddings.tolist(), strict=True)]
    require_shape(op, y, out_shape)
    layer = MirrorPad(op, graph, inputs=(x.index,), outputs=(y.index,),
                      params={"paddings": [tuple(int(v) for v in q) for q in paddings],
                              "offset": offset})
    in_strides, out_strides = dense_strides(x.shape), dense_strides(out_shape)
    steps: list[Nest | dict[str, object]] = []
    per_dim = [_runs(int(x.shape[d]), int(paddings[d][0]), int(paddings[d][1]), offset)
               for d in range(rank)]
    for combo in itertools.product(*per_dim):
        counts = [run[1] for run in combo]
        src_steps = [run[3] * s for run, s in zip(combo, in_strides, strict=True)]
        src_base = sum(run[2] * s for run, s in zip(combo, in_strides, strict=True))
        dst_base = sum(run[0] * s for run, s in zip(combo, out_strides, strict=True))
        steps.append(Nest("input0", "output0", tuple(counts), tuple(src_steps),
                          tuple(out_strides), src_base, dst_base))
    layer.set_steps(steps)
    return layer
