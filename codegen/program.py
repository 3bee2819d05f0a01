"""A model, prepared for generation: the graph, its layers in schedule order, the memory plan
and, for a model that keeps state between invokes, the state plan.

`load_program` is the front half of the pipeline (read -> fold -> validate -> prepare ->
fuse -> plan state -> plan memory); the reference, the emitter and `inspect` all start
from its result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codegen.errors import UnsupportedError
from codegen.fuse import fold_float_negations, fuse_dilated_convolutions
from codegen.model.ir import Graph, Operator
from codegen.model.tflite import load_model
from codegen.model.validate import validate_graph
from codegen.ops import prepare_layer
from codegen.ops.base import Layer
from codegen.plan import Plan, plan_memory
from codegen.state import StatePlan, plan_state


@dataclass
class Program:
    graph: Graph
    layers: list[Layer]  # in run order
    plan: Plan
    source: str  # file name the model came from (no directories: output must not vary)
    state: StatePlan | None = None  # None: the model keeps nothing between invokes

    @property
    def constant_bytes(self) -> int:
        return sum(a.nbytes for layer in self.layers for a in layer.constants())

    @property
    def macs(self) -> int:
        return sum(layer.macs() for layer in self.layers)


def load_program(source: str | Path | bytes, *, io_in_arena: bool = False) -> Program:
    """Read, validate, prepare and plan a model. `io_in_arena` places the model's inputs
    and outputs in the arena as well (the C API then exposes them by offset)."""
    label = "model" if isinstance(source, bytes) else str(source)
    graph = fold_float_negations(load_model(source))
    validate_graph(graph, label)
    layers = fuse_dilated_convolutions(graph, [prepare_layer(op, graph)
                                               for op in graph.operators])
    init_layers = {index: [_prepare_init(op, init, index) for op in init.operators]
                   for index, init in graph.init_graphs.items()}
    state = plan_state(graph, layers, init_layers)
    offsets = {t: state.offset(t) for t in state.binding} if state is not None else {}
    plan = plan_memory(graph, layers, io_in_arena, offsets)
    by_index = {layer.index: layer for layer in layers}
    run_order = [by_index[i] for i in plan.order]
    name = "model.tflite" if isinstance(source, bytes) else Path(source).name
    return Program(graph, run_order, plan, name, state)


def _prepare_init(op: Operator, graph: Graph, index: int) -> Layer:
    try:
        return prepare_layer(op, graph)
    except UnsupportedError as exc:
        raise UnsupportedError(f"subgraph {index} (a CALL_ONCE initializer): {exc}") from None
