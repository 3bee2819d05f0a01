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
import itertools
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from codegen.model.ir import Graph

if TYPE_CHECKING:
    from codegen.ops.base import Layer
    from codegen.patch import Patched

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
    offset: int = 0  # bytes into a caller's buffer (a band of rows of it)


@dataclass(frozen=True)
class Buffer:
    """Storage shared by one or more tensors, alive from step `first` to step `last`."""

    tensors: tuple[int, ...]
    first: int
    last: int
    size: int
    offset: int = -1  # arena offset; -1 for caller buffers (graph inputs/outputs)
    group: int = -1  # buffers at fixed distances from each other share a group (else -1)


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
    # operator index -> bytes its output starts before its input (input/output overlap)
    overlaps: dict[int, int] = field(default_factory=dict)
    budget: int | None = None  # the --ram-budget the plan was chosen for
    # tensor -> (tensor it is part of, byte offset): bands of rows (codegen/patch.py)
    views: dict[int, tuple[int, int]] = field(default_factory=dict)
    patch: str = ""  # the patch-based stage, in words ("" without one)
    extra_macs: int = 0  # MACs the patch-based stage computes again
    steps: int = 0  # steps of a streamed stage (rows kept, not computed again); 0: none

    @property
    def schedule(self) -> str:
        """The schedule in words: what runs other than layer by layer in separate buffers."""
        parts = [self.patch] if self.patch else ["layer by layer"]
        if self.overlaps:
            shown = sorted(self.overlaps)
            layers = ", ".join(str(i) for i in shown[:8]) + (", ..." if len(shown) > 8 else "")
            parts.append(f"output overlapping input at {len(self.overlaps)} layer(s) "
                         f"({layers})")
        return ", ".join(parts)


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
    spans = ((start, last.get(t, start), graph.tensors[t].nbytes)
             for t, start in first.items() if start <= last.get(t, start))
    return max(_alive(spans, len(layers)), default=0)


def _alive(spans: Iterable[tuple[int, int, int]], steps: int) -> list[int]:
    """The bytes alive at each of `steps` steps, from spans (first step, last step, bytes)."""
    change = [0] * (steps + 1)  # bytes coming alive (-: dying) at each step
    for first, last, size in spans:
        change[first] += size
        change[last + 1] -= size
    return list(itertools.accumulate(change[:steps]))


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


def _dependencies(layers: list[Layer], state: dict[int, int] | None = None) -> list[set[int]]:
    """For each layer, those it must follow: the producers of what it reads, and the last
    layer before it in file order that touched the same state region (`state`: tensor ->
    region offset; state tensors are not produced, but read and updated). (A patch-based
    schedule keeps its run order: `_check_run_order`.)"""
    state = state or {}
    producers: dict[int, set[int]] = {}
    for i, layer in enumerate(layers):
        for t in layer.outputs:
            if t not in state:
                producers.setdefault(t, set()).add(i)
    deps = []
    for layer in layers:
        need: set[int] = set()
        for t in layer.inputs:
            need |= producers.get(t, set())
        deps.append(need)
    toucher: dict[int, int] = {}  # region -> the last layer touching it so far
    for i, layer in enumerate(layers):
        for region in {state[t] for t in (*layer.inputs, *layer.outputs) if t in state}:
            if region in toucher:
                deps[i].add(toucher[region])
            toucher[region] = i
    return deps


