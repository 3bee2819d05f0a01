"""Exact comparisons used by the model tests: reference vs TFLM, generated C vs reference.

Outputs are compared with exact equality; a mismatch reports the first differing sample and
element so that an off-by-one is easy to trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from codegen.execute import build_for_target, execute, run_executable
from codegen.model.ir import DType
from codegen.program import Program, load_program
from codegen.targets import TARGETS
from support.litert import run_oracle
from support.tflm import run_tflm, run_tflm_fresh_each, run_tflm_sequence

HOST_SAMPLES = 1000
QEMU_SAMPLES = 100
C_TARGETS = tuple(TARGETS)

_build_root: Path | None = None


def reuse_builds_under(root: Path | None) -> None:
    """Build every model for a (target, sanitize) pair in one directory under `root`,
    configured once and then only recompiled (tests/conftest.py passes a directory unique
    to the pytest session and xdist worker); None builds in each caller's work_dir."""
    global _build_root
    _build_root = root


def _work_dir(work_dir: Path, target: str, sanitize: bool) -> Path:
    if _build_root is None:
        return work_dir
    return _build_root / f"{target}{'-sanitize' if sanitize else ''}"


def samples_for(target: str) -> int:
    return HOST_SAMPLES if TARGETS[target].is_host else QEMU_SAMPLES


def assert_same(got: Sequence[np.ndarray], expected: Sequence[np.ndarray], label: str) -> None:
    assert len(got) == len(expected), f"{label}: {len(got)} outputs, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g.dtype == e.dtype, f"{label} output {i}: dtype {g.dtype}, expected {e.dtype}"
        assert g.shape == e.shape, f"{label} output {i}: shape {g.shape}, expected {e.shape}"
        if e.dtype.kind == "f":
            equal = (g == e) | (np.isnan(g) & np.isnan(e))
        else:
            equal = g == e
        if not equal.all():
            bad = np.argwhere(~equal)
            first = tuple(int(v) for v in bad[0])
            raise AssertionError(
                f"{label} output {i}: {len(bad)} of {e.size} values differ; first at {first}: "
                f"got {g[first]!r}, expected {e[first]!r}"
            )


def random_inputs(program: Program, count: int, seed: int) -> list[np.ndarray]:
    """Full-range random inputs: every value of an integer type, both bools; floats well past
    the int8 range."""
    rng = np.random.default_rng(seed)
    arrays = []
    for index in program.graph.inputs:
        t = program.graph.tensors[index]
        shape = (count, *t.shape)
        if t.dtype.is_integer:
            arrays.append(rng.integers(t.dtype.qmin, t.dtype.qmax + 1, size=shape,
                                       dtype=np.int64).astype(t.dtype.np))
        elif t.dtype is DType.BOOL:
            arrays.append(rng.integers(0, 2, size=shape).astype(np.bool_))
        else:
            arrays.append(_float_inputs(program, index, shape, rng))
    return arrays


def _float_inputs(program: Program, index: int, shape: tuple[int, ...],
                  rng: np.random.Generator) -> np.ndarray:
    """Values spanning 1.5x the range of the QUANTIZE that reads the input, with a share
    of exact rounding ties (k + 0.5) * scale to exercise round-half-away-from-zero."""
    consumers = program.graph.consumers(index)
    scale, zero_point = 1.0, 0
    for op in consumers:
        out = program.graph.tensors[op.outputs[0]]
        if out.quant is not None:
            scale, zero_point = out.quant.scale, out.quant.zero_point
            break
    lo, hi = (-128 - zero_point) * scale * 1.5, (127 - zero_point) * scale * 1.5
    values = rng.uniform(lo, hi, size=shape)
    ties = (rng.integers(-200, 200, size=shape) + 0.5) * scale
    values = np.where(rng.random(shape) < 0.2, ties, values)
    return values.astype(np.float32)


