"""Memory plan: the run order of the layers and where every activation tensor lives.

Graph inputs and outputs live in the caller's buffers, state (variable tensors, resource
variables: codegen/state.py) in the state block; every other tensor gets an offset in one
arena. Three steps:

1. Order: file order, or for a branching graph the topological order that keeps the fewest
   bytes alive (searched when the graph branches); layers that touch the same state keep
   their file order.
2. Sharing: a layer that only re-labels its input (RESHAPE, SQUEEZE, ...: `Layer.alias`)
   gets no buffer and no code of its own; a layer that may overwrite an input
   (`Layer.inplace_inputs()`) writes into that input's buffer when the input dies there.
   Tensors that share storage form one buffer.
3. Placement: buffers alive at the same step never overlap; offsets are chosen by trying
   several orderings with best-fit placement and keeping the smallest arena.

Every step is near-linear in the number of operators (the order search and the placement
stop after a fixed amount of work), so that any model file plans quickly: a chain of
16,000 operators plans in well under a second. Nothing recurses on the graph's depth.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codegen.model.ir import Graph

if TYPE_CHECKING:
    from codegen.ops.base import Layer

ALIGNMENT = 4  # bytes; offsets and buffer sizes are multiples of it
_RANDOM_ORDERINGS = 64
_ORDER_SEARCH_LIMIT = 20000  # partial schedules explored when choosing a branch order
# ... and the work they may cost (operator inputs and dependents visited): only a graph of
# huge fan-in or fan-out reaches it before the limit above.
_ORDER_SEARCH_WORK = 1_000_000
# Placement: pairs of buffers alive at the same time, visited once per ordering tried.
# Fewer random orderings are tried when the pairs are many; beyond _PAIR_LIMIT pairs (a
# graph with thousands of tensors alive at once) buffers are laid end to end instead.
_PLACEMENT_WORK = 1_000_000
_PAIR_LIMIT = 1_000_000


@dataclass(frozen=True)
class Location:
    """Where a tensor's bytes are: `arena` + offset, `state` + offset, or graph
    `input`/`output` number."""

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


def lower_bound(graph: Graph, layers: list[Layer], state: frozenset[int] = frozenset()) -> int:
    """The largest sum of activation tensors alive at one step, in file order, with no
    sharing at all (graph inputs alive from the start, outputs until the end; `state`
    tensors are not in the arena)."""
    first: dict[int, int] = {t: 0 for t in graph.inputs}
    last: dict[int, int] = {}
    for step, layer in enumerate(layers):
        for t in layer.outputs:
            if t not in state:
                first.setdefault(t, step)
        for t in (*layer.inputs, *layer.outputs):
            if t not in state:
                last[t] = step
    end = len(layers) - 1
    for t in graph.outputs:
        last[t] = end
    change = [0] * (len(layers) + 1)  # bytes coming alive (-: dying) at each step
    for t, start in first.items():
        stop = last.get(t, start)
        if start <= stop:
            change[start] += graph.tensors[t].nbytes
            change[stop + 1] -= graph.tensors[t].nbytes
    alive, peak = 0, 0
    for step in range(len(layers)):
        alive += change[step]
        peak = max(peak, alive)
    return peak


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


def _dependencies(layers: list[Layer], state: dict[int, int]) -> list[set[int]]:
    """What each layer must run after: the producers of its inputs (state tensors are not
    produced, but read and updated), and the last layer before it in file order that
    touched the same state region (`state`: tensor -> region offset)."""
    producer = {t: i for i, layer in enumerate(layers) for t in layer.outputs
                if t not in state}
    deps = [{producer[t] for t in layer.inputs if t in producer} for layer in layers]
    toucher: dict[int, int] = {}  # region -> the last layer touching it so far
    for i, layer in enumerate(layers):
        for region in {state[t] for t in (*layer.inputs, *layer.outputs) if t in state}:
            if region in toucher:
                deps[i].add(toucher[region])
            toucher[region] = i
    return deps


def choose_order(graph: Graph, layers: list[Layer],
                 state: dict[int, int] | None = None) -> list[int]:
    """File order, unless another topological order keeps fewer bytes alive."""
    file_order = list(range(len(layers)))
    deps = _dependencies(layers, state or {})
    if all(deps[i] <= {i - 1} for i in range(len(layers))):
        return file_order  # a chain: there is only one order
    return _OrderSearch(graph, layers, deps).run(_live_peak(graph, layers, file_order))


class _OrderSearch:
    """Depth-first search over topological orders, lowest operator index first, keeping
    the first order of the lowest peak (`_live_peak`, computed incrementally along the
    path). It visits at most _ORDER_SEARCH_LIMIT partial orders, in the order a recursive
    search would; the first complete one is file order. Iterative: graphs of any depth."""

    def __init__(self, graph: Graph, layers: list[Layer], deps: list[set[int]]) -> None:
        self.n = len(layers)
        self.nbytes = [t.nbytes for t in graph.tensors]
        outputs = set(graph.outputs)
        readers: dict[int, int] = {}  # tensor -> number of layers reading it
        self.reads = [set(layer.inputs) for layer in layers]
        for tensors in self.reads:
            for t in tensors:
                readers[t] = readers.get(t, 0) + 1
        self.outputs = outputs
        self.made = [sum(self.nbytes[t] for t in layer.outputs) for layer in layers]
        # outputs nobody reads die where they are made (unless they are model outputs)
        self.unread = [{t for t in layer.outputs if t not in readers and t not in outputs}
                       for layer in layers]
        self.dependents: list[list[int]] = [[] for _ in layers]
        for i, d in enumerate(deps):
            for j in d:
                self.dependents[j].append(i)
        self.missing = [len(d) for d in deps]
        self.ready = [i for i in range(self.n) if not deps[i]]
        self.left = dict(readers)  # tensor -> readers not yet scheduled
        live = sum(self.nbytes[t] for t in graph.inputs)
        self.live = [live]
        self.peak = [live]
        self.work = 0

    def run(self, file_peak: int) -> list[int]:
        best, best_peak = list(range(self.n)), file_peak
        budget = _ORDER_SEARCH_LIMIT - 1  # the root is the first partial order
        order: list[int] = []
        tried = [-1]  # per depth: the last candidate tried there
        while tried:
            k = bisect.bisect_right(self.ready, tried[-1])
            if k == len(self.ready):
                tried.pop()
                if order:
                    self._undo(order.pop())
                continue
            candidate = self.ready[k]
            tried[-1] = candidate
            if budget <= 0 or self.work > _ORDER_SEARCH_WORK:
                break
            budget -= 1
            self._do(candidate)
            order.append(candidate)
            if len(order) == self.n:
                if self.peak[-1] < best_peak:
                    best, best_peak = list(order), self.peak[-1]
                self._undo(order.pop())
            else:
                tried.append(-1)
        return best

    def _do(self, i: int) -> None:
        self.work += 1 + len(self.reads[i]) + len(self.dependents[i])
        self.ready.pop(bisect.bisect_left(self.ready, i))
        for k in self.dependents[i]:
            self.missing[k] -= 1
            if not self.missing[k]:
                bisect.insort(self.ready, k)
        live = self.live[-1] + self.made[i]
        self.peak.append(max(self.peak[-1], live))
        dead = set(self.unread[i])
        for t in self.reads[i]:
            self.left[t] -= 1
            if not self.left[t]:
                dead.add(t)
        self.live.append(live - sum(self.nbytes[t] for t in dead if t not in self.outputs))

    def _undo(self, i: int) -> None:
        self.live.pop()
        self.peak.pop()
        for t in self.reads[i]:
            self.left[t] += 1
        for k in self.dependents[i]:
            if not self.missing[k]:
                self.ready.pop(bisect.bisect_left(self.ready, k))
            self.missing[k] += 1
        bisect.insort(self.ready, i)


# -- 2. sharing ------------------------------------------------------------------------


class _Groups:
    """Union-find over tensors, remembering whether a group holds a tensor that lives in a
    caller's buffer (a graph input or output, unless they are placed in the arena) and the
    last step at which any of its tensors is used."""

    def __init__(self, graph: Graph, io_in_arena: bool, last: dict[int, int],
                 state: dict[int, int]) -> None:
        self.parent: dict[int, int] = {}
        self.inputs = set() if io_in_arena else set(graph.inputs)
        self.outputs = set() if io_in_arena else set(graph.outputs)
        self.state = state
        self._last = last
        # root -> (holds a caller input, holds a caller output, last step of its members)
        self._info: dict[int, tuple[bool, bool, int]] = {}

    def find(self, t: int) -> int:
        if t not in self.parent:
            self.parent[t] = t
            self._info[t] = (t in self.inputs, t in self.outputs, self._last[t])
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def last_use(self, t: int) -> int:
        return self._info[self.find(t)][2]

    def external(self, t: int) -> str:
        if t in self.state:  # never shares storage with anything
            return "state"
        holds_input, holds_output, _ = self._info[self.find(t)]
        if holds_input:
            return "input"
        if holds_output:
            return "output"
        return ""

    def union(self, a: int, b: int) -> None:
        root, other = self.find(a), self.find(b)
        self.parent[other] = root
        if other != root:
            i, o = self._info.pop(other), self._info[root]
            self._info[root] = (i[0] or o[0], i[1] or o[1], max(i[2], o[2]))


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
           io_in_arena: bool, state: dict[int, int]) -> tuple[_Groups, set[int]]:
    last = _last_uses(graph, layers, order)
    groups = _Groups(graph, io_in_arena, last, state)
    elided: set[int] = set()
    for step, pos in enumerate(order):
        layer = layers[pos]
        if layer.no_code:
            elided.add(pos)
            continue
        for t in (*layer.inputs, *layer.outputs):
            groups.find(t)
        if layer.alias:
            x, y = layer.inputs[0], layer.outputs[0]
            no_state = "state" not in (groups.external(x), groups.external(y))
            if no_state and not (groups.external(x) and groups.external(y)):
                groups.union(x, y)
                elided.add(pos)
            continue
        for position in layer.inplace_inputs():
            x, y = layer.inputs[position], layer.outputs[0]
            same_size = graph.tensors[x].nbytes == graph.tensors[y].nbytes
            dies_here = groups.last_use(x) == step
            # Never write over the caller's input or a model output that must survive.
            if same_size and dies_here and not groups.external(x):
                groups.union(y, x)
                break
    return groups, elided


# -- 3. placement ----------------------------------------------------------------------


def _overlaps(buffers: list[Buffer]) -> list[list[int]] | None:
    """For each buffer, the others alive at a step where it is; None beyond _PAIR_LIMIT
    pairs (counted first). A sweep over the steps: O(buffers log buffers + pairs)."""
    by_first = sorted(range(len(buffers)), key=lambda k: buffers[k].first)

    def sweep() -> Iterator[tuple[int, list[tuple[int, int]]]]:
        alive: list[tuple[int, int]] = []  # heap of (last step, buffer)
        for i in by_first:
            while alive and alive[0][0] < buffers[i].first:
                heapq.heappop(alive)
            yield i, alive
            heapq.heappush(alive, (buffers[i].last, i))

    if sum(len(alive) for _, alive in sweep()) > _PAIR_LIMIT:
        return None
    overlaps: list[list[int]] = [[] for _ in buffers]
    for i, alive in sweep():
        for _, j in alive:
            overlaps[i].append(j)
            overlaps[j].append(i)
    return overlaps


def _place(buffers: list[Buffer], overlaps: list[list[int]],
           ordering: list[int]) -> tuple[list[int], int]:
    """Best fit: each buffer at the offset with the smallest gap that holds it."""
    offsets = [-1] * len(buffers)
    for i in ordering:
        size = buffers[i].size
        busy = sorted((offsets[j], offsets[j] + buffers[j].size)
                      for j in overlaps[i] if offsets[j] >= 0)
        best_offset, best_gap, cursor = None, None, 0
        for start, end in busy:
            gap = start - cursor
            if gap >= size and (best_gap is None or gap < best_gap):
                best_offset, best_gap = cursor, gap
            cursor = max(cursor, end)
        offsets[i] = cursor if best_offset is None else best_offset
    return offsets, max((o + b.size for o, b in zip(offsets, buffers, strict=True)), default=0)


def _orderings(buffers: list[Buffer], count: int) -> Iterator[list[int]]:
    """Up to `count` orderings (buffer indices): four heuristics, then random ones."""
    keys = [
        lambda b: (-b.size, b.first),
        lambda b: (-(b.last - b.first), -b.size),
        lambda b: (b.first, -b.size),
        lambda b: (-b.size * (b.last - b.first + 1), b.first),
    ]
    indices = range(len(buffers))
    for key in keys[:count]:
        yield sorted(indices, key=lambda i, key=key: key(buffers[i]))
    rng = random.Random(0)  # fixed seed: the same model always gets the same plan
    for _ in range(min(count - len(keys), _RANDOM_ORDERINGS) if len(buffers) > 2 else 0):
        shuffled = list(indices)
        rng.shuffle(shuffled)
        yield shuffled


def place_buffers(buffers: list[Buffer]) -> tuple[list[Buffer], int]:
    overlaps = _overlaps(buffers)
    if overlaps is None:  # thousands of buffers alive at once: end to end, no reuse
        offsets, size = [], 0
        for b in buffers:
            offsets.append(size)
            size += b.size
    else:
        pairs = sum(len(o) for o in overlaps)
        count = max(1, _PLACEMENT_WORK // (pairs + len(buffers) + 1))
        best: tuple[list[int], int] | None = None
        for ordering in _orderings(buffers, count):
            result = _place(buffers, overlaps, ordering)
            if best is None or result[1] < best[1]:
                best = result
        offsets, size = best if best is not None else ([], 0)
    placed = [Buffer(b.tensors, b.first, b.last, b.size, o)
              for b, o in zip(buffers, offsets, strict=True)]
    return placed, size


# -- the plan ----------------------------------------------------------------------------


def plan_memory(graph: Graph, layers: list[Layer], io_in_arena: bool = False,
                state: dict[int, int] | None = None) -> Plan:
    """`state`: the tensors that live in the state block, and their offsets there."""
    state = state or {}
    order = choose_order(graph, layers, state)
    groups, elided = _share(graph, layers, order, io_in_arena, state)
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
        if members[0] in state:  # alone in its group
            locations[members[0]] = Location("state", state[members[0]])
            continue
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
        lower_bound=lower_bound(graph, layers, frozenset(state)),
        buffers=tuple(b for b in placed if b.tensors),
        elided=frozenset(layers[pos].index for pos in elided),
        scratch=scratch,
        io_in_arena=io_in_arena,
    )
