"""State that persists between invokes: TFLM's variable tensors and resource variables.

What TFLM does (micro_interpreter_graph.cc, micro_allocator.cc, micro_resource_variable.cc
and the CALL_ONCE, VAR_HANDLE, READ_VARIABLE and ASSIGN_VARIABLE kernels):

- A variable tensor (`is_variable`: an LSTM's hidden and cell state, an SVDF's memory) has
  storage of its own that no invoke clears. AllocateTensors and Reset fill it with its zero
  point when it is int8 and with zero bytes otherwise (ResetTensorData), whatever its buffer
  in the file holds.
- A resource variable is named by (container, shared_name): every VAR_HANDLE of that name,
  in any subgraph, designates it (a missing container matches any). The first
  ASSIGN_VARIABLE to it that Prepare visits (subgraph after subgraph, operator after
  operator) sets its size and its reset byte: the low byte of that value's zero point when
  the value is quantized, else 0 (memset, whatever the type). READ_VARIABLE copies its
  bytes out and ASSIGN_VARIABLE copies bytes in; TFLM only DCHECKs that the sizes agree,
  and reading a variable no ASSIGN_VARIABLE sizes reads a null buffer: both are refused.
- CALL_ONCE runs its initialization subgraph at its place in the first invoke after
  AllocateTensors. Codegen takes CALL_ONCE only before every operator but VAR_HANDLE (the
  converter's layout), where running it first is the same, and runs the initializers at
  generation time (they depend only on constants and the reset state): the state after
  them is what a reset restores. TFLM's own Reset() clears the resource variables without
  running CALL_ONCE again (its kernel has no reset function), so after a Reset TFLM's
  state is not that of a fresh interpreter; NAME_reset gives the fresh interpreter's.

The generated C keeps all of it in one block, `NAME_STATE_SIZE` bytes: a word that says
whether the block has been reset (0 in a zero-filled block, so static storage and a
zeroed caller block reset themselves on their first invoke), then one region per variable
tensor and per resource variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from codegen.errors import UnsupportedError
from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.model.validate import MAX_ACTIVATION_BYTES

if TYPE_CHECKING:
    from codegen.ops.base import Layer

# The word at the start of the block: READY once the block holds a reset state.
HEADER_BYTES = 4
READY = 1
ALIGNMENT = 4
_CALL_ONCE_MAY_FOLLOW = ("VAR_HANDLE", "CALL_ONCE")
# The CALL_ONCE initializers run at generation time: at most this many values computed
# (multiply-accumulates, and elements read and written) in all of them. A converter's initializer
# copies a constant into each variable; a small file could otherwise ask for hours.
MAX_INIT_WORK = 1 << 24
# The state block's bytes at most (the bound on a model's activations, validate.py).
MAX_STATE_BYTES = MAX_ACTIVATION_BYTES


@dataclass(frozen=True)
class Region:
    """One variable tensor or resource variable in the state block."""

    name: str
    kind: str  # "variable" (a variable tensor) or "resource" (a resource variable)
    offset: int
    size: int  # bytes
    fill: int  # the reset byte
    initial: bytes | None = None  # after the CALL_ONCE initializers, when not all `fill`
    dtype: DType = DType.UINT8  # how the reference holds a variable tensor's value
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class StatePlan:
    regions: tuple[Region, ...]
    size: int  # bytes of the block, header included
    alignment: int
    binding: dict[int, int] = field(default_factory=dict)  # main-graph tensor -> region

    def offset(self, tensor: int) -> int:
        return self.regions[self.binding[tensor]].offset

    def reset_values(self) -> list[np.ndarray]:
        """The value of every region after a reset, as the reference holds it: a variable
        tensor's values shaped (1, *shape), a resource variable's bytes shaped (1, size)."""
        return [_value(region, region.initial) for region in self.regions]


def _value(region: Region, data: bytes | None) -> np.ndarray:
    raw = (np.frombuffer(data, dtype=np.uint8) if data is not None
           else np.full(region.size, region.fill, dtype=np.uint8))
    if region.kind == "resource":
        return raw.reshape(1, region.size).copy()
    return raw.view(region.dtype.np).reshape(1, *region.shape).copy()


def _align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def step(layers: list[Layer], values: dict[int, np.ndarray], state: list[np.ndarray],
         binding: dict[int, int]) -> None:
    """Run `layers` (their references) once, on one sample: `values` holds the graph's
    inputs (arrays shaped (1, ...)) and gets every output; `state` (one array per region,
    see StatePlan.reset_values) is read and updated in place through `binding`."""
    for layer in layers:
        ins = [state[binding[t]] if t in binding else values[t] for t in layer.inputs]
        results = layer.reference(ins)
        count = len(layer.outputs)
        for t, result in zip(layer.outputs, results[:count], strict=True):
            if t in binding:
                state[binding[t]] = result
            else:
                values[t] = result
        for position, result in zip(layer.state_updates(), results[count:], strict=True):
            state[binding[layer.inputs[position]]] = result


# -- planning -------------------------------------------------------------------------------


def plan_state(graph: Graph, layers: list[Layer],
               init_layers: dict[int, list[Layer]]) -> StatePlan | None:
    """The state block of a model, or None when it keeps no state. `layers` are the main
    graph's, `init_layers` those of each CALL_ONCE initializer (graph.init_graphs)."""
    _check_call_once_first(graph)
    for index, init in graph.init_graphs.items():
        for t in init.tensors:
            if t.is_variable:
                raise UnsupportedError(
                    f"subgraph {index}, a CALL_ONCE initializer, has variable tensor "
                    f"'{t.name}'; codegen takes variable tensors in the main subgraph only")
    graphs = [(0, graph), *sorted(graph.init_graphs.items())]
    resources = _Resources(graphs)
    variables = _variable_tensors(graph, layers)
    if not variables and not resources.sized:
        return None
    regions: list[Region] = []
    offset, alignment = HEADER_BYTES, ALIGNMENT
    binding: dict[int, int] = {}
    for t in variables:
        tensor = graph.tensors[t]
        align = max(ALIGNMENT, tensor.dtype.itemsize)
        offset, alignment = _align(offset, align), max(alignment, align)
        fill = (tensor.quant.zero_point & 0xFF if tensor.dtype is DType.INT8
                and tensor.quant is not None else 0)
        binding[t] = len(regions)
        regions.append(Region(tensor.name, "variable", offset, tensor.nbytes, fill,
                              dtype=tensor.dtype, shape=tensor.shape))
        offset += tensor.nbytes
    resource_region: dict[int, int] = {}
    for rid, (size, fill, name) in sorted(resources.sized.items()):
        align = 8 if size % 8 == 0 else ALIGNMENT
        offset, alignment = _align(offset, align), max(alignment, align)
        resource_region[rid] = len(regions)
        regions.append(Region(name, "resource", offset, size, fill))
        offset += size
    for t, rid in resources.handles.get(0, {}).items():
        if rid in resource_region:
            binding[t] = resource_region[rid]
    plan = StatePlan(tuple(regions), _align(offset, alignment), alignment, binding)
    if plan.size > MAX_STATE_BYTES:
        raise UnsupportedError(
            f"the state kept between invokes would take {plan.size} bytes ({len(regions)} "
            "variable tensors and resource variables), more than a 32-bit microcontroller "
            "can address; a model for one keeps far less")
    return _initialized(plan, graph, init_layers, resources, resource_region)


