"""Memory plan: the run order of the layers and where every activation tensor lives.

Graph inputs and outputs live in the caller's buffers; every other tensor gets an offset in
one arena. Three steps:

1. Order: file order, or for a branching graph the topological order that keeps the fewest
   bytes alive (searched when the graph branches).
2. Sharing: a layer that only re-labels its input (RESHAPE, SQUEEZE, ...: `Layer.alias`)
   gets no buffer and no code of its own; a layer that may overwrite an input
   (`Layer.inplace_inputs()`) writes into that input's buffer when the input dies there.
   Tensors that share storage form one buffer.
3. Placement: buffers alive at the same step never overlap; offsets are chosen by trying
   several orderings with best-fit placement and keeping the smallest arena.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codegen.model.ir import Graph

if TYPE_CHECKING:
    from codegen.ops.base import Layer

ALIGNMENT = 4  # bytes; offsets and buffer sizes are multiples of it
_RANDOM_ORDERINGS = 64
_ORDER_SEARCH_LIMIT = 20000  # partial schedules explored when choosing a branch order


@dataclass(frozen=True)
class Location:
    """Where a tensor's bytes are: `arena` + offset, or graph `input`/`output` number."""

    kind: str
    index: int


@dataclass(frozen=True)
class Buffer:
    """Storage shared by one or more tensors, alive from step `first` to step `last`."""

    tensors: tuple[int, ...]
    first: int
    last: int
    size: int
    offset: int = -1  # arena offset; -1 for caller buffers (graph inputs/outputs)


@dataclass(frozen=True)
class Plan:
    order: tuple[int, ...]  # operator indices, in run order
    locations: dict[int, Location]  # every tensor a layer reads or writes
    size: int  # arena bytes
    lower_bound: int  # see lower_bound()
    buffers: tuple[Buffer, ...]  # arena buffers
    elided: frozenset[int]  # operator indices that need no code (pure aliases)
    scratch: dict[int, int]  # operator index -> arena offset of its scratch buffer
    io_in_arena: bool = False  # graph inputs and outputs live in the arena too


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def lower_bound(graph: Graph, layers: list[Layer]) -> int:
    """The largest sum of activation tensors alive at one step, in file order, with no
    sharing at all (graph inputs alive from the start, outputs until the end)."""
    first: dict[int, int] = {t: 0 for t in graph.inputs}
    last: dict[int, int] = {}
    for step, layer in enumerate(layers):
        for t in layer.outputs:
            first.setdefault(t, step)
        for t in (*layer.inputs, *layer.outputs):
            last[t] = step
    end = len(layers) - 1
    for t in graph.outputs:
        last[t] = end
    return max(
        (sum(graph.tensors[t].nbytes for t in first if first[t] <= s <= last.get(t, first[t]))
         for s in range(len(layers))),
        default=0,
    )


# -- 1. order ----------------------------------------------------------------------------


def _live_peak(graph: Graph, layers: list[Layer], order: list[int]) -> int:
    """Peak of live activation bytes for a run order (the quantity the order search
    minimises; placement may add fragmentation on top)."""
    last: dict[int, int] = {}
    for step, pos in enumerate(order):
        for t in layers[pos].inputs:
            last[t] = step
    live = sum(graph.tensors[t].nbytes for t in graph.inputs)
    peak = live
    for step, pos in enumerate(order):
        live += sum(graph.tensors[t].nbytes for t in layers[pos].outputs)
        peak = max(peak, live)
        dead = {t for t in layers[pos].inputs if last.get(t) == step}
        dead |= {t for t in layers[pos].outputs if t not in last and t not in graph.outputs}
        live -= sum(graph.tensors[t].nbytes for t in dead if t not in graph.outputs)
    return peak


def _dependencies(layers: list[Layer]) -> list[set[int]]:
    producer = {t: i for i, layer in enumerate(layers) for t in layer.outputs}
    return [{producer[t] for t in layer.inputs if t in producer} for layer in layers]


