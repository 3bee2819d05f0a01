"""BATCH_MATMUL: int8 in/out, per-tensor quantization (any zero points), adj_x and adj_y,
2-D to 5-D operands with broadcast batch dimensions, a constant or activation right-hand side
(or left-hand side); a constant right-hand side shared by every batch runs on the
matrix-product engine of FULLY_CONNECTED where that applies.

TFLM: batch_matmul.cc. Prepare: int8 lhs, rhs and output, ranks 2..5, batch dimensions that
broadcast (equal or one of them 1), equal accumulation depths, the multiplier from
GetQuantizedConvolutionMultipler without bias: double(float(s_lhs * s_rhs)) / double(s_out)
(the product in float32) through QuantizeMultiplier, clamp to [-128, 127]. Eval transposes
the operands as the adjoint flags ask and calls reference_ops::BatchMatMul, whose int8 form is
    out[b, m, n] = clamp(MBQM(sum_k (lhs[b, m, k] - zp_lhs) * (rhs[b, k, n] - zp_rhs), m, s)
                         + zp_out)
with an int32 accumulator (depths beyond 2^31 / 255^2 would overflow it: refused). TFLM's
ReshapeToFlattenBatchDimsIfPossible merges the left-hand side's batch into its rows when the
right-hand side's last batch dimension is 1; it changes no result.
With a constant right-hand side whose batch dimensions are all 1 and no adj_x, each
left-hand-side row times the constant is a FULLY_CONNECTED row (weights = rhs transposed,
filter offset -zp_rhs, input offset -zp_lhs folded into a bias): that layer's kernels run
it, the engine when the depth is a multiple of 8 and zp_rhs is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops import _fc_rvv, _typed
from codegen.ops._binary import multiplier
from codegen.ops.base import CArray, Layer, unsupported
from codegen.ops.fully_connected import FullyConnected, FullyConnectedGemm, _gemm_params

OPCODES = ("BATCH_MATMUL",)
# Types of TFLM's kernel on the integer path (int16 too, with zero points 0: not yet here).
_TYPES = _typed.INT8
_MAX_PRODUCT = 255 * 255
MAX_DEPTH = quant.INT32_MAX // _MAX_PRODUCT


@dataclass
class BatchMatMul(Layer):
    runtime: ClassVar[tuple[str, ...]] = ("requantize", "clamp")
    template: ClassVar[str] = "kernels/batch_matmul.c.j2"

    def _operand(self, position: int, given: dict[int, np.ndarray], n: int) -> np.ndarray:
        """(n, batches, M, K) for the lhs, (n, batches, K, N) for the rhs, as int64 values
        minus their zero point, broadcast over the output's batches."""
        p = self.params
        t: Tensor = p["operands"][position]  # type: ignore[index]
        data = (np.broadcast_to(np.asarray(t.data), (n, *t.shape)) if t.is_constant
                else given[t.index])
        values = data.astype(np.int64) - int(t.quant.zero_point)  # type: ignore[union-attr]
        rank = len(p["out_batch"])  # type: ignore[arg-type]
        lead = (1,) * (rank + 2 - len(t.shape))
        values = values.reshape(n, *lead, *t.shape)
        if p["adjoints"][position]:  # type: ignore[index]
            values = np.swapaxes(values, -1, -2)
        return np.broadcast_to(values, (n, *p["out_batch"], *values.shape[-2:]))  # type: ignore[misc]

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        n = inputs[0].shape[0]
        given = dict(zip(self.inputs, inputs, strict=True))
        lhs, rhs = self._operand(0, given, n), self._operand(1, given, n)
        acc = np.matmul(lhs, rhs)  # exact: |acc| < 2^31 (MAX_DEPTH)
        out = quant.requantize(acc, int(p["multiplier"]), int(p["shift"]),
                               int(p["output_zero_point"]), -128, 127)
        return [out.astype(np.int8).reshape(n, *self.out_tensor().shape)]

    def constants(self) -> list[CArray]:
        p = self.params
        arrays = [CArray("lhs_offsets", np.asarray(p["lhs_offsets"], dtype=np.int32)),
                  CArray("rhs_offsets", np.asarray(p["rhs_offsets"], dtype=np.int32))]
        for name, t in zip(("lhs", "rhs"), p["operands"], strict=True):  # type: ignore[call-overload]
            if t.is_constant:
                arrays.append(CArray(name, np.asarray(t.data, dtype=np.int8).ravel()))
        return arrays

    def macs(self) -> int:
        p = self.params
        return int(p["batches"]) * int(p["rows"]) * int(p["cols"]) * int(p["depth"])

    def kernel(self, symbol: str) -> str:
        p = self.params
        sources = {name: (f"{symbol}_{name}" if t.is_constant else name)
                   for name, t in zip(("lhs", "rhs"), p["operands"], strict=True)}  # type: ignore[call-overload]
        params = [f"const int8_t *{name}" for name, t in zip(("lhs", "rhs"), p["operands"],  # type: ignore[call-overload]
                                                             strict=True) if not t.is_constant]
        signature = ", ".join([*params, "int8_t *output"])
        from codegen.emit import render

        return render(self.template, fn=symbol, layer=self, signature=signature,
                      lhs=sources["lhs"], rhs=sources["rhs"], **p)

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        adj_x, adj_y = p["adjoints"]  # type: ignore[misc]
        return [("shape", f"{p['batches']} x ({p['rows']} x {p['depth']}) . ({p['depth']} x "
                          f"{p['cols']}), adj_x={adj_x} adj_y={adj_y}"),
                ("multiplier", f"{p['multiplier']} shift {p['shift']}")]