def _check_call_once_first(graph: Graph) -> None:
    """CALL_ONCE runs its subgraph at its place in the first invoke; codegen runs it when
    the state is reset, which is the same when nothing but VAR_HANDLE comes before it."""
    seen: Operator | None = None
    for op in graph.operators:
        if op.opcode == "CALL_ONCE" and seen is not None:
            raise UnsupportedError(
                f"operator {op.index} (CALL_ONCE) comes after operator {seen.index} "
                f"({seen.opcode}); codegen takes CALL_ONCE only before every operator but "
                "VAR_HANDLE, as the converter writes it")
        if op.opcode not in _CALL_ONCE_MAY_FOLLOW and seen is None:
            seen = op


def _variable_tensors(graph: Graph, layers: list[Layer]) -> list[int]:
    """Variable tensors the layers read or write, in tensor order; a variable graph input
    is an input like any other (the caller sets it before every invoke), but none may be
    updated in place."""
    inputs = set(graph.inputs)
    found: set[int] = set()
    for layer in layers:
        for position in layer.state_updates():
            t = layer.inputs[position]
            if t in inputs:
                raise UnsupportedError(
                    f"operator {layer.index} ({layer.opcode}) updates graph input "
                    f"'{graph.tensors[t].name}' in place; codegen needs its variable "
                    "tensors inside the model")
        for t in (*layer.inputs, *layer.outputs):
            if graph.tensors[t].is_variable and t not in inputs:
                found.add(t)
    for t in graph.outputs:
        if graph.tensors[t].is_variable:
            raise UnsupportedError(
                f"graph output '{graph.tensors[t].name}' is a variable tensor; codegen "
                "needs its variable tensors inside the model")
    return sorted(found)


