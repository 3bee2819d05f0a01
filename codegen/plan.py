"""Memory plan: where each intermediate tensor lives in the static arena.

Graph inputs and outputs live in the caller's buffers; every other tensor that an operator
writes gets an offset in one arena, chosen from tensor lifetimes over the operator order so
that tensors alive at the same time never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

from codegen.model.ir import Graph
from codegen.ops.base import Layer

ALIGNMENT = 16


@dataclass(frozen=True)
class Interval:
    tensor: int
    first: int  # index in the schedule of the layer that writes it
    last: int  # index of the last layer that reads it
    size: int  # bytes, aligned


@dataclass(frozen=True)
class Plan:
    offsets: dict[int, int]  # tensor index -> arena offset
    size: int  # arena bytes
    lower_bound: int  # the largest sum of simultaneously live tensors
    intervals: tuple[Interval, ...]


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def lifetimes(graph: Graph, layers: list[Layer]) -> list[Interval]:
    external = set(graph.inputs) | set(graph.outputs)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for step, layer in enumerate(layers):
        for t in layer.outputs:
            if t not in external:
                first.setdefault(t, step)
                last.setdefault(t, step)
        for t in layer.inputs:
            if t in first:
                last[t] = max(last[t], step)
    return [Interval(t, first[t], last[t], _align(graph.tensors[t].nbytes)) for t in first]


def _overlaps(a: Interval, b: Interval) -> bool:
    return a.first <= b.last and b.first <= a.last


def plan_memory(graph: Graph, layers: list[Layer]) -> Plan:
    """Greedy placement, largest tensor first, at the lowest offset that fits."""
    intervals = lifetimes(graph, layers)
    placed: list[tuple[Interval, int]] = []
    offsets: dict[int, int] = {}
    for iv in sorted(intervals, key=lambda i: (-i.size, i.first, i.tensor)):
        offset = 0
        for other, start in sorted(
            ((o, s) for o, s in placed if _overlaps(o, iv)), key=lambda p: p[1]
        ):
            if offset + iv.size <= start:
                break
            offset = max(offset, start + other.size)
        placed.append((iv, offset))
        offsets[iv.tensor] = offset
    size = max((offsets[iv.tensor] + iv.size for iv in intervals), default=0)
    steps = range(len(layers))
    bound = max(
        (sum(iv.size for iv in intervals if iv.first <= s <= iv.last) for s in steps), default=0
    )
    return Plan(offsets, size, bound, tuple(intervals))
