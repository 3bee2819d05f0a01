"""What the reductions over constant axes share (MEAN, SUM, REDUCE_MAX, REDUCE_MIN): the axes
operand resolved as TFLM resolves it, and the kept and reduced loops, neighbouring
dimensions of the same kind merged, rendered as one nest in the kernel."""

from __future__ import annotations

import numpy as np

from codegen.emit import render
from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _loops
from codegen.ops.base import Layer, operand, unsupported


class ReductionLayer(Layer):
    """A layer whose params hold `kept` and `reduced` from `loop_groups`."""

    def kernel(self, symbol: str) -> str:
        p = self.params
        kept: list[tuple[int, int]] = p["kept"]  # type: ignore[assignment]
        reduced: list[tuple[int, int]] = p["reduced"]  # type: ignore[assignment]
        outer = _loops.nest([c for c, _ in kept], [(s,) for _, s in kept], ["input"], ["x"],
                            "k")
        inner = _loops.nest([c for c, _ in reduced], [(s,) for _, s in reduced], [], ["x"],
                            "r", start=outer)
        return render(self.template, fn=symbol, layer=self, outer=outer, inner=inner,
                      element=f"{inner.pointers[0]}[0]", **p)


def axes(op: Operator, graph: Graph, rank: int) -> tuple[int, ...]:
    axis = operand(op, graph, 1, "axis")
    if axis.dtype is not DType.INT32 or axis.data is None:
        raise unsupported(op, f"axis '{axis.name}' must be a constant int32 tensor")
    resolved: list[int] = []
    for a in (int(v) for v in np.asarray(axis.data).ravel()):
        if not -rank <= a < rank:
            raise unsupported(op, f"axis {a} is out of range for {rank} dimensions")
        if a % rank not in resolved:
            resolved.append(a % rank)
    return tuple(sorted(resolved))


def loop_groups(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[list[tuple[int, int]],
                                                                   list[tuple[int, int]]]:
    """(count, input stride) of the kept and of the reduced loops, outermost first, with
    dimensions of 1 dropped and neighbours of the same kind merged."""
    kept: list[tuple[int, int]] = []
    reduced: list[tuple[int, int]] = []
    stride, previous = 1, None
    for d in reversed(range(len(shape))):
        if shape[d] == 1:
            continue
        kind = d in axes
        group = reduced if kind else kept
        if previous is kind and group:
            count, inner_stride = group[0]
            group[0] = (count * shape[d], inner_stride)
        else:
            group.insert(0, (shape[d], stride))
        previous = kind
        stride *= shape[d]
    return kept, reduced