def choose_order(graph: Graph, layers: list[Layer]) -> list[int]:
    """File order, unless another topological order keeps fewer bytes alive."""
    file_order = list(range(len(layers)))
    deps = _dependencies(layers)
    if all(deps[i] <= {i - 1} for i in range(len(layers))):
        return file_order  # a chain: there is only one order
    best, best_peak = file_order, _live_peak(graph, layers, file_order)
    budget = [_ORDER_SEARCH_LIMIT]

    def extend(order: list[int], done: set[int]) -> None:
        nonlocal best, best_peak
        if budget[0] <= 0:
            return
        budget[0] -= 1
        if len(order) == len(layers):
            peak = _live_peak(graph, layers, order)
            if peak < best_peak:
                best, best_peak = list(order), peak
            return
        for i in range(len(layers)):
            if i not in done and deps[i] <= done:
                order.append(i)
                done.add(i)
                extend(order, done)
                done.discard(i)
                order.pop()

    extend([], set())
    return best


# -- 2. sharing ------------------------------------------------------------------------


class _Groups:
    """Union-find over tensors, remembering whether a group holds a tensor that lives in a
    caller's buffer (a graph input or output, unless they are placed in the arena)."""

    def __init__(self, graph: Graph, io_in_arena: bool) -> None:
        self.parent: dict[int, int] = {}
        self.inputs = set() if io_in_arena else set(graph.inputs)
        self.outputs = set() if io_in_arena else set(graph.outputs)

    def find(self, t: int) -> int:
        self.parent.setdefault(t, t)
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def members(self, t: int) -> list[int]:
        root = self.find(t)
        return [m for m in list(self.parent) if self.find(m) == root]

    def external(self, t: int) -> str:
        members = self.members(t)
        if any(m in self.inputs for m in members):
            return "input"
        if any(m in self.outputs for m in members):
            return "output"
        return ""

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(b)] = self.find(a)


def _last_uses(graph: Graph, layers: list[Layer], order: list[int]) -> dict[int, int]:
    """Step of each tensor's last use; model outputs are in use until the end."""
    last: dict[int, int] = {}
    for step, pos in enumerate(order):
        for t in (*layers[pos].inputs, *layers[pos].outputs):
            last[t] = step
    for t in graph.outputs:
        last[t] = len(order) - 1
    return last


def _share(graph: Graph, layers: list[Layer], order: list[int],
           io_in_arena: bool) -> tuple[_Groups, set[int]]:
    groups = _Groups(graph, io_in_arena)
    last = _last_uses(graph, layers, order)
    elided: set[int] = set()
    for step, pos in enumerate(order):
        layer = layers[pos]
        for t in (*layer.inputs, *layer.outputs):
            groups.find(t)
        if layer.alias:
            x, y = layer.inputs[0], layer.outputs[0]
            if not (groups.external(x) and groups.external(y)):
                groups.union(x, y)
                elided.add(pos)
            continue
        for position in layer.inplace_inputs():
            x, y = layer.inputs[position], layer.outputs[0]
            same_size = graph.tensors[x].nbytes == graph.tensors[y].nbytes
            dies_here = max(last[m] for m in groups.members(x)) == step
            # Never write over the caller's input or a model output that must survive.
            if same_size and dies_here and not groups.external(x):
                groups.union(y, x)
                break
    return groups, elided


# -- 3. placement ----------------------------------------------------------------------


