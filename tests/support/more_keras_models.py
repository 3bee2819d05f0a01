"""Small whole models built with Keras and converted by TensorFlow's int8 converter the way a
user would (tests/test_models_more.py), cached like support.models':
- a segmentation head: convolutions, a bilinear upsampling (Keras Resizing; TF's
  align_corners form too), the class index per pixel (ARG_MAX, int32 output);
- a dilated temporal convolution network: Keras Conv1D with dilation_rate 1, 2, 4 (causal
  padding), pooling and a Dense head;
- a one-block transformer encoder: Dense q/k/v, Q.K^T and A.V as BATCH_MATMUL, softmax,
  LayerNormalization (MEAN, SQUARED_DIFFERENCE, RSQRT, the folded NEG), a ReLU MLP;
- the dilated Conv1D of a model with a dynamic batch dimension, which the converter writes
  as SPACE_TO_BATCH_ND -> CONV_2D -> BATCH_TO_SPACE_ND with wrong (batch 1) shapes;
- the held-out check of the issue's other operators (HELD_OUT, DETECTION): reductions and
  indices, spatial moves, elementwise arithmetic with comparisons and logic, and a tiny SSD
  detector whose post-processing the converter writes as DETECTION_POSTPROCESS.
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


# -- held-out models for the rest of issue 13's operators ---------------------------------
# What the converter turns into the operators of issue 13 when a user writes plain
# TensorFlow in a Keras model. Not reachable this way, and so only in the builder tests:
# ELU, ADD_N, CUMSUM and CAST (the converter keeps them in float, between DEQUANTIZE and
# QUANTIZE), FILL, ZEROS_LIKE and SHAPE (folded into constants with static shapes),
# EMBEDDING_LOOKUP (tf.nn.embedding_lookup and Keras Embedding become GATHER), and
# DYNAMIC_UPDATE_SLICE (only XLA's op converts to it).


class _Op:
    """A Keras layer running a TensorFlow function (Keras 3's Lambda cannot infer the
    shape of some, such as a bool-valued tf.where condition)."""

    def __new__(cls, fn: Callable[[Any], Any]) -> Any:
        import keras

        class Op(keras.layers.Layer):
            def call(self, x: Any) -> Any:
                return fn(x)

        return Op()


def reductions_and_indices() -> bytes:
    """ARG_MIN (int32 out), REDUCE_MAX, REDUCE_MIN, SUM, GATHER with constant indices along
    two axes, GATHER_ND, and an embedding-style GATHER of a constant table by the ARG_MIN
    indices."""
    def make() -> bytes:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(15)
        table = np.random.default_rng(15).normal(size=(8, 5)).astype(np.float32)
        inp = keras.Input((6, 8), batch_size=1)
        h = keras.layers.Dense(8)(inp)
        index = _Op(lambda t: tf.math.argmin(t, axis=-1, output_type=tf.int32))(h)
        reduced = keras.layers.Concatenate()([
            _Op(lambda t: tf.reduce_max(t, axis=1))(h),
            _Op(lambda t: tf.reduce_sum(t, axis=1))(h),
            _Op(lambda t: tf.reduce_min(t, axis=1))(h),
        ])
        g = keras.layers.Dense(8)(inp)  # gathered apart: the converter then keeps it int8
        gathered = _Op(lambda t: tf.gather(t, [5, 0, 2], axis=-1))(g)
        rows = _Op(lambda t: tf.gather(t, [3, 1], axis=1))(g)
        picked = _Op(lambda t: tf.gather_nd(t, [[0, 1], [0, 4], [0, 0]]))(g)
        embedded = _Op(lambda i: tf.gather(tf.constant(table), i))(index)
        outputs = [index, reduced, gathered, rows, picked, keras.layers.Dense(3)(embedded)]
        return _convert(keras.Model(inp, outputs), (6, 8), seed=5)

    return cached("more_reductions", {"version": MORE_MODELS_VERSION, "v": 3}, make)


def spatial_moves() -> bytes:
    """SPACE_TO_BATCH_ND -> BATCH_TO_SPACE_ND (tf.space_to_batch_nd and back, no convolution
    between), DEPTH_TO_SPACE, SPACE_TO_DEPTH, MIRROR_PAD (REFLECT and SYMMETRIC),
    REVERSE_V2, BROADCAST_TO."""
    def make() -> bytes:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(16)
        inp = keras.Input((6, 8, 4), batch_size=1)
        h = keras.layers.Conv2D(8, 1)(inp)
        batches = _Op(lambda t: tf.space_to_batch_nd(t, [2, 2], [[1, 1], [0, 2]]))(h)
        outputs = [
            _Op(lambda t: tf.compat.v1.batch_to_space_nd(t, [2, 2], [[1, 1], [0, 2]]))(
                keras.layers.ReLU()(batches)),
            _Op(lambda t: tf.nn.depth_to_space(t, 2))(h),
            _Op(lambda t: tf.nn.space_to_depth(t, 2))(h),
            _Op(lambda t: tf.pad(t, [[0, 0], [1, 2], [2, 1], [0, 0]], mode="REFLECT"))(h),
            _Op(lambda t: tf.pad(t, [[0, 0], [1, 1], [0, 3], [0, 0]], mode="SYMMETRIC"))(h),
            _Op(lambda t: tf.reverse(t, [2]))(h),
            _Op(lambda t: tf.broadcast_to(t[:, :1], [1, 6, 8, 8]))(h),
        ]
        return _convert(keras.Model(inp, outputs), (6, 8, 4), seed=6)

    return cached("more_spatial_moves", {"version": MORE_MODELS_VERSION}, make)


def elementwise_and_logic() -> bytes:
    """DIV, ABS, RSQRT, SQUARED_DIFFERENCE, LOG_SOFTMAX, L2_NORMALIZATION, and the six
    comparisons with LOGICAL_AND/OR/NOT feeding SELECT_V2 (tf.where with a broadcast
    operand; with equal shapes the converter writes SELECT, which TFLM does not have)."""
    def make() -> bytes:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(17)
        inp = keras.Input((4, 6), batch_size=1)
        a, b, c = (keras.layers.Dense(6)(inp) for _ in range(3))

        def condition(t: Any) -> Any:
            a, b, c = t
            first = a > b
            second = tf.logical_or(a <= c, tf.equal(a, b))
            third = tf.logical_not(tf.logical_or(a < b, b >= c))
            return tf.logical_or(tf.logical_and(first, second), third)

        cond = _Op(condition)([a, b, c])
        outputs = [
            # a divisor in [1, ~1.5]: with a wider range TFLM's int8 DIV shifts by 32 bits
            # or more for small dividends, which codegen refuses (README)
            _Op(lambda t: t[0] / (tf.abs(t[1]) * 0.25 + 1.0))([a, b]),
            _Op(lambda t: tf.math.rsqrt(tf.abs(t) + 0.25))(c),
            _Op(lambda t: tf.math.squared_difference(t[0], t[1]))([a, c]),
            _Op(lambda t: tf.nn.log_softmax(t, axis=-1))(b),
            _Op(lambda t: tf.math.l2_normalize(t, axis=-1))(c),
            _Op(lambda t: tf.where(t[0], t[1], tf.reduce_max(t[2], axis=1, keepdims=True)))(
                [cond, a, b]),
        ]
        return _convert(keras.Model(inp, outputs), (4, 6), seed=7)

    return cached("more_elementwise_logic", {"version": MORE_MODELS_VERSION, "v": 4}, make)


SSD_ANCHORS = 24
SSD_CLASSES = 3
SSD_MAX_DETECTIONS = 6


def _ssd_implements(regular: bool) -> str:
    """The `experimental_implements` signature TensorFlow's object-detection export gives
    its post-processing function; the converter writes the function as TFLM's custom op."""
    # The converter writes no detections_per_class (TFLM then takes 100) and use_regular_nms
    # as an integer.
    attrs = {"max_detections": f"i: {SSD_MAX_DETECTIONS}", "max_classes_per_detection": "i: 1",
             "use_regular_nms": f"b: {str(regular).lower()}",
             "nms_score_threshold": "f: 0.4", "nms_iou_threshold": "f: 0.5",
             "num_classes": f"i: {SSD_CLASSES}", "y_scale": "f: 10.0", "x_scale": "f: 10.0",
             "h_scale": "f: 5.0", "w_scale": "f: 5.0"}
    fields = " ".join(f'attr {{ key: "{k}" value {{ {v} }} }}' for k, v in attrs.items())
    return f'name: "TFLite_Detection_PostProcess" {fields}'


