#!/usr/bin/env python3
"""Longer fuzzing of `codegen generate` for local runs (CI runs tests/test_fuzz.py).

Every input must end in generated files or one `codegen: error:` line, with no internal
error, traceback or hang, nothing written on failure (support.fuzzing.run_generate), and
(engine mutate, --replay) within 10 x its size + 300 MB of memory and the time limit of
CPU time (support.fuzzing.run_isolated).
Failing inputs are saved under --crashes (default .fuzz/crashes/) with a note of what they
are; turn each into a test in tests/test_fuzz_regressions.py together with its fix.

Engines:
  atheris     coverage-guided (libFuzzer through `pip install atheris`): byte mutations of
              libFuzzer plus the schema-level mutations of support.fuzzing, from the shared,
              demo and builder models; instrumented codegen guides it to new code paths.
  hypothesis  property-based (`pip install hypothesis`): single-operator models of every
              supported operator with drawn shapes, types, quantization, constant data and
              options, shrunk to a minimal model when one fails.
  mutate      the CI test's mutations with random seeds instead of fixed ones, and (a
              --structural share of the cases) the structural classes of support.hostile:
              shared-table DAGs, shared buffers, long chains, deep branches, lying vector
              lengths.

    python scripts/fuzz.py --minutes 30                  # atheris if installed, else hypothesis
    python scripts/fuzz.py --engine mutate --cases 20000
    python scripts/fuzz.py --replay kws_ref_model:117    # a case of tests/test_fuzz.py
    python scripts/fuzz.py --replay long_chains:3        # a structural case of it
    python scripts/fuzz.py --run .fuzz/crashes/x.tflite  # rerun a saved input, traceback on

Unknown options go to libFuzzer (atheris), e.g. -jobs=2 -workers=2.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support import fuzzing, hostile  # noqa: E402
from support.policy import SHARED_MODELS  # noqa: E402

WORK = Path(tempfile.gettempdir()) / f"codegen-fuzz-{os.getpid()}"


def _seeds(args: argparse.Namespace) -> dict[str, bytes]:
    seeds = fuzzing.seed_models(SHARED_MODELS)
    for directory in args.extra_seeds:
        seeds.update({f"extra-{p.stem}": p.read_bytes()
                      for p in sorted(Path(directory).glob("*.tflite"))})
    return seeds


def _save(crashes: Path, data: bytes, what: str, problem: str) -> Path:
    crashes.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:12]
    path = crashes / f"crash-{digest}.tflite"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(f"{what}\n{problem}\n")
    return path


def _check(data: bytes, what: str, args: argparse.Namespace, existing: bool = False) -> str | None:
    result = fuzzing.run_generate(data, WORK, time_limit_s=args.time_limit,
                                  existing_output=existing)
    if result.problem is not None:
        path = _save(args.crashes, data, what, result.problem)
        print(f"PROBLEM {what}\n    {result.problem}\n    saved as {path}", flush=True)
    return result.problem


# -- engines ----------------------------------------------------------------------------------


def _mutate_case(k: int, args: argparse.Namespace, seeds: dict[str, bytes],
                 structural: dict[str, list[int]]) -> fuzzing.Case:
    rng = random.Random(k)
    if rng.random() < args.structural:
        kind = rng.choice(hostile.CLASSES)
        data, what = fuzzing.structural_case(kind, k, seeds)
        return fuzzing.Case(f"{kind}:{k}", f"{kind}: {what}", data, bool(k % 2))
    names = sorted(seeds)
    source = names[k % len(names)]
    data, what = fuzzing.mutate(seeds[source], rng, structural[source])
    kind = what.split(":")[0] if what.split()[0] not in ("flip", "random", "word", "truncate",
                                                         "insert", "delete") else "bytes"
    return fuzzing.Case(f"{source} seed {k}", f"{kind}: {what}", data, bool(k % 2))


def run_mutate(args: argparse.Namespace) -> int:
    seeds = _seeds(args)
    structural = {name: fuzzing._structural_positions(data) for name, data in seeds.items()}
    outcomes: collections.Counter[str] = collections.Counter()
    problems = 0
    deadline = time.monotonic() + 60 * args.minutes
    k = args.seed
    while k < args.seed + args.cases and time.monotonic() < deadline:
        batch = range(k, min(k + 20, args.seed + args.cases))
        k = batch.stop

        def cases(batch: range = batch) -> Iterator[fuzzing.Case]:
            for j in batch:
                yield _mutate_case(j, args, seeds, structural)

        for outcome in fuzzing.run_isolated(cases, WORK, time_limit_s=args.time_limit):
            kind = outcome.what.split(":")[0]
            outcomes[f"{kind} exit {outcome.status}"] += 1
            if outcome.problem is not None:
                problems += 1
                j = int(outcome.name.rsplit(" ", 1)[-1].rsplit(":", 1)[-1]) \
                    if outcome.name != "harness" else batch.start
                data = _mutate_case(j, args, seeds, structural).data
                path = _save(args.crashes, data, f"{outcome.name}: {outcome.what}",
                             outcome.problem)
                print(f"PROBLEM {outcome.name}: {outcome.what}\n    {outcome.problem}\n"
                      f"    saved as {path}", flush=True)
    for key, count in sorted(outcomes.items()):
        print(f"{count:7d}  {key}")
    print(f"{sum(outcomes.values())} cases, {problems} problems")
    return 1 if problems else 0


def run_atheris(args: argparse.Namespace) -> int:
    import atheris

    with atheris.instrument_imports():
        import codegen.cli
        import codegen.commands.generate
        import codegen.emit
        import codegen.generate
        import codegen.model.tflite
        import codegen.model.validate
        import codegen.ops
        import codegen.plan
        import codegen.program
        import codegen.quant  # noqa: F401
    from codegen.ops import registry

    with atheris.instrument_imports():
        registry()  # imports (and instruments) every operator module

    corpus = args.corpus
    corpus.mkdir(parents=True, exist_ok=True)
    for name, data in _seeds(args).items():
        (corpus / f"seed-{name}.tflite").write_bytes(data)

    def test_one(data: bytes) -> None:
        problem = _check(data, "atheris input", args)
        if problem is not None:
            raise RuntimeError(problem)  # libFuzzer records the input and stops

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            try:
                mutated, _ = fuzzing.schema_mutation(data, rng)
                if len(mutated) <= max_size:
                    return mutated
            except Exception:  # not a parsable model: leave it to libFuzzer
                pass
        return atheris.Mutate(data, max_size)

    argv = [sys.argv[0], str(corpus), f"-max_total_time={int(60 * args.minutes)}",
            f"-timeout={int(args.time_limit) + 5}", "-rss_limit_mb=4096",
            f"-artifact_prefix={args.crashes}/", *args.libfuzzer]
    args.crashes.mkdir(parents=True, exist_ok=True)
    atheris.Setup(argv, test_one, custom_mutator=mutator)
    atheris.Fuzz()
    return 0


def run_hypothesis(args: argparse.Namespace) -> int:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from support.op_models import single_op_models

    problems: list[str] = []

    @settings(max_examples=args.cases, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def prop(data: st.DataObject) -> None:
        model, what = data.draw(single_op_models())
        problem = _check(model, what, args)
        if problem is not None:
            problems.append(problem)
        assert problem is None, f"{what}: {problem}"

    deadline = time.monotonic() + 60 * args.minutes
    rounds = 0
    while time.monotonic() < deadline:
        try:
            prop()
        except AssertionError as exc:
            print(f"FALSIFIED (shrunk): {exc}", flush=True)
            return 1
        rounds += 1
    print(f"{rounds} rounds of {args.cases} single-operator models, no problem")
    return 0


# -- one input --------------------------------------------------------------------------------


def replay(args: argparse.Namespace) -> int:
    seeds = fuzzing.seed_models(SHARED_MODELS)
    status = 0
    for spec in args.replay:
        source, k = spec.rsplit(":", 1)
        if source in hostile.CLASSES:
            data, what = fuzzing.structural_case(source, int(k), seeds)
        else:
            data, what = fuzzing.derive_case(seeds[source], source, int(k))
        case = fuzzing.Case(spec, what, data, existing_output=bool(int(k) % 2))
        [outcome] = fuzzing.run_isolated(lambda case=case: [case], WORK,
                                         time_limit_s=args.time_limit)
        print(f"{spec}: {what}\n    exit {outcome.status} in {outcome.seconds:.2f} s of CPU")
        if outcome.problem:
            print(f"    PROBLEM: {outcome.problem}")
            status = 1
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            (args.save / f"{source}-{k}.tflite").write_bytes(data)
    return status


def run_file(args: argparse.Namespace) -> int:
    os.environ["CODEGEN_DEBUG"] = "1"  # let the traceback through
    from codegen.cli import main

    status = 0
    for path in args.run:
        with tempfile.TemporaryDirectory() as out:
            status |= main(["generate", str(path), "-o", out])
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("atheris", "hypothesis", "mutate"))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--cases", type=int, default=1000,
                        help="mutate: cases; hypothesis: examples per round")
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 30),
                        help="mutate: first seed")
    parser.add_argument("--time-limit", type=float, default=10.0,
                        help="seconds (of CPU time, with mutate and --replay) per input")
    parser.add_argument("--structural", type=float, default=0.2,
                        help="mutate: share of the cases drawn from the structural classes")
    parser.add_argument("--crashes", type=Path, default=ROOT / ".fuzz" / "crashes")
    parser.add_argument("--corpus", type=Path, default=ROOT / ".fuzz" / "corpus")
    parser.add_argument("--extra-seeds", nargs="*", metavar="DIR", default=[
        d for d in (Path.home() / ".cache" / "codegen-tests",) if d.is_dir()],
        help="more seed models (*.tflite) for atheris and mutate (default: the test "
             "suite's model cache, ~/.cache/codegen-tests, if present)")
    parser.add_argument("--replay", nargs="+", metavar="SOURCE:K",
                        help="run cases of tests/test_fuzz.py")
    parser.add_argument("--save", type=Path, help="with --replay: write the cases here")
    parser.add_argument("--run", nargs="+", type=Path, metavar="FILE",
                        help="generate from saved inputs with CODEGEN_DEBUG=1")
    args, args.libfuzzer = parser.parse_known_args()  # the rest goes to libFuzzer
    if args.replay:
        return replay(args)
    if args.run:
        return run_file(args)
    engine = args.engine
    if engine is None:
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    print(f"fuzz: engine {engine}, {args.minutes} min, crashes to {args.crashes}", flush=True)
    return {"atheris": run_atheris, "hypothesis": run_hypothesis, "mutate": run_mutate}[engine](
        args)


if __name__ == "__main__":
    sys.exit(main())
