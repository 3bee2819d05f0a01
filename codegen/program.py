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
from codegen.numerics import DEFAULT, check_mode
from codegen.ops import prepare_layer
from codegen.ops.base import Layer
from codegen.ops.conv_2d import share_engines
from codegen.plan import Plan, plan_for_budget
from codegen.state import StatePlan, plan_state

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
    state: StatePlan | None = None  # None: the model keeps nothing between invokes
    # The model's layers, in run order, when `layers` is a patch-based schedule (bands of
    # them, codegen/patch.py): the reference runs these. None: `layers`.
    model_layers: list[Layer] | None = None
    numerics: str = DEFAULT  # whose arithmetic the layers reproduce (codegen/numerics.py)

    @property
    def macs(self) -> int:
        """MACs of one invoke as scheduled (a patch-based stage computes halos again)."""
        return sum(layer.macs() for layer in self.layers)

    @property
    def reference_layers(self) -> list[Layer]:
        return self.layers if self.model_layers is None else self.model_layers

def load_program(source: str | Path | bytes, *, io_in_arena: bool = False,
                 ram_budget: int | None = None, numerics: str = DEFAULT) -> Program:
    """Read, validate, prepare and plan a model. `io_in_arena` places the model's inputs
    and outputs in the arena as well (the C API then exposes them by offset). `ram_budget`:
    the fastest schedule whose arena fits that many bytes (a CodegenError when none does);
    None: the default schedule. `numerics` names the interpreter whose arithmetic the
    layers reproduce (codegen/numerics.py)."""
    check_mode(numerics)
    label = "model" if isinstance(source, bytes) else str(source)
    graph = fold_float_negations(load_model(source))
    validate_graph(graph, label)
    layers = fuse_dilated_convolutions(graph, _prepare(graph, label, numerics), numerics)
    init_layers = {index: [_prepare_init(op, init, index, numerics) for op in init.operators]
                   for index, init in graph.init_graphs.items()}
    state = plan_state(graph, layers, init_layers)
    offsets = {t: state.offset(t) for t in state.binding} if state is not None else {}
    schedule = plan_for_budget(graph, layers, io_in_arena, ram_budget, offsets, numerics)
    plan = schedule.plan
    by_index = {layer.index: layer for layer in schedule.layers}
    run_order = [by_index[i] for i in plan.order]
    share_engines(run_order)
    name = "model.tflite" if isinstance(source, bytes) else Path(source).name
    model_layers = None
    if schedule.graph is not graph:  # patch-based: the reference runs the model's layers
        model_index = {layer.index: layer for layer in layers}
        model_layers = [model_index[i] for i in plan_for_budget(graph, layers,
                                                                io_in_arena).plan.order]
        graph = schedule.graph
    constant_bytes = _constant_bytes(run_order)
    return Program(graph, run_order, plan, name, constant_bytes, state, model_layers,
                   numerics)


def _prepare_init(op: Operator, graph: Graph, index: int, numerics: str) -> Layer:
    try:
        return prepare_layer(op, graph, numerics)
    except UnsupportedError as exc:
        raise UnsupportedError(f"subgraph {index} (a CALL_ONCE initializer): {exc}") from None


def _constant_bytes(layers: list[Layer]) -> int:
    """Of the constant arrays emitted: once per C function (bands share theirs), and each
    distinct array once (codegen.emit aliases the copies)."""
    seen: set[str] = set()
    arrays: dict[tuple[str, str, int, bytes], int] = {}
    for layer in layers:
        symbol = layer.symbol("")
        if symbol not in seen:
            seen.add(symbol)
            arrays.update((a.identity, a.nbytes) for a in layer.constants())
    return sum(arrays.values())


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