def _check_run_order(graph: Graph, layers: list[Layer],
                     views: dict[int, tuple[int, int]]) -> None:
    """A patch-based schedule comes in its run order: each tensor a layer reads is made
    before it (all of it: every layer writing it or a view of it, unless it is a view
    itself), or is a view of a model input or of a tensor written before (a window buffer
    of a streamed stage, rewritten row by row as it goes)."""
    writers: dict[int, list[int]] = {}
    for i, layer in enumerate(layers):
        for t in layer.outputs:
            writers.setdefault(t, []).append(i)
            if t in views:
                writers.setdefault(views[t][0], []).append(i)
    for i, layer in enumerate(layers):
        for t in layer.inputs:
            if t in views:
                base = views[t][0]
                if base not in graph.inputs and min(writers.get(base, [i])) >= i:
                    raise AssertionError("a patch-based schedule out of order")
            elif max(writers.get(t, [-1])) >= i:
                raise AssertionError("a patch-based schedule out of order")


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
    caller's buffer (a graph input or output, unless they are placed in the arena), the
    last step at which any of its tensors is used, and each tensor's byte offset from its
    group's root (0 unless an output overlaps its input at a shift)."""

    def __init__(self, graph: Graph, io_in_arena: bool, last: dict[int, int],
                 state: dict[int, int]) -> None:
        self.parent: dict[int, int] = {}
        self.rel: dict[int, int] = {}  # offset from the parent
        self.inputs = set() if io_in_arena else set(graph.inputs)
        self.outputs = set() if io_in_arena else set(graph.outputs)
        self.state = state
        self._last = last
        # root -> (holds a caller input, holds a caller output, last step of its members)
        self._info: dict[int, tuple[bool, bool, int]] = {}

    def find(self, t: int) -> int:
        if t not in self.parent:
            self.parent[t] = t
            self.rel[t] = 0
            self._info[t] = (t in self.inputs, t in self.outputs, self._last[t])
        path = []
        while self.parent[t] != t:
            path.append(t)
            t = self.parent[t]
        total = 0
        for member in reversed(path):  # nearest the root first: offsets accumulate
            total += self.rel[member]
            self.rel[member] = total
            self.parent[member] = t
        return t

    def offset(self, t: int) -> int:
        """Byte offset of t from its group's root."""
        self.find(t)
        return self.rel[t]

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

    def union(self, a: int, b: int, delta: int = 0) -> None:
        """Join b's group to a's, b at `delta` bytes from a."""
        root, other = self.find(a), self.find(b)
        if other == root:
            return
        self.parent[other] = root
        self.rel[other] = self.rel[a] + delta - self.rel[b]
        i, o = self._info.pop(other), self._info[root]
        self._info[root] = (i[0] or o[0], i[1] or o[1], max(i[2], o[2]))


def _last_uses(graph: Graph, layers: list[Layer], order: list[int],
               views: dict[int, tuple[int, int]] | None = None) -> dict[int, int]:
    """Step of each tensor's last use; model outputs are in use until the end; a tensor
    is in use while a view of it is."""
    last: dict[int, int] = {}
    for step, pos in enumerate(order):
        for t in (*layers[pos].inputs, *layers[pos].outputs):
            last[t] = step
    for t in graph.outputs:
        last[t] = len(order) - 1
    for v, (base, _) in (views or {}).items():
        if v in last:
            last[base] = max(last.get(base, 0), last[v])
    return last


def _share(graph: Graph, layers: list[Layer], order: list[int], io_in_arena: bool,
           overlap: frozenset[int] = frozenset(),
           views: dict[int, tuple[int, int]] | None = None,
           state: dict[int, int] | None = None
           ) -> tuple[_Groups, set[int], dict[int, int]]:
    """Groups of tensors sharing storage, the elided layers, and the overlapped ones
    (layer index -> bytes its output starts before its input; see `Layer.row_access`),
    tried for the layers in `overlap`. A view is part of its base tensor's storage; a
    state tensor shares nothing."""
    last = _last_uses(graph, layers, order, views)
    groups = _Groups(graph, io_in_arena, last, state or {})
    # A view and its base are placed at a fixed distance: an output that is one of them
    # never also joins its input's storage (that would pin two groups together).
    viewed = {t for v, (base, _) in (views or {}).items() for t in (v, base)}
    for v, (base, offset) in (views or {}).items():
        groups.union(base, v, offset)
    elided: set[int] = set()
    shifts: dict[int, int] = {}
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
            if same_size and dies_here and not groups.external(x) and y not in viewed:
                groups.union(y, x)
                break
        else:
            if layer.index in overlap and layer.outputs[0] not in viewed:
                shift = _overlap_shift(graph, layer, groups, step)
                if shift is not None:
                    groups.union(layer.inputs[0], layer.outputs[0], -shift)
                    shifts[layer.index] = shift
    return groups, elided, shifts