def ssd_head(regular: bool = True) -> bytes:
    """A tiny SSD detector as TensorFlow's object-detection export writes one: a Keras
    convolutional head (box encodings and sigmoid class scores per anchor), then the
    post-processing function the converter turns into DETECTION_POSTPROCESS with its
    flexbuffer options; full-integer quantization leaves the operator float, behind
    DEQUANTIZE."""
    def make() -> bytes:
        import keras
        import tensorflow as tf

        from support.detection_models import grid_anchors

        keras.utils.set_random_seed(18)
        inp = keras.Input((4, 6, 3), batch_size=1)
        features = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
        boxes = keras.layers.Reshape((SSD_ANCHORS, 4))(keras.layers.Conv2D(4, 1)(features))
        scores = keras.layers.Reshape((SSD_ANCHORS, SSD_CLASSES + 1))(
            keras.layers.Conv2D(SSD_CLASSES + 1, 1, activation="sigmoid",
                                # a prior towards "nothing here", as SSD heads start
                                bias_initializer=keras.initializers.Constant(-1.1))(features))
        head = keras.Model(inp, [boxes, scores])
        anchors = tf.constant(grid_anchors(4, 6, (0.35,), 1.0)[::2])
        # The head's weights frozen into constants, as an exported inference graph has them
        # (the converter keeps Keras variables as resource variables here).
        w1, b1, w2, b2, w3, b3 = (tf.constant(w) for w in head.get_weights())

        @tf.function(experimental_implements=_ssd_implements(regular))
        def postprocess(box_encodings: Any, class_predictions: Any, anchors: Any) -> Any:
            del box_encodings, class_predictions, anchors  # the custom op computes them
            return (tf.zeros([1, SSD_MAX_DETECTIONS, 4]), tf.zeros([1, SSD_MAX_DETECTIONS]),
                    tf.zeros([1, SSD_MAX_DETECTIONS]), tf.zeros([1]))

        class Detector(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([1, 4, 6, 3], tf.float32)])
            def __call__(self, x: Any) -> Any:
                h = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME") + b1)
                box_encodings = tf.reshape(tf.nn.conv2d(h, w2, 1, "VALID") + b2,
                                           [1, SSD_ANCHORS, 4])
                class_predictions = tf.reshape(
                    tf.sigmoid(tf.nn.conv2d(h, w3, 1, "VALID") + b3),
                    [1, SSD_ANCHORS, SSD_CLASSES + 1])
                return postprocess(box_encodings, class_predictions, anchors)

        detector = Detector()
        return _quantize_detector(tf.lite.TFLiteConverter.from_concrete_functions(
            [detector.__call__.get_concrete_function()], detector))

    return cached("more_ssd_head", {"regular": regular, "version": MORE_MODELS_VERSION, "v": 9},
                  make)


def _quantize_detector(converter: Any) -> bytes:
    """Full-integer quantization with the custom operator allowed (left float by it)."""
    import tensorflow as tf

    converter.allow_custom_ops = True
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(8)
    data = rng.uniform(-1, 1, (SAMPLES, 1, 4, 6, 3)).astype(np.float32)
    converter.representative_dataset = lambda: ([row] for row in data)
    converter.inference_input_type = tf.int8
    return bytes(converter.convert())


HELD_OUT: dict[str, Callable[[], bytes]] = {
    "reductions_and_indices": reductions_and_indices,
    "spatial_moves": spatial_moves,
    "elementwise_and_logic": elementwise_and_logic,
}
DETECTION: dict[str, Callable[[], bytes]] = {
    "ssd_head_regular": ssd_head,
    "ssd_head_fast": lambda: ssd_head(regular=False),
}
