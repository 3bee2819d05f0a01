"""Models for the operators of tests/test_ops_more.py (ARG_MAX, GATHER, the comparisons,
RESIZE_BILINEAR, BATCH_MATMUL, ...): one operator per `Case`, with typed operands.

A `Case` names its operator, its operands (`X`: a graph input, `C`: a constant) and its
outputs (`Y`), each with its own type, shape and quantization; `single(case)` writes a model
of one case and `bundle(cases)` puts many side by side in one model (each with its own graph
inputs and outputs), so that one C build covers many configurations while a mismatch still
names its output. Graph inputs may carry a value range (indices must stay inside their
dimension for TFLM, which does not check them); `case_inputs` draws samples in those ranges
plus the all-low and all-high samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from support.builder import ModelBuilder, Q

__all__ = ["ModelBuilder", "Q", "schema"]

Shape = tuple[int, ...]
DEFAULT_Q = Q(0.05, -3)
WIDE = Q(0.0007, -128)  # tiny scale, zero point at the bottom
COARSE = Q(91.0, 127)  # huge scale, zero point at the top
CONV_OUT_Q = Q(0.2, 7)

_FULL = {"int8": (-128, 127), "int32": (-(2**31), 2**31 - 1), "bool": (0, 1)}


@dataclass(frozen=True)
class X:
    """A graph input; values drawn in [low, high] (default: the type's range)."""

    shape: Shape
    dtype: str = "int8"
    quant: Q | None = DEFAULT_Q
    low: int | None = None
    high: int | None = None

    @property
    def bounds(self) -> tuple[int, int]:
        lo, hi = _FULL[self.dtype]
        return (lo if self.low is None else self.low, hi if self.high is None else self.high)


@dataclass(frozen=True)
class C:
    """A constant operand."""

    values: Any
    dtype: str = "int32"
    quant: Q | None = None


@dataclass(frozen=True)
class Y:
    """An output (a graph output)."""

    shape: Shape
    dtype: str = "int8"
    quant: Q | None = DEFAULT_Q


@dataclass(frozen=True)
class Case:
    opcode: str
    operands: tuple[X | C | None, ...]  # None: an omitted optional operand (-1)
    outputs: tuple[Y, ...]
    options: Any = None
    custom_code: str | None = None
    custom_options: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # test-only notes


def _quant(dtype: str, quant: Q | None) -> Q | None:
    return quant if dtype in ("int8", "uint8", "int16") else None


def add_case(b: ModelBuilder, case: Case, prefix: str) -> tuple[list[int], list[int]]:
    """Add the case's tensors and operator to `b`; return (graph inputs, graph outputs)."""
    operands: list[int] = []
    inputs: list[int] = []
    for k, o in enumerate(case.operands):
        if o is None:
            operands.append(-1)
        elif isinstance(o, X):
            t = b.add_tensor(f"{prefix}_x{k}", o.shape, o.dtype, quant=_quant(o.dtype, o.quant))
            operands.append(t)
            inputs.append(t)
        else:
            data = np.asarray(o.values)
            operands.append(b.add_tensor(f"{prefix}_c{k}", data.shape, o.dtype,
                                         quant=_quant(o.dtype, o.quant), data=data))
    outputs = [b.add_tensor(f"{prefix}_y{k}", y.shape, y.dtype, quant=_quant(y.dtype, y.quant))
               for k, y in enumerate(case.outputs)]
    b.add_op("CUSTOM" if case.custom_code else case.opcode, operands, outputs, case.options,
             custom_code=case.custom_code, custom_options=case.custom_options)
    return inputs, outputs


def single(case: Case | Dilated) -> bytes:
    return bundle([case])


def bundle(cases: Sequence[Case | Dilated]) -> bytes:
    """The cases side by side (a Dilated case adds its whole chain)."""
    b = ModelBuilder()
    ins: list[int] = []
    outs: list[int] = []
    for k, case in enumerate(cases):
        if isinstance(case, Dilated):
            x, y = add_dilated(b, case, f"c{k}")
            xs, ys = [x], [y]
        else:
            xs, ys = add_case(b, case, f"c{k}")
        ins += xs
        outs += ys
    b.set_io(ins, outs)
    return b.build()


def case_inputs(cases: Sequence[Case | Dilated], count: int, seed: int) -> list[np.ndarray]:
    """For the graph inputs of bundle(cases), in order: the all-low sample, the all-high
    sample, then `count` samples drawn uniformly in each input's range."""
    rng = np.random.default_rng(seed)
    arrays = []
    for case in cases:
        operands = ([X(case.shape, quant=case.in_q)] if isinstance(case, Dilated)
                    else case.operands)
        for o in operands:
            if not isinstance(o, X):
                continue
            lo, hi = o.bounds
            edges = np.stack([np.full(o.shape, lo), np.full(o.shape, hi)])
            drawn = rng.integers(lo, hi + 1, size=(count, *o.shape), dtype=np.int64)
            np_dtype = np.bool_ if o.dtype == "bool" else np.dtype(o.dtype)
            arrays.append(np.concatenate([edges, drawn]).astype(np_dtype))
    return arrays


# -- options ------------------------------------------------------------------------------


def options(kind: str, **fields: Any) -> Any:
    """A schema options object by name, e.g. options("Gather", axis=1, batchDims=0)."""
    o = getattr(schema, f"{kind}OptionsT")()
    for key, value in fields.items():
        if not hasattr(o, key):
            raise AttributeError(f"{kind}Options has no field {key}")
        setattr(o, key, value)
    return o


# -- case factories -------------------------------------------------------------------------


def arg_min_max(opcode: str, shape: Shape, axis: int, quant: Q = DEFAULT_Q) -> Case:
    out = tuple(d for k, d in enumerate(shape) if k != axis % len(shape))
    return Case(opcode, (X(shape, quant=quant), C([axis])), (Y(out, "int32"),),
                options("ArgMax" if opcode == "ARG_MAX" else "ArgMin",
                        outputType=schema.TensorType.INT32))


def logical(opcode: str, *shapes: Shape, const: Any = None) -> Case:
    """LOGICAL_AND/OR of the shapes (a constant second operand when `const` is given), or
    LOGICAL_NOT of one shape."""
    operands: list[X | C] = [X(shapes[0], "bool")]
    if len(shapes) > 1:
        operands.append(X(shapes[1], "bool"))
    if const is not None:
        operands.append(C(const, "bool"))
    out = np.broadcast_shapes(*(np.shape(o.values) if isinstance(o, C) else o.shape
                                for o in operands))
    return Case(opcode, tuple(operands), (Y(tuple(out), "bool"),))


def compare(opcode: str, a: X | C, b: X | C) -> Case:
    shapes = [np.shape(o.values) if isinstance(o, C) else o.shape for o in (a, b)]
    return Case(opcode, (a, b), (Y(tuple(np.broadcast_shapes(*shapes)), "bool"),))


def select_v2(condition: X | C, x: X | C, y: X | C, quant: Q = DEFAULT_Q) -> Case:
    shapes = [np.shape(o.values) if isinstance(o, C) else o.shape for o in (condition, x, y)]
    return Case("SELECT_V2", (condition, x, y),
                (Y(tuple(np.broadcast_shapes(*shapes)), quant=quant),))


def x32(shape: Shape, low: int | None = None, high: int | None = None) -> X:
    return X(shape, "int32", None, low, high)


def xb(shape: Shape) -> X:
    return X(shape, "bool", None)


def unary(opcode: str, shape: Shape, in_q: Q, out_q: Q, low: int | None = None) -> Case:
    """A one-input int8 operator of the input's shape (values from `low` up)."""
    return Case(opcode, (X(shape, quant=in_q, low=low),), (Y(shape, quant=out_q),))


def binary(opcode: str, a: X | C, b: X | C, out_q: Q | None = DEFAULT_Q,
           out_dtype: str | None = None, options: Any = None) -> Case:
    shapes = [np.shape(o.values) if isinstance(o, C) else o.shape for o in (a, b)]
    dtype = out_dtype or (a.dtype if isinstance(a, X) else "int8")
    return Case(opcode, (a, b), (Y(tuple(np.broadcast_shapes(*shapes)), dtype, out_q),),
                options)


def reduce(opcode: str, shape: Shape, axes: Sequence[int], keep_dims: bool,
           in_q: Q = DEFAULT_Q, out_q: Q | None = None) -> Case:
    resolved = {a % len(shape) for a in axes}
    out = tuple(1 if d in resolved else n for d, n in enumerate(shape)
                if keep_dims or d not in resolved)
    return Case(opcode, (X(shape, quant=in_q), C(list(axes))), (Y(out, quant=out_q or in_q),),
                options("Reducer", keepDims=keep_dims))


def resize_bilinear(shape: Shape, size: tuple[int, int], align_corners: bool,
                    half_pixel_centers: bool, quant: Q = DEFAULT_Q) -> Case:
    out = (shape[0], *size, shape[3])
    return Case("RESIZE_BILINEAR", (X(shape, quant=quant), C(list(size))),
                (Y(out, quant=quant),),
                options("ResizeBilinear", alignCorners=align_corners,
                        halfPixelCenters=half_pixel_centers))


def space_to_batch(shape: Shape, block: Sequence[int], paddings: Sequence[Sequence[int]],
                   quant: Q = DEFAULT_Q) -> Case:
    spatial = [shape[1] + sum(paddings[0])] + ([shape[2] + sum(paddings[1])]
                                                if len(shape) == 4 else [])
    blocks = int(np.prod(block))
    out = (shape[0] * blocks, *(s // b for s, b in zip(spatial, block, strict=True)),
           shape[-1])
    padded = any(any(p) for p in paddings)
    return Case("SPACE_TO_BATCH_ND", (X(shape, quant=quant), C(list(block)), C(paddings)),
                (Y(out, quant=quant),), extra={"fresh_tflm": padded})


def batch_to_space(shape: Shape, block: Sequence[int], crops: Sequence[Sequence[int]],
                   quant: Q = DEFAULT_Q) -> Case:
    spatial = [shape[1] * block[0] - sum(crops[0])] + (
        [shape[2] * block[1] - sum(crops[1])] if len(shape) == 4 else [])
    out = (shape[0] // int(np.prod(block)), *spatial, shape[-1])
    return Case("BATCH_TO_SPACE_ND", (X(shape, quant=quant), C(list(block)), C(crops)),
                (Y(out, quant=quant),))


def depth_space(opcode: str, shape: Shape, block_size: int, quant: Q = DEFAULT_Q) -> Case:
    b, h, w, c = shape
    bs = block_size
    out = ((b, h * bs, w * bs, c // (bs * bs)) if opcode == "DEPTH_TO_SPACE"
           else (b, h // bs, w // bs, c * bs * bs))
    kind = "DepthToSpace" if opcode == "DEPTH_TO_SPACE" else "SpaceToDepth"
    return Case(opcode, (X(shape, quant=quant),), (Y(out, quant=quant),),
                options(kind, blockSize=block_size))


# -- dilated convolutions as SPACE_TO_BATCH_ND -> CONV_2D / DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND


@dataclass(frozen=True)
class Dilated:
    """One dilated convolution written as TF's space_to_batch chain (the paddings and crops
    of tf.nn.atrous_conv2d / with_space_to_batch): a 4-D NHWC input, or a 3-D NTC input
    reaching a 1 x k convolution through EXPAND_DIMS and a RESHAPE back (Keras Conv1D)."""

    shape: Shape
    block: tuple[int, ...]
    kernel: tuple[int, int]  # taps (rows, columns) of the convolution
    out_c: int = 4
    padding: str = "SAME"
    depthwise: bool = False
    in_q: Q = DEFAULT_Q
    out_q: Q = CONV_OUT_Q
    activation: str = "NONE"
    bias: bool = True
    seed: int = 0

    @property
    def extra(self) -> dict[str, Any]:
        # SPACE_TO_BATCH_ND's padding is memory TFLM never writes: a fresh process.
        return {"fresh_tflm": True}

    def spatial_taps(self) -> tuple[int, ...]:
        return (self.kernel[1],) if len(self.shape) == 3 else self.kernel

    def paddings_crops(self) -> tuple[list[list[int]], list[list[int]], list[int]]:
        """TF's required_space_to_batch_paddings: the base padding of the mode, then what
        makes each padded size a multiple of the block (cropped off the end again)."""
        pads, crops, outs = [], [], []
        for size, taps, block in zip(self.shape[1:-1], self.spatial_taps(), self.block,
                                     strict=True):
            total = (taps - 1) * block if self.padding == "SAME" else 0
            start, end = total // 2, total - total // 2
            extra = (-(size + start + end)) % block
            pads.append([start, end + extra])
            crops.append([0, extra])
            outs.append(size if self.padding == "SAME" else size - (taps - 1) * block)
        return pads, crops, outs


def add_dilated(b: ModelBuilder, d: Dilated, prefix: str) -> tuple[int, int]:
    from support.builder import bias_scales

    rng = np.random.default_rng(d.seed)
    pads, crops, outs = d.paddings_crops()
    x = b.add_tensor(f"{prefix}_x", d.shape, "int8", quant=d.in_q)
    blocks = int(np.prod(d.block))
    padded = [s + p[0] + p[1] for s, p in zip(d.shape[1:-1], pads, strict=True)]
    s2b_shape = (d.shape[0] * blocks, *(p // k for p, k in zip(padded, d.block, strict=True)),
                 d.shape[-1])
    s2b = b.add_tensor(f"{prefix}_s2b", s2b_shape, "int8", quant=d.in_q)
    b.add_op("SPACE_TO_BATCH_ND", [x, b.add_tensor(f"{prefix}_block", (len(d.block),), "int32",
                                                   data=list(d.block)),
                                   b.add_tensor(f"{prefix}_pads", (len(pads), 2), "int32",
                                                data=pads)], [s2b])
    conv_in = s2b
    if len(d.shape) == 3:
        conv_in = b.add_tensor(f"{prefix}_expanded", (s2b_shape[0], 1, *s2b_shape[1:]), "int8",
                               quant=d.in_q)
        b.add_op("EXPAND_DIMS", [s2b, b.add_tensor(f"{prefix}_axis", (), "int32", data=1)],
                 [conv_in])
    in_c = d.shape[-1]
    kh, kw = d.kernel
    out_c = in_c if d.depthwise else d.out_c
    w_shape = (1, kh, kw, out_c) if d.depthwise else (out_c, kh, kw, in_c)
    w_scales = [float(s) for s in rng.uniform(0.002, 0.02, out_c)]
    w = b.add_tensor(f"{prefix}_w", w_shape, "int8",
                     quant=Q(w_scales, 0, axis=3 if d.depthwise else 0),
                     data=rng.integers(-127, 128, w_shape))
    bias = -1
    if d.bias:
        scales = bias_scales(d.in_q.scales[0], w_scales)
        bias = b.add_tensor(f"{prefix}_bias", (out_c,), "int32", quant=Q(scales, 0),
                            data=rng.integers(-3000, 3000, out_c))
    conv_in_shape = b.model.subgraphs[b.subgraph].tensors[conv_in].shape
    conv_h = conv_in_shape[1] - kh + 1
    conv_w = conv_in_shape[2] - kw + 1
    conv_out = b.add_tensor(f"{prefix}_conv", (conv_in_shape[0], conv_h, conv_w, out_c), "int8",
                            quant=d.out_q)
    from support.builder import activation_code

    if d.depthwise:
        o = options("DepthwiseConv2D", padding=schema.Padding.VALID, strideW=1, strideH=1,
                    depthMultiplier=1, dilationWFactor=1, dilationHFactor=1,
                    fusedActivationFunction=activation_code(d.activation))
        b.add_op("DEPTHWISE_CONV_2D", [conv_in, w, bias], [conv_out], o)
    else:
        o = options("Conv2D", padding=schema.Padding.VALID, strideW=1, strideH=1,
                    dilationWFactor=1, dilationHFactor=1,
                    fusedActivationFunction=activation_code(d.activation))
        b.add_op("CONV_2D", [conv_in, w, bias], [conv_out], o)
    b2s_in = conv_out
    if len(d.shape) == 3:
        b2s_in = b.add_tensor(f"{prefix}_squeezed", (conv_in_shape[0], conv_w, out_c), "int8",
                              quant=d.out_q)
        b.add_op("RESHAPE", [conv_out, b.add_tensor(f"{prefix}_newshape", (3,), "int32",
                                                    data=[conv_in_shape[0], conv_w, out_c])],
                 [b2s_in])
    y = b.add_tensor(f"{prefix}_y", (d.shape[0], *outs, out_c), "int8", quant=d.out_q)
    b.add_op("BATCH_TO_SPACE_ND", [b2s_in, b.add_tensor(f"{prefix}_block2", (len(d.block),),
                                                        "int32", data=list(d.block)),
                                   b.add_tensor(f"{prefix}_crops", (len(crops), 2), "int32",
                                                data=crops)], [y])
    return x, y


def dilated_model(chains: Sequence[Dilated]) -> bytes:
    b = ModelBuilder("dilated convolutions")
    ins, outs = [], []
    for k, d in enumerate(chains):
        x, y = add_dilated(b, d, f"d{k}")
        ins.append(x)
        outs.append(y)
    b.set_io(ins, outs)
    return b.build()


def batch_matmul(lhs: X | C, rhs: X | C, adj_x: bool = False, adj_y: bool = False,
                 out_q: Q = CONV_OUT_Q) -> Case:
    shapes = [np.shape(o.values) if isinstance(o, C) else o.shape for o in (lhs, rhs)]
    rank = max(len(s) for s in shapes)
    lhs_s = (1,) * (rank - len(shapes[0])) + tuple(shapes[0])
    rhs_s = (1,) * (rank - len(shapes[1])) + tuple(shapes[1])
    batch = tuple(max(a, b) for a, b in zip(lhs_s[:-2], rhs_s[:-2], strict=True))
    rows = lhs_s[-1] if adj_x else lhs_s[-2]
    cols = rhs_s[-2] if adj_y else rhs_s[-1]
    return Case("BATCH_MATMUL", (lhs, rhs), (Y((*batch, rows, cols), quant=out_q),),
                options("BatchMatMul", adjX=adj_x, adjY=adj_y))


def int8_constant(shape: Shape, quant: Q, seed: int) -> C:
    return C(np.random.default_rng(seed).integers(-128, 128, shape), "int8", quant)


def reverse(shape: Shape, axes: Sequence[int], dtype: str = "int8", quant: Q = DEFAULT_Q) -> Case:
    return Case("REVERSE_V2", (X(shape, dtype, quant), C(list(axes))),
                (Y(shape, dtype, quant),))


def mirror_pad(shape: Shape, paddings: Sequence[Sequence[int]], reflect: bool,
               quant: Q = DEFAULT_Q, dtype: str = "int32") -> Case:
    out = tuple(d + a + b for d, (a, b) in zip(shape, paddings, strict=True))
    return Case("MIRROR_PAD", (X(shape, quant=quant), C(paddings, dtype)), (Y(out, quant=quant),),
                options("MirrorPad", mode=0 if reflect else 1))


def broadcast_to(shape: Shape, target: Sequence[int], dtype: str = "int8",
                 quant: Q = DEFAULT_Q, shape_dtype: str = "int32") -> Case:
    return Case("BROADCAST_TO", (X(shape, dtype, quant), C(list(target), shape_dtype)),
                (Y(tuple(target), dtype, quant),))


def gather(params: X | C, indices: X | C, axis: int = 0, batch_dims: int = 0,
           quant: Q = DEFAULT_Q) -> Case:
    shape = np.shape(params.values) if isinstance(params, C) else params.shape
    ishape = np.shape(indices.values) if isinstance(indices, C) else indices.shape
    a = axis % len(shape)
    out = (*shape[:a], *ishape[batch_dims:], *shape[a + 1:])
    return Case("GATHER", (params, indices), (Y(tuple(out), quant=quant),),
                options("Gather", axis=axis, batchDims=batch_dims))


def gather_nd(params: X | C, indices: X | C, quant: Q = DEFAULT_Q) -> Case:
    shape = np.shape(params.values) if isinstance(params, C) else params.shape
    ishape = np.shape(indices.values) if isinstance(indices, C) else indices.shape
    out = (*ishape[:-1], *shape[ishape[-1]:])
    return Case("GATHER_ND", (params, indices), (Y(tuple(out), quant=quant),))


def embedding_lookup(lookup: X | C, table: X | C, quant: Q = DEFAULT_Q) -> Case:
    shape = np.shape(table.values) if isinstance(table, C) else table.shape
    ishape = np.shape(lookup.values) if isinstance(lookup, C) else lookup.shape
    return Case("EMBEDDING_LOOKUP", (lookup, table), (Y((ishape[0], *shape[1:]), quant=quant),))


def table(shape: Shape, seed: int, quant: Q = DEFAULT_Q) -> C:
    return C(np.random.default_rng(seed).integers(-128, 128, shape), "int8", quant)


def add_n(operands: Sequence[X | C], out_q: Q = DEFAULT_Q) -> Case:
    first = operands[0]
    shape = np.shape(first.values) if isinstance(first, C) else first.shape
    return Case("ADD_N", tuple(operands), (Y(tuple(shape), quant=out_q),))


def cumsum(shape: Shape, axis: int, exclusive: bool, reverse: bool, in_q: Q = DEFAULT_Q,
           out_q: Q = DEFAULT_Q) -> Case:
    return Case("CUMSUM", (X(shape, quant=in_q), C([axis])), (Y(shape, quant=out_q),),
                options("Cumsum", exclusive=exclusive, reverse=reverse))


def dynamic_update_slice(operand: X | C, update: X | C, indices: X | C,
                         quant: Q | None = DEFAULT_Q) -> Case:
    shape = np.shape(operand.values) if isinstance(operand, C) else operand.shape
    dtype = operand.dtype if isinstance(operand, X) else "int8"
    return Case("DYNAMIC_UPDATE_SLICE", (operand, update, indices),
                (Y(tuple(shape), dtype, quant),))
