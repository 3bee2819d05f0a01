"""Models for the data-movement operators (tests/test_ops_data.py).

Builder-made models come from `Case`s: one operator on graph inputs of its own, writing graph
outputs of its own, with constant operands (paddings, begin/end, axis, perm, size) given by
position. `single(case)` is a model of one case; `bundle(cases)` puts several cases side by
side in one model (each keeps its own inputs and outputs), so one C build covers many
operator configurations while a mismatch still names the output it is in.

Converter-made models run small TensorFlow functions or Keras layers through the real
TF 2.21 converter with int8 (or uint8) I/O; they are cached like support.models'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from support.builder import ModelBuilder, Q
from support.models import cached

Shape = tuple[int, ...]
DEFAULT_Q = Q(0.05, -3)
CHAIN_Q = Q(0.031, 17)
# Bump when a converter model's definition below changes (it is part of the cache key).
DATA_MODELS_VERSION = 1


@dataclass(frozen=True)
class Case:
    """One operator: activation inputs of `inputs` shapes (graph inputs), outputs of
    `outputs` shapes (graph outputs), constants at operand positions `consts`."""

    opcode: str
    inputs: tuple[Shape, ...]
    outputs: tuple[Shape, ...]
    # operand position -> (dtype, values), or (dtype, values, False) for a tensor of that
    # shape that is not constant (no data, no producer: only for models that must be refused)
    consts: dict[int, tuple] = field(default_factory=dict)
    options: Any = None
    quant: Q = DEFAULT_Q
    out_quant: Q | None = None  # default: `quant`
    const_quant: Q | None = None  # int8 constants (PADV2's value); default: `quant`
    dtype: str = "int8"  # of the inputs (and of the outputs unless out_dtype is given)
    out_dtype: str | None = None


def add_case(b: ModelBuilder, case: Case, prefix: str) -> tuple[list[int], list[int]]:
    """Add the case's tensors and operator to `b`; return (graph inputs, graph outputs)."""
    xs = [b.add_tensor(f"{prefix}_x{i}", shape, case.dtype, quant=case.quant)
          for i, shape in enumerate(case.inputs)]
    operands = list(xs)
    for position, (dtype, values, *flags) in sorted(case.consts.items()):
        data = np.asarray(values)
        quant = (case.const_quant or case.quant) if dtype == "int8" else None
        constant = flags[0] if flags else True
        t = b.add_tensor(f"{prefix}_c{position}", data.shape, dtype, quant=quant,
                         data=data if constant else None)
        operands.insert(position, t)
    ys = [b.add_tensor(f"{prefix}_y{i}", shape, case.out_dtype or case.dtype,
                       quant=case.out_quant or case.quant)
          for i, shape in enumerate(case.outputs)]
    b.add_op(case.opcode, operands, ys, case.options)
    return xs, ys


def single(case: Case) -> bytes:
    return bundle([case])


def bundle(cases: Sequence[Case]) -> bytes:
    b = ModelBuilder()
    ins: list[int] = []
    outs: list[int] = []
    for k, case in enumerate(cases):
        xs, ys = add_case(b, case, f"c{k}")
        ins += xs
        outs += ys
    b.set_io(ins, outs)
    return b.build()


# -- options -------------------------------------------------------------------------------


def strided_slice_options(begin_mask: int = 0, end_mask: int = 0, shrink_axis_mask: int = 0,
                          ellipsis_mask: int = 0, new_axis_mask: int = 0,
                          offset: bool = False) -> Any:
    o = schema.StridedSliceOptionsT()
    o.beginMask, o.endMask, o.shrinkAxisMask = begin_mask, end_mask, shrink_axis_mask
    o.ellipsisMask, o.newAxisMask, o.offset = ellipsis_mask, new_axis_mask, offset
    return o


def split_options(num_splits: int, v: bool = False) -> Any:
    o = schema.SplitVOptionsT() if v else schema.SplitOptionsT()
    o.numSplits = num_splits
    return o


def pack_options(values_count: int, axis: int) -> Any:
    o = schema.PackOptionsT()
    o.valuesCount, o.axis = values_count, axis
    return o


def unpack_options(num: int, axis: int) -> Any:
    o = schema.UnpackOptionsT()
    o.num, o.axis = num, axis
    return o


def squeeze_options(dims: Sequence[int]) -> Any:
    o = schema.SqueezeOptionsT()
    o.squeezeDims = list(dims) or None
    return o


