"""16x8 models (int16 activations, int8 weights) for tests/test_ops_int16.py: Keras graphs of
many branches converted by TensorFlow's converter with
`EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8` and int16 I/O, cached like
support.models; plus builder models for what the converter does not write in 16x8 (PRELU,
HARD_SWISH, int32 biases, QUANTIZE between int8 and int16).

Every Keras model has a fixed batch of 1 (a dynamic batch makes the converter compute
TRANSPOSE_CONV's output shape at run time) and one output per branch, so that one build
covers many operators and options while a mismatch names its branch by output index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from support.models import cached

FACTORY_VERSION = 1
REPRESENTATIVE_SAMPLES = 128
# Any edit of this file makes new models (the Keras graphs are written in it).
_SOURCE_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def convert_16x8(model: Any, representative: Sequence[np.ndarray], *, io: str = "int16",
                 per_channel: bool = True) -> bytes:
    """Post-training 16x8 quantization; `representative` holds one array per model input,
    each with one sample per row. `io` is "int16" or "float32" (QUANTIZE/DEQUANTIZE at
    the edges)."""
    import tensorflow as tf

    def samples():
        for k in range(len(representative[0])):
            yield [r[k:k + 1] for r in representative]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    io_type = {"int16": tf.int16, "float32": tf.float32}[io]
    converter.inference_input_type = io_type
    converter.inference_output_type = io_type
    if not per_channel:
        converter._experimental_disable_per_channel = True
    return bytes(converter.convert())


def keras_16x8(name: str, build: Callable[[], Any], params: dict[str, Any], *,
               io: str = "int16", per_channel: bool = True, seed: int = 0,
               low: float = -1.0, high: float = 1.0) -> bytes:
    """`build()` (a Keras model, built under `seed`) converted 16x8 and cached under
    `name` and `params` (which must say everything `build` depends on)."""
    key = {**params, "io": io, "per_channel": per_channel, "seed": seed, "low": low,
           "high": high, "factory_version": FACTORY_VERSION, "source": _SOURCE_DIGEST}

    def make() -> bytes:
        import keras

        keras.utils.set_random_seed(seed)
        model = build()
        rng = np.random.default_rng(seed)
        representative = [
            rng.uniform(low, high, (REPRESENTATIVE_SAMPLES, *t.shape[1:])).astype(np.float32)
            for t in model.inputs]
        return convert_16x8(model, representative, io=io, per_channel=per_channel)

    return cached(f"int16_{name}", key, make)


# -- window operators (CONV_2D, DEPTHWISE_CONV_2D, pools, TRANSPOSE_CONV) ----------------------


def _activation(h: Any, activation: str) -> Any:
    import keras

    if activation == "relu":
        return keras.ops.relu(h)
    if activation == "relu6":
        return keras.ops.relu6(h)
    if activation == "relu_n1_to_1":
        return keras.ops.clip(h, -1.0, 1.0)
    if activation != "none":
        raise ValueError(f"unknown activation {activation!r}")
    return h


def window_branch(inp: Any, spec: dict[str, Any], seed: int) -> Any:
    """One window layer from a spec: kind "conv", "depthwise", "transpose", "avg", "max";
    kernel, padding, stride, activation; filters/groups/bias, multiplier."""
    import keras

    kind = spec["kind"]
    common = {"padding": spec.get("padding", "same"), "strides": spec.get("stride", 1)}
    init = keras.initializers.GlorotUniform(seed)
    bias = keras.initializers.RandomUniform(-0.3, 0.3, seed + 1)
    if kind == "conv":
        h = keras.layers.Conv2D(spec["filters"], spec["kernel"], groups=spec.get("groups", 1),
                                use_bias=spec.get("bias", True), kernel_initializer=init,
                                bias_initializer=bias, **common)(inp)
    elif kind == "depthwise":
        h = keras.layers.DepthwiseConv2D(spec["kernel"],
                                         depth_multiplier=spec.get("multiplier", 1),
                                         use_bias=spec.get("bias", True),
                                         depthwise_initializer=init, bias_initializer=bias,
                                         **common)(inp)
    elif kind == "transpose":
        h = keras.layers.Conv2DTranspose(spec["filters"], spec["kernel"],
                                         use_bias=spec.get("bias", True),
                                         kernel_initializer=init, bias_initializer=bias,
                                         **common)(inp)
    elif kind == "avg":
        h = keras.layers.AveragePooling2D(spec["kernel"], **common)(inp)
    elif kind == "max":
        h = keras.layers.MaxPooling2D(spec["kernel"], **common)(inp)
    else:
        raise ValueError(f"unknown branch kind {kind!r}")
    return _activation(h, spec.get("activation", "none"))


def window_model(name: str, shape: Sequence[int], branches: Sequence[dict[str, Any]], *,
                 per_channel: bool = True, seed: int = 0) -> bytes:
    """One (H, W, C) input, one output per branch."""

    def build() -> Any:
        import keras

        inp = keras.Input(tuple(shape), batch_size=1)
        return keras.Model(inp, [window_branch(inp, spec, seed + 10 * i)
                                 for i, spec in enumerate(branches)])

    return keras_16x8(f"window_{name}", build,
                      {"shape": list(shape), "branches": list(branches)},
                      per_channel=per_channel, seed=seed)


# -- everything without weights: elementwise, data movement, pools, activations -------------


def _misc_outputs(a: Any, keras: Any) -> list[Any]:
    """One output per operator: a is (7, 9, 3), b its first row (1, 9, 3) scaled."""
    ops, layers = keras.ops, keras.layers
    b = layers.Rescaling(0.5)(a[:, :1, :, :])
    return [
        layers.Add()([a, b]),                               # ADD, broadcast
        layers.Subtract()([a, b]),                          # SUB
        layers.Multiply()([a, b]),                          # MUL
        layers.Maximum()([a, b]),                           # MAXIMUM
        layers.Minimum()([a, b]),                           # MINIMUM
        ops.relu(layers.Add()([a, a])),                     # ADD, same tensor, fused RELU
        layers.ZeroPadding2D(((1, 0), (2, 1)))(a),          # PAD
        layers.Concatenate(axis=-1)([a, ops.tanh(a)]),      # CONCATENATION
        a[:, 1:6:2, ::3, :],                                # STRIDED_SLICE
        ops.slice(a, (0, 1, 2, 0), (1, 4, 5, 2)),           # SLICE
        *ops.split(a, 3, axis=-1),                          # SPLIT
        ops.stack([a, ops.sigmoid(a)], axis=2),             # PACK
        *ops.unstack(b, axis=2)[:2],                        # UNPACK
        ops.transpose(a, (0, 2, 1, 3)),                     # TRANSPOSE
        layers.Reshape((21, 9))(a),                         # RESHAPE
        layers.Resizing(13, 20, "nearest")(a),              # RESIZE_NEAREST_NEIGHBOR
        layers.MaxPooling2D(2, padding="same")(a),          # MAX_POOL_2D
        layers.AveragePooling2D((3, 2), strides=2)(a),      # AVERAGE_POOL_2D
        ops.mean(a, axis=(1, 2), keepdims=True),            # MEAN
        ops.mean(a, axis=-1),                               # MEAN, last axis
        layers.LeakyReLU(0.3)(a),                           # LEAKY_RELU
        layers.ReLU()(layers.Concatenate(axis=1)([a, a])),  # RELU
        layers.ReLU(6.0)(layers.Concatenate(axis=1)([a, b])),  # RELU6
        ops.sigmoid(a),                                     # LOGISTIC
        ops.tanh(b),                                        # TANH
        layers.Softmax()(a),                                # SOFTMAX
    ]


def misc_model(low: float = -4.0, high: float = 4.0) -> bytes:
    """One (7, 9, 3) input; an output per operator without weights."""

    def build() -> Any:
        import keras

        a = keras.Input((7, 9, 3), batch_size=1)
        return keras.Model(a, _misc_outputs(a, keras))

    return keras_16x8("misc", build, {"misc": 1}, low=low, high=high)


# -- TRANSPOSE_CONV in int8 and 16x8 ----------------------------------------------------------

TRANSPOSE_BRANCHES = [
    {"kind": "transpose", "filters": f, "kernel": k, "stride": s, "padding": pad, "bias": bias,
     "activation": act}
    for f, k, s, pad, bias, act in [
        (3, 2, 2, "same", True, "none"), (5, 3, 2, "same", False, "relu"),
        (4, 4, 2, "valid", True, "relu6"), (2, 3, 1, "valid", False, "none"),
        (17, 4, 1, "same", True, "none"), (1, 2, 1, "valid", True, "none"),
        (3, (3, 4), (2, 1), "same", True, "none"), (6, 3, 2, "valid", True, "none"),
        (4, 2, 1, "same", False, "none"), (2, 4, 2, "same", False, "relu6"),
    ]
]


def transpose_conv_model(kind: str, shape: Sequence[int] = (5, 6, 3), *,
                         per_channel: bool = True) -> bytes:
    """TRANSPOSE_CONV branches on one (H, W, C) input, converted "int8" or "16x8"."""
    branches = TRANSPOSE_BRANCHES
    if kind == "16x8":
        return window_model("transpose", shape, branches, per_channel=per_channel)
    params = {"shape": list(shape), "branches": branches, "per_channel": per_channel,
              "source": _SOURCE_DIGEST}

    def make() -> bytes:
        import keras

        from support.models import convert_int8

        keras.utils.set_random_seed(0)
        inp = keras.Input(tuple(shape), batch_size=1)
        model = keras.Model(inp, [window_branch(inp, spec, 10 * i)
                                  for i, spec in enumerate(branches)])
        rng = np.random.default_rng(0)
        representative = rng.uniform(-1, 1, (REPRESENTATIVE_SAMPLES, *shape)).astype(np.float32)
        return convert_int8(model, representative, per_channel=per_channel)

    return cached("int8_transpose_conv", params, make)


# -- builder models: what the converter does not write in 16x8 ----------------------------------

X16 = 1.0 / 8192  # input scale of the builder models: int16 values span [-4, 4)


def _rng_weights(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    return rng.integers(-128, 128, size=tuple(shape))


def _int16_scale(weight_scale: float, taps: int) -> float:
    """An output scale that keeps a sum of `taps` products mostly inside int16."""
    return X16 * weight_scale * 128 * 8192 * max(1.0, float(np.sqrt(taps))) / 32768 * 4


def builder_16x8(seed: int = 7) -> bytes:
    """One int16 input (1, 6, 5, 3) and a branch per case the converter cannot make:
    PRELU (int8 alpha), int32 biases and int32 accumulation without a bias
    (quantized_bias_type), dilated and per-tensor convolutions, a depthwise multiplier of 3,
    TRANSPOSE_CONV with an int16 bias and with RELU / RELU_N1_TO_1, pools and binary
    operators with each fused activation, PADV2 with a value that is no byte pattern,
    MEAN without keep_dims."""
    from ai_edge_litert import schema_py_generated as schema

    from support.builder import ModelBuilder, Q, activation_code, fc_options
    from support.conv_models import conv_options, depthwise_options, pool_options
    from support.elementwise_models import binary_options, reducer_options

    rng = np.random.default_rng(seed)
    b = ModelBuilder("16x8 builder cases")
    shape = (1, 6, 5, 3)
    x = b.add_tensor("x", shape, "int16", quant=Q(X16))
    outs: list[int] = []

    def out(name: str, shp: Sequence[int], scale: float) -> int:
        t = b.add_tensor(name, shp, "int16", quant=Q(scale))
        outs.append(t)
        return t

    def weights(name: str, shp: Sequence[int], scales: Sequence[float], axis: int) -> int:
        q = Q(list(scales) if len(scales) > 1 else scales[0], 0, axis=axis)
        return b.add_tensor(name, shp, "int8", quant=q, data=_rng_weights(rng, shp))

    def bias(name: str, count: int, dtype: str, scales: Sequence[float], limit: int) -> int:
        q = Q([X16 * s for s in scales] if len(scales) > 1 else X16 * scales[0], 0)
        return b.add_tensor(name, (count,), dtype, quant=q,
                            data=rng.integers(-limit, limit + 1, size=count))

    # PRELU with an int8 alpha: per channel, and one alpha per element.
    for i, a_shape in enumerate([(1, 1, 3), (6, 5, 3)]):
        alpha = b.add_tensor(f"alpha{i}", a_shape, "int8", quant=Q(0.01, 3),
                             data=_rng_weights(rng, a_shape))
        b.add_op("PRELU", [x, alpha], [out(f"prelu{i}", shape, X16 * 1.5)])
    # CONV_2D: int32 bias; no bias with quantized_bias_type int32; dilated per-tensor int64.
    ws = list(0.02 * rng.uniform(0.5, 2, 4))
    w0 = weights("w0", (4, 3, 3, 3), ws, 0)
    b0 = bias("b0", 4, "int32", ws, 20000)
    b.add_op("CONV_2D", [x, w0, b0], [out("conv_b32", (1, 6, 5, 4), _int16_scale(0.02, 27))],
             conv_options("SAME", activation="RELU"))
    options = conv_options("VALID", stride=(2, 1))
    options.quantizedBiasType = schema.TensorType.INT32
    w1 = weights("w1", (5, 2, 3, 3), [*ws, 0.01], 0)
    b.add_op("CONV_2D", [x, w1, -1], [out("conv_acc32", (1, 3, 3, 5), _int16_scale(0.02, 18))],
             options)
    w2 = weights("w2", (2, 3, 3, 3), [0.015], 0)
    b.add_op("CONV_2D", [x, w2, -1], [out("conv_dil", (1, 6, 5, 2), _int16_scale(0.015, 27))],
             conv_options("SAME", dilation=(2, 2), activation="RELU_N1_TO_1"))
    # FULLY_CONNECTED with an int32 bias, and without a bias asking for int32 accumulation.
    flat = b.add_tensor("flat", (1, 90), "int16", quant=Q(X16))
    b.add_op("RESHAPE", [x], [flat])
    wf = weights("wf", (7, 90), list(0.01 * rng.uniform(0.5, 2, 7)), 0)
    bf = bias("bf", 7, "int32", [0.01] * 7, 30000)
    b.add_op("FULLY_CONNECTED", [flat, wf, bf], [out("fc_b32", (1, 7), _int16_scale(0.01, 90))],
             fc_options("RELU6"))
    fc_options_32 = fc_options("NONE")
    fc_options_32.quantizedBiasType = schema.TensorType.INT32
    b.add_op("FULLY_CONNECTED", [flat, wf, -1], [out("fc_acc32", (1, 7), _int16_scale(0.01, 90))],
             fc_options_32)
    # The engine's generic int64 epilogue: a bias beyond int32, a multiplier above 1/2.
    wg = weights("wg", (3, 1, 1, 3), [0.01], 0)
    bg = b.add_tensor("bg", (3,), "int64", quant=Q(X16 * 0.01),
                      data=np.array([5_000_000_000, -3, 40_000]))
    b.add_op("CONV_2D", [x, wg, bg], [out("conv_b64", (1, 6, 5, 3), X16 * 0.01 * 200)],
             conv_options("SAME"))
    wm = b.add_tensor("wm", (4, 90), "int8", quant=Q(0.01),
                      data=rng.integers(-2, 3, size=(4, 90)))
    b.add_op("FULLY_CONNECTED", [flat, wm, -1], [out("fc_wide", (1, 4), X16 * 0.01 * 1.5)],
             fc_options("NONE"))
    # DEPTHWISE_CONV_2D: multiplier 3, dilation, per-tensor weights, an int64 bias.
    wd = weights("wd", (1, 3, 2, 9), [0.02], 3)
    bd = bias("bd", 9, "int64", [0.02], 10**6)
    b.add_op("DEPTHWISE_CONV_2D", [x, wd, bd], [out("dw", (1, 6, 5, 9), _int16_scale(0.02, 6))],
             depthwise_options("SAME", dilation=(2, 1), activation="RELU", multiplier=3))
    # TRANSPOSE_CONV with an int16 bias and fused activations the converter does not fuse.
    for i, (activation, bias_type) in enumerate([("RELU", "int16"), ("RELU_N1_TO_1", "int64")]):
        wt = weights(f"wt{i}", (2, 3, 3, 3), [0.02, 0.03], 0)
        bt = bias(f"bt{i}", 2, bias_type, [0.02, 0.03], 30000)
        oshape = (1, 12, 10, 2)
        os = b.add_tensor(f"oshape{i}", (4,), "int32", data=np.array(oshape))
        options = schema.TransposeConvOptionsT()
        options.padding, options.strideH, options.strideW = schema.Padding.SAME, 2, 2
        options.fusedActivationFunction = activation_code(activation)
        b.add_op("TRANSPOSE_CONV", [os, wt, x, bt],
                 [out(f"tconv{i}", oshape, _int16_scale(0.03, 27) / 4)], options)
    # Pools and binary operators with the fused activations.
    b.add_op("MAX_POOL_2D", [x], [out("maxpool", (1, 3, 3, 3), X16)],
             pool_options("SAME", (2, 2), (3, 2), "RELU_N1_TO_1"))
    b.add_op("AVERAGE_POOL_2D", [x], [out("avgpool", (1, 6, 5, 3), X16)],
             pool_options("SAME", (1, 1), (3, 3), "RELU"))
    half = b.add_tensor("half", (1, 1, 5, 1), "int16", quant=Q(X16 / 2),
                        data=rng.integers(-32768, 32768, size=(1, 1, 5, 1)))
    for opcode, activation, scale in [("ADD", "RELU6", X16 * 2), ("SUB", "RELU_N1_TO_1", X16),
                                      ("MUL", "RELU", X16 * 2)]:
        b.add_op(opcode, [x, half], [out(opcode.lower(), shape, scale)],
                 binary_options(opcode, activation))
    # PADV2 with 1000 (two different bytes: a loop, not a memset); MEAN without keep_dims.
    value = b.add_tensor("value", (), "int16", quant=Q(X16), data=np.array(1000))
    paddings = b.add_tensor("paddings", (4, 2), "int32", data=np.array([[0, 0], [1, 2], [0, 1],
                                                                          [0, 0]]))
    b.add_op("PADV2", [x, paddings, value], [out("padv2", (1, 9, 6, 3), X16)])
    axes = b.add_tensor("axes", (2,), "int32", data=np.array([1, -1]))
    b.add_op("MEAN", [x, axes], [out("mean", (1, 5), X16 / 2)], reducer_options(False))
    _data_movement(b, x, out, rng)
    b.set_io([x], outs)
    return b.build()


def _data_movement(b: Any, x: int, out: Callable[..., int], rng: np.random.Generator) -> None:
    """The data-movement options the converter's model leaves out, on the (1, 6, 5, 3) x:
    SPLIT_V, SQUEEZE, EXPAND_DIMS, a CONCATENATION with a constant, STRIDED_SLICE masks and
    negative strides, RESIZE_NEAREST_NEIGHBOR's align_corners and half_pixel_centers."""
    from support.builder import Q
    from support.data_models import (
        resize_options,
        split_options,
        squeeze_options,
        strided_slice_options,
    )
    from support.elementwise_models import concat_options

    def i32(name: str, values: Sequence[int]) -> int:
        return b.add_tensor(name, (len(values),), "int32", data=np.array(values))

    q = Q(X16)
    sizes, axis = i32("sizes", [1, 3, 2]), b.add_tensor("axis", (), "int32", data=np.array(1))
    b.add_op("SPLIT_V", [x, sizes, axis],
             [out(f"split_v{k}", (1, n, 5, 3), X16) for k, n in enumerate([1, 3, 2])],
             split_options(3, v=True))
    row = b.add_tensor("row", (1, 1, 5, 3), "int16", quant=q)
    b.add_op("STRIDED_SLICE", [x, i32("b0", [0, 4, 0, 0]), i32("e0", [1, 5, 5, 3]),
                               i32("s0", [1, 1, 1, 1])], [row], strided_slice_options())
    b.add_op("SQUEEZE", [row], [out("squeeze", (5, 3), X16)], squeeze_options([0, 1]))
    b.add_op("EXPAND_DIMS", [x, b.add_tensor("dim", (), "int32", data=np.array(-2))],
             [out("expand", (1, 6, 5, 1, 3), X16)])
    constant = b.add_tensor("constant", (1, 2, 5, 3), "int16", quant=q,
                            data=rng.integers(-32768, 32768, size=(1, 2, 5, 3)))
    b.add_op("CONCATENATION", [constant, x], [out("concat", (1, 8, 5, 3), X16)],
             concat_options(1))
    b.add_op("STRIDED_SLICE", [x, i32("b1", [0, -1, 4, 2]), i32("e1", [1, 0, 0, -4]),
                               i32("s1", [1, -2, 1, -1])], [out("reversed", (1, 3, 3), X16)],
             strided_slice_options(begin_mask=1, end_mask=2, shrink_axis_mask=4))
    for k, (align, half) in enumerate([(True, False), (False, True)]):
        b.add_op("RESIZE_NEAREST_NEIGHBOR", [x, i32(f"size{k}", [11, 4])],
                 [out(f"resize{k}", (1, 11, 4, 3), X16)], resize_options(align, half))


