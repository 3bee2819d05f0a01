"""Keras LSTM models converted to int8 as a user converts them, cached like support.models'.

TensorFlow's converter fuses a Keras 2 (`tf-keras`) LSTM layer into one
UNIDIRECTIONAL_SEQUENCE_LSTM with its hidden and cell state as variable tensors (Keras 3's
export leaves a while loop the int8 converter cannot take), so each model is built and
converted in a process of its own with TF_USE_LEGACY_KERAS=1 (which must be set before
TensorFlow is first imported). TFLM keeps the state of those variables from one invoke to
the next: every such model is a streaming model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from support.models import cached

LSTM_MODELS_VERSION = 1


@dataclass(frozen=True)
class LstmSpec:
    units: int
    steps: int
    depth: int
    return_sequences: bool
    layers: int = 1  # stacked LSTM layers (all but the last return sequences)
    batch: int = 1
    time_major: bool = False
    dense: int = 0  # a Dense head of this many outputs after the last LSTM (0: none)
    seed: int = 0


SPECS: dict[str, LstmSpec] = {
    "units1_sequence": LstmSpec(units=1, steps=4, depth=2, return_sequences=True),
    "units8_last_dense": LstmSpec(units=8, steps=10, depth=3, return_sequences=False,
                                  dense=2, seed=1),
    "units20_last": LstmSpec(units=20, steps=3, depth=6, return_sequences=False, seed=2),
    "units8_stacked": LstmSpec(units=8, steps=5, depth=4, return_sequences=True, layers=2,
                               seed=3),
    "units5_batch2": LstmSpec(units=5, steps=6, depth=3, return_sequences=True, batch=2,
                              seed=4),
    "units6_time_major": LstmSpec(units=6, steps=7, depth=5, return_sequences=True,
                                  time_major=True, seed=5),
    # a frame denoiser: 20 frames of 8 values in, an LSTM over them, a Dense back to the
    # frame's width at every step (the output a sequence of the input's shape)
    "units16_denoiser": LstmSpec(units=16, steps=20, depth=8, return_sequences=True,
                                 dense=8, seed=9),
}

_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tf_keras as keras

spec = json.loads(sys.argv[1])
keras.utils.set_random_seed(spec["seed"])
if spec["time_major"]:
    shape, batch = (spec["steps"], spec["batch"], spec["depth"]), None
    inp = keras.Input(shape=shape[1:], batch_size=spec["steps"])
else:
    inp = keras.Input((spec["steps"], spec["depth"]), batch_size=spec["batch"])
x = inp
for k in range(spec["layers"]):
    last = k == spec["layers"] - 1
    x = keras.layers.LSTM(spec["units"], time_major=spec["time_major"],
                          return_sequences=spec["return_sequences"] or not last)(x)
if spec["dense"]:
    x = keras.layers.Dense(spec["dense"])(x)
model = keras.Model(inp, x)
rng = np.random.default_rng(spec["seed"])
shape = tuple(inp.shape)
samples = rng.uniform(-1, 1, (64, *shape)).astype(np.float32)
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = lambda: ([s] for s in samples)
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.int8
converter.inference_output_type = tf.int8
open(sys.argv[2], "wb").write(converter.convert())
"""


def lstm_model(spec: LstmSpec) -> bytes:
    def make() -> bytes:
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "model.tflite"
            subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(asdict(spec)), str(out)],
                           check=True, env=env, timeout=600, capture_output=True)
            return out.read_bytes()

    return cached("lstm", {**asdict(spec), "version": LSTM_MODELS_VERSION}, make)


def to_16x8(model: bytes) -> bytes:
    """The same LSTM model in 16x8 form, which the converter does not write for LSTMs
    ("Quantization to 16x8-bit not yet supported"): every int8 activation (the input, the
    hidden states, the outputs) made int16 with zero point 0 and 1/256 of its scale, every
    LSTM bias int64 (the same values); weights stay int8, the cell state int16."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    from support.builder import pack, read_model

    obj = read_model(model)
    graph = obj.subgraphs[0]
    biases = {op.inputs[k] for op in graph.operators if op.inputs is not None
              and len(op.inputs) == 24 for k in range(12, 16)}
    widened: set[int] = set()
    for index, tensor in enumerate(graph.tensors):
        buffer = obj.buffers[tensor.buffer]
        constant = buffer.data is not None and len(buffer.data) > 0
        if tensor.type == schema.TensorType.INT8 and not constant:
            tensor.type = schema.TensorType.INT16
            tensor.quantization.scale = [float(s) / 256 for s in tensor.quantization.scale]
            tensor.quantization.zeroPoint = [0]
        elif index in biases:
            if tensor.buffer not in widened:  # biases may share a buffer
                values = np.frombuffer(bytes(buffer.data), np.int32).astype(np.int64)
                buffer.data = np.frombuffer(values.tobytes(), np.uint8)
                widened.add(tensor.buffer)
            tensor.type = schema.TensorType.INT64
    return pack(obj)
