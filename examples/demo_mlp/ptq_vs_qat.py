"""Post-training quantization (PTQ) vs quantization-aware training (QAT) vs 16x8 PTQ on the
demo MLP.

    python examples/demo_mlp/ptq_vs_qat.py [--out DIR] [--epochs N] [--qat-epochs N]

Run it as a process of its own: tensorflow-model-optimization (tfmot) works on the legacy
Keras 2 (the `tf-keras` package), which TensorFlow only uses when TF_USE_LEGACY_KERAS=1 is
set before it is first imported. This script sets it itself, first thing.

1. Trains the demo MLP (2 -> 16 -> 16 -> 1, ReLU, fitted to z = min(1, 4xy) on [0, 1]^2,
   as examples/demo_mlp/train.py does) in tf_keras and saves it as a SavedModel.
2. PTQ: `codegen quantize` of that SavedModel with a calibration grid -> demo_mlp_ptq.tflite.
3. QAT: wraps the float model with `tfmot.quantization.keras.quantize_model` (fake-quantized
   weights and activations), fine-tunes it, saves it as a SavedModel, and converts it with
   the same `codegen quantize` -> demo_mlp_qat.tflite (the converter takes the ranges the
   training learned).
4. 16x8 PTQ: `codegen quantize --int16` of the float SavedModel -> demo_mlp_16x8.tflite
   (int16 activations and I/O, int8 weights): the first remedy when int8 loses too much.
5. Runs the three models with codegen's integer reference (bit-exact with the generated C
   and with TFLM) on a 101 x 101 grid and prints the error of each against the function.

The int8 .tflite files have int8 input and output, the 16x8 one int16; all are ready for
`codegen generate` or `codegen build`. The equivalent command lines are printed as they run.
"""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow is imported anywhere
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
EPOCHS = 120
# tfmot tracks activation ranges with a moving average (decay 0.999) that starts from
# [-6, 6]: fewer than a few thousand steps (60 epochs of 64 batches) leave the ranges wide
# and the int8 steps coarse, and QAT then loses to PTQ.
QAT_EPOCHS = 60


def _train_module() -> Any:
    """examples/demo_mlp/train.py: the target function, the data, the grid."""
    spec = importlib.util.spec_from_file_location("demo_mlp_train", HERE / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_model(seed: int) -> Any:
    """The demo MLP in tf_keras (the legacy Keras that tfmot wraps)."""
    import tf_keras as keras

    init = keras.initializers.GlorotUniform
    inputs = keras.Input((2,), name="xy")
    h = keras.layers.Dense(16, activation="relu", kernel_initializer=init(seed),
                           name="hidden1")(inputs)
    h = keras.layers.Dense(16, activation="relu", kernel_initializer=init(seed + 1),
                           name="hidden2")(h)
    z = keras.layers.Dense(1, kernel_initializer=init(seed + 2), name="z")(h)
    return keras.Model(inputs, z, name="demo_mlp")


def fit(model: Any, xy: np.ndarray, z: np.ndarray, epochs: int, learning_rate: float) -> None:
    import tf_keras as keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    schedule = keras.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=8,
                                                 min_lr=learning_rate / 100)
    model.fit(xy, z, epochs=epochs, batch_size=64, shuffle=True, verbose=0,
              callbacks=[schedule])


def quantize(saved_model: Path, calibration: Path, output: Path, int16: bool = False) -> bytes:
    """What `codegen quantize SAVED_MODEL -o OUTPUT --calibration CALIBRATION [--int16]`
    does."""
    from codegen.quantize import quantize_model

    flag = " --int16" if int16 else ""
    print(f"$ codegen quantize {saved_model} -o {output} --calibration {calibration}{flag}")
    result = quantize_model(saved_model, calibration, scheme="16x8" if int16 else "int8")
    output.write_bytes(result.model)
    return result.model


def run_quantized(model: bytes, xy: np.ndarray) -> np.ndarray:
    """Quantize the inputs, run codegen's integer reference, dequantize the outputs."""
    from codegen.program import load_program
    from codegen.quantize import dequantize, int8_inputs
    from codegen.reference import run_reference

    program = load_program(model)
    q = run_reference(program, int8_inputs(program, [xy]))[0]
    return dequantize(program.graph.tensors[program.graph.outputs[0]], q).reshape(len(xy), -1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("ptq_vs_qat"))
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="float training epochs")
    parser.add_argument("--qat-epochs", type=int, default=QAT_EPOCHS,
                        help="quantization-aware fine-tuning epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))  # codegen from this checkout if not installed

    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    train = _train_module()
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    calibration = out / "calibration.npy"
    np.save(calibration, train.grid(17))
    xy, z = train.training_data(args.seed)

    print(f"training the float MLP ({args.epochs} epochs)")
    model = build_model(args.seed)
    fit(model, xy, z, args.epochs, 0.01)
    model.save(out / "float_savedmodel", save_format="tf")
    ptq = quantize(out / "float_savedmodel", calibration, out / "demo_mlp_ptq.tflite")
    ptq16 = quantize(out / "float_savedmodel", calibration, out / "demo_mlp_16x8.tflite",
                     int16=True)

    print(f"quantization-aware fine-tuning ({args.qat_epochs} epochs)")
    qat_model = tfmot.quantization.keras.quantize_model(model)
    fit(qat_model, xy, z, args.qat_epochs, 0.001)
    qat_model.save(out / "qat_savedmodel", save_format="tf")
    qat = quantize(out / "qat_savedmodel", calibration, out / "demo_mlp_qat.tflite")

    test = train.grid(101)
    expected = train.target(test)
    print("error against min(1, 4xy) on a 101 x 101 grid:")
    print(f"  float:     {train.fit_error(model.predict(test, verbose=0), expected)}")
    print(f"  int8 PTQ:  {train.fit_error(run_quantized(ptq, test), expected)}")
    print(f"  int8 QAT:  {train.fit_error(run_quantized(qat, test), expected)}")
    print(f"  16x8 PTQ:  {train.fit_error(run_quantized(ptq16, test), expected)}")
    print(f"wrote {out / 'demo_mlp_ptq.tflite'}, {out / 'demo_mlp_qat.tflite'} and "
          f"{out / 'demo_mlp_16x8.tflite'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