# -- FULLY_CONNECTED (and SOFTMAX on it) -----------------------------------------------------


def dense_model(*, per_channel: bool = True, io: str = "int16") -> bytes:
    """One (51,) input: Dense layers of every fused activation, with and without a bias, on
    the row and on it reshaped to (3, 17) (keep_num_dims), and a softmax on one of them."""

    def build() -> Any:
        import keras

        inp = keras.Input((51,), batch_size=1)
        bias = keras.initializers.RandomUniform(-0.3, 0.3, 1)
        rows = keras.layers.Reshape((3, 17))(inp)
        outs = []
        for i, (units, activation, use_bias) in enumerate(
                [(3, "relu", True), (17, None, False), (1, "relu6", True), (5, None, True)]):
            dense = keras.layers.Dense(units, activation=activation, use_bias=use_bias,
                                       bias_initializer=bias,
                                       kernel_initializer=keras.initializers.GlorotUniform(i))
            outs.append(dense(inp))
        outs.append(keras.layers.Dense(4, bias_initializer=bias)(rows))
        outs.append(keras.layers.Softmax()(outs[1]))
        return keras.Model(inp, outs)

    return keras_16x8("dense", build, {"dense": 1}, per_channel=per_channel, io=io)


# -- a mixed model: int8 body, int16 tail, joined by QUANTIZE ---------------------------------