def _batch_offsets(shape: tuple[int, ...], out_batch: tuple[int, ...]) -> list[int]:
    """Element offset of each output batch's matrix in an operand of `shape`."""
    rank = len(out_batch)
    dims = (1,) * (rank + 2 - len(shape)) + tuple(shape)
    matrix = dims[-1] * dims[-2]
    strides = [0] * rank
    step = matrix
    for d in range(rank - 1, -1, -1):
        strides[d] = 0 if dims[d] == 1 else step
        step *= dims[d]
    offsets = []
    for index in np.ndindex(*out_batch) if out_batch else [()]:
        offsets.append(sum(i * s for i, s in zip(index, strides, strict=True)))
    return offsets


def prepare(op: Operator, graph: Graph) -> Layer:
    _typed.input_count(op, 2)
    lhs = _typed.input_tensor(op, graph, 0, "lhs", _TYPES, constant=None)
    rhs = _typed.input_tensor(op, graph, 1, "rhs", _TYPES, constant=None)
    y = _typed.output_tensor(op, graph, _TYPES)
    if lhs.is_constant and rhs.is_constant:
        raise unsupported(op, "both operands are constant (the converter folds such operators)")
    for t, role in ((lhs, "lhs"), (rhs, "rhs"), (y, "output")):
        _typed.quantized(op, t, role)
        _typed.require_rank(op, t, 2, 5, role)
    adj_x = bool(op.options.get("adj_x", False))
    adj_y = bool(op.options.get("adj_y", False))
    rank = max(len(lhs.shape), len(rhs.shape))
    lhs_dims = (1,) * (rank - len(lhs.shape)) + tuple(lhs.shape)
    rhs_dims = (1,) * (rank - len(rhs.shape)) + tuple(rhs.shape)
    out_batch = []
    for a, b in zip(lhs_dims[:-2], rhs_dims[:-2], strict=True):
        if a != b and a != 1 and b != 1:
            raise unsupported(op, f"batch dimensions {list(lhs.shape[:-2])} and "
                              f"{list(rhs.shape[:-2])} do not broadcast")
        out_batch.append(max(a, b))
    rows, depth = (lhs_dims[-1], lhs_dims[-2]) if adj_x else (lhs_dims[-2], lhs_dims[-1])
    rhs_depth, cols = (rhs_dims[-1], rhs_dims[-2]) if adj_y else (rhs_dims[-2], rhs_dims[-1])
    if depth != rhs_depth:
        raise unsupported(op, f"accumulation depths differ: {depth} (lhs) and {rhs_depth} (rhs)")
    if depth > MAX_DEPTH:
        raise unsupported(op, f"a depth of {depth} could overflow TFLM's int32 accumulator "
                          f"(at most {MAX_DEPTH})")
    _typed.require_shape(op, y, [*out_batch, rows, cols])
    product = float(np.float32(np.float32(lhs.quant.scale) * np.float32(rhs.quant.scale)))
    mult, shift = multiplier(op, product / float(np.float32(y.quant.scale)), "output multiplier")
    batches = int(np.prod(out_batch, dtype=np.int64))
    if rhs.is_constant and not adj_x and all(d == 1 for d in rhs_dims[:-2]):
        return _as_fully_connected(op, graph, lhs, rhs, y, adj_y, mult, shift,
                                   batches * rows, depth, cols)
    params: dict[str, object] = {
        "operands": (lhs, rhs), "adjoints": (adj_x, adj_y), "out_batch": tuple(out_batch),
        "batches": batches, "rows": rows, "cols": cols, "depth": depth,
        "multiplier": mult, "shift": shift,
        "lhs_offset": -lhs.quant.zero_point, "rhs_offset": -rhs.quant.zero_point,
        "output_zero_point": y.quant.zero_point,
        # element steps: lhs (row, k), rhs (k, column)
        "lhs_row_step": 1 if adj_x else depth, "lhs_k_step": rows if adj_x else 1,
        "rhs_k_step": 1 if adj_y else cols, "rhs_col_step": depth if adj_y else 1,
        "lhs_offsets": _batch_offsets(tuple(lhs.shape), tuple(out_batch)),
        "rhs_offsets": _batch_offsets(tuple(rhs.shape), tuple(out_batch)),
    }
    inputs = tuple(t.index for t in (lhs, rhs) if not t.is_constant)
    return BatchMatMul(op, graph, inputs=inputs, outputs=(y.index,), params=params)