def resize_options(align_corners: bool, half_pixel_centers: bool) -> Any:
    o = schema.ResizeNearestNeighborOptionsT()
    o.alignCorners, o.halfPixelCenters = align_corners, half_pixel_centers
    return o


# -- case factories ------------------------------------------------------------------------


def pad(shape: Shape, paddings: Sequence[Sequence[int]], *, value: int | None = None,
        v2: bool = False, quant: Q = DEFAULT_Q, const_quant: Q | None = None) -> Case:
    out = tuple(d + a + b for d, (a, b) in zip(shape, paddings, strict=True))
    consts: dict[int, tuple[str, Any]] = {1: ("int32", np.asarray(paddings))}
    if value is not None:
        consts[2] = ("int8", np.asarray(value))
    return Case("PADV2" if v2 else "PAD", (shape,), (out,), consts, quant=quant,
                const_quant=const_quant)


def strided_slice(shape: Shape, begin: Sequence[int], end: Sequence[int],
                  strides: Sequence[int], quant: Q = DEFAULT_Q, **masks: Any) -> Case:
    """The output shape is numpy's for the same slice (Python slicing clamps like TF)."""
    index: list[Any] = []
    for axis, (b, e, s) in enumerate(zip(begin, end, strides, strict=True)):
        if masks.get("shrink_axis_mask", 0) >> axis & 1:
            index.append(b)
        else:
            index.append(slice(None if masks.get("begin_mask", 0) >> axis & 1 else b,
                               None if masks.get("end_mask", 0) >> axis & 1 else e, s))
    out = np.empty(shape)[tuple(index)].shape
    consts = {1: ("int32", list(begin)), 2: ("int32", list(end)), 3: ("int32", list(strides))}
    return Case("STRIDED_SLICE", (shape,), (out,), consts, strided_slice_options(**masks),
                quant=quant)


def slice_(shape: Shape, begin: Sequence[int], size: Sequence[int],
           dtype: str = "int32") -> Case:
    out = tuple(d - b if s == -1 else s for d, b, s in zip(shape, begin, size, strict=True))
    return Case("SLICE", (shape,), (out,), {1: (dtype, list(begin)), 2: (dtype, list(size))})


def split(shape: Shape, axis: int, num: int) -> Case:
    out = list(shape)
    out[axis] //= num
    return Case("SPLIT", (shape,), (tuple(out),) * num, {0: ("int32", [axis])},
                split_options(num))


def split_v(shape: Shape, axis: int, sizes: Sequence[int]) -> Case:
    rest = shape[axis] - sum(s for s in sizes if s != -1)
    outs = []
    for s in sizes:
        out = list(shape)
        out[axis] = rest if s == -1 else s
        outs.append(tuple(out))
    return Case("SPLIT_V", (shape,), tuple(outs),
                {1: ("int32", list(sizes)), 2: ("int32", [axis])},
                split_options(len(sizes), v=True))


def pack(shape: Shape, count: int, axis: int) -> Case:
    rank = len(shape) + 1
    k = axis % rank
    out = (*shape[:k], count, *shape[k:])
    return Case("PACK", (shape,) * count, (out,), {}, pack_options(count, axis))


def unpack(shape: Shape, axis: int) -> Case:
    k = axis % len(shape)
    out = (*shape[:k], *shape[k + 1:])
    return Case("UNPACK", (shape,), (out,) * shape[k], {}, unpack_options(shape[k], axis))


def transpose(shape: Shape, perm: Sequence[int]) -> Case:
    out = tuple(shape[p] for p in perm)
    return Case("TRANSPOSE", (shape,), (out,), {1: ("int32", list(perm))})


def squeeze(shape: Shape, dims: Sequence[int]) -> Case:
    rank = len(shape)
    gone = {d % rank for d in dims} if dims else {k for k, d in enumerate(shape) if d == 1}
    out = tuple(d for k, d in enumerate(shape) if k not in gone)
    return Case("SQUEEZE", (shape,), (out,), {}, squeeze_options(dims))


def expand_dims(shape: Shape, axis: int) -> Case:
    k = axis % (len(shape) + 1)
    out = (*shape[:k], 1, *shape[k:])
    return Case("EXPAND_DIMS", (shape,), (out,), {1: ("int32", [axis])})


