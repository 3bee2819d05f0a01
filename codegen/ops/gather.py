"""GATHER, GATHER_ND, EMBEDDING_LOOKUP: int8 values (input and output quantized alike), int32
indices; the values constant (an embedding table) or an activation, the indices an activation
or a constant; GATHER with any axis and batch_dims; an index out of range gives the zero point.

- GATHER: any axis (negative included) and batch_dims (0 <= batch_dims <= axis, the leading
  batch dimensions equal in both), output input[:axis] + indices[batch_dims:] + input[axis+1:];
- GATHER_ND: indices [..., nd] with 1 <= nd <= min(rank, 5), output indices[:-1] +
  params[nd:];
- EMBEDDING_LOOKUP: 1-D indices into the rows of a table of rank >= 2.

TFLM: gather.cc (int8/float32 values, int32 positions; Eval memcpys `inner` values per index
and only DCHECKs the range), gather_nd.cc (int8/float32, int32 indices; the flat offset
sum_j index_j * stride_j is checked as a whole: outside the tensor the invoke fails, inside it
any index is taken, even one past its own dimension), embedding_lookup.cc (int8 or float32
values, int8 output copies rows; an index outside the table fails the invoke).

Indices outside the range are TFLM's undefined read (GATHER) or a failed invoke (GATHER_ND,
EMBEDDING_LOOKUP); the generated code writes the output zero point (a real 0) for that slice
instead, and the reference does the same. Constant indices are checked at generation time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.emit import render
from codegen.model.ir import Graph, Operator, Tensor
from codegen.ops import _typed
from codegen.ops.base import CArray, Layer, unsupported

OPCODES = ("GATHER", "GATHER_ND", "EMBEDDING_LOOKUP")
_TYPES = _typed.INT8  # values (float32 in TFLM too)
MAX_INDICES_ND = 5


@dataclass
class Gather(Layer):
    """Every output slice of `inner` values is the values' slice at a flat offset computed
    from the indices at run time (`lookups` slices per group; groups advance both the values
    and the output)."""

    template: ClassVar[str] = "kernels/gather.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        values_t, indices_t = p["values"], p["indices"]
        given = dict(zip(self.inputs, inputs, strict=True))
        n = inputs[0].shape[0]
        values = (np.broadcast_to(values_t.data, (n, *values_t.shape))  # type: ignore[union-attr]
                  if values_t.is_constant else given[values_t.index])  # type: ignore[union-attr]
        indices = (np.broadcast_to(indices_t.data, (n, *indices_t.shape))  # type: ignore[union-attr]
                   if indices_t.is_constant else given[indices_t.index])  # type: ignore[union-attr]
        groups, lookups, inner = int(p["groups"]), int(p["lookups"]), int(p["inner"])
        flat_values = values.reshape(n, -1)
        idx = indices.reshape(n, -1, int(p["nd"])).astype(np.int64)
        if int(p["index_groups"]) > 1:  # batch_dims: each group has its own indices
            idx = idx.reshape(n, int(p["index_groups"]), lookups, int(p["nd"]))
        offsets = (idx * np.asarray(p["strides"], dtype=np.int64)).sum(axis=-1)
        valid = (offsets >= 0) & (offsets <= int(p["limit"]))
        if p["per_index_check"]:  # GATHER, EMBEDDING_LOOKUP: index in [0, axis size)
            valid = (idx[..., 0] >= 0) & (idx[..., 0] < int(p["axis_size"]))
        offsets = np.where(valid, offsets, 0)
        out = np.empty((n, groups, lookups, inner), dtype=np.int8)
        for g in range(groups):
            index_group = g // int(p["groups_per_index_group"])
            off = offsets[:, index_group] if int(p["index_groups"]) > 1 else offsets
            ok = valid[:, index_group] if int(p["index_groups"]) > 1 else valid
            base = g * int(p["group_stride"])
            columns = base + off[..., None] + np.arange(inner)
            rows = np.take_along_axis(flat_values, columns.reshape(n, -1), axis=1)
            rows = rows.reshape(n, lookups, inner)
            out[:, g] = np.where(ok[..., None], rows, np.int8(p["zero_point"]))
        return [out.reshape(n, *self.out_tensor().shape)]

    def constants(self) -> list[CArray]:
        arrays = []
        for name in ("values", "indices"):
            t: Tensor = self.params[name]  # type: ignore[assignment]
            if t.is_constant:
                arrays.append(CArray(name, np.asarray(t.data).astype(t.dtype.np).ravel()))
        return arrays

    def kernel(self, symbol: str) -> str:
        p = self.params
        sources, params = {}, []
        for name in ("values", "indices"):
            t: Tensor = p[name]  # type: ignore[assignment]
            sources[name] = f"{symbol}_{name}" if t.is_constant else name
            if not t.is_constant:
                params.append(f"const {t.dtype.c_type} *{name}")
        return render(self.template, fn=symbol, layer=self,
                      signature=", ".join([*params, "int8_t *output"]),
                      values_source=sources["values"], indices_source=sources["indices"],
                      byte=int(p["zero_point"]) & 0xFF, **p)

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("slices", f"{p['groups']} x {p['lookups']} of {p['inner']} values"),
                ("out of range", f"the zero point {p['zero_point']}")]


def _order(values: Tensor, indices: Tensor) -> tuple[int, ...]:
    """The kernel's inputs: the activations among (values, indices), in that order."""
    return tuple(t.index for t in (values, indices) if not t.is_constant)


