"""codegen.api, the Python API: every function on the demo MLP, errors as exceptions.

Outputs of `run` are compared with TFLM's, the oracle, on every integer input pair's
extremes and random samples; the other functions with what the command line reports. Every
error is a CodegenError (never SystemExit, never another exception type). The examples in
the module's docstrings run as doctests, so that they stay true.
"""

from __future__ import annotations

import doctest
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from support import policy
from support.builder import ModelBuilder, Q
from support.models import DEMO_DIR, demo_train_module
from support.tflm import run_tflm
from support.verify import assert_same

from codegen import api
from codegen.errors import CodegenError, ModelFormatError
from codegen.program import load_program

DEMO = policy.REPO_ROOT / "codegen" / "demo" / "demo_mlp.tflite"


def _inputs(count: int = 64) -> np.ndarray:
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, size=(count, 1, 2), dtype=np.int64).astype(np.int8)
    x[:4] = [[[-128, -128]], [[-128, 127]], [[127, -128]], [[127, 127]]]
    return x


def test_generate(tmp_path: Path) -> None:
    result = api.generate(DEMO, tmp_path / "out", name="mlp", cmake=True)
    assert result.name == "mlp"
    assert [p.name for p in result.files] == ["mlp.h", "mlp.c", "CMakeLists.txt"]
    assert all(p.is_file() for p in result.files)
    program = load_program(DEMO)
    assert result.operators == {"FULLY_CONNECTED": 3}
    assert (result.arena_bytes, result.arena_lower_bound, result.constant_bytes,
            result.macs) == (program.plan.size, program.plan.lower_bound,
                             program.constant_bytes, program.macs)
    assert api.generate(str(DEMO), str(tmp_path / "out"), name="mlp").files[0].is_file()


def test_build(tmp_path: Path) -> None:
    policy.require_tool("ninja")
    lib = api.build(DEMO, "host", tmp_path / "lib", name="mlp", cmake=True)
    assert lib.archive == tmp_path / "lib" / "libmlp.a" and lib.archive.is_file()
    assert lib.header.is_file() and lib.target == "host" and lib.machine_flags == ()
    assert lib.cross_file is None and lib.toolchain_file is None
    assert lib.code_bytes > 0 and lib.constant_bytes > 0
    assert lib.bss_bytes == lib.arena_bytes == load_program(DEMO).plan.size
    assert lib.flash_bytes == lib.code_bytes + lib.constant_bytes


@pytest.mark.tflm
def test_run_on_the_reference_and_the_host(tmp_path: Path) -> None:
    policy.require_tool("ninja")
    x = _inputs()
    expected = run_tflm(DEMO.read_bytes(), [x])
    assert_same(api.run(DEMO, x), expected, "api.run reference vs TFLM")
    # the model as bytes, the input as a mapping by tensor name, a kept build directory
    name = api.inspect(DEMO).inputs[0].name
    got = api.run(DEMO.read_bytes(), {name: x}, target="host", build_dir=tmp_path / "b",
                  progress=False)
    assert_same(got, expected, "api.run host vs TFLM")
    assert_same(api.run(DEMO, [x], target="host", build_dir=tmp_path / "b"), expected,
                "api.run host again (rebuilt in the same directory) vs TFLM")


def test_bench() -> None:
    policy.require_tool("ninja")
    result = api.bench(DEMO, "host")
    json.dumps(result)  # the JSON of `codegen bench --json`
    assert result["target"] == "host" and result["macs"] == load_program(DEMO).macs
    assert result["output_matches_reference"] is True
    assert [layer["op"] for layer in result["layers"]] == ["FULLY_CONNECTED"] * 3


def _unsupported_model() -> bytes:
    b = ModelBuilder("unsupported")
    x = b.add_tensor("x", (1, 4), quant=Q(0.1, 0))
    y = b.add_tensor("y", (1, 4), quant=Q(0.1, 0))
    b.add_op("SIN", [x], [y])
    b.set_io([x], [y])
    return b.build()


