"""The real third-party models in ../shared/models, end to end: the numpy reference against
TFLM on full-range random batches (plus an all-minimum and an all-maximum sample), the
generated C against the reference on every target and on the host under sanitizers.

The sample counts follow each model's cost: the large convolutional models run a handful
of samples under QEMU (vww_96_int8 is about 7.5 M MACs a sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from support import armv6m
from support.policy import require_file
from support.verify import (
    C_TARGETS,
    c_matches_reference,
    edge_inputs,
    inputs_with_edges,
    reference_matches_tflm,
)

from codegen.program import load_program
from codegen.targets import TARGETS


@dataclass(frozen=True)
class Samples:
    tflm: int
    host: int
    qemu: int
    sanitize: int


MODELS: dict[str, Samples] = {
    "hello_world_int8": Samples(tflm=1000, host=1000, qemu=100, sanitize=200),
    "ad01_int8": Samples(tflm=1000, host=1000, qemu=100, sanitize=200),
    "kws_ref_model": Samples(tflm=200, host=200, qemu=20, sanitize=20),
    "pretrainedResnet_quant": Samples(tflm=200, host=200, qemu=20, sanitize=20),
    "vww_96_int8": Samples(tflm=200, host=200, qemu=10, sanitize=10),
}


def _read(shared_models: Path, name: str) -> bytes:
    return require_file(shared_models / f"{name}.tflite").read_bytes()


def _target_param(name: str) -> object:
    return pytest.param(name, marks=[] if TARGETS[name].is_host else [pytest.mark.qemu])


def test_every_shared_model_is_tested(shared_models: Path) -> None:
    found = {path.stem for path in shared_models.glob("*.tflite")}
    assert found == set(MODELS)


@pytest.mark.tflm
@pytest.mark.parametrize("name", MODELS)
def test_reference_matches_tflm(name: str, shared_models: Path) -> None:
    model = _read(shared_models, name)
    reference_matches_tflm(model, inputs_with_edges(model, MODELS[name].tflm, seed=1))


@pytest.mark.parametrize("target", [_target_param(t) for t in C_TARGETS])
@pytest.mark.parametrize("name", MODELS)
def test_generated_c_matches_reference(name: str, target: str, shared_models: Path,
                                       tmp_path: Path) -> None:
    model = _read(shared_models, name)
    samples = MODELS[name].host if TARGETS[target].is_host else MODELS[name].qemu
    executable = c_matches_reference(model, target, tmp_path, seed=2, samples=samples,
                                     extra=edge_inputs(load_program(model)))
    if target == "cortex-m0":  # it ran on a Cortex-M3: check that an M0 could run it
        assert armv6m.violations(executable) == []


@pytest.mark.parametrize("name", MODELS)
def test_generated_c_is_clean_under_sanitizers(name: str, shared_models: Path,
                                               tmp_path: Path) -> None:
    model = _read(shared_models, name)
    c_matches_reference(model, "host", tmp_path, seed=3, sanitize=True,
                        samples=MODELS[name].sanitize, extra=edge_inputs(load_program(model)))