def _place(buffers: list[Buffer], ordering: list[Buffer]) -> tuple[dict[int, int], int]:
    """Best fit: each buffer at the offset with the smallest gap that holds it."""
    placed: list[tuple[Buffer, int]] = []
    offsets: dict[int, int] = {}
    for buf in ordering:
        busy = sorted(
            (start, start + other.size)
            for other, start in placed
            if other.first <= buf.last and buf.first <= other.last
        )
        best_offset, best_gap, cursor = None, None, 0
        for start, end in busy:
            gap = start - cursor
            if gap >= buf.size and (best_gap is None or gap < best_gap):
                best_offset, best_gap = cursor, gap
            cursor = max(cursor, end)
        if best_offset is None:
            best_offset = cursor
        placed.append((buf, best_offset))
        offsets[id(buf)] = best_offset
    size = max((offsets[id(b)] + b.size for b in buffers), default=0)
    return offsets, size


def _orderings(buffers: list[Buffer]) -> list[list[Buffer]]:
    keys = [
        lambda b: (-b.size, b.first),
        lambda b: (-(b.last - b.first), -b.size),
        lambda b: (b.first, -b.size),
        lambda b: (-b.size * (b.last - b.first + 1), b.first),
    ]
    orderings = [sorted(buffers, key=k) for k in keys]
    rng = random.Random(0)  # fixed seed: the same model always gets the same plan
    for _ in range(_RANDOM_ORDERINGS if len(buffers) > 2 else 0):
        shuffled = list(buffers)
        rng.shuffle(shuffled)
        orderings.append(shuffled)
    return orderings


def place_buffers(buffers: list[Buffer]) -> tuple[list[Buffer], int]:
    best: tuple[dict[int, int], int] | None = None
    for ordering in _orderings(buffers):
        result = _place(buffers, ordering)
        if best is None or result[1] < best[1]:
            best = result
    offsets, size = best if best is not None else ({}, 0)
    placed = [
        Buffer(b.tensors, b.first, b.last, b.size, offsets[id(b)]) for b in buffers
    ]
    return placed, size


# -- the plan ----------------------------------------------------------------------------


def plan_memory(graph: Graph, layers: list[Layer], io_in_arena: bool = False) -> Plan:
    order = choose_order(graph, layers)
    groups, elided = _share(graph, layers, order, io_in_arena)
    last = _last_uses(graph, layers, order)
    first: dict[int, int] = {t: 0 for t in graph.inputs}
    for step, pos in enumerate(order):
        for t in layers[pos].outputs:
            first.setdefault(t, step)

    locations: dict[int, Location] = {}
    by_root: dict[int, list[int]] = {}
    for t in list(groups.parent):
        by_root.setdefault(groups.find(t), []).append(t)
    buffers: list[Buffer] = []
    for members in sorted(by_root.values(), key=min):
        external = [m for m in members if m in groups.inputs or m in groups.outputs]
        if external:
            m = external[0]
            kind = "input" if m in groups.inputs else "output"
            index = (graph.inputs if kind == "input" else graph.outputs).index(m)
            for t in members:
                locations[t] = Location(kind, index)
            continue
        size = _align(max(graph.tensors[t].nbytes for t in members))
        start = min(first.get(t, 0) for t in members)
        end = max(last.get(t, start) for t in members)
        buffers.append(Buffer(tuple(sorted(members)), start, end, size))
    scratch_owner: dict[int, int] = {}
    for step, pos in enumerate(order):
        need = layers[pos].scratch_bytes()
        if need:
            scratch_owner[len(buffers)] = pos
            buffers.append(Buffer((), step, step, _align(need)))

    placed, size = place_buffers(buffers)
    scratch: dict[int, int] = {}
    for i, buf in enumerate(placed):
        if i in scratch_owner:
            scratch[layers[scratch_owner[i]].index] = buf.offset
        for t in buf.tensors:
            locations[t] = Location("arena", buf.offset)
    return Plan(
        order=tuple(layers[pos].index for pos in order),
        locations=locations,
        size=size,
        lower_bound=lower_bound(graph, layers),
        buffers=tuple(b for b in placed if b.tensors),
        elided=frozenset(layers[pos].index for pos in elided),
        scratch=scratch,
        io_in_arena=io_in_arena,
    )
