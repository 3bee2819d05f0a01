"""The three tests every operator test file runs on its models, made once.

For a table of models (name -> a function building the .tflite bytes):
- the numpy reference against TFLM on `tflm_samples` full-range random samples after an
  all-minimum and an all-maximum one;
- the generated C against the reference on every target (`C_TARGETS`, the QEMU ones marked
  by support.verify), the same edges first;
- the generated C on the host under the sanitizers, the same edges first.

A test file binds them to its own names (pytest collects them there; a name left unbound is
not collected):

    test_reference_matches_tflm, test_generated_c_matches_reference, \
        test_generated_c_is_clean_under_sanitizers = op_tests(MODELS, CASES, tflm_samples=600)

`cases` are the pytest parameters of the names (with marks, e.g. `tf` for the models that need
TensorFlow's converter); seeds differ per test so that the three see different samples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from codegen.program import load_program
from support.verify import (
    C_TARGETS,
    c_matches_reference,
    edge_inputs,
    inputs_with_edges,
    reference_matches_tflm,
)

Models = Mapping[str, Callable[[], bytes]]
Test = Callable[..., None]


def op_tests(models: Models, cases: Sequence[object], *, tflm_samples: int,
             seeds: tuple[int, int, int] = (1, 2, 3), c_edges: bool = True,
             targets: Sequence[str] = C_TARGETS) -> tuple[Test, Test, Test]:
    """The reference-vs-TFLM, C-vs-reference and sanitizer tests of `models`, parametrized
    by `cases` (`c_edges`: the C tests start with the edge samples too; `targets`: those the
    C runs on, a kernel's own cores where only they take it)."""
    tflm_seed, c_seed, sanitize_seed = seeds

    def extra(model: bytes) -> list | None:
        return edge_inputs(load_program(model)) if c_edges else None

    @pytest.mark.tflm
    @pytest.mark.parametrize("name", cases)
    def reference_matches(name: str) -> None:
        model = models[name]()
        reference_matches_tflm(model, inputs_with_edges(model, tflm_samples, seed=tflm_seed))

    @pytest.mark.parametrize("target", targets)
    @pytest.mark.parametrize("name", cases)
    def c_matches(name: str, target: str, tmp_path: Path) -> None:
        model = models[name]()
        c_matches_reference(model, target, tmp_path, seed=c_seed, extra=extra(model))

    @pytest.mark.parametrize("name", cases)
    def clean_under_sanitizers(name: str, tmp_path: Path) -> None:
        model = models[name]()
        c_matches_reference(model, "host", tmp_path, seed=sanitize_seed, sanitize=True,
                            extra=extra(model))

    return reference_matches, c_matches, clean_under_sanitizers
