"""Numerics modes (issue 17): each mode's numpy reference against its oracle and the generated
C against that reference, bit for bit, on the shared models and the operator test models;
the default mode unchanged.

  - `litert-ref`: LiteRT's reference kernels (OpResolverType.BUILTIN_REF);
  - `litert`: LiteRT's default interpreter (XNNPACK delegate + optimized builtin kernels).
The oracles are in tests/support/litert.py; the pinned ai-edge-litert defines them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from support.litert import run_oracle
from support.policy import require_file
from support.verify import (
    c_matches_reference,
    edge_inputs,
    inputs_with_edges,
    reference_matches_oracle,
)

from codegen.emit import emit_model
from codegen.program import load_program

SHARED = ("hello_world_int8", "ad01_int8", "kws_ref_model", "pretrainedResnet_quant",
          "vww_96_int8")
# Samples per model: (oracle, host, cortex-m4); the large convolutional models run few
# under QEMU.
SAMPLES = {
    "hello_world_int8": (300, 300, 50),
    "ad01_int8": (300, 300, 30),
    "kws_ref_model": (100, 100, 8),
    "pretrainedResnet_quant": (100, 100, 8),
    "vww_96_int8": (60, 60, 4),
}
C_TARGETS = ("host", pytest.param("cortex-m4", marks=pytest.mark.qemu))


def _read(shared_models: Path, name: str) -> bytes:
    return require_file(shared_models / f"{name}.tflite").read_bytes()


def _modes(*modes: str) -> list[str]:
    return list(modes)


@pytest.mark.parametrize("numerics", _modes("litert-ref"))
@pytest.mark.parametrize("name", SHARED)
def test_shared_model_reference_matches_its_oracle(name: str, numerics: str,
                                                   shared_models: Path) -> None:
    model = _read(shared_models, name)
    reference_matches_oracle(model, inputs_with_edges(model, SAMPLES[name][0], seed=11),
                             numerics)


@pytest.mark.parametrize("target", C_TARGETS)
@pytest.mark.parametrize("numerics", _modes("litert-ref"))
@pytest.mark.parametrize("name", SHARED)
def test_shared_model_c_matches_mode_reference(name: str, numerics: str, target: str,
                                               shared_models: Path, tmp_path: Path) -> None:
    model = _read(shared_models, name)
    samples = SAMPLES[name][1 if target == "host" else 2]
    c_matches_reference(model, target, tmp_path, seed=12, samples=samples, numerics=numerics,
                        extra=edge_inputs(load_program(model)))


def test_litert_ref_differs_from_tflm_where_the_table_says(shared_models: Path) -> None:
    """ad01_int8 (ten FULLY_CONNECTED) differs between TFLM and LiteRT's reference kernels on
    most samples: the mode is not the default under another name."""
    model = _read(shared_models, "ad01_int8")
    inputs = inputs_with_edges(model, 30, seed=13)
    tflm = reference_matches_oracle(model, inputs, "tflm")
    ref = reference_matches_oracle(model, inputs, "litert-ref")
    assert not np.array_equal(tflm[0], ref[0])


@pytest.mark.parametrize("name", SHARED)
def test_default_mode_generates_what_it_did(name: str, shared_models: Path) -> None:
    """`tflm` is the default and its C carries no float: no double anywhere in it."""
    model = _read(shared_models, name)
    default = emit_model(load_program(model), "m")
    assert default == emit_model(load_program(model, numerics="tflm"), "m")
    code = re.sub(r"/\*.*?\*/", "", default["m.c"], flags=re.DOTALL)
    assert re.search(r"\b(double|float)\b", code) is None


def test_cli_run_takes_the_mode(shared_models: Path, tmp_path: Path) -> None:
    """`codegen run --numerics litert-ref` on the host gives LiteRT's reference outputs; an
    unknown mode is one line and exit 1."""
    model_path = require_file(shared_models / "ad01_int8.tflite")
    model = model_path.read_bytes()
    inputs = inputs_with_edges(model, 20, seed=14)
    np.save(tmp_path / "x.npy", inputs[0])
    done = subprocess.run(["codegen", "run", str(model_path), "--target", "host", "--numerics",
                           "litert-ref", "--input", str(tmp_path / "x.npy"), "--output",
                           str(tmp_path / "y.npy")], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    expected = run_oracle(model, inputs, "litert-ref")[0]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
    bad = subprocess.run(["codegen", "generate", str(model_path), "-o", str(tmp_path / "g"),
                          "--numerics", "tflite"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr
    assert "codegen: error:" in bad.stderr and "litert-ref" in bad.stderr
    assert not (tmp_path / "g").exists()
