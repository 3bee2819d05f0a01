"""`codegen quantize --int16`: the 16x8 model of the demo MLP, end to end.

It is written with int16 I/O (or float I/O with --float-io), runs bit-exactly through
`codegen run --target cortex-m4` (against the numpy reference and TFLM), and its error
against the float model is at most the int8 model's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.models import DEMO_DIR, demo_train_module
from support.tflm import run_tflm
from support.verify import assert_same

from codegen.execute import execute
from codegen.program import load_program
from codegen.quantize import FloatModel, dequantize, int8_inputs

DEMO_KERAS = DEMO_DIR / "demo_mlp.keras"


def codegen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codegen", *args], capture_output=True,
                          text=True, check=False, timeout=900)


def _quantize(directory: Path) -> dict[str, Path]:
    """The demo MLP quantized int8, 16x8 and 16x8 with float I/O, by the CLI."""
    calibration = directory / "grid.npy"
    np.save(calibration, demo_train_module().grid(17))
    models = {}
    for name, flags in {"int8": [], "16x8": ["--int16"],
                        "16x8_float": ["--int16", "--float-io"]}.items():
        out = directory / f"{name}.tflite"
        result = codegen("quantize", str(DEMO_KERAS), "-o", str(out), "--calibration",
                         str(calibration), *flags)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        if name == "16x8":
            assert "16x8, per-channel weights, int16 I/O" in result.stdout, result.stdout
        models[name] = out
    return models


def _grid(points: int = 41) -> np.ndarray:
    return demo_train_module().grid(points).astype(np.float32)


def _check_types(models: dict[str, Path]) -> None:
    program = load_program(models["16x8"])
    graph = program.graph
    assert [layer.opcode for layer in program.layers] == ["FULLY_CONNECTED"] * 3
    for layer in program.layers:
        assert graph.tensors[layer.outputs[0]].dtype.numpy_name == "int16"
        assert graph.tensors[layer.op.inputs[1]].dtype.numpy_name == "int8"
    floats = load_program(models["16x8_float"])
    assert [layer.opcode for layer in floats.layers] == [
        "QUANTIZE", *["FULLY_CONNECTED"] * 3, "DEQUANTIZE"]
    assert floats.graph.tensors[floats.layers[0].outputs[0]].dtype.numpy_name == "int16"


def _check_error(models: dict[str, Path]) -> None:
    """On a grid over the input range, against the float model: RMS and max error."""
    xy = _grid()
    expected = FloatModel(DEMO_KERAS).predict([xy])[0].reshape(len(xy), -1).astype(np.float64)
    errors = {}
    for name in ("int8", "16x8"):
        program = load_program(models[name])
        out = execute(program, "reference", int8_inputs(program, [xy]))[0]
        real = dequantize(program.graph.tensors[program.graph.outputs[0]], out)
        diff = real.reshape(len(xy), -1) - expected
        errors[name] = (float(np.sqrt(np.mean(diff ** 2))), float(np.abs(diff).max()))
    assert errors["16x8"][0] <= errors["int8"][0], errors
    assert errors["16x8"][1] <= errors["int8"][1], errors


def _check_cortex_m4(model: Path, directory: Path) -> None:
    """`codegen run --target cortex-m4` on int16 arrays equals the reference and TFLM."""
    program = load_program(model)
    rng = np.random.default_rng(5)
    inputs = rng.integers(-32768, 32768, size=(60, 1, 2)).astype(np.int16)
    inputs[:2] = [[[-32768, -32768]], [[32767, 32767]]]
    np.save(directory / "in.npy", inputs)
    result = codegen("run", str(model), "--target", "cortex-m4", "--input",
                     str(directory / "in.npy"), "--output", str(directory / "out.npy"))
    assert result.returncode == 0, result.stderr
    got = np.load(directory / "out.npy")
    assert got.dtype == np.int16
    expected = execute(program, "reference", [inputs])
    assert_same([got], expected, "cortex-m4 vs reference")
    assert_same(expected, run_tflm(model.read_bytes(), [inputs]), "reference vs TFLM")


def _check_float_io(model: Path) -> None:
    program = load_program(model)
    xy = np.concatenate([_grid(9), np.array([[-1e3, 1e3], [2.0, -0.5]], np.float32)])
    inputs = [xy.reshape(len(xy), 1, 2)]
    assert_same(execute(program, "reference", inputs), run_tflm(model.read_bytes(), inputs),
                "float I/O: reference vs TFLM")


@pytest.mark.tf
@pytest.mark.tflm
@pytest.mark.qemu
def test_quantize_int16_end_to_end(tmp_path: Path) -> None:
    """One test, so that the three conversions run once: types, error, cortex-m4, float I/O."""
    models = _quantize(tmp_path)
    _check_types(models)
    _check_error(models)
    _check_cortex_m4(models["16x8"], tmp_path)
    _check_float_io(models["16x8_float"])


@pytest.mark.tf
def test_api_quantize_int16() -> None:
    """`api.quantize(..., int16=True)` is the CLI's --int16: 16x8 with int16 I/O."""
    from codegen import api

    result = api.quantize(DEMO_KERAS, _grid(9), int16=True)
    graph = load_program(result.model).graph
    for index in (*graph.inputs, *graph.outputs):
        assert graph.tensors[index].dtype.numpy_name == "int16"
    (error,) = result.errors
    assert 0 <= error.rms <= error.max and error.relative_rms < 0.05
