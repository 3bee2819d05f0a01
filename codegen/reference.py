"""The numpy integer reference: runs a prepared program over a batch of samples."""

from __future__ import annotations

import numpy as np

from codegen.errors import CodegenError
from codegen.program import Program


def run_reference(program: Program, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """inputs: one array per graph input, shaped (N, *tensor.shape); returns one per output."""
    values = reference_values(program, inputs)
    return [values[t] for t in program.graph.outputs]


def reference_values(program: Program, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
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
    for layer in program.reference_layers:
        results = layer.reference([values[t] for t in layer.inputs])
        values.update(zip(layer.outputs, results, strict=True))
    return values
