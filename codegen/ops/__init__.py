"""The operator registry: opcode -> module that prepares it.

Adding an operator: write `codegen/ops/<op>.py` with OPCODE, a Layer subclass (reference,
constants, template) and `prepare(op, graph)`; add its kernel template under
`templates/kernels/`; list the module below; add its TFLM comparison test.
"""

from __future__ import annotations

from collections.abc import Callable

from codegen.errors import UnsupportedError
from codegen.model.ir import Graph, Operator
from codegen.ops import dequantize, fully_connected, quantize, reshape
from codegen.ops.base import Layer

_MODULES = (fully_connected, reshape, quantize, dequantize)

REGISTRY: dict[str, Callable[[Operator, Graph], Layer]] = {
    m.OPCODE: m.prepare for m in _MODULES
}


def supported_operators() -> list[str]:
    return sorted(REGISTRY)


def prepare_layer(op: Operator, graph: Graph) -> Layer:
    prepare = REGISTRY.get(op.opcode)
    if prepare is None:
        raise UnsupportedError(
            f"operator {op.index} ({op.opcode}) is not supported; "
            f"supported operators: {', '.join(supported_operators())}"
        )
    return prepare(op, graph)