def _overlap_shift(graph: Graph, layer: Layer, groups: _Groups, step: int) -> int | None:
    """Bytes the output may start before the input (aligned), when it may overlap it: the
    input dies here, neither is a caller's buffer, the output has storage of its own so
    far, and the kernel's row order proves every input byte is read before the output
    overwrites it (RowAccess.shift, row by row)."""
    if not layer.inputs or len(layer.outputs) != 1:
        return None
    x, y = layer.inputs[0], layer.outputs[0]
    if x in layer.inputs[1:] or groups.last_use(x) != step:
        return None
    if groups.external(x) or groups.external(y) or groups.find(y) != y:
        return None
    if any(groups.find(t) == groups.find(x) for t in layer.inputs[1:]):
        return None  # another operand shares the input's storage
    access = layer.row_access()
    if access is None:
        return None
    rows = graph.tensors[x].nbytes // access.in_row if access.in_row > 0 else -1
    if (access.first_read.size * access.out_row != graph.tensors[y].nbytes
            or rows * access.in_row != graph.tensors[x].nbytes
            or int(access.first_read.max(initial=0)) > rows):
        return None  # a description that does not cover the tensors: no overlap
    return _align(access.shift())


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
        bound = _live_bound(buffers, [[i] for i in range(len(buffers))], [0] * len(buffers))
        best: tuple[list[int], int] | None = None
        for ordering in _orderings(buffers, count):
            result = _place(buffers, overlaps, ordering)
            if best is None or result[1] < best[1]:
                best = result
            if best[1] <= bound:
                break  # no ordering can do better
        offsets, size = best if best is not None else ([], 0)
    placed = [Buffer(b.tensors, b.first, b.last, b.size, o)
              for b, o in zip(buffers, offsets, strict=True)]
    return placed, size


