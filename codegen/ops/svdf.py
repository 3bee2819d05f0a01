"""SVDF: int8 in/out, int8 feature weights, int8 or int16 time weights with a state of the same
type (a variable tensor kept between invokes), int32 bias, any rank and memory size, any
batch; the fused activation is ignored, as TFLM's integer kernel ignores it

TFLM: PrepareSvdf and EvalIntegerSvdfReference (svdf_common.cc), templated on the state
type, which Eval picks from the time weights' type:
  - Prepare: effective_scale_1 = input scale x feature-weight scale / state scale and
    effective_scale_2 = state scale x time-weight scale / output scale, each computed in
    float32 and then QuantizeMultiplier'd; the bias scale must be state scale x time-weight
    scale (float32) within 1e-5 (absolute). TFLM dereferences the bias in Prepare, so an
    SVDF without one is refused here.
  - Eval, per batch: the state [filters, memory] shifts left by one value (TFLM moves the
    whole buffer by one; the value each row receives from the next is overwritten below);
    each filter's newest value is sum_c wf[f, c] * (x[c] - input zero point), requantized
    by scale 1, clamped to the state type and, with the state zero point added, narrowed to
    it (int8: wrapping where zero point + value leaves int8, as C++ converts); then
    out[u] = bias[u] + sum over the `rank` filters of unit u of
    sum_m wt[f, m] * (state[f, m] - state zero point), requantized by scale 2 plus the
    output zero point, clamped to int8. No activation is applied (TFLM's integer path).
Sums wrap as int32 arithmetic does in TFLM's compiled kernels.

The C (codegen/ops/_rnn.py): both products as dot products of contiguous rows (SMLAD with
the DSP extension, int8 pairs sign-extended by SXTB16; plain C elsewhere), the zero points
folded into per-filter offsets and into the bias (the same sums modulo 2^32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops import _rnn
from codegen.ops.base import CArray, Layer, operand, require_dtype, unsupported

OPCODES = ("SVDF",)

# TFLM's bias-scale check: |bias scale - state scale x time-weight scale| < 1e-5.
_BIAS_TOLERANCE = 1e-5


@dataclass
class Svdf(Layer):
    template: ClassVar[str] = "kernels/svdf.c.j2"
    runtime: ClassVar[tuple[str, ...]] = ("requantize", "clamp", "rnn_dot")

    def state_updates(self) -> tuple[int, ...]:
        return (1,)

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x, state = inputs
        n = x.shape[0]
        batch, filters, memory = int(p["batch"]), int(p["filters"]), int(p["memory"])
        units, rank = int(p["units"]), int(p["rank"])
        state_type = np.dtype(str(p["state_dtype"]))
        s = state.reshape(n, batch, filters, memory).astype(np.int64)
        s = np.concatenate([s[..., 1:], np.zeros((n, batch, filters, 1), np.int64)], axis=-1)
        xs = x.reshape(n, batch, -1).astype(np.int64) - int(p["input_zero_point"])
        dot = quant.wrap_int32(xs @ self.params["weights_feature"].astype(np.int64).T)
        scaled = quant.multiply_by_quantized_multiplier(dot, int(p["multiplier1"]),
                                                        int(p["shift1"]))
        info = np.iinfo(state_type)
        newest = np.clip(scaled, info.min, info.max) + int(p["state_zero_point"])
        s[..., -1] = _narrow(newest, state_type)
        time = self.params["weights_time"].astype(np.int64)  # [filters, memory]
        per_filter = quant.wrap_int32(
            ((s - int(p["state_zero_point"])) * time).sum(axis=-1))  # [n, batch, filters]
        acc = per_filter.reshape(n, batch, units, rank).sum(axis=-1) + self.params["bias"]
        out = quant.requantize(quant.wrap_int32(acc), int(p["multiplier2"]), int(p["shift2"]),
                               int(p["output_zero_point"]), -128, 127)
        return [out.astype(np.int8).reshape(n, *self.out_tensor().shape),
                s.astype(state_type).reshape(state.shape)]

    def constants(self) -> list[CArray]:
        """The weights; per filter, -input zero point x its feature-weight sum; per unit, the
        bias less state zero point x the sum of its filters' time weights (wrapped)."""
        p = self.params
        wt = p["weights_time"].reshape(int(p["units"]), -1)
        bias = quant.wrap_int32(p["bias"] + _rnn.folded_offsets(wt, int(p["state_zero_point"])))
        return [CArray("weights_feature", p["weights_feature"].ravel()),
                CArray("weights_time", p["weights_time"].ravel()),
                CArray("feature_offsets",
                       _rnn.folded_offsets(p["weights_feature"], int(p["input_zero_point"]))
                       .astype(np.int32)),
                CArray("bias", bias.astype(np.int32))]

    def macs(self) -> int:
        p = self.params
        return int(p["batch"]) * int(p["filters"]) * (int(p["depth"]) + int(p["memory"]))

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [
            ("shape", f"{p['batch']} x ({p['depth']} -> {p['filters']} filters x "
                      f"{p['memory']} memory, rank {p['rank']} -> {p['units']} units)"),
            ("state", f"{p['state_type']}, zero point {p['state_zero_point']}"),
            ("scale 1", f"{p['multiplier1']} shift {p['shift1']}"),
            ("scale 2", f"{p['multiplier2']} shift {p['shift2']}"),
        ]


