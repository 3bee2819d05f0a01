"""The operator registry: (opcode, activation type) -> the `prepare` that handles it.

Every module in this package (except `base`) is an operator module: it defines `OPCODES`
(the builtin operator names it handles) and either
  - `KERNELS = {DType.INT8: prepare_int8, DType.INT16: prepare_int16, ...}`: one Prepare per
    activation type, as TFLM registers one kernel per (operator, type) and dispatches once;
  - or `prepare(op, graph) -> Layer`: one Prepare for every type, which checks the types
    itself (RESHAPE, which never looks at the values, and modules that predate KERNELS);
    `TYPES` then lists the activation types it takes, for the README.
The activation type of an operator is the type TFLM's Eval switches on (`activation_type`).
A module whose arithmetic differs in a numerics mode other than `tflm` (codegen/numerics.py)
also defines `NUMERICS = {"litert-ref": adapt, ...}`: `adapt(layer)` turns the layer TFLM's
Prepare gave into the one that mode computes (the same layer where nothing differs).
Modules are found by listing the package, so adding an operator touches no shared file:
see ARCHITECTURE.md, "Adding an operator".
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from functools import cache

from codegen.errors import UnsupportedError
from codegen.model.ir import DType, Graph, Operator
from codegen.ops.base import Layer

Prepare = Callable[[Operator, Graph], Layer]
# The kernels of one opcode; the key None stands for a Prepare that takes every type.
Kernels = dict[DType | None, Prepare]
_NOT_OPERATORS = frozenset({"base"})
# The activation types that have a column of their own in the README's operator table.
DOCUMENTED_TYPES = (DType.INT8, DType.INT16)


@cache
def registry() -> dict[str, Kernels]:
    table: dict[str, Kernels] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _NOT_OPERATORS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        kernels: Kernels = dict(getattr(module, "KERNELS", None) or {None: module.prepare})
        for opcode in module.OPCODES:
            claimed = table.setdefault(opcode, {})
            if None in claimed or (None in kernels and claimed) or set(claimed) & set(kernels):
                raise RuntimeError(f"{opcode} is claimed twice for one type")
            claimed.update(kernels)
    return table


Adapt = Callable[[Layer], Layer]


def numerics_variant(prepare: Prepare, numerics: str) -> Adapt | None:
    """The `NUMERICS[numerics]` of the operator module whose `prepare` made the layer (not of
    every module claiming the opcode: CONV_2D's int8 and int16 kernels live in different
    modules and differ in every mode)."""
    module = importlib.import_module(prepare.__module__)
    return getattr(module, "NUMERICS", {}).get(numerics)


def supported_operators() -> list[str]:
    return sorted(registry())


def supported_types(opcode: str) -> tuple[DType, ...]:
    """The activation types an opcode has a kernel for. A module with one Prepare for
    every type says which it takes in `TYPES` (int8 when it does not say)."""
    kernels = registry()[opcode]
    if None in kernels:
        module = importlib.import_module(kernels[None].__module__)
        return tuple(getattr(module, "TYPES", (DType.INT8,)))
    return tuple(t for t in DType if t in kernels)


def activation_type(op: Operator, graph: Graph) -> DType:
    """The type TFLM's Eval dispatches on: the first non-constant input's type, or the
    output's where that input is float (QUANTIZE from float) or there is none."""
    for index in op.inputs:
        if index >= 0 and not graph.tensors[index].is_constant:
            dtype = graph.tensors[index].dtype
            if dtype is not DType.FLOAT32:
                return dtype
            break
    if op.outputs and op.outputs[0] >= 0:
        return graph.tensors[op.outputs[0]].dtype
    return DType.OTHER


def prepare_layer(op: Operator, graph: Graph, numerics: str = "tflm") -> Layer:
    from codegen.numerics import reproduced, reproduces_type

    prepare = _kernel(op, graph)
    layer = _prepare_tflm(op, graph, prepare)
    if numerics == "tflm":
        return layer
    adapt = numerics_variant(prepare, numerics)
    dtype = activation_type(op, graph)
    if not reproduces_type(numerics, op.opcode, dtype):
        raise UnsupportedError(
            f"operator {op.index} ({op.opcode}): --numerics {numerics} does not reproduce "
            f"{dtype.numpy_name} {op.opcode} layers; use --numerics tflm")
    if not reproduced(numerics, op.opcode, adapt is not None):
        raise UnsupportedError(
            f"operator {op.index} ({op.opcode}): --numerics {numerics} does not reproduce "
            f"{op.opcode} (its LiteRT kernel is not known to compute what TFLM's does); use "
            "--numerics tflm")
    return layer if adapt is None else adapt(layer)


def _kernel(op: Operator, graph: Graph) -> Prepare:
    """The Prepare TFLM's registration picks for the operator."""
    kernels = registry().get(op.opcode)
    if kernels is None:
        raise UnsupportedError(
            f"operator {op.index} ({op.opcode}) is not supported; "
            f"supported operators: {', '.join(supported_operators())}"
        )
    prepare = kernels.get(None)
    if prepare is None:
        dtype = activation_type(op, graph)
        prepare = kernels.get(dtype)
        if prepare is None:
            names = ", ".join(t.numpy_name for t in kernels if t is not None)
            raise UnsupportedError(
                f"operator {op.index} ({op.opcode}): {dtype.numpy_name} activations are not "
                f"supported (TFLM has {names} kernels for it)"
            )
    return prepare


def _prepare_tflm(op: Operator, graph: Graph, prepare: Prepare) -> Layer:
    try:
        return prepare(op, graph)
    except UnsupportedError as exc:
        if str(exc).startswith(f"operator {op.index} "):
            raise
        # Shared helpers (quant.py, ...) do not know which operator they serve.
        raise UnsupportedError(f"operator {op.index} ({op.opcode}): {exc}") from None