def mixed_model(seed: int = 3) -> bytes:
    """int8 input -> FULLY_CONNECTED (int8) -> QUANTIZE to int16 -> FULLY_CONNECTED (16x8)
    -> QUANTIZE (int16 rescale) -> TANH (int16) -> QUANTIZE back to int8 (output 0); the
    16x8 result also through DEQUANTIZE (float output 1) and to int16 output 2; a second,
    float32 input -> QUANTIZE to int16 -> LOGISTIC (output 3); the int8 FULLY_CONNECTED's
    output through a SOFTMAX to int16 (output 4)."""
    from ai_edge_litert import schema_py_generated as schema

    from support.builder import ModelBuilder, Q, bias_scales, fc_options

    rng = np.random.default_rng(seed)
    b = ModelBuilder("mixed int8 / int16")
    x = b.add_tensor("x", (1, 24), "int8", quant=Q(0.05, -3))
    w8 = b.add_tensor("w8", (16, 24), "int8", quant=Q(0.01), data=_rng_weights(rng, (16, 24)))
    b8 = b.add_tensor("b8", (16,), "int32", quant=Q(bias_scales(0.05, [0.01])[0]),
                      data=rng.integers(-3000, 3000, 16))
    h8 = b.add_tensor("h8", (1, 16), "int8", quant=Q(0.3, 5))
    b.add_op("FULLY_CONNECTED", [x, w8, b8], [h8], fc_options("NONE"))
    h16 = b.add_tensor("h16", (1, 16), "int16", quant=Q(0.3 / 200))
    b.add_op("QUANTIZE", [h8], [h16])
    w16 = b.add_tensor("w16", (12, 16), "int8", quant=Q(list(0.001 * rng.uniform(0.5, 2, 12)),
                                                          0),
                       data=_rng_weights(rng, (12, 16)))
    y16 = b.add_tensor("y16", (1, 12), "int16", quant=Q(0.0002))
    b.add_op("FULLY_CONNECTED", [h16, w16, -1], [y16], fc_options("NONE"))
    r16 = b.add_tensor("r16", (1, 12), "int16", quant=Q(1 / 8192))
    b.add_op("QUANTIZE", [y16], [r16])
    t16 = b.add_tensor("t16", (1, 12), "int16", quant=Q(1 / 32768))
    b.add_op("TANH", [r16], [t16])
    back = b.add_tensor("back", (1, 12), "int8", quant=Q(1 / 128))
    b.add_op("QUANTIZE", [t16], [back])
    f = b.add_tensor("f", (1, 12), "float32")
    b.add_op("DEQUANTIZE", [y16], [f])
    u = b.add_tensor("u", (2, 5), "float32")
    # 1/2048: the float edges of the tests (+-1e6) stay inside int32 once divided by it
    # (TFLM's conversion of a quotient beyond int32 is undefined).
    u16 = b.add_tensor("u16", (2, 5), "int16", quant=Q(1 / 2048))
    b.add_op("QUANTIZE", [u], [u16])
    s16 = b.add_tensor("s16", (2, 5), "int16", quant=Q(1 / 32768))
    b.add_op("LOGISTIC", [u16], [s16])
    # SOFTMAX from int8 to int16 (TFLM's int8 kernel with an int16 output).
    sm = b.add_tensor("sm", (1, 16), "int16", quant=Q(1 / 65536, -32768))
    softmax_options = schema.SoftmaxOptionsT()
    softmax_options.beta = 0.7
    b.add_op("SOFTMAX", [h8], [sm], softmax_options)
    b.set_io([x, u], [back, f, y16, s16, sm])
    return b.build()


