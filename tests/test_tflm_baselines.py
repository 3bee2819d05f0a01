"""scripts/tflm_baselines.json (TFLM + CMSIS-NN measured per core, data only) and the tables
of scripts/benchmarks.py that read it. No QEMU: the tables are built from made-up results of
ours against the file's figures."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from codegen.bench import BenchResult

REPO = Path(__file__).resolve().parents[1]
BASELINES = REPO / "scripts" / "tflm_baselines.json"
SHARED = ("kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8",
          "hello_world_int8")
CORES_WITH_CYCLES = ("cortex-m0", "cortex-m3", "cortex-m4")


@pytest.fixture(scope="module")
def benchmarks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmarks_script",
                                                  REPO / "scripts" / "benchmarks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data() -> dict:
    return json.loads(BASELINES.read_text())


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def test_provenance_is_stated(data: dict) -> None:
    for library in ("tflm", "cmsis_nn"):
        assert re.fullmatch(r"[0-9a-f]{40}", data[library]["commit"])
        assert data[library]["repository"].startswith("https://github.com/")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["date"])
    assert "12.2" in data["compiler"]
    assert "-O2" in data["flags"]
    assert data["method"]


def test_every_core_has_every_shared_model(data: dict) -> None:
    assert set(data["cores"]) == {"cortex-m0", "cortex-m3", "cortex-m4", "cortex-m55"}
    for core, entry in data["cores"].items():
        assert entry["machine_flags"].startswith(f"-mcpu={core}")
        assert set(entry["models"]) == set(SHARED), core
        for model, figures in entry["models"].items():
            assert _count(figures["instructions"]), (core, model)
            assert figures["output_matches_tflm_reference"] is True, (core, model)
            if core in CORES_WITH_CYCLES:  # cycles at least one per instruction
                assert figures["cycles"] >= figures["instructions"], (core, model)
            else:  # the cycle model has no table for the Cortex-M55
                assert figures["cycles"] is None
            for slower in ("cycles_small_multiplier", "cycles_5_wait_states"):
                if slower in figures:  # a 32-cycle multiplier, wait states: more cycles
                    assert figures[slower] > figures["cycles"], (core, model, slower)
    assert all("cycles_small_multiplier" in figures
               for figures in data["cores"]["cortex-m0"]["models"].values())


def test_cortex_m0_reproduces_issue_19(data: dict, benchmarks: ModuleType) -> None:
    """The cortex-m0 build counts what issue 19 states, within 0.01% on the four MLPerf
    Tiny models: the same build and harness."""
    for model, stated in benchmarks.TFLM_M0.items():
        measured = data["cores"]["cortex-m0"]["models"][model]["instructions"]
        tolerance = 0.0001 if model != "hello_world_int8" else 0.01
        assert abs(measured - stated) <= tolerance * stated, model


def test_recurrent_entries(data: dict, benchmarks: ModuleType) -> None:
    assert data["recurrent"]
    for name, entry in data["recurrent"].items():
        assert entry["core"] == "cortex-m4"
        assert entry["description"] and entry["cmsis_nn_kernels"].startswith("arm_")
        assert _count(entry["instructions"]) and entry["cycles"] >= entry["instructions"]
        assert isinstance(entry["output_matches_tflm_reference"], bool)
        assert benchmarks.tflm_recurrent_anchor(name) == entry
    assert benchmarks.tflm_recurrent_anchor("no such model") is None


def _result(model: str, target: str, instructions: int, cycles: int | None) -> BenchResult:
    return BenchResult(
        model=model, target=target, optimization="2", io_in_arena=False, numerics="tflm",
        method="qemu-plugin", resolution=1, instructions=instructions, nanoseconds=None,
        invokes=1, macs=1000, instructions_per_mac=instructions / 1000, flash_code_bytes=1,
        flash_const_bytes=1, flash_harness_bytes=1, arena_bytes=1, static_bytes=1,
        stack_bytes=1, ram_bytes=3, harness_ram_bytes=1, timer_instructions=instructions,
        output_matches_reference=True, cycles=cycles,
        cycles_per_instruction=cycles / instructions if cycles else None)


def _row(text: str, model: str, after: str) -> list[str]:
    """The cells of `model`'s first table row after the line containing `after`."""
    lines = text.splitlines()
    start = next(k for k, line in enumerate(lines) if after in line)
    row = next(line for line in lines[start:] if line.startswith(f"| {model} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_m0_and_m3_tables_use_the_file(data: dict, benchmarks: ModuleType) -> None:
    model = "kws_ref_model"
    m0 = data["cores"]["cortex-m0"]["models"][model]
    m3 = data["cores"]["cortex-m3"]["models"][model]
    job = benchmarks.Job
    outcomes = {
        job(model, "cortex-m0"): benchmarks.Outcome(
            job(model, "cortex-m0"), _result(model, "cortex-m0", 1_000_000, 2_000_000)),
        job(model, "cortex-m3"): benchmarks.Outcome(
            job(model, "cortex-m3"), _result(model, "cortex-m3", m3["instructions"] // 2,
                                             m3["cycles"] - 1)),
    }
    text = "\n".join(benchmarks._m0_section([model], outcomes, ["cortex-m0", "cortex-m3"],
                                             data))
    cells = _row(text, model, "## cortex-m0")
    assert f"{m0['cycles']:,}" in cells
    assert f"{2_000_000 / m0['cycles']:.2f}" in cells
    cells = _row(text, model, "cortex-m3 against TFLM + CMSIS-NN built for cortex-m3")
    assert cells[5] == "—"  # no small-multiplier variant on the M3
    assert cells[6] == f"{m3['instructions']:,}"
    assert cells[7] == f"{(m3['instructions'] // 2) / m3['instructions']:.2f}"
    assert cells[8] == f"{m3['cycles']:,}"
    assert cells[10:] == ["yes", "**no**"]  # 0.5x the instructions, about 1x the cycles


def test_m55_column_uses_the_file(data: dict, benchmarks: ModuleType) -> None:
    model = "vww_96_int8"
    anchor = data["cores"]["cortex-m55"]["models"][model]["instructions"]
    job = benchmarks.Job
    outcomes = {job(model, target): benchmarks.Outcome(job(model, target),
                                                       _result(model, target, n, None))
                for target, n in (("cortex-m55", anchor // 4), ("cortex-m4", anchor))}
    text = "\n".join(benchmarks._new_targets_section([model], outcomes,
                                                     ["cortex-m55", "cortex-m4"], data))
    cells = _row(text, model, "## cortex-m55")
    assert cells[1] == "cortex-m55"
    assert cells[-2:] == [f"{anchor:,}", f"{(anchor // 4) / anchor:.2f}"]


def test_missing_file_gives_no_anchor(benchmarks: ModuleType, tmp_path: Path) -> None:
    empty = benchmarks.load_tflm_baselines(tmp_path / "absent.json")
    assert empty == {}
    assert benchmarks.tflm_anchor("cortex-m3", "kws_ref_model", empty) is None
    assert benchmarks.tflm_recurrent_anchor("lstm_units20_steps16", empty) is None


def test_recurrent_section_benchmarks_the_anchor_models(data: dict,
                                                        benchmarks: ModuleType) -> None:
    """Every recurrent anchor whose output equalled TFLM's reference is a model of
    scripts/recurrent_models.py (made by the same builders, so both sides run one file) and
    shows in the recurrent section's TFLM column; the one that did not shows none."""
    spec = importlib.util.spec_from_file_location("recurrent_models_script",
                                                  REPO / "scripts" / "recurrent_models.py")
    assert spec is not None and spec.loader is not None
    models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models)
    matched = {name for name, entry in data["recurrent"].items()
               if entry["output_matches_tflm_reference"]}
    assert matched and matched <= set(models.MODELS) <= set(benchmarks.RECURRENT_OPERATORS)
    for name in benchmarks.RECURRENT_OPERATORS:
        expected = data["recurrent"][name]["cycles"] if name in matched else None
        assert benchmarks.recurrent_anchor(name) == expected