def prepare(op: Operator, graph: Graph) -> Gather:
    _typed.input_count(op, 2)
    if op.opcode == "EMBEDDING_LOOKUP":
        indices = _typed.input_tensor(op, graph, 0, "lookup", _typed.INT32, constant=None)
        values = _typed.input_tensor(op, graph, 1, "value", _TYPES, constant=None)
    else:
        values = _typed.input_tensor(op, graph, 0, "params", _TYPES, constant=None)
        indices = _typed.input_tensor(op, graph, 1, "indices", _typed.INT32, constant=None)
    if values.is_constant and indices.is_constant:
        raise unsupported(op, "both inputs are constant (the converter folds such operators)")
    y = _typed.output_tensor(op, graph, (values.dtype,))
    _typed.same_quantization(op, [y, values], f"{op.opcode} copies values and cannot "
                             "requantize")
    shape = tuple(int(d) for d in values.shape)
    if op.opcode == "GATHER":
        geometry = _gather(op, shape, tuple(indices.shape))
    elif op.opcode == "GATHER_ND":
        geometry = _gather_nd(op, shape, tuple(indices.shape))
    else:
        geometry = _embedding(op, shape, tuple(indices.shape))
    out_shape = geometry.pop("out_shape")
    _typed.require_shape(op, y, out_shape)  # type: ignore[arg-type]
    if indices.is_constant:
        _check_constant_indices(op, indices, geometry)
    params: dict[str, object] = {"values": values, "indices": indices,
                                 "zero_point": y.quant.zero_point, **geometry}
    return Gather(op, graph, inputs=_order(values, indices), outputs=(y.index,), params=params)


def _gather(op: Operator, shape: tuple[int, ...], ishape: tuple[int, ...]) -> dict[str, object]:
    rank = len(shape)
    if rank < 1:
        raise unsupported(op, "params is a scalar")
    axis = _typed.normalized_axis(op, int(op.options.get("axis", 0)), rank)  # type: ignore[call-overload]
    batch_dims = int(op.options.get("batch_dims", 0))  # type: ignore[call-overload]
    if batch_dims < 0:
        batch_dims += len(ishape)
    if not (0 <= batch_dims <= axis and batch_dims < rank and batch_dims <= len(ishape)):
        raise unsupported(op, f"batch_dims {op.options.get('batch_dims')} must lie in [0, axis "
                          f"{axis}] and within both ranks")
    if shape[:batch_dims] != ishape[:batch_dims]:
        raise unsupported(op, f"the first {batch_dims} dimensions of params {list(shape)} and "
                          f"indices {list(ishape)} differ")
    batch = int(np.prod(shape[:batch_dims], dtype=np.int64))
    outer = int(np.prod(shape[batch_dims:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    lookups = int(np.prod(ishape[batch_dims:], dtype=np.int64))
    return {
        "out_shape": [*shape[:axis], *ishape[batch_dims:], *shape[axis + 1:]],
        "nd": 1, "strides": (inner,), "inner": inner, "lookups": lookups,
        "groups": batch * outer, "group_stride": shape[axis] * inner,
        "index_groups": batch, "groups_per_index_group": outer,
        "axis_size": shape[axis], "per_index_check": True,
        "limit": (shape[axis] - 1) * inner,
    }


def _gather_nd(op: Operator, shape: tuple[int, ...],
               ishape: tuple[int, ...]) -> dict[str, object]:
    if len(shape) < 1 or len(ishape) < 1:
        raise unsupported(op, "params and indices must be at least vectors")
    nd = ishape[-1]
    if not 1 <= nd <= min(len(shape), MAX_INDICES_ND):
        raise unsupported(op, f"index depth {nd} must lie in [1, {min(len(shape), 5)}] (the "
                          "params rank, at most 5)")
    size = int(np.prod(shape, dtype=np.int64))
    inner = int(np.prod(shape[nd:], dtype=np.int64))
    strides, remain = [], size
    for d in shape[:nd]:
        remain //= d
        strides.append(remain)
    return {
        "out_shape": [*ishape[:-1], *shape[nd:]],
        "nd": nd, "strides": tuple(strides), "inner": inner,
        "lookups": int(np.prod(ishape[:-1], dtype=np.int64)), "groups": 1, "group_stride": 0,
        "index_groups": 1, "groups_per_index_group": 1, "axis_size": 0,
        "per_index_check": False, "limit": size - inner,
    }


def _embedding(op: Operator, shape: tuple[int, ...],
               ishape: tuple[int, ...]) -> dict[str, object]:
    if len(ishape) != 1:
        raise unsupported(op, f"lookup must be 1-D, found {list(ishape)}")
    if len(shape) < 2:
        raise unsupported(op, f"value must have at least 2 dimensions, found {list(shape)}")
    inner = int(np.prod(shape[1:], dtype=np.int64))
    return {
        "out_shape": [ishape[0], *shape[1:]],
        "nd": 1, "strides": (inner,), "inner": inner, "lookups": ishape[0], "groups": 1,
        "group_stride": 0, "index_groups": 1, "groups_per_index_group": 1,
        "axis_size": shape[0], "per_index_check": True, "limit": (shape[0] - 1) * inner,
    }


def _check_constant_indices(op: Operator, indices: Tensor, g: dict[str, object]) -> None:
    idx = np.asarray(indices.data, dtype=np.int64).reshape(-1, int(g["nd"]))  # type: ignore[call-overload]
    if g["per_index_check"]:
        bad = (idx[:, 0] < 0) | (idx[:, 0] >= int(g["axis_size"]))  # type: ignore[call-overload]
    else:
        offsets = (idx * np.asarray(g["strides"], dtype=np.int64)).sum(axis=1)
        bad = (offsets < 0) | (offsets > int(g["limit"]))  # type: ignore[call-overload]
    if bad.any():
        raise unsupported(op, f"constant index {idx[bad][0].tolist()} is out of range")
