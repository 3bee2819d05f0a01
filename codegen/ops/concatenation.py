"""CONCATENATION: 2 to 10 int8 or int16 inputs (constant ones included) along any axis,
negative axes included, up to 6-D; every input quantized like the output; no fused
activation.

TFLM: concatenation.cc Prepare refuses a fused activation, more than 10 inputs
(kMaxInputNum), more than 6 dimensions and inputs whose scale or zero point differs from the
output's (older releases accepted those and copied the raw bytes anyway); Eval is
reference_ops::Concatenation, a plain copy: for each index of the dimensions before the axis,
each input's block of (its size along the axis) x (the size of the dimensions after it) in
turn. There is no requantization, so the kernel is memcpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.emit import render
from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _broadcast
from codegen.ops.base import (
    CArray,
    Layer,
    only_output,
    require_dtype,
    require_per_tensor,
    unsupported,
)

OPCODES = ("CONCATENATION",)
MAX_INPUTS = 10  # TFLM's kMaxInputNum


@dataclass
class Concatenation(Layer):
    template: ClassVar[str] = "kernels/concatenation.c.j2"

    @property
    def operands(self) -> list[_broadcast.Operand]:
        return self.params["operands"]  # type: ignore[return-value]

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        batch = inputs[0].shape[0]
        given = iter(inputs)
        parts = []
        for o in self.operands:
            data = np.asarray(o.tensor.data) if o.constant else next(given)
            parts.append(np.broadcast_to(data, (batch, *o.tensor.shape)) if o.constant else data)
        dtype = self.out_tensor().dtype.np
        return [np.concatenate(parts, axis=int(self.params["axis"]) + 1).astype(dtype)]

    def constants(self) -> list[CArray]:
        dtype = self.out_tensor().dtype.np
        return [CArray(o.name, np.asarray(o.tensor.data, dtype=dtype).ravel())
                for o in self.operands if o.constant]

    def kernel(self, symbol: str) -> str:
        dtype = self.out_tensor().dtype
        blocks = [{"source": o.source(symbol), "size": size, "bytes": size * dtype.itemsize}
                  for o, size in zip(self.operands, self.params["block_sizes"], strict=True)]  # type: ignore[call-overload]
        return render(self.template, fn=symbol, layer=self, blocks=blocks, c_type=dtype.c_type,
                      signature=_broadcast.kernel_parameters(self.operands, dtype.c_type),
                      **self.params)

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("axis", str(p["axis"])),
                ("copies", f"{p['outer']} x {list(p['block_sizes'])} bytes")]  # type: ignore[call-overload]


def prepare(op: Operator, graph: Graph) -> Concatenation:
    if not op.inputs or any(i < 0 for i in op.inputs):
        raise unsupported(op, "missing input")
    if len(op.inputs) > MAX_INPUTS:
        raise unsupported(op, f"{len(op.inputs)} inputs; TFLM takes at most {MAX_INPUTS}")
    xs = [graph.tensors[i] for i in op.inputs]
    y = only_output(op, graph)
    activation = str(op.options.get("fused_activation_function", "NONE"))
    if activation != "NONE":
        raise unsupported(op, f"fused activation {activation}; TFLM accepts only NONE")
    require_dtype(op, y, (DType.INT8, DType.INT16), "output")
    require_per_tensor(op, y, "output")
    for i, x in enumerate(xs):
        require_dtype(op, x, (y.dtype,), f"input {i}")
        require_per_tensor(op, x, f"input {i}")
        if (x.quant.scale, x.quant.zero_point) != (y.quant.scale, y.quant.zero_point):
            raise unsupported(
                op, f"input {i} '{x.name}' (scale {x.quant.scale:g}, zero point "
                f"{x.quant.zero_point}) is quantized differently from the output (scale "
                f"{y.quant.scale:g}, zero point {y.quant.zero_point}); TFLM rejects that")
    _broadcast.check_rank(op, [*xs, y])
    rank = len(y.shape)
    axis = int(op.options.get("axis", 0))
    if not -rank <= axis < rank:
        raise unsupported(op, f"axis {axis} is out of range for {rank} dimensions")
    axis %= rank
    for i, x in enumerate(xs):
        if len(x.shape) != rank or any(
            x.shape[d] != y.shape[d] for d in range(rank) if d != axis
        ):
            raise unsupported(op, f"input {i} shape {list(x.shape)} does not fit output shape "
                              f"{list(y.shape)} along axis {axis}")
    if sum(x.shape[axis] for x in xs) != y.shape[axis]:
        raise unsupported(op, f"inputs do not add up to the output's {y.shape[axis]} along "
                          f"axis {axis}")
    inner = int(np.prod(y.shape[axis + 1:], dtype=np.int64))
    ops = _broadcast.operands(op, xs, [f"input{i}" for i in range(len(xs))])
    params: dict[str, object] = {
        "operands": ops,
        "axis": axis,
        "outer": int(np.prod(y.shape[:axis], dtype=np.int64)),
        "block_sizes": [int(x.shape[axis]) * inner for x in xs],
    }
    return Concatenation(op, graph, inputs=tuple(x.index for x in xs if not x.is_constant),
                         outputs=(y.index,), params=params)


KERNELS = dict.fromkeys((DType.INT8, DType.INT16), prepare)