def _narrow(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """C's conversion to a narrower signed type: modular (what gcc and clang do)."""
    bits = 8 * dtype.itemsize
    return ((values + (1 << (bits - 1))) & ((1 << bits) - 1)) - (1 << (bits - 1))


def _f32_ratio(a: float, b: float, c: float) -> float:
    """a * b / c in float32, as TFLM's Prepare computes it, then widened to double."""
    return float(np.float32(np.float32(a) * np.float32(b)) / np.float32(c))


def _weights(op: Operator, graph: Graph, position: int, role: str,
             types: tuple[DType, ...]) -> Tensor:
    w = operand(op, graph, position, role)
    require_dtype(op, w, types, role)
    if w.data is None or len(w.shape) != 2:
        raise unsupported(op, f"{role} '{w.name}' must be a constant 2-D tensor")
    if w.quant is None or w.quant.per_channel:
        raise unsupported(op, f"{role} '{w.name}' must be quantized per tensor")
    return w


def prepare(op: Operator, graph: Graph) -> Svdf:
    if len(op.inputs) != 5 or len(op.outputs) != 1:
        raise unsupported(op, f"expected 5 inputs and 1 output, found {len(op.inputs)} and "
                              f"{len(op.outputs)}")
    x = operand(op, graph, 0, "input")
    wf = _weights(op, graph, 1, "feature weights", (DType.INT8,))
    wt = _weights(op, graph, 2, "time weights", (DType.INT8, DType.INT16))
    if op.inputs[3] < 0:
        raise unsupported(op, "an SVDF without bias is not supported (TFLM's Prepare reads "
                              "the bias's scale)")
    b = operand(op, graph, 3, "bias")
    state = operand(op, graph, 4, "state")
    y = graph.tensors[op.outputs[0]]
    require_dtype(op, x, (DType.INT8,), "input")
    require_dtype(op, y, (DType.INT8,), "output")
    require_dtype(op, b, (DType.INT32,), "bias")
    if state.dtype is not wt.dtype:
        raise unsupported(op, f"state '{state.name}' is {state.dtype_name} but the time "
                              f"weights are {wt.dtype_name}; TFLM reads the state as the "
                              "time weights' type")
    if not state.is_variable:
        raise unsupported(op, f"state '{state.name}' is not a variable tensor")
    if x.is_constant:
        raise unsupported(op, "a constant input is not supported")
    for t, role in ((x, "input"), (y, "output"), (state, "state")):
        if t.quant is None or t.quant.per_channel:
            raise unsupported(op, f"{role} '{t.name}' must be quantized per tensor")
    rank = int(op.options.get("rank", 0) or 0)
    filters, depth = wf.shape
    memory = wt.shape[1]
    if len(x.shape) != 2 or x.shape[1] != depth:
        raise unsupported(op, f"input shape {list(x.shape)} must be [batch, {depth}]")
    batch = x.shape[0]
    if rank < 1 or filters % rank:
        raise unsupported(op, f"rank {rank} does not divide the {filters} filters")
    units = filters // rank
    if wt.shape[0] != filters:
        raise unsupported(op, f"time weights {list(wt.shape)} must be [{filters}, memory]")
    if tuple(y.shape) != (batch, units):
        raise unsupported(op, f"output shape {list(y.shape)} must be [{batch}, {units}]")
    if tuple(state.shape) != (batch, memory * filters):
        raise unsupported(op, f"state shape {list(state.shape)} must be "
                              f"[{batch}, {memory * filters}]")
    if b.data is None or b.size != units:
        raise unsupported(op, f"bias must be a constant of {units} int32 values")
    state_scale, wt_scale = state.quant.scale, wt.quant.scale
    expected = float(np.float32(state_scale) * np.float32(wt_scale))
    bias_scale = b.quant.scale if b.quant is not None else 0.0
    if not abs(float(np.float32(bias_scale)) - expected) < _BIAS_TOLERANCE:
        raise unsupported(op, f"bias '{b.name}' has scale {bias_scale:.9g}, but state scale x "
                              f"time-weight scale is {expected:.9g}; TFLM's SVDF requires "
                              f"them within {_BIAS_TOLERANCE:g}")
    m1, s1 = quant.quantize_multiplier(
        _f32_ratio(x.quant.scale, wf.quant.scale, state_scale),
        f"input '{x.name}' scale x feature weights '{wf.name}' scale / state "
        f"'{state.name}' scale, in float32")
    m2, s2 = quant.quantize_multiplier(
        _f32_ratio(state_scale, wt_scale, y.quant.scale),
        f"state '{state.name}' scale x time weights '{wt.name}' scale / output "
        f"'{y.name}' scale, in float32")
    params: dict[str, object] = {
        "batch": batch, "depth": depth, "filters": filters, "memory": memory, "rank": rank,
        "units": units,
        "input_zero_point": x.quant.zero_point, "output_zero_point": y.quant.zero_point,
        "state_zero_point": state.quant.zero_point,
        "state_type": state.dtype.c_type, "state_dtype": state.dtype.numpy_name,
        "state_min": state.dtype.qmin, "state_max": state.dtype.qmax,
        "weights_feature": wf.data.astype(np.int8),
        "weights_time": wt.data.astype(state.dtype.np),
        "bias": b.data.astype(np.int64).ravel(),
        "multiplier1": m1, "shift1": s1, "multiplier2": m2, "shift2": s2,
    }
    return Svdf(op, graph, inputs=(x.index, state.index), outputs=(y.index,), params=params)


KERNELS = {DType.INT8: prepare}