def resize(shape: Shape, size: tuple[int, int], align_corners: bool,
           half_pixel_centers: bool) -> Case:
    out = (shape[0], *size, shape[3])
    return Case("RESIZE_NEAREST_NEIGHBOR", (shape,), (out,), {1: ("int32", list(size))},
                resize_options(align_corners, half_pixel_centers))


# -- a chain: multi-output operators feeding others, aliases inside the graph ---------------


def chain_model(quant: Q = CHAIN_Q) -> bytes:
    """x[3,17,5] -> EXPAND_DIMS(0) -> PAD -> SPLIT(axis -2, 4) -> PACK(axis -1) of the four
    -> TRANSPOSE (5-D) -> SQUEEZE(0) -> RESIZE_NEAREST_NEIGHBOR, and from the squeezed
    tensor SLICE -> UNPACK(axis 1) -> STRIDED_SLICE on one of the rows. Intermediate tensors
    live in the arena; EXPAND_DIMS and SQUEEZE become aliases; a SPLIT output is both a
    graph output and read by PACK, and two UNPACK outputs are read by nothing."""
    b = ModelBuilder()

    def t(name: str, shape: Shape) -> int:
        return b.add_tensor(name, shape, "int8", quant=quant)

    def c(name: str, values: Any) -> int:
        data = np.asarray(values)
        return b.add_tensor(name, data.shape, "int32", data=data)

    x = t("x", (3, 17, 5))
    e = t("expanded", (1, 3, 17, 5))
    b.add_op("EXPAND_DIMS", [x, c("axis0", [0])], [e])
    p = t("padded", (1, 4, 20, 5))
    b.add_op("PAD", [e, c("paddings", [[0, 0], [1, 0], [2, 1], [0, 0]])], [p])
    parts = [t(f"part{i}", (1, 4, 5, 5)) for i in range(4)]
    b.add_op("SPLIT", [c("split_axis", [-2]), p], parts, split_options(4))
    packed = t("packed", (1, 4, 5, 5, 4))
    b.add_op("PACK", parts, [packed], pack_options(4, -1))
    tr = t("transposed", (1, 5, 4, 4, 5))
    b.add_op("TRANSPOSE", [packed, c("perm", [0, 3, 4, 1, 2])], [tr])
    sq = t("squeezed", (5, 4, 4, 5))
    b.add_op("SQUEEZE", [tr], [sq], squeeze_options([0]))
    up = t("resized", (5, 7, 3, 5))
    b.add_op("RESIZE_NEAREST_NEIGHBOR", [sq, c("size", [7, 3])], [up],
             resize_options(False, True))
    sl = t("sliced", (3, 4, 4, 5))
    b.add_op("SLICE", [sq, c("begin", [1, 0, 0, 0]), c("size", [3, -1, -1, -1])], [sl])
    rows = [t(f"row{i}", (3, 4, 5)) for i in range(4)]
    b.add_op("UNPACK", [sl], rows, unpack_options(4, 1))
    st = t("strided", (3, 2, 5))
    b.add_op("STRIDED_SLICE", [rows[3], c("ss_begin", [0, -1, 0]), c("ss_end", [3, 0, 5]),
                               c("ss_strides", [1, -2, 1])], [st],
             strided_slice_options(begin_mask=0, end_mask=2))
    b.set_io([x], [up, rows[0], st, parts[1]])
    return b.build()


# -- QUANTIZE between uint8 and int8 ----------------------------------------------------------


def quantize(in_type: str, out_type: str, in_q: Q, out_q: Q, shape: Shape = (3, 17)) -> Case:
    """QUANTIZE from one integer type and scale to another."""
    return Case("QUANTIZE", (shape,), (shape,), quant=in_q, out_quant=out_q, dtype=in_type,
                out_dtype=out_type)


# -- converter models ------------------------------------------------------------------------


def convert_function(fn: Callable[[Any], Any], shape: Shape, *, io: str = "int8",
                     low: float = -1.0, high: float = 1.0, seed: int = 0) -> bytes:
    """Full-integer conversion of a TensorFlow function of one float input (1, *shape)."""
    import tensorflow as tf

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((1, *shape), tf.float32)])
        def run(self, x: Any) -> Any:
            return fn(x)

    module = Module()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.run.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(seed)
    samples = rng.uniform(low, high, (64, 1, *shape)).astype(np.float32)
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io_type = {"int8": tf.int8, "uint8": tf.uint8}[io]
    converter.inference_input_type = io_type
    converter.inference_output_type = io_type
    return bytes(converter.convert())


