"""DYNAMIC_UPDATE_SLICE: int8 or int32 operand and update of one type and quantization, up to
6-D, int32 start indices (an activation, or a constant; int64 constants too) clamped into
range as TFLM clamps them.

TFLM: dynamic_update_slice.cc. Prepare: equal operand and update types, int32 or int64
indices of one value per dimension, the update no larger than the operand in any dimension.
Eval: when operand and update have the same number of elements the output is the update;
otherwise the operand is copied and the update written at start[d] = clamp(index[d], 0,
operand[d] - update[d]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.emit import render
from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops import _typed
from codegen.ops._copy import dense_strides
from codegen.ops.base import CArray, Layer, unsupported

OPCODES = ("DYNAMIC_UPDATE_SLICE",)
_TYPES = (DType.INT8, DType.INT32)
MAX_DIMS = 6


@dataclass
class DynamicUpdateSlice(Layer):
    template: ClassVar[str] = "kernels/dynamic_update_slice.c.j2"

    def _value(self, t: Tensor, given: dict[int, np.ndarray], n: int) -> np.ndarray:
        if t.is_constant:
            return np.broadcast_to(np.asarray(t.data), (n, *t.shape))
        return given[t.index]

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        operand_t, update_t, index_t = p["tensors"]  # type: ignore[misc]
        given = dict(zip(self.inputs, inputs, strict=True))
        n = inputs[0].shape[0]
        operand = self._value(operand_t, given, n)
        update = self._value(update_t, given, n)
        if operand_t.size == update_t.size:
            return [np.ascontiguousarray(update).reshape(n, *operand_t.shape)]
        starts = self._value(index_t, given, n).astype(np.int64)
        limits = np.asarray(operand_t.shape) - np.asarray(update_t.shape)
        starts = np.clip(starts, 0, limits)
        out = np.array(operand, copy=True)
        for s in range(n):
            region = tuple(slice(int(a), int(a) + int(u))
                           for a, u in zip(starts[s], update_t.shape, strict=True))
            out[(s, *region)] = update[s]
        return [out]

    def constants(self) -> list[CArray]:
        arrays = []
        for name, t in zip(("operand", "update", "indices"), self.params["tensors"],  # type: ignore[call-overload]
                           strict=True):
            if t.is_constant:
                values = np.asarray(t.data)
                if name == "indices":  # int64 indices clamp the same way from int32's ends
                    values = np.clip(values, -(2**31), 2**31 - 1).astype(np.int32)
                arrays.append(CArray(name, values.astype(t.dtype.np if name != "indices"
                                                         else np.int32).ravel()))
        return arrays

    def kernel(self, symbol: str) -> str:
        p = self.params
        sources, params = {}, []
        for name, t in zip(("operand", "update", "indices"), p["tensors"], strict=True):  # type: ignore[call-overload]
            sources[name] = f"{symbol}_{name}" if t.is_constant else name
            if not t.is_constant:
                params.append(f"const {'int32_t' if name == 'indices' else t.dtype.c_type} "
                              f"*{name}")
        y = self.out_tensor()
        return render(self.template, fn=symbol, layer=self, c_type=y.dtype.c_type,
                      signature=", ".join([*params, f"{y.dtype.c_type} *output"]),
                      sources=sources, nbytes=y.nbytes, **p)

    def describe(self) -> list[tuple[str, str]]:
        operand_t, update_t, _ = self.params["tensors"]  # type: ignore[misc]
        return [("update", f"{list(update_t.shape)} into {list(operand_t.shape)}")]


def prepare(op: Operator, graph: Graph) -> DynamicUpdateSlice:
    _typed.input_count(op, 3)
    operand = _typed.input_tensor(op, graph, 0, "operand", _TYPES, constant=None)
    update = _typed.input_tensor(op, graph, 1, "update", (operand.dtype,), constant=None)
    indices = _typed.input_tensor(op, graph, 2, "start_indices", _typed.CONSTANT_INDEX,
                                  constant=None)
    if indices.dtype is DType.INT64 and not indices.is_constant:
        raise unsupported(op, "int64 start indices must be constant (int64 activations are "
                          "not supported)")
    y = _typed.output_tensor(op, graph, (operand.dtype,))
    _typed.same_quantization(op, [y, operand, update], "the update is copied and cannot be "
                             "requantized")
    rank = len(operand.shape)
    if not 1 <= rank <= MAX_DIMS:
        raise unsupported(op, f"{rank}-D operand; 1 to {MAX_DIMS} dimensions are supported")
    if len(update.shape) != rank or any(u > o for u, o in zip(update.shape, operand.shape,
                                                              strict=True)):
        raise unsupported(op, f"update {list(update.shape)} does not fit in the operand "
                          f"{list(operand.shape)}")
    if tuple(indices.shape) != (rank,):
        raise unsupported(op, f"start_indices has shape {list(indices.shape)}, expected "
                          f"[{rank}]")
    _typed.require_shape(op, y, operand.shape)
    if all(t.is_constant for t in (operand, update)):
        raise unsupported(op, "operand and update are both constant")
    strides = dense_strides(operand.shape)
    update_strides = dense_strides(update.shape)
    params: dict[str, object] = {
        "tensors": (operand, update, indices), "rank": rank,
        "whole": operand.size == update.size,
        "limits": [int(o - u) for o, u in zip(operand.shape, update.shape, strict=True)],
        "strides": strides, "update_shape": [int(d) for d in update.shape],
        "update_strides": update_strides,
        "row": int(update.shape[-1]) * operand.dtype.itemsize,
        "update_bytes": update.nbytes,
    }
    inputs = tuple(t.index for t in (operand, update, indices) if not t.is_constant)
    return DynamicUpdateSlice(op, graph, inputs=inputs, outputs=(y.index,), params=params)
