"""Fusions: DEQUANTIZE -> NEG -> QUANTIZE folded into one int8 NEG before validation (see
codegen/ops/neg.py), and, after operator preparation, SPACE_TO_BATCH_ND ->
CONV_2D/DEPTHWISE_CONV_2D ->
BATCH_TO_SPACE_ND (a dilated convolution as older TensorFlow converters wrote it, with an
optional EXPAND_DIMS/RESHAPE pair around the convolution for Conv1D) becomes one dilated
convolution on the existing kernels: no intermediate tensors, no extra buffers.

Why it is exact. With block d, paddings (pt, pb) and crops (ct, cb) along a spatial axis, and
a VALID, stride-1 convolution of k taps in between, final output position o comes from
block offset (o + ct) % d, and that convolution output reads padded positions
o + ct + j * d, i.e. input positions o + (ct - pt) + j * d for j < k: a dilated convolution
(dilation d) with padding P = pt - ct before the first element. The fused layer is the
convolution TFLM's SAME or VALID formula gives when it has that padding and the final
output's size (otherwise nothing is fused). Inside the input both read the same values.
Outside it, SPACE_TO_BATCH_ND leaves the raw value 0 (see space_to_batch_nd.py) where a
convolution skips the tap, i.e. reads the zero point: so the fused convolution reads its input
as if the zero point were 0, and the real zero point goes into the bias,
    bias' = bias - zp * sum of the channel's weights (over all taps),
which makes sum_taps w * (x_padded - zp) + bias exact everywhere. A bias' outside int32
keeps the layers unfused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from codegen.errors import UnsupportedError
from codegen.model.ir import DType, Graph, Operator, Quantization, Tensor
from codegen.ops import prepare_layer
from codegen.ops._window import axis
from codegen.ops.base import CArray, Layer
from codegen.quant import INT32_MAX, INT32_MIN

_CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")
_VIEWS = ("RESHAPE", "EXPAND_DIMS", "SQUEEZE")


@dataclass
class DilatedConvolution(Layer):
    """A convolution prepared on 4-D views of the chain's input and output (which may be
    3-D): everything is the inner layer's, the reference reshapes around it."""

    inner: Layer | None = None
    fused: tuple[int, ...] = ()  # the operator indices the layer replaces

    def _inner(self) -> Layer:
        assert self.inner is not None
        return self.inner

    @property  # type: ignore[override]
    def runtime(self) -> tuple[str, ...]:
        return tuple(self._inner().runtime)

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        inner = self._inner()
        n = inputs[0].shape[0]
        view = inputs[0].reshape(n, *inner.in_tensor().shape)
        out = inner.reference([view])[0]
        return [out.reshape(n, *self.out_tensor().shape)]

    def kernel(self, symbol: str) -> str:
        return self._inner().kernel(symbol)

    def constants(self) -> list[CArray]:
        return self._inner().constants()

    def macs(self) -> int:
        return self._inner().macs()

    def inplace_inputs(self) -> tuple[int, ...]:
        return self._inner().inplace_inputs()

    def scratch_bytes(self) -> int:
        return self._inner().scratch_bytes()

    def describe(self) -> list[tuple[str, str]]:
        ops = ", ".join(str(i) for i in self.fused)
        return [("fused", f"operators {ops} as one dilated convolution"),
                *self._inner().describe()]


@dataclass(frozen=True)
class _Chain:
    s2b: Layer
    before: Layer | None
    conv: Layer
    after: Layer | None
    b2s: Layer


def fuse_dilated_convolutions(graph: Graph, layers: list[Layer],
                              numerics: str = "tflm") -> list[Layer]:
    """`layers` with every fusable chain replaced by one DilatedConvolution (placed where the
    convolution was)."""
    for chain in _chains(graph, layers):
        fused = _fuse(graph, chain, numerics)
        if fused is None:
            continue
        gone = {id(chain.s2b), id(chain.before), id(chain.after), id(chain.b2s)}
        layers = [fused if layer is chain.conv else layer for layer in layers
                  if id(layer) not in gone]
    return layers


def _chains(graph: Graph, layers: list[Layer]) -> list[_Chain]:
    consumers: dict[int, list[Layer]] = {}
    for layer in layers:
        for t in layer.inputs:
            consumers.setdefault(t, []).append(layer)

    def next_layer(layer: Layer) -> Layer | None:
        t = layer.outputs[0]
        readers = consumers.get(t, [])
        if len(layer.outputs) != 1 or t in graph.outputs or len(readers) != 1:
            return None
        return readers[0]

    chains = []
    for s2b in layers:
        if s2b.opcode != "SPACE_TO_BATCH_ND":
            continue
        node = next_layer(s2b)
        before = node if node is not None and node.opcode in _VIEWS else None
        conv = next_layer(before) if before is not None else node
        if conv is None or conv.opcode not in _CONVOLUTIONS:
            continue
        node = next_layer(conv)
        after = node if node is not None and node.opcode in _VIEWS else None
        b2s = next_layer(after) if after is not None else node
        if b2s is None or b2s.opcode != "BATCH_TO_SPACE_ND":
            continue
        if (before is None) != (after is None):
            continue
        chains.append(_Chain(s2b, before, conv, after, b2s))
    return chains