def _dense(x: Any, seed: int) -> Any:
    """A Dense over the last axis (FULLY_CONNECTED, keep_num_dims), so that what follows
    reads an activation the converter calibrated."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    depth = int(x.shape[-1])
    w = tf.constant(rng.uniform(-1, 1, (depth, depth)).astype(np.float32))
    bias = tf.constant(rng.uniform(-0.3, 0.3, depth).astype(np.float32))
    return tf.reshape(tf.matmul(tf.reshape(x, (-1, depth)), w) + bias, x.shape)


def _pad_and_slice(x: Any) -> Any:
    import tensorflow as tf

    p = tf.pad(x, [[0, 0], [1, 2], [0, 3], [0, 0]])
    q = tf.pad(x, [[0, 0], [2, 0], [1, 1], [0, 1]], constant_values=0.5)
    s = tf.strided_slice(p, [0, -1, 1, 0], [1, 0, 100, 3], [1, -2, 3, 1], begin_mask=1,
                         end_mask=8, shrink_axis_mask=1)
    s2 = tf.strided_slice(q, [0, 1, -2, 0], [1, 4, -19, 4], [1, 1, -4, 3], shrink_axis_mask=9)
    sl = tf.slice(q, [0, 1, 0, 1], [-1, 2, -1, 2])
    return p, q, s, s2, sl


def _split_stack(x: Any) -> Any:
    import tensorflow as tf

    x = _dense(x, 3)
    a, b, c = tf.split(x, 3, axis=-1)
    d, e, f = tf.split(x, [5, 1, -1], axis=2)
    st = tf.stack([c, a], axis=1)
    un = tf.unstack(x, axis=1)
    back = tf.stack(un[::-1], axis=-1)
    tr = tf.transpose(x, [0, 3, 1, 2])
    sq = tf.squeeze(b, axis=-1)
    ex = tf.expand_dims(sq, -2)
    return st, back, tr, ex, d, e, f


def _resize(x: Any) -> Any:
    import tensorflow as tf

    r1 = tf.image.resize(x, (7, 11), method="nearest")
    r2 = tf.compat.v1.image.resize_nearest_neighbor(x, (5, 2), align_corners=True)
    r3 = tf.compat.v1.image.resize_nearest_neighbor(x, (17, 3), half_pixel_centers=True)
    r4 = tf.compat.v1.image.resize_nearest_neighbor(x, (1, 17))
    return r1, r2, r3, r4


CONVERTER_MODELS: dict[str, tuple[Callable[[Any], Any], Shape, float, float]] = {
    # name: (function, input shape without batch, representative range)
    "tf_pad_slice": (_pad_and_slice, (3, 17, 3), -0.4, 1.3),
    "tf_split_stack": (_split_stack, (3, 17, 3), -1.0, 1.0),
    "tf_resize": (_resize, (3, 5, 3), -2.0, 0.5),
}


def converter_model(name: str, io: str = "int8") -> bytes:
    fn, shape, low, high = CONVERTER_MODELS[name]
    params = {"name": name, "io": io, "version": DATA_MODELS_VERSION}
    return cached("data_ops", params,
                  lambda: convert_function(fn, shape, io=io, low=low, high=high))


def keras_resizing_model() -> bytes:
    """keras.layers.Resizing(nearest) to an odd size (half_pixel_centers) with int8 I/O."""
    from support.models import convert_int8

    def make() -> bytes:
        import keras

        inp = keras.Input((5, 3, 17), batch_size=1)
        out = keras.layers.Resizing(9, 4, interpolation="nearest")(inp)
        rng = np.random.default_rng(5)
        return convert_int8(keras.Model(inp, out),
                            rng.uniform(-1, 3, (64, 5, 3, 17)).astype(np.float32))

    return cached("data_ops_keras_resizing", {"version": DATA_MODELS_VERSION}, make)


def uint8_io_model() -> bytes:
    """A converter model with uint8 input and output: QUANTIZE uint8->int8, a Dense,
    QUANTIZE int8->uint8."""

    def body(x: Any) -> Any:
        return _dense(x, 11)

    params = {"name": "uint8_io", "version": DATA_MODELS_VERSION}
    return cached("data_ops", params,
                  lambda: convert_function(body, (17,), io="uint8", low=-0.7, high=2.1))