def place_clusters(buffers: list[Buffer], cluster: list[int],
                   relative: list[int]) -> tuple[list[Buffer], int]:
    """Placement when some buffers must sit at fixed distances from each other (an output
    overlapping its input): each group of them is placed as one piece, at the lowest
    offset where none of its buffers meets a buffer alive at the same time; several
    orderings of the groups are tried, as in place_buffers."""
    overlaps = _overlaps(buffers)
    pieces: dict[int, list[int]] = {}
    for i, c in enumerate(cluster):
        pieces.setdefault(c, []).append(i)
    groups = list(pieces.values())
    extent = [max(relative[i] + buffers[i].size for i in g) for g in groups]
    if overlaps is None:  # thousands alive at once: end to end
        offsets, size = [0] * len(buffers), 0
        for g, span in zip(groups, extent, strict=True):
            for i in g:
                offsets[i] = size + relative[i]
            size += span
    else:
        summary = [Buffer((), min(buffers[i].first for i in g), max(buffers[i].last for i in g),
                          span) for g, span in zip(groups, extent, strict=True)]
        pairs = sum(len(o) for o in overlaps)
        count = max(1, _PLACEMENT_WORK // (pairs + len(buffers) + 1))
        bound = _live_bound(buffers, groups, relative)
        best: tuple[list[int], int] | None = None
        for ordering in _orderings(summary, count):
            result = _place_groups(buffers, overlaps, groups, relative, ordering)
            if best is None or result[1] < best[1]:
                best = result
            if best[1] <= bound:
                break  # no ordering can do better
        offsets, size = best if best is not None else ([], 0)
    placed = [Buffer(b.tensors, b.first, b.last, b.size, o, b.group)
              for b, o in zip(buffers, offsets, strict=True)]
    return placed, size


def _live_bound(buffers: list[Buffer], groups: list[list[int]], relative: list[int]) -> int:
    """The most bytes alive at one step, a size no placement goes below: buffers alive
    together never share bytes, but those of one group (`relative`: at fixed distances
    from its base) count their union once. Near-linear (`_group_cover`)."""
    spans = itertools.chain.from_iterable(_group_cover(buffers, g, relative) for g in groups)
    return max(_alive(spans, max((b.last for b in buffers), default=-1) + 1), default=0)


def _group_cover(buffers: list[Buffer], group: list[int],
                 relative: list[int]) -> list[tuple[int, int, int]]:
    """The bytes a group's alive buffers cover (the union of their intervals at their
    distances), as spans (first step, last step, bytes) between the steps where one starts
    or ends. The union is taken only at those steps, over the buffers alive then: work
    linear in the group's buffers and its pairs alive together (which _overlaps has
    bounded)."""
    if len(group) == 1:
        b = buffers[group[0]]
        return [(b.first, b.last, b.size)]
    events: dict[int, list[tuple[int, int]]] = {}
    for i in group:
        b = buffers[i]
        events.setdefault(b.first, []).append((1, i))
        events.setdefault(b.last + 1, []).append((-1, i))
    alive: set[int] = set()
    spans: list[tuple[int, int, int]] = []
    steps = sorted(events)
    for step, after in itertools.pairwise(steps):
        for sign, i in events[step]:
            if sign > 0:
                alive.add(i)
            else:
                alive.discard(i)
        cover = end = 0
        for lo, hi in sorted((relative[i], relative[i] + buffers[i].size) for i in alive):
            cover += max(0, hi - max(lo, end))
            end = max(end, hi)
        spans.append((step, after - 1, cover))
    return spans


def _place_groups(buffers: list[Buffer], overlaps: list[list[int]], groups: list[list[int]],
                  relative: list[int], ordering: list[int]) -> tuple[list[int], int]:
    offsets = [-1] * len(buffers)
    for g in ordering:
        members = groups[g]
        # offsets of the group's base that would make one of its buffers meet a placed one
        forbidden = sorted(
            (offsets[j] - relative[i] - buffers[i].size, offsets[j] + buffers[j].size
             - relative[i])
            for i in members for j in overlaps[i] if offsets[j] >= 0)
        # the lowest base >= 0 inside none of the open intervals: those starting below it
        # end at or below it once it has moved past them; the first that starts at or
        # above it leaves it free
        base = 0
        for start, end in forbidden:
            if start >= base:
                break
            base = max(base, end)
        for i in members:
            offsets[i] = base + relative[i]
    return offsets, max((o + b.size for o, b in zip(offsets, buffers, strict=True)), default=0)


# -- the plan ----------------------------------------------------------------------------


def plan_memory(graph: Graph, layers: list[Layer], io_in_arena: bool = False,
                overlap: frozenset[int] = frozenset(),
                views: dict[int, tuple[int, int]] | None = None,
                state: dict[int, int] | None = None) -> Plan:
    """The plan of one schedule: `overlap` names the layers whose output may overlap their
    input (where the kernel's row order proves it safe); `views` the tensors that are part
    of another (a patch-based schedule, whose layers come in their run order); `state` the
    tensors that live in the state block, and their offsets there."""
    state = state or {}
    if views:
        order = list(range(len(layers)))
        _check_run_order(graph, layers, views)
    else:
        order = choose_order(graph, layers, state)
    groups, elided, shifts = _share(graph, layers, order, io_in_arena, overlap, views, state)
    last = _last_uses(graph, layers, order, views)
    first: dict[int, int] = {t: 0 for t in graph.inputs}
    for step, pos in enumerate(order):
        for t in layers[pos].outputs:
            first.setdefault(t, step)
            if views and t in views:  # the base is in use from its first view's writing
                first.setdefault(views[t][0], step)
    for v, (base, _) in (views or {}).items():  # a view of a tensor made before it
        if v not in first and base in first:
            first[v] = first[base]

    locations: dict[int, Location] = {}
    by_root: dict[int, list[int]] = {}
    for t in list(groups.parent):
        by_root.setdefault(groups.find(t), []).append(t)
    buffers: list[Buffer] = []
    cluster: list[int] = []  # buffer -> its group (tensors overlapping at fixed offsets)
    relative: list[int] = []  # buffer -> its offset inside the group
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
                locations[t] = Location(kind, index, groups.offset(t) - groups.offset(m))
            continue
        # Tensors at the same offset share a buffer; an overlapping output (at another
        # offset) has a buffer of its own, placed at that distance from its input's.
        low = min(groups.offset(t) for t in members)
        by_offset: dict[int, list[int]] = {}
        for t in members:
            by_offset.setdefault(groups.offset(t) - low, []).append(t)
        group = min(members) if len(by_offset) > 1 else -1  # once: a group may be long
        for rel in sorted(by_offset):
            same = by_offset[rel]
            size = _align(max(graph.tensors[t].nbytes for t in same))
            start = min(first.get(t, 0) for t in same)
            end = max(last.get(t, start) for t in same)
            cluster.append(group if group >= 0 else -1 - len(buffers))
            relative.append(rel)
            buffers.append(Buffer(tuple(sorted(same)), start, end, size, group=group))
    scratch_owner: dict[int, int] = {}
    for step, pos in enumerate(order):
        need = layers[pos].scratch_bytes()
        if need:
            scratch_owner[len(buffers)] = pos
            cluster.append(-1 - len(buffers))
            relative.append(0)
            buffers.append(Buffer((), step, step, _align(need)))

    if len(set(cluster)) == len(cluster):
        placed, size = place_buffers(buffers)
    else:
        placed, size = place_clusters(buffers, cluster, relative)
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
        overlaps=shifts,
        views=dict(views or {}),
    )


