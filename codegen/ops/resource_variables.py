"""VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE, CALL_ONCE: resource variables of any type
(the converter keeps them in float32) in the state block, copied in and out as bytes;
CALL_ONCE (before every other operator but VAR_HANDLE) with an initialization subgraph
that runs when the state is reset

TFLM: the VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE and CALL_ONCE kernels over
MicroResourceVariables; codegen/state.py says how variables are named, sized, reset and
initialized. At run time only the copies remain: VAR_HANDLE names a region of the state
block at generation time, and CALL_ONCE's subgraph has run by the time the state is reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops.base import CArray, Layer, unsupported
from codegen.terminal import shown

OPCODES = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")
TYPES = (DType.INT8, DType.INT16)  # and every other type: the bytes are not looked at


@dataclass
class NoCode(Layer):
    """VAR_HANDLE and CALL_ONCE: settled at generation time."""

    no_code: ClassVar[bool] = True

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return []

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        if self.opcode == "VAR_HANDLE":
            where = f" in container '{shown(str(p['container']))}'" if p["container"] else ""
            return [("variable", f"'{shown(str(p['shared_name']))}'{where}"),
                    ("code", "none: names the variable's region of the state block")]
        return [("initializer", f"subgraph {p['subgraph']}: {p['init_ops']}"),
                ("code", "none: run at generation time, its values are the state's reset "
                         "values (NAME_reset)")]


@dataclass
class ReadVariable(Layer):
    """output = the variable's bytes."""

    template: ClassVar[str] = "kernels/read_variable.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        y = self.out_tensor()
        raw = np.ascontiguousarray(inputs[0]).view(np.uint8).reshape(inputs[0].shape[0], -1)
        return [raw.view(y.dtype.np).reshape(raw.shape[0], *y.shape).copy()]


@dataclass
class AssignVariable(Layer):
    """variable = the value's bytes (an activation, or a constant in params["value"])."""

    template: ClassVar[str] = "kernels/assign_variable.c.j2"

    def state_updates(self) -> tuple[int, ...]:
        return (len(self.inputs) - 1,)

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        constant = self.params["value"]
        if constant is None:
            value = np.ascontiguousarray(inputs[0])
            return [value.view(np.uint8).reshape(value.shape[0], -1).copy()]
        raw = np.asarray(constant, dtype=np.uint8)
        return [np.broadcast_to(raw, (inputs[0].shape[0], raw.size)).copy()]

    def constants(self) -> list[CArray]:
        constant = self.params["value"]
        return [] if constant is None else [CArray("value", np.asarray(constant, np.uint8))]


def _text(value: object) -> str:
    """A string option as the flatbuffer stores it (bytes), decoded; "" when absent."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _count(op: Operator, inputs: int, outputs: int) -> None:
    if len(op.inputs) != inputs or len(op.outputs) != outputs or min(
            (*op.inputs, *op.outputs), default=0) < 0:
        raise unsupported(op, f"expected {inputs} input(s) and {outputs} output(s), found "
                              f"{len(op.inputs)} and {len(op.outputs)}")


def prepare(op: Operator, graph: Graph) -> Layer:
    if op.opcode == "VAR_HANDLE":
        _count(op, 0, 1)
        if graph.tensors[op.outputs[0]].dtype_name != "resource":
            raise unsupported(op, f"output '{graph.tensors[op.outputs[0]].name}' is "
                                  f"{graph.tensors[op.outputs[0]].dtype_name}, not a resource")
        return NoCode(op, graph, inputs=(), outputs=(), params={
            "container": _text(op.options.get("container")),
            "shared_name": _text(op.options.get("shared_name"))})
    if op.opcode == "CALL_ONCE":
        _count(op, 0, 0)
        index = int(op.options.get("init_subgraph_index", 0) or 0)
        init = graph.init_graphs.get(index)
        ops = "not read" if init is None else (
            f"{len(init.operators)} operator(s), "
            + ", ".join(sorted({o.opcode for o in init.operators})))
        return NoCode(op, graph, inputs=(), outputs=(), params={"subgraph": index,
                                                                "init_ops": ops})
    resource = graph.tensors[op.inputs[0]] if op.inputs and op.inputs[0] >= 0 else None
    if op.opcode == "READ_VARIABLE":
        _count(op, 1, 1)
        y = graph.tensors[op.outputs[0]]
        return ReadVariable(op, graph, inputs=(op.inputs[0],), outputs=(y.index,),
                            params={"nbytes": y.nbytes, "out_type": y.dtype.c_type})
    _count(op, 2, 0)
    value = graph.tensors[op.inputs[1]]
    if resource is None or value.dtype is DType.OTHER:
        raise unsupported(op, f"cannot assign '{value.name}' ({value.dtype_name})")
    params: dict[str, object] = {
        "nbytes": value.nbytes, "in_type": value.dtype.c_type,
        "value": (np.ascontiguousarray(value.data).view(np.uint8).ravel()
                  if value.is_constant else None),
    }
    inputs = (op.inputs[0],) if value.is_constant else (value.index, op.inputs[0])
    return AssignVariable(op, graph, inputs=inputs, outputs=(), params=params)