def _initialized(plan: StatePlan, graph: Graph, init_layers: dict[int, list[Layer]],
                 resources: _Resources, resource_region: dict[int, int]) -> StatePlan:
    """The plan with each region's value after the CALL_ONCE initializers."""
    if not graph.init_graphs:
        return plan
    _check_init_work(init_layers)
    bindings = {index: {t: resource_region[rid]
                        for t, rid in resources.handles.get(index, {}).items()
                        if rid in resource_region}
                for index in graph.init_graphs}
    # Only the regions an initializer can touch are held (the block may take gigabytes).
    touched = {k for binding in bindings.values() for k in binding.values()}
    state = [_value(region, region.initial) if k in touched else np.empty(0, np.uint8)
             for k, region in enumerate(plan.regions)]
    for index in sorted(graph.init_graphs):
        step(init_layers[index], {}, state, bindings[index])
    regions = []
    for k, (region, value) in enumerate(zip(plan.regions, state, strict=True)):
        if k not in touched:
            regions.append(region)
            continue
        data = np.ascontiguousarray(value).view(np.uint8).tobytes()
        initial = None if data == bytes([region.fill]) * region.size else data
        regions.append(Region(region.name, region.kind, region.offset, region.size,
                              region.fill, initial, region.dtype, region.shape))
    return StatePlan(tuple(regions), plan.size, plan.alignment, plan.binding)


def _check_init_work(init_layers: dict[int, list[Layer]]) -> None:
    """Refuse initializers that would compute more than MAX_INIT_WORK values, before any
    of them runs."""
    work = 0
    for index in sorted(init_layers):
        for layer in init_layers[index]:
            operands = [*layer.inputs, *layer.outputs]  # values read, copied or written
            work += layer.macs() + sum(layer.graph.tensors[t].size for t in operands)
            if work > MAX_INIT_WORK:
                raise UnsupportedError(
                    f"subgraph {index} (a CALL_ONCE initializer) computes more than "
                    f"{MAX_INIT_WORK} values by operator {layer.index} ({layer.opcode}), "
                    "which codegen runs at generation time; an initializer should only "
                    "set the variables' starting values (re-export the model with "
                    "them as constants)")


