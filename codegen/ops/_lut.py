"""Elementwise int8 -> int8 functions of one input, emitted as a 256-entry lookup table.

Such a function has only 256 possible inputs, so generation time runs the operator's own
integer arithmetic (`LutLayer.function`, the numpy mirror of TFLM's Eval) on all of them and
the C reads the answer from a table: bit-exact by construction, whatever the arithmetic. The
reference runs `function` on the actual inputs rather than reading the table, so the test of
the C against the reference also checks that the table was laid out right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from codegen.emit import render
from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops.base import (
    CArray,
    Layer,
    only_output,
    operand,
    require_dtype,
    require_per_tensor,
    unsupported,
)

INT8_VALUES = np.arange(-128, 128, dtype=np.int64)
# Tables already computed, by (layer type, opcode, parameters): a model often repeats one
# activation with the same quantization, and each table costs the fixed-point arithmetic
# on 256 values. Bounded, so that a long-running process does not grow with it.
_SHARED_TABLES: dict[tuple[object, ...], np.ndarray] = {}
_SHARED_TABLES_MAX = 1024


@dataclass
class LutLayer(Layer):
    """Subclasses implement `function`: int8 values (as int64) -> int8 values (as int64)."""

    template: ClassVar[str] = "kernels/lut.c.j2"
    _table: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def function(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def table(self) -> np.ndarray:
        """function(-128), ..., function(127): the C indexes it with input + 128.
        Computed once per layer, and once for all layers of the same type and parameters
        (`function` depends on nothing else); read-only."""
        if self._table is None:
            key = self._table_key()
            table = _SHARED_TABLES.get(key) if key is not None else None
            if table is None:
                table = self._compute_table()
                if key is not None:
                    if len(_SHARED_TABLES) >= _SHARED_TABLES_MAX:
                        _SHARED_TABLES.clear()
                    _SHARED_TABLES[key] = table
            self._table = table
        return self._table

    def _table_key(self) -> tuple[object, ...] | None:
        """What the table depends on, or None when a parameter is not a plain value."""
        items = sorted(self.params.items())
        if not all(isinstance(v, int | float | str | bool) for _, v in items):
            return None
        return (type(self), self.opcode, tuple(items))

    def _compute_table(self) -> np.ndarray:
        values = self.function(INT8_VALUES)
        if values.min() < -128 or values.max() > 127:
            raise AssertionError(f"{self.opcode}: table value out of the int8 range")
        table = values.astype(np.int8)
        table.setflags(write=False)
        return table

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        out = self.function(inputs[0].astype(np.int64))
        return [out.astype(np.int8).reshape(inputs[0].shape[0], *self.out_tensor().shape)]

    def constants(self) -> list[CArray]:
        return [CArray("table", self.table())]

    def inplace_inputs(self) -> tuple[int, ...]:
        return (0,)

    def kernel(self, symbol: str) -> str:
        return render(self.template, fn=symbol, layer=self, count=self.out_tensor().size,
                      what=self.summary())

    def summary(self) -> str:
        """One line for the comment above the kernel."""
        return self.opcode


def elementwise_operands(op: Operator, graph: Graph,
                         dtype: DType = DType.INT8) -> tuple[Tensor, Tensor]:
    """The input and output of a one-input activation of type `dtype`, checked as TFLM's
    Prepare does (same types, per-tensor quantization), plus the same shape."""
    if len([i for i in op.inputs if i >= 0]) != 1:
        raise unsupported(op, f"expected 1 input, found {len(op.inputs)}")
    x = operand(op, graph, 0, "input")
    y = only_output(op, graph)
    require_dtype(op, x, (dtype,), "input")
    require_dtype(op, y, (dtype,), "output")
    if x.is_constant:
        raise unsupported(op, "a constant input is not supported")
    require_per_tensor(op, x, "input")
    require_per_tensor(op, y, "output")
    if x.shape != y.shape:
        raise unsupported(op, f"input shape {list(x.shape)} differs from output shape "
                          f"{list(y.shape)}")
    return x, y