def activations_16x8() -> bytes:
    """One int16 input (2, 3, 17) and a branch per int16 activation with scales the
    converter does not pick: RELU, RELU6 and LEAKY_RELU requantizing, LOGISTIC and TANH with
    power-of-two input scales (TFLM's shortcut) and others, SOFTMAX with beta 0.5."""
    from ai_edge_litert import schema_py_generated as schema

    from support.builder import ModelBuilder, Q

    b = ModelBuilder("16x8 activations")
    shape = (2, 3, 17)
    x = b.add_tensor("x", shape, "int16", quant=Q(X16))
    outs = []
    cases = [("RELU", X16, X16 / 3, None), ("RELU6", X16, X16, None),
             ("LEAKY_RELU", X16, X16 * 0.7, ("LeakyReluOptions", "alpha", -0.4)),
             ("LOGISTIC", 1 / 4096, 1 / 32768, None), ("LOGISTIC", 0.0003, 1 / 32768, None),
             ("TANH", 1 / 2048, 1 / 32768, None), ("TANH", 1 / 4096, 1 / 32768, None),
             ("TANH", 0.0002, 1 / 32768, None),
             ("SOFTMAX", X16, 1 / 32768, ("SoftmaxOptions", "beta", 0.5))]
    for i, (opcode, in_scale, out_scale, option) in enumerate(cases):
        src = x
        if in_scale != X16:
            src = b.add_tensor(f"in{i}", shape, "int16", quant=Q(in_scale))
            b.add_op("QUANTIZE", [x], [src])
        y = b.add_tensor(f"y{i}", shape, "int16", quant=Q(out_scale))
        options = None
        if option is not None:
            options = getattr(schema, f"{option[0]}T")()
            setattr(options, option[1], option[2])
        b.add_op(opcode, [src], [y], options)
        outs.append(y)
    b.set_io([x], outs)
    return b.build()


def demo_mlp_16x8() -> bytes:
    """The bundled demo MLP (codegen/demo/demo_mlp.keras) quantized 16x8, calibrated like
    the int8 one (examples/demo_mlp/train.py: the 17 x 17 grid of [0, 1]^2)."""
    from support.models import DEMO_DIR, demo_train_module

    keras_file = DEMO_DIR / "demo_mlp.keras"
    digest = hashlib.sha256(keras_file.read_bytes()).hexdigest()[:16]

    def make() -> bytes:
        import keras

        model = keras.models.load_model(keras_file)
        return convert_16x8(model, [demo_train_module().grid(17)])

    return cached("int16_demo_mlp", {"keras": digest, "source": _SOURCE_DIGEST}, make)