# -- 4. schedules under a RAM budget -----------------------------------------------------

_OVERLAP_TRIALS = 32  # layers whose overlap is reconsidered one by one (bounded work)
# Layers planned, summed over the plans of one budget search beyond the default plan: each
# plan is near-linear in the layers, so a large model gets fewer trials (a 16,000-layer
# chain of pooling layers took minutes), a model of up to 2,048 layers all of them.
SEARCH_WORK = 1 << 16


class _Work:
    """What is left of a budget search's SEARCH_WORK."""

    def __init__(self, total: int = SEARCH_WORK) -> None:
        self.left = total

    def take(self, layers: list[Layer]) -> bool:
        """Whether one more plan of these layers fits; if so, it is counted."""
        cost = max(1, len(layers))
        if cost > self.left:
            return False
        self.left -= cost
        return True


def overlap_candidates(layers: list[Layer]) -> list[int]:
    """Indices of the layers whose kernel describes a row order (RowAccess)."""
    return [layer.index for layer in layers if layer.row_access() is not None]


def smallest_plan(graph: Graph, layers: list[Layer], io_in_arena: bool = False,
                  state: dict[int, int] | None = None, work: _Work | None = None,
                  default: Plan | None = None) -> Plan:
    """The smallest arena over the schedules tried, all as fast as the default one (the
    kernels are the same; only where the output goes changes): every provable overlap,
    then each dropped in turn while that does not grow the arena (an overlap lengthens
    its buffer's life, which can cost more than it saves). Bounded: at most
    _OVERLAP_TRIALS + 2 plans, and the plans after the default one within `work`."""
    work = work or _Work()
    candidates = overlap_candidates(layers)
    if default is None:
        default = plan_memory(graph, layers, io_in_arena, state=state)
    if not candidates or not work.take(layers):
        return default
    chosen = set(candidates)
    best = plan_memory(graph, layers, io_in_arena, frozenset(chosen), state=state)
    sizes = {layer.index: sum(graph.tensors[t].nbytes for t in (*layer.inputs, *layer.outputs))
             for layer in layers}
    for index in sorted(best.overlaps, key=lambda i: (sizes[i], i))[:_OVERLAP_TRIALS]:
        if not work.take(layers):
            break
        trial = plan_memory(graph, layers, io_in_arena, frozenset(chosen - {index}),
                            state=state)
        if trial.size <= best.size:
            chosen.discard(index)
            best = trial
    return best if best.size < default.size else default


@dataclass(frozen=True)
class Schedule:
    """A plan and what it runs: the model's layers, or a patch-based schedule's (bands of
    the first stage over a graph with the bands' tensors)."""

    graph: Graph
    layers: list[Layer]
    plan: Plan
    # a streamed stage's 3x3 depthwise bands: line-buffer scratch up to this many times
    # their input's bytes (0: the small passes their module gives a band)
    lines: float = 1.0


