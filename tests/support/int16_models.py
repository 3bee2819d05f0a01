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