def _fuse(graph: Graph, chain: _Chain, numerics: str) -> DilatedConvolution | None:
    s2b, conv, b2s = chain.s2b, chain.conv, chain.b2s
    o = conv.op.options
    if (str(o.get("padding")) != "VALID" or int(o.get("stride_h", 1)) != 1
            or int(o.get("stride_w", 1)) != 1 or int(o.get("dilation_h_factor", 1)) != 1
            or int(o.get("dilation_w_factor", 1)) != 1):
        return None
    if s2b.params["block"] != b2s.params["block"]:
        return None
    x, y = s2b.in_tensor(), b2s.out_tensor()
    conv_in, conv_out = conv.in_tensor(), conv.out_tensor()
    if len(conv_in.shape) != 4 or len(conv_out.shape) != 4:
        return None
    # Which convolution axis (1: rows, 2: columns) each space-to-batch axis became.
    axes = _spatial_axes(x, s2b.out_tensor(), conv_in)
    if axes is None or x.shape[0] != y.shape[0]:
        return None
    x_view = _view_shape(x.shape, axes, conv_in.shape)
    y_view = _view_shape(y.shape, axes, conv_out.shape)
    if x_view is None or y_view is None:
        return None
    weights = graph.tensors[conv.op.inputs[1]]
    taps = {1: int(weights.shape[1]), 2: int(weights.shape[2])}
    dilation = {1: 1, 2: 1}
    pads = {1: 0, 2: 0}
    blocks, paddings, crops = s2b.params["block"], s2b.params["paddings"], b2s.params["crops"]
    for k, conv_axis in enumerate(axes):
        dilation[conv_axis] = int(blocks[k])  # type: ignore[index]
        pads[conv_axis] = int(paddings[k][0]) - int(crops[k][0])  # type: ignore[index]
    padding = _padding_mode(x_view, y_view, taps, dilation, pads)
    if padding is None:
        return None
    bias = _shifted_bias(graph, conv.op, weights, x)
    if bias is False:
        return None
    return _prepare(graph, chain, x, y, x_view, y_view, padding, dilation, bias, numerics)


def _spatial_axes(x: Tensor, s2b_out: Tensor, conv_in: Tensor) -> tuple[int, ...] | None:
    """The convolution axes of the space-to-batch spatial axes: 4-D keeps (1, 2); 3-D
    (N, T, C) reaches a convolution of (N, 1, T, C) or (N, T, 1, C)."""
    if len(x.shape) == 4:
        return (1, 2) if tuple(s2b_out.shape) == tuple(conv_in.shape) else None
    batch, steps, depth = s2b_out.shape
    if tuple(conv_in.shape) == (batch, 1, steps, depth):
        return (2,)
    if tuple(conv_in.shape) == (batch, steps, 1, depth):
        return (1,)
    return None


