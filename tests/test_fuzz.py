"""Fuzzing in CI: malformed models derived from the real and the test models, and hostile
files of five structural classes, must each end in generated files (exit 0) or one
`codegen: error:` line (exit 1): no internal error, no traceback, no hang, nothing written
on failure (not even into an existing directory), and no more memory than 10 x the file's
size + 300 MB.

Each test item runs one chunk of deterministic cases through the CLI in a forked child
process (support.fuzzing.run_isolated), every case under a memory limit (RLIMIT_AS) and a
time limit; running out of either is a failure. A failure names the cases; reproduce a
mutation with `python scripts/fuzz.py --replay SOURCE:K`, a structural case with
`python scripts/fuzz.py --replay CLASS:K` (e.g. `long_chains:3`).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import fuzzing, hostile

# Cases per seed model. The big shared models cost more per successful case (up to 1 MB of
# C), so the small ones get more cases; the total stays above 2,000. The issue-13 seeds
# (support.fuzzing.issue13_models: the operators added for it and DETECTION_POSTPROCESS with
# its flexbuffer options) took cases from the one-layer builder models and from vww_96_int8,
# the costliest per case, to keep the suite's time (~150 s of cases on 2 cores).
CASES = {
    "ad01_int8": 120,
    "hello_world_int8": 150,
    "kws_ref_model": 150,
    "pretrainedResnet_quant": 150,
    "vww_96_int8": 80,
    "demo_mlp": 150,
    "demo_mlp_per_tensor": 100,
    "fc_bias": 150,
    "fc_per_channel": 150,
    "float_io_chain": 150,
    "two_outputs": 100,
    "more_indices": 130,
    "more_spatial": 130,
    "more_math": 130,
    "ssd_head": 170,
}
# Cases per structural class (support.hostile); chains and deep graphs take ~1 s each.
STRUCTURAL = {
    "shared_tables": 24,
    "shared_buffers": 12,
    "long_chains": 8,
    "deep_branches": 8,
    "lying_lengths": 48,
}
CHUNK = 50
STRUCTURAL_CHUNK = 8
TIME_LIMIT_S = 10.0

ITEMS = [(source, start) for source, count in CASES.items()
         for start in range(0, count, CHUNK)]
STRUCTURAL_ITEMS = [(kind, start) for kind, count in STRUCTURAL.items()
                    for start in range(0, count, STRUCTURAL_CHUNK)]


def test_enough_cases() -> None:
    assert sum(CASES.values()) >= 2000
    assert set(STRUCTURAL) == set(hostile.CLASSES)


@pytest.fixture(scope="module")
def seeds(shared_models: Path) -> dict[str, tuple[bytes, list[int]]]:
    models = fuzzing.seed_models(shared_models)
    assert set(CASES) <= set(models), sorted(set(CASES) - set(models))
    return {name: (data, fuzzing._structural_positions(data)) for name, data in models.items()}


def _check(outcomes: list[fuzzing.Outcome], expected: int) -> None:
    failures = [f"{o.name} ({o.what}): {o.problem}" for o in outcomes if o.problem is not None]
    assert not failures, "\n".join(failures)
    assert len(outcomes) == expected, [o.name for o in outcomes]


@pytest.mark.parametrize(("source", "start"), ITEMS, ids=[f"{s}-{k}" for s, k in ITEMS])
def test_malformed_models(source: str, start: int, seeds: dict[str, tuple[bytes, list[int]]],
                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODEGEN_DEBUG", raising=False)
    data, structural = seeds[source]
    stop = min(start + CHUNK, CASES[source])

    def cases() -> Iterator[fuzzing.Case]:
        for k in range(start, stop):
            case, what = fuzzing.derive_case(data, source, k, structural)
            yield fuzzing.Case(f"{source}:{k}", what, case, existing_output=bool(k % 2))

    _check(fuzzing.run_isolated(cases, tmp_path / "work", time_limit_s=TIME_LIMIT_S),
           stop - start)


@pytest.mark.parametrize(("kind", "start"), STRUCTURAL_ITEMS,
                         ids=[f"{s}-{k}" for s, k in STRUCTURAL_ITEMS])
def test_structural_classes(kind: str, start: int, seeds: dict[str, tuple[bytes, list[int]]],
                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODEGEN_DEBUG", raising=False)
    models = {name: data for name, (data, _) in seeds.items()}
    stop = min(start + STRUCTURAL_CHUNK, STRUCTURAL[kind])

    def cases() -> Iterator[fuzzing.Case]:
        for k in range(start, stop):
            case, what = fuzzing.structural_case(kind, k, models)
            yield fuzzing.Case(f"{kind}:{k}", what, case, existing_output=bool(k % 2))

    _check(fuzzing.run_isolated(cases, tmp_path / "work", time_limit_s=TIME_LIMIT_S),
           stop - start)


def test_the_checks_catch_a_hang_and_an_internal_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness itself: a generator that hangs or fails inside is reported."""
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


def _misbehave(how: str) -> None:
    if how == "memory":  # far beyond 10 x the file's size + 300 MB
        blocks = [bytearray(64 << 20) for _ in range(64)]
        del blocks
    elif how == "spin":  # computes forever: the CPU time limit stops it
        while True:
            pass
    elif how == "block":  # waits without computing: the parent must kill it
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(60)
    elif how == "crash":
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would


@pytest.mark.parametrize(("how", "expected"), [
    ("memory", "out of memory"),
    ("spin", "of CPU time"),
    ("block", "killed"),
    ("crash", f"signal {int(signal.SIGKILL)}"),
])
def test_the_isolated_runs_catch_memory_time_and_crashes(how: str, expected: str,
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """run_isolated: a case that exhausts its memory allowance, computes or waits past its
    time limit, or kills its process is a failure naming that case; the parent is
    unharmed."""
    import codegen.generate

    model = fuzzing.small_models()["fc_bias"]
    monkeypatch.delenv("CODEGEN_DEBUG", raising=False)
    monkeypatch.setattr(codegen.generate, "load_program", lambda *a, **k: _misbehave(how))
    monkeypatch.setattr(fuzzing, "_GRACE_S", 1.0)

    def cases() -> Iterator[fuzzing.Case]:
        yield fuzzing.Case("bad", how, model)

    start = time.monotonic()
    limit = 10.0 if how in ("memory", "crash") else 0.5
    outcomes = fuzzing.run_isolated(cases, tmp_path / "work", time_limit_s=limit)
    assert len(outcomes) == 1 and outcomes[0].name == "bad", outcomes
    assert outcomes[0].problem is not None and expected in outcomes[0].problem, outcomes
    assert time.monotonic() - start < 20
