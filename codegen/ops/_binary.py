"""The layer shared by the broadcasting binary operators (ADD, SUB, MUL, MAXIMUM, MINIMUM).

An operator module checks its options, computes its constants and supplies `combine`, the
numpy arithmetic of one output element from the two (broadcast) input values, plus a template
that defines `<fn>_op(a, b)` and includes kernels/_binary.c.j2 for the broadcast walk.
Either input may be a constant tensor (emitted as a const array) and both may be the same
tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from codegen import quant
from codegen.emit import render
from codegen.errors import UnsupportedError
from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops import _broadcast, _loops
from codegen.ops.base import (
    CArray,
    Layer,
    only_output,
    operand,
    require_dtype,
    require_per_tensor,
    unsupported,
)

INPUT_NAMES = ("input1", "input2")


@dataclass
class BinaryLayer(Layer):
    """params hold `operands` (two _broadcast.Operand), `out_shape`, `levels` and `dtype`,
    the activation type (int8 or int16) of both inputs and the output."""

    def combine(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """int64 arrays of input values, already broadcast -> int64 results in the range
        of the output type."""
        raise NotImplementedError

    @property
    def dtype(self) -> DType:
        return self.params["dtype"]  # type: ignore[return-value]

    @property
    def operands(self) -> list[_broadcast.Operand]:
        return self.params["operands"]  # type: ignore[return-value]

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        batch = inputs[0].shape[0]
        out_shape = tuple(self.params["out_shape"])  # type: ignore[arg-type]
        given = iter(inputs)
        values = []
        for o in self.operands:
            data = o.tensor.data if o.constant else next(given)
            values.append(_broadcast.batch_broadcast(data, o.tensor.shape, out_shape, batch,
                                                     o.constant))
        return [self.combine(values[0], values[1]).astype(self.dtype.np)]

    def constants(self) -> list[CArray]:
        return [CArray(o.name, np.asarray(o.tensor.data, dtype=self.dtype.np).ravel())
                for o in self.operands if o.constant]

    def macs(self) -> int:
        return self.out_tensor().size

    def inplace_inputs(self) -> tuple[int, ...]:
        # `*y++ = op(a[k], b[k])` reads element i of an unbroadcast input before writing
        # element i of the output.
        out_shape = tuple(self.params["out_shape"])  # type: ignore[arg-type]
        activations = [o for o in self.operands if not o.constant]
        return tuple(
            position for position, o in enumerate(activations)
            if _broadcast.extended(o.tensor.shape, len(out_shape)) == out_shape
        )

    def element(self, pointer: str, index: str) -> str:
        """The C expression of one input element that `<fn>_op` receives."""
        return f"{pointer}[{index}]"

    def kernel(self, symbol: str) -> str:
        levels: list[_broadcast.Level] = self.params["levels"]  # type: ignore[assignment]
        outer, inner = levels[:-1], levels[-1]
        walk = _loops.nest([lv.count for lv in outer], [lv.strides for lv in outer],
                           [o.source(symbol) for o in self.operands], ["a", "b"], "i")
        elements = [self.element(ptr, "k" if step else "0")
                    for ptr, step in zip(walk.pointers, inner.strides, strict=True)]
        c_type = self.dtype.c_type
        context = {**self.params, "outer": walk, "inner_count": inner.count,
                   "elements": elements, "c_type": c_type,
                   "signature": _broadcast.kernel_parameters(self.operands, c_type)}
        return render(self.template, fn=symbol, layer=self, **context)


def prepare_binary(op: Operator, graph: Graph, dtype: DType = DType.INT8
                   ) -> tuple[Tensor, Tensor, Tensor, dict[str, object]]:
    """Checks common to the binary operators (all three tensors of the activation type
    `dtype`, per-tensor, shapes that broadcast) and the params BinaryLayer needs; returns
    (input1, input2, output, params)."""
    x1 = operand(op, graph, 0, "input1")
    x2 = operand(op, graph, 1, "input2")
    if len(op.inputs) != 2:
        raise unsupported(op, f"expected 2 inputs, found {len(op.inputs)}")
    y = only_output(op, graph)
    for tensor, role in ((x1, "input1"), (x2, "input2"), (y, "output")):
        require_dtype(op, tensor, (dtype,), role)
        require_per_tensor(op, tensor, role)
    out_shape = _broadcast.broadcast_output(op, (x1, x2), y)
    ops = _broadcast.operands(op, (x1, x2), INPUT_NAMES)
    params: dict[str, object] = {
        "operands": ops,
        "out_shape": out_shape,
        "levels": _broadcast.loop_levels(out_shape, (x1.shape, x2.shape)),
        "dtype": dtype,
    }
    return x1, x2, y, params


def activation_inputs(ops: Sequence[_broadcast.Operand]) -> tuple[int, ...]:
    return tuple(o.tensor.index for o in ops if not o.constant)


def activation_bounds(op: Operator, output: Tensor) -> tuple[str, int, int]:
    """(fused activation, clamp min, clamp max) on the int8 or int16 output, as
    CalculateActivationRangeQuantized; TANH/SIGN_BIT and unknown values are refused."""
    activation = quant.fused_activation(op.options)
    try:
        lo, hi = quant.activation_range(activation, output.quant.scale, output.quant.zero_point,
                                        output.dtype.qmin, output.dtype.qmax)
    except UnsupportedError as error:
        raise unsupported(op, str(error)) from None
    return activation, lo, hi


def multiplier(op: Operator, real: float, what: str) -> tuple[int, int]:
    try:
        return quant.quantize_multiplier(real)
    except UnsupportedError as error:
        raise unsupported(op, f"{what}: {error}") from None


def describe_levels(levels: Sequence[_broadcast.Level]) -> str:
    counts = " x ".join(str(lv.count) for lv in levels)
    strides = ", ".join("/".join(str(s) for s in lv.strides) for lv in levels)
    return f"{counts} (input strides {strides})"