def test_inspect() -> None:
    info = api.inspect(DEMO)
    program = load_program(DEMO)
    graph = program.graph
    assert info.source == "demo_mlp.tflite" and info.supported
    (given,) = info.inputs
    tensor = graph.tensors[graph.inputs[0]]
    assert (given.name, given.dtype, given.shape, given.scale, given.zero_point) == (
        tensor.name, "int8", tensor.shape, tensor.quant.scale, tensor.quant.zero_point)
    assert [op.opcode for op in info.operators] == ["FULLY_CONNECTED"] * 3
    first = info.operators[0]
    assert first.fused_activation == "RELU" and first.inputs[1] is not None
    assert first.inputs[1].constant and first.inputs[1].axis == 0  # per-channel weights
    assert first.inputs[1].scale is None and len(first.inputs[1].scales) == 16
    assert dict(first.derived)["shape"] == "1 x (2 -> 16)"
    assert info.arena_bytes == program.plan.size and info.macs == program.macs
    unsupported = api.inspect(_unsupported_model())
    assert not unsupported.supported and unsupported.arena_bytes is None
    assert unsupported.operators[0].opcode == "SIN"
    assert "SIN" in (unsupported.operators[0].reason or "")


@pytest.mark.tf
def test_quantize(tmp_path: Path) -> None:
    keras_model = tmp_path / "model.keras"
    shutil.copy(DEMO_DIR / "demo_mlp.keras", keras_model)
    calibration = demo_train_module().grid(9).astype(np.float32)
    result = api.quantize(keras_model, calibration, output=tmp_path / "model.tflite")
    assert result.path == tmp_path / "model.tflite"
    assert result.path.read_bytes() == result.model
    assert result.samples == len(calibration)
    program = load_program(result.model)
    assert {layer.opcode for layer in program.layers} == {"FULLY_CONNECTED"}
    (error,) = result.errors
    assert 0 <= error.rms <= error.max < 0.5 and error.relative_rms < 0.1
    with pytest.raises(CodegenError, match="floating-point"):
        api.quantize(keras_model, calibration.astype(np.int32))


def test_errors_are_codegen_errors(tmp_path: Path) -> None:
    """Every mistake raises CodegenError (one line), and nothing exits the interpreter."""
    x = _inputs(4)
    user = tmp_path / "user"
    user.mkdir()
    (user / "mlp.c").write_text("int main(void) { return 0; }\n")
    mistakes = [
        (lambda: api.generate(tmp_path / "missing.tflite", tmp_path / "o"), "no such file"),
        (lambda: api.generate(DEMO, tmp_path / "o", name="9x"), "C identifier"),
        (lambda: api.generate(DEMO, user, name="mlp"), "not written by codegen"),
        (lambda: api.generate(DEMO, "", name="mlp"), "empty"),
        (lambda: api.build(DEMO, "cortex-m99", tmp_path / "l"), "unknown target"),
        (lambda: api.run(DEMO, x, target="nowhere"), "unknown target"),
        (lambda: api.run(DEMO, x.astype(np.float32)), "must be a int8 array"),
        (lambda: api.run(DEMO, {"nope": x}), "the model's inputs are"),
        (lambda: api.run(DEMO, [[1, 2]]), "numpy arrays"),  # type: ignore[list-item]
        (lambda: api.run(DEMO, 3), "numpy array"),  # type: ignore[arg-type]
        (lambda: api.run(DEMO, x, build_dir=DEMO.parent), "build-dir"),
        (lambda: api.bench(DEMO, "host", optimization="9"), "optimization level"),
        (lambda: api.bench(DEMO, "host", wait_states=2), "wait-states"),
        (lambda: api.inspect(b"not a model"), "TensorFlow Lite flatbuffer"),
        (lambda: api.quantize(tmp_path / "missing.keras", x), "missing.keras"),
    ]
    for call, message in mistakes:
        with pytest.raises(CodegenError, match=message) as caught:
            call()
        assert "\n" not in str(caught.value)
    assert isinstance(ModelFormatError("x"), CodegenError)
    assert sorted(p.name for p in user.iterdir()) == ["mlp.c"]


def test_docstring_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The >>> examples of codegen.api, on the demo MLP copied to mlp.tflite."""
    for tool in ("ninja", "arm-none-eabi-gcc", "qemu-system-arm"):
        policy.require_tool(tool)
    shutil.copy(DEMO, tmp_path / "mlp.tflite")
    monkeypatch.chdir(tmp_path)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(api, globs={"api": api, "np": np}) if t.examples]
    assert {t.name.split(".")[-1] for t in tests} >= {"generate", "build", "run", "bench",
                                                       "inspect", "quantize"}
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring examples of codegen.api failed"
