"""Models that keep state in resource variables, built with TensorFlow and converted as a
user would (`experimental_enable_resource_variables`, with the variables quantized too:
`_experimental_variable_quantization`), cached like support.models':
- a sliding window over frames: the variable holds the last `frames` frames, each invoke
  shifts it by one frame (STRIDED_SLICE, CONCATENATION), stores it (ASSIGN_VARIABLE) and
  classifies the window (FULLY_CONNECTED);
- a running average: state = decay x state + (1 - decay) x frame, initialized by the
  CALL_ONCE subgraph to a nonzero constant, with a Dense head on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from support.models import cached

RESOURCE_MODELS_VERSION = 1
SAMPLES = 128


def _convert(module: Any, function: Any, width: int, seed: int) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], module)
    converter.experimental_enable_resource_variables = True
    converter._experimental_variable_quantization = True
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(seed)
    samples = rng.uniform(-1.0, 1.0, (SAMPLES, 1, width)).astype(np.float32)
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def sliding_window(width: int = 5, frames: int = 4, classes: int = 3) -> bytes:
    def make() -> bytes:
        import tensorflow as tf

        rng = np.random.default_rng(1)
        weights = rng.uniform(-0.5, 0.5, (width * frames, classes)).astype(np.float32)

        class Window(tf.Module):
            def __init__(self) -> None:
                super().__init__()
                self.window = tf.Variable(tf.zeros([1, width * frames]))

            @tf.function(input_signature=[tf.TensorSpec([1, width], tf.float32)])
            def __call__(self, frame: Any) -> Any:
                shifted = tf.concat([self.window[:, width:], frame], axis=1)
                self.window.assign(shifted)
                return tf.nn.relu(tf.matmul(shifted, weights))

        module = Window()
        return _convert(module, module.__call__, width, seed=2)

    return cached("resource_sliding_window", {"width": width, "frames": frames,
                                              "classes": classes,
                                              "version": RESOURCE_MODELS_VERSION}, make)


def running_average(width: int = 6, classes: int = 4, decay: float = 0.75) -> bytes:
    def make() -> bytes:
        import tensorflow as tf

        rng = np.random.default_rng(3)
        weights = rng.uniform(-1.0, 1.0, (width, classes)).astype(np.float32)
        start = rng.uniform(-0.8, 0.8, (1, width)).astype(np.float32)

        class Average(tf.Module):
            def __init__(self) -> None:
                super().__init__()
                self.average = tf.Variable(start)

            @tf.function(input_signature=[tf.TensorSpec([1, width], tf.float32)])
            def __call__(self, frame: Any) -> Any:
                average = self.average * decay + frame * (1.0 - decay)
                self.average.assign(average)
                return tf.matmul(average, weights)

        module = Average()
        return _convert(module, module.__call__, width, seed=4)

    return cached("resource_running_average", {"width": width, "classes": classes,
                                               "decay": decay,
                                               "version": RESOURCE_MODELS_VERSION}, make)
