"""The numpy integer reference: runs a prepared program over a batch of samples.

A model without state runs the whole batch at once, every layer vectorised over the
samples. A model with state (codegen/state.py) runs them in order, one invoke each, the
state carried from one to the next as TFLM's interpreter carries it (or reset before each
sample with `reset_each`), starting from the state of a freshly allocated interpreter.
"""

from __future__ import annotations

import numpy as np

from codegen.errors import CodegenError
from codegen.program import Program
from codegen.state import step


def run_reference(program: Program, inputs: list[np.ndarray], *,
                  reset_each: bool = False) -> list[np.ndarray]:
    """inputs: one array per graph input, shaped (N, *tensor.shape); returns one per output."""
    values = reference_values(program, inputs, reset_each=reset_each)
    return [values[t] for t in program.graph.outputs]


def reference_values(program: Program, inputs: list[np.ndarray], *,
                     reset_each: bool = False) -> dict[int, np.ndarray]:
    """Like run_reference, but returns every tensor's value (graph inputs and every layer
    output), keyed by tensor index, each shaped (N, *tensor.shape)."""
    graph = program.graph
    if len(inputs) != len(graph.inputs):
        raise CodegenError(f"model has {len(graph.inputs)} inputs, {len(inputs)} given")
    values: dict[int, np.ndarray] = {}
    for index, array in zip(graph.inputs, inputs, strict=True):
        tensor = graph.tensors[index]
        if array.shape[1:] != tensor.shape or array.dtype != tensor.dtype.np:
            raise CodegenError(
                f"input '{tensor.name}' must be {tensor.dtype.numpy_name} shaped "
                f"(N, {', '.join(map(str, tensor.shape))}), got {array.dtype} {array.shape}"
            )
        values[index] = array
    if program.state is not None:
        return _in_sequence(program, values, reset_each)
    for layer in program.reference_layers:
        results = layer.reference([values[t] for t in layer.inputs])
        values.update(zip(layer.outputs, results, strict=True))
    return values


def _in_sequence(program: Program, inputs: dict[int, np.ndarray],
                 reset_each: bool) -> dict[int, np.ndarray]:
    """One invoke per sample, in order, carrying the state."""
    plan = program.state
    assert plan is not None
    count = next(iter(inputs.values())).shape[0]
    samples: list[dict[int, np.ndarray]] = []
    state = plan.reset_values()
    for k in range(count):
        if reset_each and k:
            state = plan.reset_values()
        values = {t: array[k:k + 1] for t, array in inputs.items()}
        step(program.reference_layers, values, state, plan.binding)
        samples.append(values)
    return {t: np.concatenate([s[t] for s in samples]) for t in samples[0]} if samples \
        else dict(inputs)
