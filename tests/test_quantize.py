"""`codegen quantize`: Keras / SavedModel + calibration array -> full-int8 .tflite.

The converted models must be accepted by codegen (load_program, generate) and run in TFLM
exactly as in the numpy reference; the calibration checks refuse bad arrays in one line.
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

from codegen.errors import CodegenError
from codegen.execute import execute
from codegen.generate import generate
from codegen.program import load_program
from codegen.quantize import InputSpec, int8_inputs, load_samples

DEMO_KERAS = DEMO_DIR / "demo_mlp.keras"


def codegen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codegen", *args], capture_output=True,
                          text=True, check=False, timeout=600)


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cal") / "grid.npy"
    np.save(path, demo_train_module().grid(17))
    return path


def _static_shapes(model: bytes) -> bool:
    """No tensor of the first subgraph has a dynamic (-1) dimension in its signature."""
    from ai_edge_litert import schema_py_generated as schema

    graph = schema.Model.GetRootAs(model, 0).Subgraphs(0)
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        if tensor.ShapeSignatureLength() and (tensor.ShapeSignatureAsNumpy() < 0).any():
            return False
    return True


def _check_against_tflm(model: bytes, samples: int = 300) -> None:
    program = load_program(model)
    rng = np.random.default_rng(3)
    xy = [rng.uniform(-0.2, 1.2, (samples, *program.graph.tensors[t].shape[1:]))
          .astype(np.float32) for t in program.graph.inputs]
    inputs = int8_inputs(program, xy)
    assert_same(execute(program, "reference", inputs), run_tflm(model, inputs),
                "reference vs TFLM")


@pytest.mark.tf
@pytest.mark.tflm
def test_cli_int8_io_per_channel(tmp_path: Path, calibration: Path) -> None:
    out = tmp_path / "demo.tflite"
    result = codegen("quantize", str(DEMO_KERAS), "-o", str(out), "--calibration",
                     str(calibration))
    assert result.returncode == 0, result.stderr
    assert "per-channel weights, int8 I/O, calibrated on 289 samples" in result.stdout
    assert "% of the output range" in result.stdout
    assert result.stderr == ""  # TensorFlow's chatter stays out of the way
    model = out.read_bytes()
    assert _static_shapes(model)
    program = load_program(model)
    graph = program.graph
    assert [layer.opcode for layer in program.layers] == ["FULLY_CONNECTED"] * 3
    for t in (*graph.inputs, *graph.outputs):
        assert graph.tensors[t].dtype.numpy_name == "int8"
        assert graph.tensors[t].shape[0] == 1
    weights = graph.tensors[graph.operators[0].inputs[1]]
    assert weights.quant is not None and weights.quant.per_channel
    # The same settings as the bundled demo model: the same int8 model, up to names.
    bundled = load_program(DEMO_DIR / "demo_mlp.tflite")
    for mine, theirs in zip(program.layers, bundled.layers, strict=True):
        for a, b in zip(mine.constants(), theirs.constants(), strict=True):
            np.testing.assert_array_equal(a.values, b.values)
    generate(out, tmp_path / "c", "demo")
    _check_against_tflm(model)


@pytest.mark.tf
@pytest.mark.tflm
@pytest.mark.parametrize("form", ["savedmodel", "h5"])
def test_float_io_per_tensor_from_other_formats(tmp_path: Path, calibration: Path,
                                                form: str) -> None:
    import keras

    from codegen.quantize import quantize_model

    model = keras.models.load_model(DEMO_KERAS, compile=False)
    if form == "savedmodel":
        source = tmp_path / "saved"
        model.export(str(source), verbose=False)
    else:
        source = tmp_path / "demo.h5"
        model.save(source)
    result = quantize_model(source, calibration, float_io=True, per_tensor=True)
    program = load_program(result.model)
    graph = program.graph
    assert [layer.opcode for layer in program.layers] == \
        ["QUANTIZE", "FULLY_CONNECTED", "FULLY_CONNECTED", "FULLY_CONNECTED", "DEQUANTIZE"]
    assert graph.tensors[graph.inputs[0]].dtype.numpy_name == "float32"
    for layer in program.layers[1:4]:
        weights = graph.tensors[layer.op.inputs[1]]
        assert weights.quant is not None and not weights.quant.per_channel
    assert _static_shapes(result.model)
    _check_against_tflm(result.model)


@pytest.mark.tf
def test_batch_one_keeps_shape_arithmetic_out(tmp_path: Path) -> None:
    """A Flatten traced with a free batch size computes its target shape at run time
    (SHAPE, STRIDED_SLICE, PACK); traced with batch 1 it is one static RESHAPE."""
    import keras

    from codegen.quantize import quantize_model

    keras.utils.set_random_seed(1)
    inputs = keras.Input((3, 4))
    h = keras.layers.Flatten()(inputs)
    h = keras.layers.Dense(5, activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    path = tmp_path / "flat.keras"
    model.save(path)
    data = tmp_path / "cal.npy"
    # Samples given with the model's batch axis of 1 are accepted too.
    np.save(data, np.random.default_rng(0).uniform(-1, 1, (64, 1, 3, 4)).astype(np.float32))
    result = quantize_model(path, data)
    program = load_program(result.model)
    assert {layer.opcode for layer in program.layers} <= {"RESHAPE", "FULLY_CONNECTED"}
    assert _static_shapes(result.model)
    generate(_write(tmp_path, result.model), tmp_path / "c", "flat")


def _write(directory: Path, model: bytes) -> Path:
    path = directory / "model.tflite"
    path.write_bytes(model)
    return path


# -- calibration checks (no TensorFlow needed) -------------------------------------------


SPEC = [InputSpec("xy", (2,), "float32")]


@pytest.mark.parametrize("array, message", [
    (np.zeros((10, 3), np.float32), r"has shape \(10, 3\).*samples shaped \(2,\).*\(N, 2\)"),
    (np.zeros((10,), np.float32), r"shape \(10,\)"),
    (np.zeros((10, 2), np.int64), "is int64; it must hold floating-point samples"),
    (np.zeros((0, 2), np.float32), "is empty"),
    (np.full((4, 2), np.nan, np.float32), "NaN or infinite"),
    (np.array(3.0), "is empty|shape"),
])
def test_calibration_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(CodegenError, match=message):
        load_samples(path, SPEC)


def test_calibration_files(tmp_path: Path) -> None:
    with pytest.raises(CodegenError, match="no such file"):
        load_samples(tmp_path / "missing.npy", SPEC)
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(CodegenError, match="not a readable"):
        load_samples(tmp_path / "junk.npy", SPEC)
    two = [InputSpec("a", (1,), "float32"), InputSpec("b", (3,), "float32")]
    np.save(tmp_path / "one.npy", np.zeros((5, 1), np.float32))
    with pytest.raises(CodegenError, match=r"2 inputs; give the calibration data as an \.npz"):
        load_samples(tmp_path / "one.npy", two)
    np.savez(tmp_path / "two.npz", a=np.zeros((5, 1), np.float32),
             c=np.zeros((5, 3), np.float32))
    with pytest.raises(CodegenError, match="no array named 'b'"):
        load_samples(tmp_path / "two.npz", two)
    np.savez(tmp_path / "ok.npz", a=np.zeros((5, 1), np.float64),
             b=np.ones((5, 3), np.float16))
    a, b = load_samples(tmp_path / "ok.npz", two)
    assert a.dtype == b.dtype == np.float32 and a.shape == (5, 1) and b.shape == (5, 3)
    np.savez(tmp_path / "uneven.npz", a=np.zeros((5, 1), np.float32),
             b=np.zeros((4, 3), np.float32))
    with pytest.raises(CodegenError, match="different sample counts"):
        load_samples(tmp_path / "uneven.npz", two)
    free = [InputSpec("x", (None, 4), "float32")]
    (x,) = load_samples(_save(tmp_path, np.zeros((2, 7, 4), np.float32)), free)
    assert x.shape == (2, 7, 4)


def _save(directory: Path, array: np.ndarray) -> Path:
    path = directory / "x.npy"
    np.save(path, array)
    return path


@pytest.mark.tf
def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((10, 3), np.float32))
    cases = [
        ((str(DEMO_KERAS), "--calibration", str(tmp_path / "bad.npy")), "has shape (10, 3)"),
        ((str(tmp_path / "none.keras"), "--calibration", str(tmp_path / "bad.npy")),
         "no such file"),
        ((str(DEMO_DIR / "demo_mlp.tflite"), "--calibration", str(tmp_path / "bad.npy")),
         "not a Keras model"),
    ]
    for args, message in cases:
        result = codegen("quantize", *args, "-o", str(tmp_path / "out.tflite"))
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1, result.stderr
        assert len(lines) == 1 and lines[0].startswith("codegen: error:"), result.stderr
        assert message in lines[0]
        assert not (tmp_path / "out.tflite").exists()


# -- untrusted Keras files ---------------------------------------------------------------


def _lambda_model(directory: Path, marker: Path, suffix: str) -> Path:
    """A model whose Lambda layer writes `marker` when it runs (as it does when Keras
    rebuilds the model while loading it)."""
    import keras

    keras.utils.set_random_seed(2)
    source = (f"lambda t: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), "
              "t * 2.0)[1]")
    inputs = keras.Input((2,))
    h = keras.layers.Dense(4, activation="relu")(inputs)
    h = keras.layers.Lambda(eval(source), name="doubler")(h)
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    path = directory / f"lambda{suffix}"
    model.save(path)
    marker.unlink()  # building the model ran the lambda once
    return path


def _refused(result: subprocess.CompletedProcess[str]) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("codegen: error:"), result.stderr
    assert "Lambda layer" in lines[0] and "pass --trust-keras-code" in lines[0]


@pytest.mark.tf
def test_keras_code_runs_only_when_trusted(tmp_path: Path, calibration: Path) -> None:
    from codegen.quantize import FloatModel

    marker = tmp_path / "lambda-ran"
    model = _lambda_model(tmp_path, marker, ".keras")
    out = tmp_path / "out.tflite"
    _refused(codegen("quantize", str(model), "-o", str(out), "--calibration",
                     str(calibration)))
    _refused(codegen("report", str(DEMO_DIR / "demo_mlp.tflite"), "-o",
                     str(tmp_path / "report.html"), "--float-model", str(model)))
    assert not marker.exists() and not out.exists()
    assert not (tmp_path / "report.html").exists()
    h5 = _lambda_model(tmp_path, marker, ".h5")
    with pytest.raises(CodegenError, match="pass --trust-keras-code"):
        FloatModel(h5)
    assert not marker.exists()

    result = codegen("quantize", str(model), "-o", str(out), "--calibration",
                     str(calibration), "--trust-keras-code")
    assert result.returncode == 0, result.stderr
    assert marker.exists()
    program = load_program(out.read_bytes())
    assert [layer.opcode for layer in program.layers].count("FULLY_CONNECTED") == 2
    marker.unlink()
    FloatModel(h5, trust_code=True)  # what report --trust-keras-code loads
    assert marker.exists()


@pytest.mark.tf
def test_keras_with_a_bypassable_safe_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    from codegen.quantize import FloatModel

    monkeypatch.setattr(keras, "__version__", "3.11.2")  # ignored safe mode for .h5
    with pytest.raises(CodegenError, match=r"Keras 3\.11\.2 cannot load a file safely.*"
                                           r"keras>=3\.11\.3.*--trust-keras-code"):
        FloatModel(DEMO_KERAS)
    assert FloatModel(DEMO_KERAS, trust_code=True).inputs[0].shape == (2,)
