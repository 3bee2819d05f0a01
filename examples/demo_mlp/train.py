"""Train the bundled demo model: a small MLP fitted to z = min(1, 4xy) on [0, 1]^2.

    python examples/demo_mlp/train.py [--out DIR] [--seed N]

Writes to codegen/demo/ (or DIR):
  demo_mlp.keras               the float Keras model (2 -> 16 -> 16 -> 1, ReLU)
  demo_mlp.tflite              int8, int8 input/output, per-channel weights (TF default)
  demo_mlp_per_tensor.tflite   the same with per-tensor weights

Quantization is post-training with a representative dataset (a 17x17 grid over the unit
square, corners included, so the input range is exactly [0, 1]). Training is seeded and run
with deterministic ops; on one machine and TensorFlow version the outputs are reproducible.
The fit error of the float model and of the int8 model (LiteRT interpreter) is printed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "codegen" / "demo"
HIDDEN = 16
TRAIN_SAMPLES = 4096
EPOCHS = 120
BATCH = 64


def target(xy: np.ndarray) -> np.ndarray:
    """The function the MLP learns: z = min(1, 4xy), shape (N, 1)."""
    return np.minimum(1.0, 4.0 * xy[:, :1] * xy[:, 1:2]).astype(np.float32)


def training_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    xy = np.random.default_rng(seed).uniform(0.0, 1.0, (TRAIN_SAMPLES, 2)).astype(np.float32)
    return xy, target(xy)


def grid(points: int) -> np.ndarray:
    """points x points samples of [0, 1]^2, edges included, shape (points**2, 2)."""
    axis = np.linspace(0.0, 1.0, points, dtype=np.float32)
    xs, ys = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def build_model(seed: int) -> Any:
    import keras

    init = keras.initializers.GlorotUniform
    inputs = keras.Input((2,), name="xy")
    h = keras.layers.Dense(HIDDEN, activation="relu", kernel_initializer=init(seed),
                           name="hidden1")(inputs)
    h = keras.layers.Dense(HIDDEN, activation="relu", kernel_initializer=init(seed + 1),
                           name="hidden2")(h)
    z = keras.layers.Dense(1, kernel_initializer=init(seed + 2), name="z")(h)
    return keras.Model(inputs, z, name="demo_mlp")


def train(seed: int = 0, epochs: int = EPOCHS) -> Any:
    """A trained float Keras model (deterministic for a given seed on one machine)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    model = build_model(seed)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    xy, z = training_data(seed)
    schedule = keras.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=8, min_lr=1e-4)
    model.fit(xy, z, epochs=epochs, batch_size=BATCH, shuffle=True, verbose=0,
              callbacks=[schedule])
    return model


def convert(model: Any, per_channel: bool = True) -> bytes:
    """Post-training int8 quantization with int8 input and output."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    representative = grid(17)
    converter.representative_dataset = lambda: ([row[None]] for row in representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    if not per_channel:
        converter._experimental_disable_per_channel = True
    return converter.convert()


def run_int8(model: bytes, xy: np.ndarray) -> np.ndarray:
    """Run the int8 model on float inputs (quantize, invoke, dequantize) with LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    in_scale, in_zp = inp["quantization"]
    out_scale, out_zp = out["quantization"]
    results = np.empty((len(xy), 1), dtype=np.float32)
    for i, row in enumerate(xy):
        q = np.clip(np.round(row / in_scale) + in_zp, -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], q[None])
        interp.invoke()
        results[i] = (interp.get_tensor(out["index"]).astype(np.float32) - out_zp) * out_scale
    return results


def fit_error(predicted: np.ndarray, expected: np.ndarray) -> str:
    error = np.abs(predicted - expected)
    return f"rms {np.sqrt(np.mean(error**2)):.4f}, max {error.max():.4f}"


def save_keras(model: Any, path: Path) -> None:
    """Save weights and architecture only (no optimizer state), to keep the file small."""
    import keras

    bare = keras.models.clone_model(model)
    bare.set_weights(model.get_weights())
    bare.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    model = train(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    save_keras(model, args.out / "demo_mlp.keras")
    per_channel = convert(model, per_channel=True)
    per_tensor = convert(model, per_channel=False)
    (args.out / "demo_mlp.tflite").write_bytes(per_channel)
    (args.out / "demo_mlp_per_tensor.tflite").write_bytes(per_tensor)

    test = grid(101)
    expected = target(test)
    print(f"float fit:             {fit_error(model.predict(test, verbose=0), expected)}")
    print(f"int8 fit, per-channel: {fit_error(run_int8(per_channel, test), expected)}")
    print(f"int8 fit, per-tensor:  {fit_error(run_int8(per_tensor, test), expected)}")
    for name in ("demo_mlp.keras", "demo_mlp.tflite", "demo_mlp_per_tensor.tflite"):
        print(f"wrote {args.out / name} ({(args.out / name).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
