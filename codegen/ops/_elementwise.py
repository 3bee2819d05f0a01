"""The layer shared by the broadcasting elementwise operators whose operands are not all
int8 (the comparisons, LOGICAL_AND/OR/NOT, SELECT_V2, SQUARED_DIFFERENCE, DIV): any number
of operands, each of its own element type, and an output of its own type.

An operator module checks its types and options, computes its constants and supplies
`combine` (the numpy arithmetic of one output element from the broadcast operand values) and
a template that defines `<fn>_op(...)` and includes kernels/_elementwise.c.j2 for the walk.
Constant operands become const arrays; the same tensor may feed several operands. The walk
is the one of _broadcast (levels merged at generation time); TFLM's kernels broadcast up to
4-D or 5-D depending on the operator (`max_broadcast_rank`), with any rank when every operand
has the output's shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from codegen.emit import render
from codegen.model.ir import DType, Operator, Tensor
from codegen.ops import _broadcast, _loops
from codegen.ops.base import CArray, Layer, unsupported

OPERAND_NAMES = ("input1", "input2", "input3")
_POINTER_PREFIXES = ("a", "b", "c")


@dataclass
class ElementwiseLayer(Layer):
    """params hold `operands` (_broadcast.Operand), `out_shape` and `levels`."""

    def combine(self, values: list[np.ndarray]) -> np.ndarray:
        """Broadcast operand values (int64, or bool for bool operands) -> output values."""
        raise NotImplementedError

    @property
    def operands(self) -> list[_broadcast.Operand]:
        return self.params["operands"]  # type: ignore[return-value]

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        batch = inputs[0].shape[0]
        out_shape = tuple(self.params["out_shape"])  # type: ignore[arg-type]
        given = dict(zip(self.inputs, inputs, strict=True))
        values = []
        for o in self.operands:
            data = o.tensor.data if o.constant else given[o.tensor.index]
            v = _broadcast.batch_broadcast(data, o.tensor.shape, out_shape, batch, o.constant)
            values.append(v.astype(np.bool_) if o.tensor.dtype is DType.BOOL else v)
        result = self.combine(values)
        return [np.asarray(result).astype(self.out_tensor().dtype.np)]

    def constants(self) -> list[CArray]:
        arrays = []
        for o in self.operands:
            if o.constant:
                dtype = np.uint8 if o.tensor.dtype is DType.BOOL else o.tensor.dtype.np
                arrays.append(CArray(o.name, np.asarray(o.tensor.data).astype(dtype).ravel()))
        return arrays

    def macs(self) -> int:
        return self.out_tensor().size

    def inplace_inputs(self) -> tuple[int, ...]:
        # `*y++ = op(a[k], ...)` reads element i of every unbroadcast operand before it
        # writes element i of the output (the planner also requires equal byte sizes).
        out_shape = tuple(self.params["out_shape"])  # type: ignore[arg-type]
        positions = []
        for position, index in enumerate(self.inputs):
            o = next(o for o in self.operands if o.tensor.index == index)
            if _broadcast.extended(o.tensor.shape, len(out_shape)) == out_shape:
                positions.append(position)
        return tuple(positions)

    def kernel(self, symbol: str) -> str:
        levels: list[_broadcast.Level] = self.params["levels"]  # type: ignore[assignment]
        outer, inner = levels[:-1], levels[-1]
        walk = _loops.nest([lv.count for lv in outer], [lv.strides for lv in outer],
                           [o.source(symbol) for o in self.operands],
                           _POINTER_PREFIXES[:len(self.operands)], "i")
        elements = [f"{ptr}[{'k' if step else '0'}]"
                    for ptr, step in zip(walk.pointers, inner.strides, strict=True)]
        # Loops that derive no pointer name none; the pointers' types differ per operand.
        pointer_types = {f"{prefix}{depth}": o.tensor.dtype.c_type
                         for o, prefix in zip(self.operands, _POINTER_PREFIXES, strict=False)
                         for depth in range(len(walk.loops))}
        context = {**self.params, "signature": self.signature(), "outer": walk,
                   "inner_count": inner.count, "elements": elements,
                   "pointer_types": pointer_types, "out_c_type": self.out_tensor().dtype.c_type,
                   "in_c_types": [o.tensor.dtype.c_type for o in self.operands]}
        return render(self.template, fn=symbol, layer=self, **context)

    def signature(self) -> str:
        seen: list[int] = []
        params = []
        for o in self.operands:
            if not o.constant and o.tensor.index not in seen:
                seen.append(o.tensor.index)
                params.append(f"const {o.tensor.dtype.c_type} *{o.name}")
        return ", ".join([*params, f"{self.out_tensor().dtype.c_type} *output"])


def prepare_elementwise(op: Operator, tensors: Sequence[Tensor], output: Tensor,
                        max_broadcast_rank: int) -> dict[str, object]:
    """Shapes that broadcast (to at most `max_broadcast_rank` dimensions when they differ,
    as TFLM's ...4DSlow/5DSlow kernels) and the params ElementwiseLayer needs."""
    out_shape = _broadcast.broadcast_output(op, tensors, output)
    same = all(tuple(t.shape) == tuple(output.shape) for t in tensors)
    if not same and len(out_shape) > max_broadcast_rank:
        raise unsupported(op, f"broadcasting {len(out_shape)}-D shapes; TFLM broadcasts at "
                          f"most {max_broadcast_rank}-D")
    names = []
    for k, t in enumerate(tensors):
        # The same activation on several operands is one kernel parameter.
        earlier = next((names[j] for j in range(k) if tensors[j].index == t.index
                        and not t.is_constant), None)
        names.append(earlier or OPERAND_NAMES[k])
    ops = [_broadcast.Operand(t, n) for t, n in zip(tensors, names, strict=True)]
    if all(o.constant for o in ops):
        raise unsupported(op, "every input is constant (the converter folds such operators)")
    return {
        "operands": ops,
        "out_shape": out_shape,
        "levels": _broadcast.loop_levels(out_shape, [t.shape for t in tensors]),
    }


def activation_inputs(params: dict[str, object]) -> tuple[int, ...]:
    """The distinct activation tensors, in operand order: the layer's inputs."""
    result: list[int] = []
    for o in params["operands"]:  # type: ignore[attr-defined]
        if not o.constant and o.tensor.index not in result:
            result.append(o.tensor.index)
    return tuple(result)