_PATCH_PLANS = 48  # patch-based schedules planned at most per budget search


def _patched_schedules(graph: Graph, layers: list[Layer], io_in_arena: bool,
                       work: _Work) -> list[Schedule]:
    """Patch-based schedules of the first stage, fewest extra MACs first: each stage end
    whose output is smaller than the largest tensor before it, in 2 to MAX_TILES bands,
    and streamed (rows kept, none computed again) there or up to a global average pool,
    fewest steps first (bounded: at most _PATCH_PLANS and _STREAM_PLANS of them are
    planned)."""
    from codegen.patch import MAX_TILES, patch, stage_ends, stream

    if not work.take(layers):
        return []
    order = plan_memory(graph, layers, io_in_arena).order
    by_index = {layer.index: layer for layer in layers}
    run = [by_index[i] for i in order]
    options: list[tuple[int, int]] = []  # (end, bands)
    streams: list[tuple[int, int, float]] = []  # (end, rows per step, line buffers' share)
    smallest = None  # the smallest output so far: a stage ends where its output shrinks
    for end in stage_ends(graph, run):
        out = graph.tensors[run[end].outputs[0]]
        if smallest is None or out.nbytes < smallest:
            if smallest is not None:
                streams += [(end, rows, share) for rows in _STREAM_ROWS
                            for share in _STREAM_LINES]
                streams.append((end, _STREAM_ROWS[-1], 0.0))
                options += [(end, tiles) for tiles in (2, 3, 4, 6, 8, 12, MAX_TILES)
                            if tiles <= out.shape[1]]
            smallest = out.nbytes
    patched = []
    bound = lower_bound(graph, layers)  # the model's, not the bands'
    tried: list[tuple[int, int, float | None]] = [(end, tiles, None)
                                                  for end, tiles in options[:_PATCH_PLANS]]
    seen: set[tuple[object, ...]] = set()  # streams whose depthwise passes no share widens
    for end, tiles, wide in tried + streams[:_STREAM_PLANS]:
        result = patch(graph, run, end, tiles) if wide is None \
            else stream(graph, run, end, tiles, wide)
        if result is None:
            continue
        if wide is not None:
            same = (end, tiles, *((b.stem, b.scratch_bytes()) for b in result.layers))
            if same in seen:
                continue  # the layers of a share tried already: the same plan
            seen.add(same)
        if not work.take(result.layers):
            break
        plan = plan_memory(result.graph, result.layers, io_in_arena, views=result.views)
        plan = replace(plan, patch=_describe_patch(result, run[end].opcode),
                       extra_macs=result.extra_macs, lower_bound=bound,
                       steps=result.tiles if result.kept else 0)
        patched.append(Schedule(result.graph, result.layers, plan,
                                lines=1.0 if wide is None else wide))
    patched.sort(key=_patch_order)
    return patched


_STREAM_ROWS = (4, 2, 1)  # new rows per layer and step of a streamed stage, tried
# line-buffer scratch of a streamed 3x3 depthwise band, times its input's bytes, tried (more
# channels per pass: fewer passes, each of which converts the band's three input lines;
# 0.6: kws_ref_model's 2-row steps, 12 channels a pass, in 6,144 B)
_STREAM_LINES = (1.5, 1.0, 0.6)
# Streamed schedules planned at most per budget search (10 per stage end: each row count with
# each share of wide depthwise passes, one row a step without; three stage ends): each is a
# plan of steps x layers.
_STREAM_PLANS = 30


def _describe_patch(result: Patched, last: str) -> str:
    stage = result.stage
    if result.kept:
        pool = ", the global pool summed in int32" if last == "AVERAGE_POOL_2D" else ""
        joins = f" for every reader ({result.joins} residual ADD" \
                f"{'s' if result.joins != 1 else ''} in the stream)" if result.joins else ""
        return (f"layers {stage[0]}-{stage[-1]} streamed in {result.tiles} steps of at "
                f"most {result.rows} new row{'s' if result.rows != 1 else ''} per layer, "
                f"rows kept{joins}, not computed again{pool}")
    return (f"layers {stage[0]}-{stage[-1]} in {result.tiles} bands of "
            f"{result.rows} output row{'s' if result.rows != 1 else ''}")


