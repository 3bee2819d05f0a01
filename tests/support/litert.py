"""LiteRT (`ai_edge_litert`, the interpreter behind `tf.lite.Interpreter`): the oracles of
the `litert-ref` and `litert` numerics modes, each named explicitly.

The three ways LiteRT runs a model differ in arithmetic (issue 17):
  - `DEFAULT`: `Interpreter(model_content=...)` as a user runs it: the XNNPACK delegate
    takes the operators it supports, LiteRT's optimized builtin kernels the rest
    (`OpResolverType.AUTO`, the default). The oracle of `--numerics litert`.
  - `BUILTIN`: the optimized builtin kernels without any delegate
    (`OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`). Not a mode; `codegen compare`
    shows it.
  - `REFERENCE`: LiteRT's reference kernels (`OpResolverType.BUILTIN_REF`). The oracle of
    `--numerics litert-ref`.
The behaviour is that of the `ai-edge-litert` version pinned in pyproject.toml's test extras.

`run_litert` runs batches sample by sample on one interpreter (no LiteRT kernel of the
operators we generate keeps state between invocations).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT = "default"
BUILTIN = "builtin"
REFERENCE = "reference"
ORACLES = (DEFAULT, BUILTIN, REFERENCE)
# The oracle of each numerics mode.
MODE_ORACLE = {"litert": DEFAULT, "litert-ref": REFERENCE}


def resolver(oracle: str) -> Any:
    from ai_edge_litert.interpreter import OpResolverType

    return {
        DEFAULT: OpResolverType.AUTO,
        BUILTIN: OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        REFERENCE: OpResolverType.BUILTIN_REF,
    }[oracle]


def interpreter(model: bytes, oracle: str, *, preserve_all_tensors: bool = False) -> Any:
    """An allocated LiteRT interpreter running `model` the way `oracle` names."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=bytes(model), experimental_op_resolver_type=resolver(oracle),
                         experimental_preserve_all_tensors=preserve_all_tensors)
    interp.allocate_tensors()
    return interp


def run_litert(model: bytes, inputs: Sequence[np.ndarray], oracle: str) -> list[np.ndarray]:
    """Run `model` on batched inputs (`inputs[i]` shaped (N, *input i's shape)) in the LiteRT
    configuration `oracle`; return one batched array per output."""
    if oracle not in ORACLES:
        raise ValueError(f"unknown LiteRT oracle {oracle!r}; one of {ORACLES}")
    interp = interpreter(model, oracle)
    ins, outs = interp.get_input_details(), interp.get_output_details()
    if len(inputs) != len(ins):
        raise ValueError(f"model has {len(ins)} inputs, got {len(inputs)} arrays")
    sizes = {len(batch) for batch in inputs}
    if len(sizes) != 1:
        raise ValueError(f"input batches differ in length: {sorted(sizes)}")
    count = sizes.pop()
    results: list[list[np.ndarray]] = [[] for _ in outs]
    for sample in range(count):
        for detail, batch in zip(ins, inputs, strict=True):
            interp.set_tensor(detail["index"], np.require(batch[sample], requirements="C"))
        interp.invoke()
        for k, detail in enumerate(outs):
            results[k].append(np.array(interp.get_tensor(detail["index"]), copy=True))
    return [np.stack(r) if r else np.zeros((0, *d["shape"]), d["dtype"])
            for r, d in zip(results, outs, strict=True)]


def run_oracle(model: bytes, inputs: Sequence[np.ndarray], numerics: str) -> list[np.ndarray]:
    """The outputs of the oracle of a numerics mode: TFLM for `tflm`, LiteRT otherwise."""
    if numerics == "tflm":
        from support.tflm import run_tflm

        return run_tflm(model, inputs)
    return run_litert(model, inputs, MODE_ORACLE[numerics])