def reference_matches_tflm(model: bytes, inputs: list[np.ndarray], *,
                           reset_each: bool = False) -> list[np.ndarray]:
    """Assert the numpy reference equals TFLM on `inputs`; return the outputs. A model that
    keeps state runs the samples as one stream of invokes in both (or, `reset_each`, each
    from the state of a fresh interpreter)."""
    program = load_program(model)
    reference = execute(program, "reference", inputs, reset_each=reset_each)
    if program.state is None:
        expected = run_tflm(model, inputs)
    elif reset_each:
        expected = run_tflm_fresh_each(model, inputs)
    else:
        expected = run_tflm_sequence(model, inputs)
    assert_same(reference, expected, "reference vs TFLM")
    return reference


def reference_matches_oracle(model: bytes, inputs: list[np.ndarray],
                             numerics: str) -> list[np.ndarray]:
    """Assert the numpy reference of numerics mode `numerics` equals that mode's oracle (TFLM,
    LiteRT's reference kernels or LiteRT's default interpreter); return the outputs."""
    if numerics == "tflm":
        return reference_matches_tflm(model, inputs)
    program = load_program(model, numerics=numerics)
    reference = execute(program, "reference", inputs)
    assert_same(reference, run_oracle(model, inputs, numerics), f"{numerics} reference vs LiteRT")
    return reference


def c_matches_reference(model: bytes, target: str, work_dir: Path, *, seed: int = 0,
                        sanitize: bool = False, extra: list[np.ndarray] | None = None,
                        samples: int | None = None, reset_each: bool = False,
                        numerics: str = "tflm") -> Path:
    """Build the generated C for `target`, run `samples` (default samples_for(target)) random
    samples (plus `extra` samples prepended, for single-input models), compare with the
    reference of numerics mode `numerics` (for a model that keeps state: one stream of
    invokes, or `reset_each`). Returns the executable (valid until the next build for the
    same target)."""
    program = load_program(model, numerics=numerics)
    count = samples_for(target) if samples is None else samples
    inputs = random_inputs(program, count, seed)
    if extra is not None:
        inputs = [np.concatenate([extra[i], inputs[i]]) for i in range(len(inputs))]
    expected = execute(program, "reference", inputs, reset_each=reset_each)
    executable = build_for_target(program, target, _work_dir(work_dir, target, sanitize),
                                  sanitize=sanitize, reset_each=reset_each)
    got = run_executable(program, target, executable, inputs)
    label = f"{target}{' (sanitizers)' if sanitize else ''}"
    assert_same(got, expected, f"{label} vs {numerics} reference")
    return executable


def edge_inputs(program: Program) -> list[np.ndarray]:
    """One sample of all-minimum and one of all-maximum values per input (false/true)."""
    arrays = []
    for index in program.graph.inputs:
        t = program.graph.tensors[index]
        if t.dtype.is_integer:
            lo, hi = t.dtype.qmin, t.dtype.qmax
        elif t.dtype is DType.BOOL:
            lo, hi = 0, 1
        else:
            lo, hi = -1e6, 1e6
        arrays.append(np.stack([np.full(t.shape, lo), np.full(t.shape, hi)]).astype(t.dtype.np))
    return arrays


def inputs_with_edges(model: bytes, count: int, seed: int) -> list[np.ndarray]:
    """An all-minimum and an all-maximum sample, then `count` full-range random samples."""
    program = load_program(model)
    inputs = random_inputs(program, count, seed)
    return [np.concatenate([e, x]) for e, x in zip(edge_inputs(program), inputs, strict=True)]


def stream_matches_tflm(model: bytes, label: str, *, stream: int, fresh: int, seed: int,
                        program: Program | None = None
                        ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For a model that keeps state: the reference against TFLM on one stream of `stream`
    invokes (after the all-low and all-high samples), and on the first `fresh` samples each
    from a freshly allocated interpreter (`reset_each`). Returns (stream, fresh) outputs."""
    program = program or load_program(model)
    inputs = inputs_with_edges(model, stream, seed)
    carried = execute(program, "reference", inputs)
    assert_same(carried, run_tflm_sequence(model, inputs), f"{label}: stream vs TFLM")
    few = [x[:fresh] for x in inputs]
    each = execute(program, "reference", few, reset_each=True)
    assert_same(each, run_tflm_fresh_each(model, few), f"{label}: reset each vs TFLM")
    return carried, each
