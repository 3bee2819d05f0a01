#!/usr/bin/env python3
"""Longer fuzzing of `codegen generate` for local runs (CI runs tests/test_fuzz.py).

Every input must end in generated files or one `codegen: error:` line, with no internal
error, traceback or hang, and nothing written on failure (support.fuzzing.run_generate).
Failing inputs are saved under --crashes (default .fuzz/crashes/) with a note of what they
are; turn each into a test in tests/test_fuzz_regressions.py together with its fix.

Engines:
  atheris     coverage-guided (libFuzzer through `pip install atheris`): byte mutations of
              libFuzzer plus the schema-level mutations of support.fuzzing, from the shared,
              demo and builder models; instrumented codegen guides it to new code paths.
  hypothesis  property-based (`pip install hypothesis`): single-operator models of every
              supported operator with drawn shapes, types, quantization, constant data and
              options, shrunk to a minimal model when one fails.
  mutate      the CI test's mutations with random seeds instead of fixed ones.

    python scripts/fuzz.py --minutes 30                  # atheris if installed, else hypothesis
    python scripts/fuzz.py --engine mutate --cases 20000
    python scripts/fuzz.py --replay kws_ref_model:117    # a case of tests/test_fuzz.py
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support import fuzzing  # noqa: E402
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


def run_mutate(args: argparse.Namespace) -> int:
    seeds = _seeds(args)
    structural = {name: fuzzing._structural_positions(data) for name, data in seeds.items()}
    names = sorted(seeds)
    outcomes: collections.Counter[str] = collections.Counter()
    problems = 0
    deadline = time.monotonic() + 60 * args.minutes
    start = args.seed
    for k in range(start, start + args.cases):
        if time.monotonic() > deadline:
            break
        rng = random.Random(k)
        source = names[k % len(names)]
        data, what = fuzzing.mutate(seeds[source], rng, structural[source])
        kind = what.split(":")[0] if what.split()[0] not in ("flip", "random", "word",
                                                               "truncate", "insert",
                                                               "delete") else "bytes"
        result = fuzzing.run_generate(data, WORK, time_limit_s=args.time_limit,
                                      existing_output=bool(k % 2))
        outcomes[f"{kind} exit {result.status}"] += 1
        if result.problem is not None:
            problems += 1
            path = _save(args.crashes, data, f"{source} seed {k}: {what}", result.problem)
            print(f"PROBLEM {source} seed {k}: {what}\n    {result.problem}\n    saved as {path}",
                  flush=True)
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
        data, what = fuzzing.derive_case(seeds[source], source, int(k))
        result = fuzzing.run_generate(data, WORK, time_limit_s=args.time_limit,
                                      existing_output=bool(int(k) % 2))
        print(f"{spec}: {what}\n    exit {result.status} in {result.seconds:.2f} s: "
              f"{(result.stderr or result.stdout).strip()[:500]}")
        if result.problem:
            print(f"    PROBLEM: {result.problem}")
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
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per input")
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
