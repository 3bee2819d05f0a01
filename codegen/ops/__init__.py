"""The operator registry: opcode -> the `prepare` of the module that handles it.

Every module in this package (except `base`) is an operator module: it defines
`OPCODES` (the builtin operator names it handles) and `prepare(op, graph) -> Layer`.
Modules are found by listing the package, so adding an operator touches no shared file:
see ARCHITECTURE.md, "Adding an operator".
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from functools import cache

from codegen.errors import UnsupportedError
from codegen.model.ir import Graph, Operator
from codegen.ops.base import Layer

Prepare = Callable[[Operator, Graph], Layer]
_NOT_OPERATORS = frozenset({"base"})


@cache
def registry() -> dict[str, Prepare]:
    table: dict[str, Prepare] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _NOT_OPERATORS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for opcode in module.OPCODES:
            if opcode in table:
                raise RuntimeError(f"{opcode} is claimed by two operator modules")
            table[opcode] = module.prepare
    return table


def supported_operators() -> list[str]:
    return sorted(registry())


def prepare_layer(op: Operator, graph: Graph) -> Layer:
    prepare = registry().get(op.opcode)
    if prepare is None:
        raise UnsupportedError(
            f"operator {op.index} ({op.opcode}) is not supported; "
            f"supported operators: {', '.join(supported_operators())}"
        )
    try:
        return prepare(op, graph)
    except UnsupportedError as exc:
        if str(exc).startswith(f"operator {op.index} "):
            raise
        # Shared helpers (quant.py, ...) do not know which operator they serve.
        raise UnsupportedError(f"operator {op.index} ({op.opcode}): {exc}") from None
