"""Patch-based execution of a CNN's first stage (MCUNetV2-style), in bands of rows.

A stage is the run of layers from the first one to layer `end` (in run order): 2-D windows
(CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, AVERAGE_POOL_2D, int8) and ADD of two tensors of
the output's shape, each on one image. The stage's last output is computed in `tiles`
bands of full-width rows, one after the other; for each band, every layer of the stage
computes the rows the layers after it need for that band (its halo is computed again by
the next band: the same arithmetic on the same inputs, so the same integers). Only the
stage's output is whole in memory, and the tensors read from before the stage (the model
input, say).

Each band of a layer is a layer of its own, prepared by the operator's module on tensors
of the band's shape, with the band's row axis (`codegen.ops._window.BAND_ROWS`: its input
rows and the padding above them; rows past the band's input are padding only where the
image ends, since a band's input holds every row its outputs read). Bands of the same
shape and padding share their C function (`Layer.stem`).

A band reads a view of the tensor that holds its input rows (the model input, or the band
of the layer before it, which may hold more rows for another reader), and writes a view
of the stage's output: `views` maps such a tensor to (the tensor it is part of, byte
offset), for the planner (codegen/plan.py), which keeps them in that tensor's storage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from codegen.errors import UnsupportedError
from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops import prepare_layer
from codegen.ops._conv import ConvLayer
from codegen.ops._copy import CopyLayer
from codegen.ops._pool import PoolLayer
from codegen.ops._window import BAND_ROWS, Axis
from codegen.ops.base import Layer
from codegen.ops.conv_2d import Conv2DGemm
from codegen.ops.depthwise_conv_2d import WHOLE_LINES, DepthwiseConv2D3x3

MAX_TILES = 16  # bands per stage tried
# Layers a stage may hold: the bands of a schedule are at most MAX_TILES x this many layers
# (a graph of thousands of layers plans its patches in bounded time).
MAX_STAGE = 64
_ALIGNMENT = 4  # bytes: where a tensor may start (codegen.plan.ALIGNMENT)


@dataclass(frozen=True)
class Patched:
    """A patch-based schedule: the graph with the bands' tensors appended, the layers in
    run order (the stage's bands, then the layers after the stage), the views."""

    graph: Graph
    layers: list[Layer]
    views: dict[int, tuple[int, int]]  # tensor -> (tensor it is part of, byte offset)
    stage: tuple[int, ...]  # indices of the model's layers run in bands
    tiles: int
    rows: int  # output rows per band (the last band may have fewer)
    extra_macs: int  # over the layer-by-layer schedule
    kept: bool = False  # streamed: rows kept in window buffers, not computed again
    joins: int = 0  # streamed residual branches: ADDs of the stage joining two of them


def _rows_axis(layer: Layer) -> Axis | None:
    if isinstance(layer, (ConvLayer, PoolLayer)):
        return layer.window.rows
    return None


def _patchable(layer: Layer, graph: Graph) -> bool:
    """A layer a band may run: a window on one image, or ADD of two whole tensors."""
    if len(layer.outputs) != 1 or layer.alias:
        return False
    y = graph.tensors[layer.outputs[0]]
    if len(y.shape) != 4 or y.shape[0] != 1 or y.dtype.numpy_name != "int8":
        return False
    if _rows_axis(layer) is not None:
        x = graph.tensors[layer.inputs[0]]
        return len(layer.inputs) == 1 and x.shape[0] == 1 and x.dtype.numpy_name == "int8"
    if layer.opcode == "ADD":
        return len(layer.inputs) == 2 and all(
            graph.tensors[t].shape == y.shape for t in layer.inputs)
    return False


def stage_ends(graph: Graph, layers: list[Layer]) -> list[int]:
    """Positions `end` (in run order) such that layers[0..end] form a stage: each layer
    patchable, every tensor they make read only inside the stage (except the last
    layer's output), and what they read from outside the stage a model input."""
    ends: list[int] = []
    made: set[int] = set()
    readers: dict[int, list[int]] = {}
    for pos, layer in enumerate(layers):
        for t in layer.inputs:
            readers.setdefault(t, []).append(pos)
    for pos, layer in enumerate(layers[:MAX_STAGE]):
        if not _patchable(layer, graph):
            break
        if any(t not in made and t not in graph.inputs for t in layer.inputs):
            break
        made.update(layer.outputs)
        inner = made - set(layer.outputs)
        if any(t in graph.outputs or max(readers.get(t, [0])) > pos for t in inner):
            continue  # an earlier tensor is read after the stage: not an end here
        if layer.outputs[0] in graph.outputs:
            continue
        ends.append(pos)
    return ends


def _needs(layer: Layer, graph: Graph, lo: int, hi: int) -> list[tuple[int, int]]:
    """Rows of each input that output rows [lo, hi) read."""
    r = _rows_axis(layer)
    if r is None:  # ADD
        return [(lo, hi)] * len(layer.inputs)
    start = max(0, lo * r.stride - r.pad)
    stop = min(r.size, (hi - 1) * r.stride - r.pad + r.effective)
    return [(start, stop)]


class _Builder:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.tensors = list(graph.tensors)
        self.views: dict[int, tuple[int, int]] = {}
        self.prepared: dict[tuple[object, ...], Layer] = {}  # band shape -> its layer
        self.next_op = len(graph.operators)

    def band_tensor(self, base: Tensor, lo: int, hi: int) -> int:
        index = len(self.tensors)
        shape = (base.shape[0], hi - lo, *base.shape[2:])
        self.tensors.append(Tensor(index, f"{base.name} rows {lo}-{hi}", shape, base.dtype,
                                   base.quant))
        return index

    def view(self, base: int, base_lo: int, lo: int, hi: int) -> int:
        """Rows [lo, hi) of tensor `base`, whose first row is row `base_lo`."""
        t = self.tensors[base]
        if (lo, hi) == (base_lo, base_lo + t.shape[1]):
            return base
        row = t.nbytes // t.shape[1]
        if (lo - base_lo) * row % _ALIGNMENT:
            # kernels read their tensors a word at a time: a band starts on a word
            raise UnsupportedError("a band of rows that does not start on a word")
        index = self.band_tensor(t, lo, hi)
        self.views[index] = (base, (lo - base_lo) * row)
        return index

    def band_layer(self, layer: Layer, inputs: list[int], in_lo: int, output: int,
                   lo: int, hi: int) -> Layer:
        op = layer.op
        options = dict(op.options)
        options.pop(WHOLE_LINES, None)  # a band's line buffer stays small
        r = _rows_axis(layer)
        key: tuple[object, ...] = (layer.index, hi - lo)
        if r is not None:
            size = self.tensors[inputs[0]].shape[1]
            # padding above the band's input: rows of the image above row 0
            band = Axis(size, r.taps, r.stride, r.dilation, hi - lo, r.pad - lo * r.stride
                        + in_lo)
            options[BAND_ROWS] = band
            key += (size, band.pad)
        others = iter(inputs)
        op_inputs = tuple(next(others) if t in layer.inputs else t for t in op.inputs)
        band_op = Operator(self.next_op, op.opcode, op_inputs, (output,), options,
                           op.version, op.custom_options)
        self.next_op += 1
        same = self.prepared.get(key)
        if same is not None:  # a band of the same shape: the same parameters and function
            return replace(same, op=band_op, inputs=tuple(inputs), outputs=(output,))
        graph = replace(self.graph, tensors=self.tensors)
        prepared = prepare_layer(band_op, graph)
        _one_pixel_tail(prepared)
        _five_lines(prepared)
        prepared.stem = f"l{layer.index}_{op.opcode.lower()}_band" \
                        f"{sum(k[0] == layer.index for k in self.prepared)}"
        self.prepared[key] = prepared
        return prepared


def _one_pixel_tail(layer: Layer) -> None:
    """A band of the convolution engine whose pixels are odd in count (a stream's rows of
    5 pixels: 3 passes of 2 for 5) runs the last one on the engine's one-pixel variant
    (runtime/gemm_conv_one.c.j2, which Conv2DGemm.runtime then adds), not as a pair of
    itself, whether the band takes the run engine or not; a layer-by-layer schedule does
    so for its run layers only."""
    if type(layer) is Conv2DGemm and int(layer.params["pixels"]) % 2:
        layer.params["one"] = True


class _FiveLines(DepthwiseConv2D3x3):
    """A 3x3 depthwise band whose lines are five outputs (stride 1, one shared right
    shift): on DSP cores, output lines of one group of six per channel, five stored
    (runtime/depthwise3x3_shared.c.j2's `five`), not a group of four and a tail of two."""

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        p = self.params
        shared = f"depthwise3x3_shared.1.{p['shared_shift']}"
        return tuple(f"{s}.five" if s == shared else s for s in super().runtime)


def _five_lines(layer: Layer) -> None:
    p = layer.params
    if type(layer) is DepthwiseConv2D3x3 and p["shared_shift"] and p["stride_b"] == 1 \
            and p["out_b"] == 5 and p["line"] >= 10:
        layer.__class__ = _FiveLines
        p["five"] = True


def patch(graph: Graph, layers: list[Layer], end: int, tiles: int) -> Patched | None:
    """Layers 0..end (run order) in `tiles` bands of the last one's output rows; None
    when the stage cannot be run so (a band that a layer's module refuses)."""
    stage = layers[:end + 1]
    final = graph.tensors[stage[-1].outputs[0]]
    height = final.shape[1]
    rows = -(-height // tiles)
    if rows < 1 or (tiles - 1) * rows >= height:
        return None
    builder = _Builder(graph)
    bands: list[Layer] = []
    macs = 0
    try:
        for t in range(tiles):
            lo, hi = t * rows, min(height, (t + 1) * rows)
            bands += _bands(builder, graph, stage, lo, hi)
    except UnsupportedError:
        return None
    ext = replace(graph, tensors=builder.tensors)
    for layer in bands:
        layer.graph = ext
        macs += layer.macs()
    run = [*bands, *layers[end + 1:]]
    return Patched(ext, run, builder.views, tuple(layer.index for layer in stage), tiles,
                   rows, macs - sum(layer.macs() for layer in stage))


def _bands(builder: _Builder, graph: Graph, stage: list[Layer], lo: int,
           hi: int) -> list[Layer]:
    """The stage's layers for output rows [lo, hi) of its last layer: what rows each
    tensor needs (the hull over its readers), then a band of each layer, first to last."""
    need: dict[int, tuple[int, int]] = {stage[-1].outputs[0]: (lo, hi)}
    per_layer: list[list[tuple[int, int]]] = []
    for layer in reversed(stage):
        out = need.get(layer.outputs[0])
        if out is None:
            raise UnsupportedError("a layer of the stage that nothing reads")
        wants = _needs(layer, graph, *out)
        per_layer.append(wants)
        for t, (a, b) in zip(layer.inputs, wants, strict=True):
            old = need.get(t)
            need[t] = (a, b) if old is None else (min(old[0], a), max(old[1], b))
    per_layer.reverse()
    final = stage[-1].outputs[0]
    made: dict[int, tuple[int, int]] = {}  # tensor -> (band tensor, its first row)
    result = []
    for layer, wants in zip(stage, per_layer, strict=True):
        inputs = []
        for t, (a, b) in zip(layer.inputs, wants, strict=True):
            if t in made:
                band, first = made[t]
                inputs.append(builder.view(band, first, a, b))
            else:  # from before the stage: rows of the whole tensor
                inputs.append(builder.view(t, 0, a, b))
        y = layer.outputs[0]
        out_lo, out_hi = need[y]
        if y == final:
            output = builder.view(y, 0, out_lo, out_hi)
        else:
            output = builder.band_tensor(graph.tensors[y], out_lo, out_hi)
        made[y] = (output, out_lo)
        in_lo = wants[0][0]
        result.append(builder.band_layer(layer, inputs, in_lo, output, out_lo, out_hi))
    return result


# -- streaming: rows kept, not computed again --------------------------------------------
#
# A stage that is a chain (each layer reads the one before it; the first a model input)
# may also run in steps in which every layer computes only rows it has not computed yet,
# at most `rows` of them, and only as many as the next layer's next rows read: each
# tensor of the stage lives in a window buffer of a few rows that keeps the rows the next
# layer still reads (moved to the buffer's top, a copy of whole rows, before new rows are
# appended) instead of computing them again. A global AVERAGE_POOL_2D may end such a
# stage: each step adds the new rows of its input into int32 sums per channel, and the
# last one divides (the same sums as the whole pool's, so the same means).


@dataclass(frozen=True)
class _Read:
    """Rows [lo, hi) of a window, `at` rows below its top."""

    lo: int
    hi: int
    at: int


@dataclass
class _Window:
    """The rows [lo, hi) a window buffer holds, from its top, and its largest extent."""

    lo: int = 0
    hi: int = 0
    capacity: int = 0


def _chain(graph: Graph, stage: list[Layer]) -> bool:
    """Each layer a window reading one tensor: the model input, then the layer before."""
    for i, layer in enumerate(stage):
        if _rows_axis(layer) is None or len(layer.inputs) != 1:
            return False
        source = stage[i - 1].outputs[0] if i else None
        if (layer.inputs[0] != source) if i else (layer.inputs[0] not in graph.inputs):
            return False
    return True


def _pooled(graph: Graph, stage: list[Layer]) -> bool:
    """Whether the stage ends in a global AVERAGE_POOL_2D of one int8 image."""
    from codegen.ops.average_pool_2d import GlobalAveragePool2D

    last = stage[-1]
    return isinstance(last, GlobalAveragePool2D) and graph.tensors[
        last.inputs[0]].dtype.numpy_name == "int8" and int(last.params["batches"]) == 1


def _wide_lines(layer: Layer, budget: int) -> Layer:
    """A 3x3 depthwise band whose line buffer takes as many channels per pass as `budget`
    bytes of scratch hold (a multiple of 4; with as many passes, the fewest channels), when
    that is more than its module gives a band (an eighth of its input: 4 channels for a
    few rows). A streamed stage calls each band once per row or so, and every pass costs
    time. The module derives what the group decides (`depthwise_conv_2d.with_group`)."""
    from codegen.ops.depthwise_conv_2d import DepthwiseConv2D3x3, with_group

    if not isinstance(layer, DepthwiseConv2D3x3):
        return layer
    p = layer.params
    line, channels = int(p["line"]), int(p["channels"])
    group = min(channels, budget // (6 * line) // 4 * 4)  # 3 lines of int16 per channel
    if group > 0:  # as few passes, as even as they come (a larger group only zeroes more)
        passes = -(-channels // group)
        group = min(group, (-(-channels // passes) + 3) // 4 * 4)
    if group <= int(p["group"]):
        return layer
    wide = with_group(layer, group)
    return wide if wide.scratch_bytes() <= budget else layer


class _KeepRows(CopyLayer):
    """Rows a window buffer keeps for the next step, moved up to its top: one copy per
    row, top row first, when they move by fewer rows than they are (each copy then reads
    a row below the one it writes, which no earlier copy wrote), else one copy."""

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [inputs[0]]


def _keep_rows_steps(count: int, row: int, shift: int) -> list[dict[str, object]]:
    """The copy of `count` rows of `row` bytes `shift` rows up, as copy.c.j2 lays it out."""
    indent = "    "
    if shift >= count:
        return [{"kind": "copy", "loops": [], "indent": indent, "src": "input0",
                 "dst": "output0", "src_pointer": "input0", "dst_pointer": "output0",
                 "memcpy_length": count * row}]
    index = f"i0 * {row}"
    return [{"kind": "copy", "loops": [{"indent": indent, "var": "i0", "count": count}],
             "indent": indent * 2, "src": "input0", "dst": "output0",
             "src_pointer": f"input0 + {index}", "dst_pointer": f"output0 + {index}",
             "memcpy_length": row}]


class _Stream:
    """The layers of a streamed stage (see above), from its steps: a first pass measures
    each window buffer, the second makes the tensors and layers."""

    def __init__(self, builder: _Builder, stage: list[Layer], pooled: bool,
                 steps: list[list[tuple[int, int]]], wide: float) -> None:
        self.b = builder
        self.wide = wide
        self.graph = builder.graph
        self.stage = stage
        self.pooled = pooled
        self.chain = stage[:-1] if pooled else stage
        self.steps = steps
        m = len(self.chain)
        # per chain tensor and step: the rows its reader reads then (None: nothing)
        self.reads: list[list[tuple[int, int] | None]] = [[None] * len(steps)
                                                          for _ in range(m)]
        for s, step in enumerate(steps):
            for i, (lo, hi) in enumerate(step):
                if hi > lo and i:
                    self.reads[i - 1][s] = _needs(self.chain[i], self.graph, lo, hi)[0]
                if hi > lo and i == m - 1 and pooled:
                    self.reads[i][s] = (lo, hi)
        # a tensor read in the step that makes it, all of it, needs no window: a band
        # tensor of its own per step
        self.transient = [all(self.reads[i][s] == (step[i] if step[i][1] > step[i][0]
                                                     else None)
                              for s, step in enumerate(steps)) for i in range(m)]
        self.final = None if pooled else stage[-1].outputs[0]
        self.windows: dict[int, _Window] = {}
        self.bases: dict[int, int] = {}  # chain tensor -> its window buffer's tensor
        self.sums = -1  # the pool's int32 sums (each step's are views of them)
        self.firsts: dict[int, int] = {}  # transient chain tensor -> its band's first row

    def layers(self) -> list[Layer]:
        self._run(build=False)
        for i, window in self.windows.items():
            t = self.graph.tensors[self.chain[i].outputs[0]]
            if t.nbytes // t.shape[1] % _ALIGNMENT:
                raise UnsupportedError("a window of rows that do not start on a word")
            self.bases[i] = self.b.band_tensor(t, 0, window.capacity)
        return self._run(build=True)

    def _next_read(self, i: int, s: int) -> int:
        """The first row chain tensor i's reader reads at step s or after."""
        for rows in self.reads[i][s:]:
            if rows is not None:
                return rows[0]
        return self.graph.tensors[self.chain[i].outputs[0]].shape[1]

    def _view(self, i: int, lo: int, hi: int) -> int:
        """Rows [lo, hi) of chain tensor i in its window buffer."""
        t = self.graph.tensors[self.chain[i].outputs[0]]
        index = self.b.band_tensor(t, lo, hi)
        self.b.views[index] = (self.bases[i], (lo - self.windows[i].lo) * (t.nbytes // t.shape[1]))
        return index

    def _keep(self, i: int, first: int, build: bool) -> list[Layer]:
        """Drop the rows of window i above row `first`; the rows below move to its top."""
        w = self.windows.setdefault(i, _Window())
        top = min(max(first, w.lo), w.hi)
        moved: list[Layer] = []
        if w.lo < top < w.hi and build:
            src = self._view(i, top, w.hi)
            shift = top - w.lo
            w.lo = top
            dst = self._view(i, top, w.hi)
            moved.append(self._move(self.chain[i].index, src, dst, w.hi - top, shift))
        w.lo = top
        if top == w.hi:  # empty: the next rows start at its top
            w.lo = w.hi
        return moved

    def _move(self, producer: int, src: int, dst: int, count: int, shift: int) -> Layer:
        """KEEP_ROWS of the window of layer `producer`'s output (named after that layer)."""
        t = self.b.tensors[src]
        row = t.nbytes // t.shape[1]
        op = Operator(self.b.next_op, "KEEP_ROWS", (src,), (dst,))
        self.b.next_op += 1
        layer = _KeepRows(op, self.graph, inputs=(src,), outputs=(dst,))
        layer.params["signature"] = "const int8_t *input0, int8_t *output0"
        layer.params["steps"] = _keep_rows_steps(count, row, shift)
        layer.stem = f"l{producer}_keep_rows{count}x{row}_up{shift}"
        return layer

    def _run(self, build: bool) -> list[Layer]:
        """The stage's layers, step by step: each layer's band (its inputs, `_inputs`; its
        output, `_output`; placed by `_place`), then the pool's rows of the step."""
        self.windows = {}
        result: list[Layer] = []
        current: dict[int, int] = {}  # transient chain tensor -> its band tensor this step
        sums = -1
        m = len(self.chain)
        for s, step in enumerate(self.steps):
            lent: dict[int, int] = {}  # transient chain tensor -> the window it borrowed
            for i, layer in enumerate(self.chain):
                lo, hi = step[i]
                if hi <= lo:
                    continue
                inputs, a = self._inputs(i, lo, hi, current, result, build)
                y = self._output(i, lo, hi, s, current, result, build)
                if build:
                    band = self.b.band_layer(layer, inputs, a, y, lo, hi)
                    if self.wide:
                        band = _wide_lines(band, int(self.b.tensors[inputs[0]].nbytes
                                                     * self.wide))
                    if current.get(i) == y:
                        lent[i] = self._place(band, i, s, a, lent.get(i - 1, -1))
                    result.append(band)
            if self.pooled and step[m - 1][1] > step[m - 1][0] and build:
                last = s == len(self.steps) - 1
                layer, sums = self._pool(self._pool_input(step[m - 1], current), sums, last)
                result.append(layer)
        return result

    def _inputs(self, i: int, lo: int, hi: int, current: dict[int, int],
                result: list[Layer], build: bool) -> tuple[list[int], int]:
        """The input of chain layer i's band of rows [lo, hi), and its first row: rows of
        the stage's input, the previous layer's band tensor, or rows of its window (the
        rows above them dropped first: KEEP_ROWS into `result`)."""
        layer = self.chain[i]
        a, b = _needs(layer, self.graph, lo, hi)[0]
        if i == 0:
            return [self.b.view(layer.inputs[0], 0, a, b) if build else -1], a
        if self.transient[i - 1]:
            return [current[i - 1]], a
        result += self._keep(i - 1, a, build)
        return [self._view(i - 1, a, b) if build else -1], a

    def _output(self, i: int, lo: int, hi: int, s: int, current: dict[int, int],
                result: list[Layer], build: bool) -> int:
        """The output of chain layer i's band of rows [lo, hi) at step s: rows of the
        stage's output, a band tensor of its own (`current`), or rows of its window (the
        rows no reader reads again dropped first: KEEP_ROWS into `result`)."""
        layer = self.chain[i]
        t = self.graph.tensors[layer.outputs[0]]
        if i == len(self.chain) - 1 and not self.pooled:
            return self.b.view(layer.outputs[0], 0, lo, hi) if build else -1
        if self.transient[i]:
            y = self.b.band_tensor(t, lo, hi) if build else -1
            current[i], self.firsts[i] = y, lo
            return y
        result += self._keep(i, self._next_read(i, s), build)
        w = self.windows[i]
        if w.hi != lo:
            raise UnsupportedError("a window whose rows are not contiguous")
        y = self._view(i, lo, hi) if build else -1
        w.hi = hi
        w.capacity = max(w.capacity, w.hi - w.lo)
        return y

    def _place(self, band: Layer, i: int, s: int, a: int, taken: int) -> int:
        """Where a band tensor of its own goes: `_over_dead_rows`."""
        return self._over_dead_rows(band, i, s, a, taken)

    def _pool_input(self, rows: tuple[int, int], current: dict[int, int]) -> int:
        """The pool's input this step: the last layer's band tensor."""
        return current[len(self.chain) - 1]

    def _dead_rows(self, j: int, s: int, after: bool) -> int:
        """Bytes at the top of window j that no step reads again (from step s + 1 on when
        its reader has had its turn in step s, `after`, else from step s on), while later
        steps still read the window."""
        w = self.windows.get(j)
        if w is None or j not in self.bases:
            return 0
        t = self.graph.tensors[self.chain[j].outputs[0]]
        first = self._next_read(j, s + 1 if after else s)
        if first >= t.shape[1]:
            return 0  # read no more: the window's life is not made longer
        dead = min(w.hi, first) - w.lo
        return max(0, dead) * (t.nbytes // t.shape[1])

    def _over_dead_rows(self, band: Layer, i: int, s: int, a: int, taken: int) -> int:
        """Put the output of band `band` (chain tensor i's rows of step s, read within the
        step) over rows of a window that no step reads again, when some hold it: no buffer
        of its own. Returns that window, or -1 (a buffer of its own).

        First the band's own input (a 3x3 depthwise band, stride 1, lines along the rows,
        rows of the same bytes in and out, reading window i - 1 from row `a`): its output
        over the input's first rows, which its line-buffer kernel writes line k only once
        input lines up to k + 1 are in the buffer, each pass of channels only its own
        channels (`DepthwiseConv2D3x3.inplace_inputs`' order). Else a window j whose reader
        has run this step (j < i - 1) or whose producer has not (j > i + 1: its rows move
        up, KEEP_ROWS, only then), over its top rows; not window `taken` (the rows the band
        reads, when they are over a window)."""
        y = band.outputs[0]
        need = self.b.tensors[y].nbytes
        if taken < 0 and i and not self.transient[i - 1] and self._in_place(band) \
                and a + self.b.tensors[y].shape[1] <= self._next_read(i - 1, s + 1):
            self.b.views[y] = self.b.views[band.inputs[0]]
            return i - 1
        for j in sorted(self.bases):
            if j == taken or i - 1 <= j <= i + 1:
                continue
            if self._dead_rows(j, s, after=j < i) >= need:
                self.b.views[y] = (self.bases[j], 0)
                return j
        return -1

    def _in_place(self, band: Layer) -> bool:
        """A 3x3 depthwise band that may write its output over its input's first rows."""
        from codegen.ops.depthwise_conv_2d import DepthwiseConv2D3x3

        p = band.params
        tx, ty = (self.b.tensors[t] for t in (band.inputs[0], band.outputs[0]))
        return isinstance(band, DepthwiseConv2D3x3) and not p["transposed"] \
            and (p["stride_a"], p["stride_b"]) == (1, 1) and ty.shape[1] <= tx.shape[1] \
            and tx.nbytes // tx.shape[1] == ty.nbytes // ty.shape[1]

    def _pool(self, x: int, sums: int, last: bool) -> tuple[Layer, int]:
        """The pool's layer for rows `x`, after the sums `sums` (-1: the first rows); and
        the sums it writes (a view of one int32 tensor), or -1 when it writes the mean."""
        from codegen.ops.average_pool_2d import global_pool_rows

        pool = self.stage[-1]
        if last:
            y = pool.outputs[0]
        else:
            base = self.b.tensors[pool.outputs[0]]
            y = len(self.b.tensors)
            shape = (1, 1, 1, base.shape[-1])
            if self.sums < 0:  # the int32 sums, of which each step's are views
                self.sums = y
                self.b.tensors.append(Tensor(y, f"{base.name} sums", shape, DType.INT32))
                y += 1
            self.b.tensors.append(Tensor(y, f"{base.name} sums {y}", shape, DType.INT32))
            self.b.views[y] = (self.sums, 0)
        inputs = (x,) if sums < 0 else (x, sums)
        op = Operator(self.b.next_op, "AVERAGE_POOL_2D", inputs, (y,), pool.op.options)
        self.b.next_op += 1
        graph = replace(self.graph, tensors=self.b.tensors)
        layer = global_pool_rows(pool, op, graph, inputs, y, sums < 0, last)  # type: ignore[arg-type]
        pixels = layer.params["pixels"]
        layer.stem = (f"l{pool.index}_average_pool_2d_rows{pixels}"
                      f"{'_first' if sums < 0 else ''}{'_last' if last else ''}")
        return layer, (-1 if last else y)


def stream(graph: Graph, layers: list[Layer], end: int, rows: int,
           wide: float = 0.0) -> Patched | None:
    """Layers 0..end (run order) streamed in steps of at most `rows` new rows per layer
    (`stream_steps`), the rows a layer's later steps read again kept in a window buffer:
    a chain (see above, `_Stream`) or a stage with residual branches (a tensor read by two
    layers, ADDs joining them: `_DagStream`, rows kept for every reader). None when the
    stage cannot be run so (neither, or a band a layer's module refuses). `wide`: 3x3
    depthwise bands take as many channels per pass as `wide` times their input's bytes of
    scratch hold (`_wide_lines`); 0: as their module gives a band."""
    stage = layers[:end + 1]
    pooled = _pooled(graph, stage)
    body = stage[:-1] if pooled else stage
    if not body:
        return None
    residual = not _chain(graph, body)
    if residual and not _dag(graph, body):
        return None
    if pooled and stage[-1].inputs[0] != body[-1].outputs[0]:
        return None
    steps = stream_steps(graph, body, rows)
    if steps is None or len(steps) < 2:
        return None
    builder = _Builder(graph)
    try:
        bands = (_DagStream if residual else _Stream)(builder, stage, pooled, steps,
                                                      wide).layers()
    except UnsupportedError:
        return None
    ext = replace(graph, tensors=builder.tensors)
    for layer in bands:
        layer.graph = ext
    macs = sum(layer.macs() for layer in bands)
    run = [*bands, *layers[end + 1:]]
    joins = sum(layer.opcode == "ADD" for layer in body) if residual else 0
    return Patched(ext, run, builder.views, tuple(layer.index for layer in stage), len(steps),
                   rows, macs - sum(layer.macs() for layer in stage), kept=True, joins=joins)


# -- streaming a stage with residual branches ----------------------------------------------
#
# A stage that is not a chain (a tensor read by two layers of the stage, an ADD joining two
# branches: a residual block) streams the same way, each layer in run order computing new
# rows per step: as many as the reader that reads furthest next needs (`stream_steps`, the
# steps of chains too: their one reader each), so the skip branch's reader lags behind the
# main branch by its halos and the window buffer of the tensor they share keeps every row
# its slowest reader still reads. Each row is computed once (no MACs again). Chains keep
# `_Stream` (their C as before).


def _made_in(stage: list[Layer]) -> dict[int, int]:
    """Tensor -> the position in the stage of the layer that makes it."""
    return {layer.outputs[0]: i for i, layer in enumerate(stage)}


def _dag(graph: Graph, stage: list[Layer]) -> bool:
    """Each layer a window of one tensor or an ADD, reading model inputs or tensors made
    before it in the stage; every tensor made but the last one read in the stage."""
    made = _made_in(stage)
    read: set[int] = set()
    for i, layer in enumerate(stage):
        if _rows_axis(layer) is None and layer.opcode != "ADD":
            return False
        for t in layer.inputs:
            if made.get(t, -1) >= i or (t not in made and t not in graph.inputs):
                return False
            read.add(t)
    return all(layer.outputs[0] in read for layer in stage[:-1])


def stream_steps(graph: Graph, stage: list[Layer],
                 rows: int) -> list[list[tuple[int, int]]] | None:
    """Per step, per layer of the stage (run order), the output rows [lo, hi) it computes:
    at most `rows`, no more than its readers' next `rows` rows read (the reader that reads
    furthest), and only those whose input rows are there. None when a step would make no
    progress."""
    made = _made_in(stage)
    heights = [graph.tensors[layer.outputs[0]].shape[1] for layer in stage]
    readers: list[list[tuple[int, int]]] = [[] for _ in stage]  # (reader, its input k)
    for j, layer in enumerate(stage):
        for k, t in enumerate(layer.inputs):
            if t in made:
                readers[made[t]].append((j, k))
    done = [0] * len(stage)
    steps: list[list[tuple[int, int]]] = []
    while done[-1] < heights[-1]:
        step = []
        for i, layer in enumerate(stage):
            lo = done[i]
            hi = min(heights[i], lo + rows)
            wants = [_needs(stage[j], graph, done[j], min(heights[j], done[j] + rows))[k][1]
                     for j, k in readers[i] if done[j] < heights[j]]
            if wants:
                hi = min(hi, max(wants))
            ready = [done[made[t]] if t in made else graph.tensors[t].shape[1]
                     for t in layer.inputs]
            while hi > lo and any(b > r for (_, b), r in
                                  zip(_needs(layer, graph, lo, hi), ready, strict=True)):
                hi -= 1
            done[i] = max(lo, hi)
            step.append((lo, done[i]))
        if all(lo == hi for lo, hi in step):
            return None
        steps.append(step)
    return steps


class _DagStream(_Stream):
    """The layers of a streamed stage with residual branches (see above): `_Stream`'s
    window buffers, KEEP_ROWS copies and pool steps, over a stage whose tensors may have
    several readers. A window drops, before its producer writes new rows, the rows no
    reader reads in that step or after; a tensor all of whose reads are rows made in the
    same step is a band tensor of its own per step."""

    def __init__(self, builder: _Builder, stage: list[Layer], pooled: bool,
                 steps: list[list[tuple[int, int]]], wide: float) -> None:
        super().__init__(builder, stage, pooled, [], wide)
        self.steps = steps
        self.made = made = _made_in(self.chain)
        m = len(self.chain)
        # per tensor of the stage and step: the rows each read of it reads
        self.dag_reads: list[list[list[tuple[int, int]]]] = [[[] for _ in steps]
                                                             for _ in range(m)]
        for s, step in enumerate(steps):
            for j, layer in enumerate(self.chain):
                lo, hi = step[j]
                if hi <= lo:
                    continue
                for t, rows in zip(layer.inputs, _needs(layer, self.graph, lo, hi),
                                   strict=True):
                    if t in made:
                        self.dag_reads[made[t]][s].append(rows)
            if pooled and step[m - 1][1] > step[m - 1][0]:
                self.dag_reads[m - 1][s].append(step[m - 1])
        self.transient = [all(lo <= a and b <= hi for s, (lo, hi) in enumerate(
            step[i] for step in steps) for a, b in self.dag_reads[i][s]) for i in range(m)]

    def _next_read(self, i: int, s: int) -> int:
        """The first row any reader of stage tensor i reads at step s or after (over all
        the steps: a reader lagging behind reads rows above the others' in later steps)."""
        height = self.graph.tensors[self.chain[i].outputs[0]].shape[1]
        return min((a for reads in self.dag_reads[i][s:] for a, _ in reads), default=height)

    def _input(self, t: int, a: int, b: int, current: dict[int, int], build: bool) -> int:
        """Rows [a, b) of tensor t, read this step: of a model input, of this step's band
        tensor, or of a window buffer."""
        if not build:
            return -1
        if t not in self.made:
            return self.b.view(t, 0, a, b)
        i = self.made[t]
        if self.transient[i]:
            return self.b.view(current[i], self.firsts[i], a, b)
        w = self.windows[i]
        if not w.lo <= a <= b <= w.hi:
            raise UnsupportedError("a read of rows its window does not hold")
        return self._view(i, a, b)

    def _inputs(self, i: int, lo: int, hi: int, current: dict[int, int],
                result: list[Layer], build: bool) -> tuple[list[int], int]:
        """Each input of stage layer i's band of rows [lo, hi) (`_input`), and the first
        row of its first."""
        layer = self.chain[i]
        wants = _needs(layer, self.graph, lo, hi)
        return [self._input(t, a, b, current, build)
                for t, (a, b) in zip(layer.inputs, wants, strict=True)], wants[0][0]

    def _place(self, band: Layer, i: int, s: int, a: int, taken: int) -> int:
        """A band tensor of its own keeps its own buffer here."""
        return -1

    def _pool_input(self, rows: tuple[int, int], current: dict[int, int]) -> int:
        """The pool's input this step: its rows of the last layer's output."""
        return self._input(self.chain[-1].outputs[0], *rows, current, True)
