"""`codegen run` through the command line: .npy for single-I/O models, .npz keyed by tensor
name for models with several inputs or outputs; every target gives the reference's bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.builder import ModelBuilder, Q, fc_options
from support.tflm import run_tflm

from codegen.program import load_program


def _codegen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codegen", *args], capture_output=True,
                          text=True, timeout=600, check=False)


def _two_in_two_out() -> bytes:
    """a, b -> FC(a) + b -> (sum, RESHAPE of FC(a)): two inputs, two outputs."""
    rng = np.random.default_rng(3)
    builder = ModelBuilder()
    a = builder.add_tensor("in_a", (1, 6), "int8", quant=Q(0.04, 2))
    b = builder.add_tensor("in_b", (1, 5), "int8", quant=Q(0.07, -9))
    w = builder.add_tensor("w", (5, 6), "int8", quant=Q(0.03),
                           data=rng.integers(-127, 128, size=(5, 6)))
    h = builder.add_tensor("hidden", (1, 5), "int8", quant=Q(0.11, 4))
    s = builder.add_tensor("sum", (1, 5), "int8", quant=Q(0.13, -1))
    v = builder.add_tensor("view", (5,), "int8", quant=Q(0.11, 4))
    builder.add_op("FULLY_CONNECTED", [a, w, -1], [h], fc_options())
    builder.add_op("ADD", [h, b], [s])
    builder.add_op("RESHAPE", [h], [v])
    builder.set_io([a, b], [s, v])
    return builder.build()


@pytest.mark.tflm
@pytest.mark.parametrize("target", ["reference", "host", "cortex-m4"])
def test_run_npz_for_several_inputs_and_outputs(target: str, tmp_path: Path) -> None:
    model = tmp_path / "two.tflite"
    model.write_bytes(_two_in_two_out())
    rng = np.random.default_rng(11)
    a = rng.integers(-128, 128, size=(50, 1, 6)).astype(np.int8)
    b = rng.integers(-128, 128, size=(50, 1, 5)).astype(np.int8)
    np.savez(tmp_path / "in.npz", in_a=a, in_b=b)
    result = _codegen("run", str(model), "--target", target, "--input",
                      str(tmp_path / "in.npz"), "--output", str(tmp_path / "out.npz"))
    assert result.returncode == 0, result.stderr
    expected = run_tflm(model.read_bytes(), [a, b])
    with np.load(tmp_path / "out.npz") as out:
        assert sorted(out.files) == ["sum", "view"]
        np.testing.assert_array_equal(out["sum"], expected[0])
        np.testing.assert_array_equal(out["view"], expected[1])
        assert out["sum"].dtype == np.int8 and out["view"].shape == (50, 5)


@pytest.mark.tflm
@pytest.mark.parametrize("target", ["reference", "host", "cortex-m4"])
def test_run_npy_matches_tflm_on_shared_models(target: str, shared_models: Path,
                                               tmp_path: Path) -> None:
    for name in ("hello_world_int8", "ad01_int8"):
        path = shared_models / f"{name}.tflite"
        shape = load_program(path).graph.tensors[load_program(path).graph.inputs[0]].shape
        x = np.random.default_rng(4).integers(-128, 128, size=(100, *shape)).astype(np.int8)
        np.save(tmp_path / "in.npy", x)
        result = _codegen("run", str(path), "--target", target, "--input",
                          str(tmp_path / "in.npy"), "--output", str(tmp_path / "out.npy"))
        assert result.returncode == 0, result.stderr
        got = np.load(tmp_path / "out.npy")
        np.testing.assert_array_equal(got, run_tflm(path.read_bytes(), [x])[0])


def test_run_refuses_npy_for_two_inputs(tmp_path: Path) -> None:
    model = tmp_path / "two.tflite"
    model.write_bytes(_two_in_two_out())
    np.save(tmp_path / "in.npy", np.zeros((3, 1, 6), np.int8))
    result = _codegen("run", str(model), "--target", "reference", "--input",
                      str(tmp_path / "in.npy"), "--output", str(tmp_path / "out.npz"))
    assert result.returncode == 1
    assert "2 inputs; give the input as an .npz keyed by in_a, in_b" in result.stderr
