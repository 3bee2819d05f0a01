"""Fuzzing in CI: malformed models derived from the real and the test models must each end
in generated files (exit 0) or one `codegen: error:` line (exit 1): no internal error, no
traceback, no hang, and nothing written on failure, not even into an existing directory.

Each test item runs one chunk of the deterministic cases of one seed model through the CLI
in-process (support.fuzzing.run_generate). A failure names the cases; reproduce one with
`python scripts/fuzz.py --replay SOURCE:K`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import fuzzing

# Cases per seed model. The big shared models cost more per successful case (up to 1 MB of
# C), so the small ones get more cases; the total stays above 2,000.
CASES = {
    "ad01_int8": 120,
    "hello_world_int8": 200,
    "kws_ref_model": 150,
    "pretrainedResnet_quant": 150,
    "vww_96_int8": 120,
    "demo_mlp": 200,
    "demo_mlp_per_tensor": 150,
    "fc_bias": 250,
    "fc_per_channel": 250,
    "float_io_chain": 250,
    "two_outputs": 200,
}
CHUNK = 50
TIME_LIMIT_S = 10.0

ITEMS = [(source, start) for source, count in CASES.items()
         for start in range(0, count, CHUNK)]


def test_enough_cases() -> None:
    assert sum(CASES.values()) >= 2000


@pytest.fixture(scope="module")
def seeds(shared_models: Path) -> dict[str, tuple[bytes, list[int]]]:
    models = fuzzing.seed_models(shared_models)
    assert set(CASES) <= set(models), sorted(set(CASES) - set(models))
    return {name: (data, fuzzing._structural_positions(data)) for name, data in models.items()}


@pytest.mark.parametrize(("source", "start"), ITEMS, ids=[f"{s}-{k}" for s, k in ITEMS])
def test_malformed_models(source: str, start: int, seeds: dict[str, tuple[bytes, list[int]]],
                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODEGEN_DEBUG", raising=False)
    data, structural = seeds[source]
    failures = []
    for k in range(start, min(start + CHUNK, CASES[source])):
        case, what = fuzzing.derive_case(data, source, k, structural)
        result = fuzzing.run_generate(case, tmp_path / "work", time_limit_s=TIME_LIMIT_S,
                                      existing_output=bool(k % 2))
        if result.problem is not None:
            failures.append(f"{source}:{k} ({what}): {result.problem}")
    assert not failures, "\n".join(failures)


def test_the_checks_catch_a_hang_and_an_internal_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness itself: a generator that hangs or fails inside is reported."""
    import time

    import codegen.generate

    model = fuzzing.small_models()["fc_bias"]
    monkeypatch.delenv("CODEGEN_DEBUG", raising=False)
    monkeypatch.setattr(codegen.generate, "load_program", lambda *a, **k: time.sleep(30))
    result = fuzzing.run_generate(model, tmp_path / "work", time_limit_s=0.5)
    assert result.problem is not None and result.problem.startswith("timeout"), result
    assert result.seconds < 5

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(codegen.generate, "load_program", broken)
    result = fuzzing.run_generate(model, tmp_path / "work")
    assert result.status == 2 and result.problem is not None and "exit 2" in result.problem
