"""Small whole models built with Keras and converted by TensorFlow's int8 converter the way a
user would (tests/test_models_more.py), cached like support.models':
- a segmentation head: convolutions, a bilinear upsampling (Keras Resizing; TF's
  align_corners form too), the class index per pixel (ARG_MAX, int32 output);
- a dilated temporal convolution network: Keras Conv1D with dilation_rate 1, 2, 4 (causal
  padding), pooling and a Dense head;
- a one-block transformer encoder: Dense q/k/v, Q.K^T and A.V as BATCH_MATMUL, softmax,
  LayerNormalization (MEAN, SQUARED_DIFFERENCE, RSQRT, the folded NEG), a ReLU MLP;
- the dilated Conv1D of a model with a dynamic batch dimension, which the converter writes
  as SPACE_TO_BATCH_ND -> CONV_2D -> BATCH_TO_SPACE_ND with wrong (batch 1) shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from support.models import cached, convert_int8

MORE_MODELS_VERSION = 1
SAMPLES = 128


def _convert(model: Any, shape: tuple[int, ...], seed: int, low: float = -1.0,
             high: float = 1.0) -> bytes:
    rng = np.random.default_rng(seed)
    return convert_int8(model, rng.uniform(low, high, (SAMPLES, *shape)).astype(np.float32))


def _argmax_layer() -> Any:
    import keras
    import tensorflow as tf

    class ArgMax(keras.layers.Layer):
        """tf.math.argmax with int32 indices (TFLM's ARG_MAX writes int32 only; Keras 3's
        ops.argmax adds a BitwiseAnd the int8 converter cannot take)."""

        def call(self, x: Any) -> Any:
            return tf.math.argmax(x, axis=-1, output_type=tf.int32)

    return ArgMax()


def segmentation_head(align_corners: bool = False) -> bytes:
    def make() -> bytes:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(11)
        inp = keras.Input((12, 16, 3), batch_size=1)
        h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
        h = keras.layers.Conv2D(5, 1)(h)
        if align_corners:
            h = keras.layers.Lambda(lambda t: tf.compat.v1.image.resize_bilinear(
                t, (23, 31), align_corners=True))(h)
        else:
            h = keras.layers.Resizing(24, 32, interpolation="bilinear")(h)
        return _convert(keras.Model(inp, _argmax_layer()(h)), (12, 16, 3), seed=1)

    params = {"align_corners": align_corners, "version": MORE_MODELS_VERSION}
    return cached("more_segmentation", params, make)


def temporal_conv_net() -> bytes:
    def make() -> bytes:
        import keras

        keras.utils.set_random_seed(12)
        inp = keras.Input((32, 4), batch_size=1)
        h = inp
        for rate in (1, 2, 4):
            h = keras.layers.Conv1D(8, 3, dilation_rate=rate, padding="causal",
                                    activation="relu")(h)
        out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(h))
        return _convert(keras.Model(inp, out), (32, 4), seed=2)

    return cached("more_tcn", {"version": MORE_MODELS_VERSION}, make)


def transformer_encoder() -> bytes:
    def make() -> bytes:
        import keras
        import tensorflow as tf

        steps, width = 8, 16
        keras.utils.set_random_seed(13)
        inp = keras.Input((steps, width), batch_size=1)
        q = keras.layers.Dense(width)(inp)
        k = keras.layers.Dense(width)(inp)
        v = keras.layers.Dense(width)(inp)
        scores = keras.layers.Lambda(
            lambda t: tf.matmul(t[0], t[1], transpose_b=True) * (1.0 / np.sqrt(width)))([q, k])
        attention = keras.layers.Softmax()(scores)
        mixed = keras.layers.Lambda(lambda t: tf.matmul(t[0], t[1]))([attention, v])
        h = keras.layers.LayerNormalization()(
            keras.layers.Add()([inp, keras.layers.Dense(width)(mixed)]))
        mlp = keras.layers.Dense(width)(keras.layers.Dense(2 * width, activation="relu")(h))
        out = keras.layers.LayerNormalization()(keras.layers.Add()([h, mlp]))
        return _convert(keras.Model(inp, out), (steps, width), seed=3)

    return cached("more_transformer", {"version": MORE_MODELS_VERSION}, make)


def dynamic_batch_dilated_conv1d() -> bytes:
    def make() -> bytes:
        import keras

        keras.utils.set_random_seed(14)
        inp = keras.Input((17, 3))  # no batch_size: a dynamic batch dimension
        out = keras.layers.Conv1D(4, 3, dilation_rate=2, padding="same")(inp)
        return _convert(keras.Model(inp, out), (17, 3), seed=4)

    return cached("more_dynamic_dilated", {"version": MORE_MODELS_VERSION}, make)


MODELS: dict[str, Callable[[], bytes]] = {
    "segmentation_head": segmentation_head,
    "segmentation_head_align_corners": lambda: segmentation_head(align_corners=True),
    "temporal_conv_net": temporal_conv_net,
    "transformer_encoder": transformer_encoder,
}
