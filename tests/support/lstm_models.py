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
