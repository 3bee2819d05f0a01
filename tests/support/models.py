"""int8 .tflite models made by the real TensorFlow converter, for tests.

Every factory builds a Keras model from its parameters and a seed, converts it with
post-training int8 quantization and a representative dataset, and returns the flatbuffer.
Conversion is slow (TensorFlow's import alone takes seconds), so results are cached on disk
under `$CODEGEN_TEST_CACHE` or `~/.cache/codegen-tests`, keyed by the factory, its
parameters, the TensorFlow version and `FACTORY_VERSION`. TensorFlow is imported only inside
the functions that need it; nothing under codegen/ imports it.

What the TF 2.21 converter does (checked in tests/test_support.py):
- Dense weights are quantized per channel (one scale per output unit, axis 0) by default;
  `converter._experimental_disable_per_channel = True` gives one scale per tensor.
- `inference_input_type = inference_output_type = tf.int8` gives int8 I/O; left at float32,
  the model gets a QUANTIZE after the input and a DEQUANTIZE before the output.
- relu and relu6 fuse into FULLY_CONNECTED; so does clip(x, -1, 1) after a Dense, as
  RELU_N1_TO_1.
- An all-zero bias is dropped (the FULLY_CONNECTED bias input becomes -1), so the factories
  draw nonzero biases. The bias of a Dense without activation that feeds another Dense is
  folded into the next layer's bias and dropped too (seen for 640 -> 1 -> 17).
- Activation tensors keep shape (1, n) with shape_signature (-1, n).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

FACTORY_VERSION = 1
FC_SIZES = (1, 3, 17, 640)
FC_ACTIVATIONS = ("none", "relu", "relu6", "relu_n1_to_1")
REPRESENTATIVE_SAMPLES = 128

_REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = _REPO_ROOT / "codegen" / "demo"
DEMO_TRAIN_SCRIPT = _REPO_ROOT / "examples" / "demo_mlp" / "train.py"


# -- cache ---------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where generated models are kept: $CODEGEN_TEST_CACHE, else ~/.cache/codegen-tests."""
    override = os.environ.get("CODEGEN_TEST_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "codegen-tests"


def _tf_version() -> str:
    try:
        return importlib.metadata.version("tensorflow-cpu")
    except importlib.metadata.PackageNotFoundError:
        return importlib.metadata.version("tensorflow")


def cache_key(name: str, params: dict[str, Any]) -> str:
    blob = json.dumps({"factory": name, "params": params, "tf": _tf_version(),
                       "version": FACTORY_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached(name: str, params: dict[str, Any], make: Callable[[], bytes],
           cache: Path | None = None) -> bytes:
    """`make()` once per (name, params); later calls read the file. Writes are atomic."""
    directory = cache if cache is not None else cache_dir()
    path = directory / f"{name}-{cache_key(name, params)}.tflite"
    if path.is_file():
        return path.read_bytes()
    model = make()
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".tmp", delete=False) as tmp:
        tmp.write(model)
    os.replace(tmp.name, path)
    return model


# -- conversion ----------------------------------------------------------------------------


def representative_inputs(width: int, seed: int, low: float = -1.0,
                          high: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, (REPRESENTATIVE_SAMPLES, width)).astype(np.float32)


def convert_int8(model: Any, representative: np.ndarray, *, per_channel: bool = True,
                 io: str = "int8") -> bytes:
    """Post-training full-integer quantization of a Keras model.

    `io` is "int8" (int8 input and output tensors) or "float32" (float I/O around an int8
    body, via QUANTIZE and DEQUANTIZE). `representative` holds one sample per row.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[None]] for row in representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io_type = {"int8": tf.int8, "float32": tf.float32}[io]
    converter.inference_input_type = io_type
    converter.inference_output_type = io_type
    if not per_channel:
        converter._experimental_disable_per_channel = True
    return bytes(converter.convert())


# -- fully connected stacks ----------------------------------------------------------------


def keras_fc_stack(sizes: Sequence[int], activations: Sequence[str], seed: int = 0) -> Any:
    """Dense layers sizes[0] -> sizes[1] -> ...; activations[i] follows layer i.

    Activations: "none", "relu", "relu6", "relu_n1_to_1" (a clip to [-1, 1], which the
    converter fuses as RELU_N1_TO_1). Biases are drawn nonzero so they are kept.
    """
    import keras

    if len(activations) != len(sizes) - 1:
        raise ValueError("one activation per Dense layer")
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((sizes[0],))
    h = inputs
    for layer, (units, activation) in enumerate(zip(sizes[1:], activations, strict=True)):
        h = keras.layers.Dense(
            units,
            kernel_initializer=keras.initializers.GlorotUniform(seed + layer),
            bias_initializer=keras.initializers.RandomUniform(-0.3, 0.3, seed + 100 + layer),
        )(h)
        h = _activation(h, activation)
    return keras.Model(inputs, h)


def _activation(h: Any, activation: str) -> Any:
    import keras

    if activation == "none":
        return h
    if activation == "relu":
        return keras.ops.relu(h)
    if activation == "relu6":
        return keras.ops.relu6(h)
    if activation == "relu_n1_to_1":
        return keras.ops.clip(h, -1.0, 1.0)
    raise ValueError(f"unknown activation {activation!r}")


def fc_stack(sizes: Sequence[int], activations: Sequence[str], *, per_channel: bool = True,
             io: str = "int8", seed: int = 0, cache: Path | None = None) -> bytes:
    """An int8 FULLY_CONNECTED stack (see keras_fc_stack), converted and cached."""
    params = {"sizes": [int(s) for s in sizes], "activations": list(activations),
              "per_channel": per_channel, "io": io, "seed": seed}

    def make() -> bytes:
        model = keras_fc_stack(sizes, activations, seed)
        return convert_int8(model, representative_inputs(sizes[0], seed),
                            per_channel=per_channel, io=io)

    return cached("fc_stack", params, make, cache)


def random_fc_stack_params(seed: int, max_layers: int = 3) -> dict[str, Any]:
    """Sizes from FC_SIZES and activations from FC_ACTIVATIONS, drawn from `seed`."""
    rng = np.random.default_rng(seed)
    layers = int(rng.integers(1, max_layers + 1))
    sizes = [int(s) for s in rng.choice(FC_SIZES, layers + 1)]
    activations = [str(a) for a in rng.choice(FC_ACTIVATIONS, layers)]
    return {"sizes": sizes, "activations": activations}


def float_io_model(*, per_channel: bool = True, seed: int = 0,
                   cache: Path | None = None) -> bytes:
    """float32 input and output around an int8 body: QUANTIZE, FCs, DEQUANTIZE."""
    return fc_stack((3, 17, 5), ("relu", "none"), per_channel=per_channel, io="float32",
                    seed=seed, cache=cache)


# -- the demo MLP --------------------------------------------------------------------------


def demo_train_module() -> ModuleType:
    """examples/demo_mlp/train.py, loaded as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("demo_mlp_train", DEMO_TRAIN_SCRIPT)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {DEMO_TRAIN_SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def demo_mlp(*, per_channel: bool = True, cache: Path | None = None) -> bytes:
    """The bundled demo MLP (codegen/demo/demo_mlp.keras) converted as train.py does."""
    keras_file = DEMO_DIR / "demo_mlp.keras"
    digest = hashlib.sha256(keras_file.read_bytes()).hexdigest()[:16]

    def make() -> bytes:
        import keras

        train = demo_train_module()
        return train.convert(keras.models.load_model(keras_file), per_channel=per_channel)

    return cached("demo_mlp", {"per_channel": per_channel, "keras": digest}, make, cache)