def _as_fully_connected(op: Operator, graph: Graph, lhs: Tensor, rhs: Tensor, y: Tensor,
                        adj_y: bool, mult: int, shift: int, batches: int, depth: int,
                        units: int) -> FullyConnected:
    """Rows of the lhs times a constant rhs: FULLY_CONNECTED's layer with weights [N, K]."""
    matrix = np.asarray(rhs.data, dtype=np.int64).reshape(rhs.shape[-2], rhs.shape[-1])
    weights = matrix if adj_y else matrix.T
    input_offset = -lhs.quant.zero_point
    filter_offset = -rhs.quant.zero_point
    bias = np.zeros(units, dtype=np.int64)
    folded = bias + input_offset * (weights + filter_offset).sum(axis=1)
    params: dict[str, object] = {
        "depth": depth, "units": units, "batches": batches,
        "input_offset": input_offset, "filter_offset": filter_offset,
        "output_zero_point": y.quant.zero_point,
        "activation": "NONE", "act_min": DType.INT8.qmin, "act_max": DType.INT8.qmax,
        "per_channel": False, "multipliers": mult, "shifts": shift,
        "weights_data": np.ascontiguousarray(weights).astype(np.int8), "bias_data": bias,
        "folded_bias": quant.wrap_int32(folded),
    }
    params["rvv"] = _fc_rvv.plan(params)
    gemm = _gemm_params(params)
    if gemm is not None:
        params.update(gemm)
        return FullyConnectedGemm(op, graph, inputs=(lhs.index,), outputs=(y.index,),
                                  params=params)
    return FullyConnected(op, graph, inputs=(lhs.index,), outputs=(y.index,), params=params)