class _Resources:
    """Resource variables as TFLM's MicroResourceVariables numbers them: ids in the order
    Prepare meets their VAR_HANDLEs, sizes from the first ASSIGN_VARIABLE."""

    def __init__(self, graphs: list[tuple[int, Graph]]) -> None:
        self.names: list[tuple[bytes | None, bytes]] = []
        # The first id of each name, and of each (name, container): a handle without a
        # container matches any, one with a container only that (constant time per handle).
        self._first_of_name: dict[bytes, int] = {}
        self._first_of_pair: dict[tuple[bytes, bytes | None], int] = {}
        self.handles: dict[int, dict[int, int]] = {}  # graph -> resource tensor -> id
        self.sized: dict[int, tuple[int, int, str]] = {}  # id -> (bytes, fill, name)
        for index, graph in graphs:
            self._bind(index, graph)
        for index, graph in graphs:
            self._check_sizes(index, graph)

    def _where(self, index: int, op: Operator) -> str:
        place = "" if index == 0 else f"subgraph {index}, "
        return f"{place}operator {op.index} ({op.opcode})"

    def _bind(self, index: int, graph: Graph) -> None:
        handles = self.handles.setdefault(index, {})
        for op in graph.operators:
            if op.opcode == "VAR_HANDLE":
                handles[op.outputs[0]] = self._id(index, op)
            elif op.opcode == "ASSIGN_VARIABLE":
                rid = self._handle(index, graph, op, handles)
                if rid not in self.sized:
                    value = graph.tensors[op.inputs[1]]
                    fill = value.quant.zero_point & 0xFF if value.quant is not None else 0
                    self.sized[rid] = (value.nbytes, fill, self.names[rid][1].decode(
                        "utf-8", "replace"))
            elif op.opcode == "READ_VARIABLE":
                self._handle(index, graph, op, handles)

    def _id(self, index: int, op: Operator) -> int:
        container = op.options.get("container")
        name = op.options.get("shared_name")
        if not isinstance(name, bytes):
            raise UnsupportedError(f"{self._where(index, op)} names no variable "
                                   "(shared_name); the file is corrupt, re-export the model")
        if container is not None and not isinstance(container, bytes):
            container = None
        known = (self._first_of_name.get(name) if container is None
                 else self._first_of_pair.get((name, container)))
        if known is not None:
            return known
        rid = len(self.names)
        self.names.append((container, name))
        self._first_of_name.setdefault(name, rid)
        self._first_of_pair.setdefault((name, container), rid)
        return rid

    def _handle(self, index: int, graph: Graph, op: Operator,
                handles: dict[int, int]) -> int:
        t = op.inputs[0] if op.inputs else -1
        if t not in handles:
            raise UnsupportedError(
                f"{self._where(index, op)} reads a resource that no VAR_HANDLE before it "
                "in its subgraph makes; codegen needs the VAR_HANDLE")
        return handles[t]

    def _check_sizes(self, index: int, graph: Graph) -> None:
        handles = self.handles.get(index, {})
        for op in graph.operators:
            if op.opcode not in ("READ_VARIABLE", "ASSIGN_VARIABLE"):
                continue
            rid = handles[op.inputs[0]]
            name = self.names[rid][1].decode("utf-8", "replace")
            value = _value_tensor(graph, op)
            if rid not in self.sized:
                raise UnsupportedError(
                    f"{self._where(index, op)} reads resource variable '{name}', which no "
                    "ASSIGN_VARIABLE gives a value or a size (TFLM would read a null "
                    "buffer)")
            size = self.sized[rid][0]
            if value is not None and value.nbytes != size:
                raise UnsupportedError(
                    f"{self._where(index, op)}: '{value.name}' has {value.nbytes} bytes but "
                    f"resource variable '{name}' has {size} (set by its first "
                    "ASSIGN_VARIABLE); TFLM copies the variable's bytes and needs them "
                    "equal")


def _value_tensor(graph: Graph, op: Operator) -> Tensor | None:
    if op.opcode == "READ_VARIABLE":
        return graph.tensors[op.outputs[0]] if op.outputs else None
    return graph.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
