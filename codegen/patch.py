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

from codegen.errors import UnsupportedError
from codegen.model.ir import Graph, Operator, Tensor
from codegen.ops import prepare_layer
from codegen.ops._conv import ConvLayer
from codegen.ops._pool import PoolLayer
from codegen.ops._window import BAND_ROWS, Axis
from codegen.ops.base import Layer
from codegen.ops.depthwise_conv_2d import WHOLE_LINES

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
        prepared.stem = f"l{layer.index}_{op.opcode.lower()}_band" \
                        f"{sum(k[0] == layer.index for k in self.prepared)}"
        self.prepared[key] = prepared
        return prepared


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
