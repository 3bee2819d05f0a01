"""A model, prepared for generation: the graph, its layers in schedule order, the memory plan.

`load_program` is the front half of the pipeline (read -> fold -> validate -> prepare ->
fuse -> plan); the reference, the emitter and `inspect` all start from its result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codegen.errors import UnsupportedError
from codegen.fuse import fold_float_negations, fuse_dilated_convolutions
from codegen.model.ir import Graph
from codegen.model.tflite import load_model
from codegen.model.validate import validate_graph
from codegen.numerics import DEFAULT, check_mode
from codegen.ops import prepare_layer
from codegen.ops.base import Layer
from codegen.plan import Plan, plan_memory

# The constant data the layers emit (weights as packed, tables the generator computes) is
# bounded by the model file: a few times its size, so that a small file whose tables grow
# with its tensors' shapes (RESIZE_NEAREST_NEIGHBOR's, say) cannot make gigabytes of them.
CONSTANTS_PER_MODEL_BYTE = 4
CONSTANTS_SLACK = 128 << 20


def constants_limit(model_bytes: int) -> int:
    return CONSTANTS_PER_MODEL_BYTE * model_bytes + CONSTANTS_SLACK


@dataclass
class Program:
    graph: Graph
    layers: list[Layer]  # in run order
    plan: Plan
    source: str  # file name the model came from (no directories: output must not vary)
    constant_bytes: int = 0  # of all the layers' constant arrays
    numerics: str = DEFAULT  # whose arithmetic the layers reproduce (codegen/numerics.py)

    @property
    def macs(self) -> int:
        return sum(layer.macs() for layer in self.layers)


def load_program(source: str | Path | bytes, *, io_in_arena: bool = False,
                 numerics: str = DEFAULT) -> Program:
    """Read, validate, prepare and plan a model. `io_in_arena` places the model's inputs
    and outputs in the arena as well (the C API then exposes them by offset); `numerics`
    names the interpreter whose arithmetic the layers reproduce (codegen/numerics.py)."""
    check_mode(numerics)
    label = "model" if isinstance(source, bytes) else str(source)
    graph = fold_float_negations(load_model(source))
    validate_graph(graph, label)
    layers = fuse_dilated_convolutions(graph, _prepare(graph, label, numerics), numerics)
    plan = plan_memory(graph, layers, io_in_arena)
    by_index = {layer.index: layer for layer in layers}
    run_order = [by_index[i] for i in plan.order]
    name = "model.tflite" if isinstance(source, bytes) else Path(source).name
    constant_bytes = sum(a.nbytes for layer in layers for a in layer.constants())
    return Program(graph, run_order, plan, name, constant_bytes, numerics)


def _prepare(graph: Graph, label: str, numerics: str) -> list[Layer]:
    """The prepared layers, refused as soon as their constant arrays exceed
    `constants_limit` of the file's size."""
    limit = constants_limit(graph.file_bytes)
    layers: list[Layer] = []
    total = 0
    for op in graph.operators:
        layer = prepare_layer(op, graph, numerics)
        total += sum(a.nbytes for a in layer.constants())
        if total > limit:
            raise UnsupportedError(
                f"{label}: the generated constant data (weights as packed, tables) reaches "
                f"{total} bytes at operator {op.index} ({op.opcode}), more than "
                f"{CONSTANTS_PER_MODEL_BYTE} x the file's {graph.file_bytes} bytes + "
                f"{CONSTANTS_SLACK >> 20} MiB; a microcontroller model needs far less")
        layers.append(layer)
    return layers
