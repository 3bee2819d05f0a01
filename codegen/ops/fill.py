"""FILL, ZEROS_LIKE, SHAPE: int8 or int32 outputs that do not depend on the input's values
(SHAPE: int32 only).

- FILL: int8 or int32 output of a constant shape (int32/int64 dims) filled with a scalar value
  of the output's type (int8 quantized like the output), an activation or a constant;
- ZEROS_LIKE: int8 or int32, the raw value 0 everywhere (for int8 that is the real value
  -zero_point * scale, as in TFLM);
- SHAPE: the input's shape as int32 (out_type int64 is refused, as TFLM does).

TFLM: fill.cc (FillPrepare: a 0-D value of the output's type, constant dims equal to the
output shape; Eval for float32, int32 and int8), zeros_like.cc (int64, int32, int8, float32;
int64 outputs are not supported here: no int8 model's kernel produces int64 tensors),
shape.cc (int32 output only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops import _typed
from codegen.ops.base import CArray, Layer, unsupported

OPCODES = ("FILL", "ZEROS_LIKE", "SHAPE")
_TYPES = (DType.INT8, DType.INT32)


@dataclass
class Fill(Layer):
    template: ClassVar[str] = "kernels/fill.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        y = self.out_tensor()
        p = self.params
        n = inputs[0].shape[0] if inputs else 1
        if p["mode"] == "value":
            values = inputs[0].reshape(n, *([1] * len(y.shape)))
            return [np.ascontiguousarray(np.broadcast_to(values, (n, *y.shape)))]
        table = np.asarray(p["table"], dtype=y.dtype.np).reshape(y.shape)
        return [np.ascontiguousarray(np.broadcast_to(table, (n, *y.shape)))]

    def constants(self) -> list[CArray]:
        if self.params["mode"] == "table" and self.params["table_needed"]:
            return [CArray("values", np.asarray(self.params["table"],
                                                dtype=self.out_tensor().dtype.np))]
        return []

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        if p["mode"] == "value":
            return [("value", "the input scalar, repeated")]
        return [("values", str(list(np.asarray(p["table"]).ravel()[:8])))]

    def kernel(self, symbol: str) -> str:
        from codegen.emit import render

        y = self.out_tensor()
        return render(self.template, fn=symbol, layer=self, c_type=y.dtype.c_type,
                      count=y.size, nbytes=y.nbytes, **self.params)


def prepare(op: Operator, graph: Graph) -> Fill:
    if op.opcode == "SHAPE":
        _typed.input_count(op, 1)
        x = graph.tensors[op.inputs[0]] if op.inputs and op.inputs[0] >= 0 else None
        if x is None:
            raise unsupported(op, "missing input")
        if op.outputs and op.outputs[0] >= 0 and graph.tensors[op.outputs[0]].dtype is DType.INT64:
            raise unsupported(op, "int64 output (out_type) is not supported (nor by TFLM)")
        y = _typed.output_tensor(op, graph, _typed.INT32)
        _typed.require_shape(op, y, [len(x.shape)])
        return _table(op, graph, x, y, np.asarray(x.shape, dtype=np.int64))
    if op.opcode == "ZEROS_LIKE":
        _typed.input_count(op, 1)
        x = _typed.input_tensor(op, graph, 0, "input", _TYPES)
        y = _typed.output_tensor(op, graph, (x.dtype,))
        _typed.require_shape(op, y, x.shape)
        return _table(op, graph, x, y, np.zeros(y.size, dtype=np.int64))
    _typed.input_count(op, 2)
    dims = _typed.constant_values(op, graph, 0, "dims", (DType.INT8, DType.INT32, DType.INT64))
    value = _typed.input_tensor(op, graph, 1, "value", _TYPES, constant=None)
    y = _typed.output_tensor(op, graph, (value.dtype,))
    if value.shape != ():
        raise unsupported(op, f"value must be a scalar, found shape {list(value.shape)}")
    if dims.ndim != 1:
        raise unsupported(op, f"dims must be 1-D, found shape {list(dims.shape)}")
    _typed.require_shape(op, y, dims.tolist())
    _typed.same_quantization(op, [y, value], "FILL copies the value and cannot requantize")
    if value.is_constant:
        return _table(op, graph, value, y, np.full(y.size, int(np.asarray(value.data)),
                                                   dtype=np.int64))
    return Fill(op, graph, inputs=(value.index,), outputs=(y.index,),
                params={"mode": "value", "table": None, "table_needed": False})


def _table(op: Operator, graph: Graph, x: Tensor, y: Tensor, values: np.ndarray) -> Fill:
    """An output of constant values: one memset when they are one repeated byte pattern
    of zero (or a single byte type), else a copy of a const array. The input (if an
    activation) is the kernel's, unread."""
    flat = values.ravel()
    uniform = bool((flat == flat[0]).all()) if flat.size else True
    table_needed = not (uniform and (flat[0] == 0 or y.dtype.itemsize == 1))
    inputs = (x.index,) if not x.is_constant else ()
    return Fill(op, graph, inputs=inputs, outputs=(y.index,),
                params={"mode": "table", "table": flat, "table_needed": table_needed,
                        "byte": int(flat[0]) & 0xFF if flat.size else 0,
                        "takes_input": bool(inputs),
                        "in_c_type": x.dtype.c_type})