def _patch_order(schedule: Schedule) -> tuple[int, int, float, int]:
    """Fewest extra MACs first; then streamed schedules, fewest steps first (each step
    calls every layer once more), wider depthwise passes first; then the smaller arena."""
    plan = schedule.plan
    return plan.extra_macs, plan.steps or 1 << 30, -schedule.lines, plan.size


def _patch_candidates(graph: Graph, layers: list[Layer], variant: list[Layer] | None,
                      io_in_arena: bool, work: _Work) -> list[Schedule]:
    """Patch-based schedules of the layers and of their whole-line variant, fewest extra
    MACs first."""
    found = _patched_schedules(graph, layers, io_in_arena, work)
    if variant is not None:
        found += _patched_schedules(graph, variant, io_in_arena, work)
    found.sort(key=_patch_order)
    return found


def _live_bytes(plan: Plan, layers: list[Layer]) -> list[int]:
    """Bytes of the arena buffers alive at each step, with the step's scratch."""
    alive = _alive(((b.first, b.last, b.size) for b in plan.buffers), len(layers))
    return [total + _align(layer.scratch_bytes()) for total, layer in zip(alive, layers,
                                                                          strict=True)]


_OVERLAP_ROUNDS = 4


def _with_overlaps(schedule: Schedule, io_in_arena: bool, work: _Work,
                   budget: int | None = None) -> Schedule:
    """The schedule with overlaps at the layers that run when the most bytes are alive
    (above the budget, or within 10% of the peak), when that makes its arena smaller: an
    overlap everywhere would pin long chains of buffers to each other. Each round adds the
    layers of the new peak; the smallest arena seen is kept (bounded: _OVERLAP_ROUNDS
    plans)."""
    candidates = set(overlap_candidates(schedule.layers))
    if not candidates:
        return schedule
    best, current = schedule, schedule
    chosen: set[int] = set()
    for _ in range(_OVERLAP_ROUNDS):
        live = _live_bytes(current.plan, schedule.layers)
        peak = max(live, default=0)
        hot = {schedule.layers[step].index for step, used in enumerate(live)
               if used >= peak * 9 // 10 or (budget is not None and used > budget)}
        more = (hot & candidates) - chosen
        if not more or not work.take(schedule.layers):
            break
        chosen |= more
        plan = plan_memory(schedule.graph, schedule.layers, io_in_arena, frozenset(chosen),
                           schedule.plan.views or None)
        plan = replace(plan, patch=schedule.plan.patch, extra_macs=schedule.plan.extra_macs,
                       lower_bound=schedule.plan.lower_bound, steps=schedule.plan.steps)
        current = Schedule(schedule.graph, schedule.layers, plan, schedule.lines)
        if plan.size < best.plan.size:
            best = current
    return best


def whole_line_variant(graph: Graph, layers: list[Layer]) -> list[Layer] | None:
    """The layers with every 3x3 depthwise line buffer taking all channels in one pass
    (more scratch, but the output may overlap the input), or None when none changes."""
    from codegen.ops.depthwise_conv_2d import DepthwiseConv2D3x3, with_whole_lines

    changed = False
    variant = []
    for layer in layers:
        p = layer.params
        if isinstance(layer, DepthwiseConv2D3x3) and p["group"] != p["channels"] \
                and not p["transposed"]:
            layer = with_whole_lines(layer)
            changed = True
        variant.append(layer)
    return variant if changed else None


def _whole_lines_if_free(graph: Graph, layers: list[Layer], default: Plan,
                        io_in_arena: bool) -> Schedule:
    """The default schedule with every 3x3 depthwise line buffer taking all channels in one
    pass (fewer, longer passes: faster) when its arena is no larger, else the default one.
    One more plan, not one per layer (nothing here is quadratic in the layers)."""
    variant = whole_line_variant(graph, layers)
    if variant is not None:
        lines = plan_memory(graph, variant, io_in_arena)
        if lines.size <= default.size:
            return Schedule(graph, variant, lines)
    return Schedule(graph, layers, default)


def plan_for_budget(graph: Graph, layers: list[Layer], io_in_arena: bool = False,
                    budget: int | None = None, state: dict[int, int] | None = None,
                    numerics: str = "tflm") -> Schedule:
    """Without a budget, the default plan (its 3x3 depthwise line buffers whole where that
    costs no arena). With one, the fastest schedule whose arena fits it: the default one
    when it fits, else the smallest of the overlapping ones (the same
    instructions), else a patch-based one, fewest extra MACs first. The last two prepare
    layers again (as whole-line or band variants), which is done for TFLM's numerics and
    a model without state only (`state` as in `plan_memory`). Nothing fits: a one-line
    error naming the smallest arena reached and its schedule."""
    default = plan_memory(graph, layers, io_in_arena, state=state)
    again = not state and numerics == "tflm"  # layers may be prepared again
    fastest = _whole_lines_if_free(graph, layers, default, io_in_arena) if again \
        else Schedule(graph, layers, default)
    if budget is None:
        return fastest
    if fastest.plan.size <= budget:
        return replace(fastest, plan=replace(fastest.plan, budget=budget))
    work = _Work()
    smallest = Schedule(graph, layers, smallest_plan(graph, layers, io_in_arena, state, work,
                                                     default))
    if smallest.plan.size <= budget:
        return Schedule(graph, layers, replace(smallest.plan, budget=budget))
    variant = whole_line_variant(graph, layers) if again else None
    if variant is not None and work.take(variant):
        lines = Schedule(graph, variant, smallest_plan(graph, variant, io_in_arena, work=work))
        if lines.plan.size <= budget:
            return Schedule(graph, variant, replace(lines.plan, budget=budget))
        if lines.plan.size < smallest.plan.size:
            smallest = lines
    patched = _patch_candidates(graph, layers, variant, io_in_arena, work) if again else []
    for candidate in patched:
        for schedule in (candidate, _with_overlaps(candidate, io_in_arena, work)):
            if schedule.plan.size <= budget:
                return replace(schedule, plan=replace(schedule.plan, budget=budget))
            if schedule.plan.size < smallest.plan.size:
                smallest = schedule
    from codegen.errors import CodegenError

    raise CodegenError(
        f"--ram-budget {budget}: the smallest arena codegen reaches for this model is "
        f"{smallest.plan.size} bytes ({smallest.plan.schedule}); give a budget of at least "
        f"{smallest.plan.size}")


def _without_whole_lines(graph: Graph, layers: list[Layer]) -> list[Layer]:
    """The layers as the model's operators prepare them: a 3x3 depthwise layer the default
    plan took whole-line (`_whole_lines_if_free`) prepared again without that option."""
    from codegen.ops import prepare_layer
    from codegen.ops.depthwise_conv_2d import WHOLE_LINES

    plain = []
    for layer in layers:
        if layer.op.options.get(WHOLE_LINES):
            options = {k: v for k, v in layer.op.options.items() if k != WHOLE_LINES}
            layer = prepare_layer(replace(layer.op, options=options), graph)
        plain.append(layer)
    return plain


def smallest_schedule(graph: Graph, layers: list[Layer],
                      io_in_arena: bool = False) -> Schedule:
    """The schedule of the smallest arena the budget search reaches (from the model's
    layers, or from a program's, which may hold whole-line variants)."""
    layers = _without_whole_lines(graph, layers)
    work = _Work()
    best = Schedule(graph, layers, smallest_plan(graph, layers, io_in_arena, work=work))
    variant = whole_line_variant(graph, layers)
    if variant is not None and work.take(variant):
        lines = Schedule(graph, variant, smallest_plan(graph, variant, io_in_arena, work=work))
        if lines.plan.size < best.plan.size:
            best = lines
    for candidate in _patch_candidates(graph, layers, variant, io_in_arena, work):
        for schedule in (candidate, _with_overlaps(candidate, io_in_arena, work)):
            if schedule.plan.size < best.plan.size:
                best = schedule
    return best