def _view_shape(shape: tuple[int, ...], axes: tuple[int, ...],
                conv_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """A (possibly 3-D) tensor seen as the convolution sees it (channels as the
    convolution's)."""
    if len(shape) == 4:
        view = tuple(shape)
    else:
        batch, steps, depth = shape
        view = (batch, 1, steps, depth) if axes == (2,) else (batch, steps, 1, depth)
    return view if view[3] == conv_shape[3] else None


def _padding_mode(x: tuple[int, ...], y: tuple[int, ...], taps: dict[int, int],
                  dilation: dict[int, int], pads: dict[int, int]) -> str | None:
    """SAME or VALID, whichever of TFLM's formulas gives these output sizes and paddings."""
    for mode in ("VALID", "SAME"):
        fits = True
        for a in (1, 2):
            ax = axis(mode, x[a], taps[a], 1, dilation[a])
            fits &= ax.out == y[a] and ax.pad == pads[a]
        if fits:
            return mode
    return None


def _shifted_bias(graph: Graph, op: Operator, weights: Tensor,
                  x: Tensor) -> np.ndarray | bool | None:
    """bias - zp * (sum of each output channel's weights), None when there is neither a bias
    nor a zero point, False when it leaves int32."""
    out_c = int(weights.shape[3] if op.opcode == "DEPTHWISE_CONV_2D" else weights.shape[0])
    has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
    bias = (np.asarray(graph.tensors[op.inputs[2]].data, dtype=np.int64).ravel() if has_bias
            else np.zeros(out_c, dtype=np.int64))
    zero_point = int(x.quant.zero_point) if x.quant is not None else 0
    if zero_point == 0:
        return bias if has_bias else None
    w = np.asarray(weights.data, dtype=np.int64)
    sums = (w.sum(axis=(0, 1, 2)) if op.opcode == "DEPTHWISE_CONV_2D"
            else w.reshape(out_c, -1).sum(axis=1))
    shifted = bias - zero_point * sums
    if shifted.min() < INT32_MIN or shifted.max() > INT32_MAX:
        return False
    return shifted


def _prepare(graph: Graph, chain: _Chain, x: Tensor, y: Tensor, x_view: tuple[int, ...],
             y_view: tuple[int, ...], padding: str, dilation: dict[int, int],
             bias: np.ndarray | None, numerics: str) -> DilatedConvolution | None:
    conv = chain.conv
    weights = graph.tensors[conv.op.inputs[1]]
    tensors = list(graph.tensors)
    scale = x.quant.scale if x.quant is not None else 1.0
    tensors[x.index] = replace(x, shape=x_view, quant=Quantization((scale,), (0,)), data=None)
    tensors[y.index] = replace(y, shape=y_view)
    bias_index = -1
    if bias is not None:
        original = (graph.tensors[conv.op.inputs[2]]
                    if len(conv.op.inputs) > 2 and conv.op.inputs[2] >= 0 else None)
        bias_q = original.quant if original is not None else Quantization(
            tuple(float(np.float32(scale) * np.float32(s)) for s in weights.quant.scales),
            (0,) * len(weights.quant.scales))
        bias_index = len(tensors)
        tensors.append(Tensor(bias_index, f"{weights.name} (dilated bias)", (bias.size,),
                              DType.INT32, bias_q, bias.astype(np.int32)))
    options = {**conv.op.options, "padding": padding,
               "dilation_h_factor": dilation[1], "dilation_w_factor": dilation[2]}
    op = Operator(conv.op.index, conv.op.opcode, (x.index, conv.op.inputs[1], bias_index),
                  (y.index,), options, conv.op.version)
    view_graph = replace(graph, tensors=tensors)
    try:
        inner = prepare_layer(op, view_graph, numerics)
    except UnsupportedError:
        return None
    fused = tuple(sorted(layer.index for layer in (chain.s2b, chain.before, conv, chain.after,
                                                    chain.b2s) if layer is not None))
    return DilatedConvolution(op, graph, inputs=(x.index,), outputs=(y.index,),
                              inner=inner, fused=fused)


# -- DEQUANTIZE -> NEG -> QUANTIZE ---------------------------------------------------------


def fold_float_negations(graph: Graph) -> Graph:
    """The graph with every int8 -> DEQUANTIZE -> float NEG -> QUANTIZE -> int8 chain (float
    tensors used by nothing else) replaced by one NEG on the int8 tensors, marked for
    codegen/ops/neg.py; other graphs are returned unchanged."""
    from codegen.ops.neg import FOLDED

    producer = {t: op for op in graph.operators for t in op.outputs}
    readers: dict[int, list[Operator]] = {}
    for op in graph.operators:
        for t in op.inputs:
            readers.setdefault(t, []).append(op)
    replace_at: dict[int, Operator] = {}
    gone: set[int] = set()
    for op in graph.operators:
        if op.opcode != "NEG" or len(op.inputs) != 1 or len(op.outputs) != 1:
            continue
        dequantize = producer.get(op.inputs[0])
        after = readers.get(op.outputs[0], [])
        if dequantize is None or dequantize.opcode != "DEQUANTIZE" or len(after) != 1:
            continue
        quantize = after[0]
        middle = (op.inputs[0], op.outputs[0])
        if (quantize.opcode != "QUANTIZE" or len(readers.get(op.inputs[0], [])) != 1
                or any(t in graph.outputs for t in middle)
                or any(graph.tensors[t].dtype is not DType.FLOAT32 for t in middle)):
            continue
        source, target = dequantize.inputs[0], quantize.outputs[0]
        if any(graph.tensors[t].dtype is not DType.INT8 for t in (source, target)):
            continue
        replace_at[op.index] = Operator(op.index, "NEG", (source,), (target,),
                                        {FOLDED: (dequantize.index, quantize.index)},
                                        op.version)
        gone.update((dequantize.index, quantize.index))
    if not replace_at:
        return graph
    operators = [replace_at.get(op.index, op) for op in graph.operators if op.index not in gone]
    return replace(graph, operators=operators)
