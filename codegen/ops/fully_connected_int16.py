"""FULLY_CONNECTED: int16 in/out (16x8), int8 weights per-tensor or per-channel (zero point
0), optional int64 or int32 bias, fused NONE/RELU/RELU6/RELU_N1_TO_1, keep_num_dims.

TFLM: the int16 case of FullyConnectedEval, reference_integer_ops::FullyConnected /
FullyConnectedPerChannel with the bias type as accumulator type: int64 for an int64 bias
(or no bias, unless the options' quantized_bias_type is int32), int32 for an int32 bias.
Per output: acc = sum_k w * x (+ bias), then MultiplyByQuantizedMultiplier of that type
(`codegen/ops/_requant.py`: the int64 overload rounds the multiplier to 16 bits), clamped to
the fused activation's range. The input and output zero points are 0 (validated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops import _conv, _gemm16, _requant
from codegen.ops._dot16 import (
    DotInt16,
    accumulator_type,
    gemm16_constants,
    int16_bias,
    int32_bias,
    rq_params,
)
from codegen.ops.base import (
    CArray,
    only_output,
    operand,
    require_dtype,
    require_zero_point_zero,
    unsupported,
    where,
)

OPCODES = ("FULLY_CONNECTED",)


@dataclass
class FullyConnectedInt16(DotInt16):
    """Each output row is the dot product of one weight row with one input row."""

    template: ClassVar[str] = "kernels/fully_connected_int16.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        n = inputs[0].shape[0]
        depth = int(p["depth"])
        x = inputs[0].reshape(n * int(p["batches"]), depth).astype(np.float64)
        # float64 is exact: |sum| < 2^47 (checked at generation time) < 2^53.
        acc = (x @ self.weights.astype(np.float64).T).astype(np.int64)
        return [self.finish(acc).reshape(n, *self.out_tensor().shape)]

    def macs(self) -> int:
        p = self.params
        return int(p["batches"]) * int(p["units"]) * int(p["depth"])

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("shape", f"{p['batches']} x ({p['depth']} -> {p['units']})"),
                *super().describe()]


@dataclass
class FullyConnectedInt16Gemm(FullyConnectedInt16):
    """The 16x8 matrix-product engine (codegen/ops/_gemm16.py), two input rows per pass."""

    template: ClassVar[str] = "kernels/fully_connected_int16_fast.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.params["epilogue"].runtime, "column16")

    def constants(self) -> list[CArray]:
        return gemm16_constants(self)

    def scratch_bytes(self) -> int:
        return 4 * int(self.params["kpad"])  # two columns of kpad int16 values

    def describe(self) -> list[tuple[str, str]]:
        return [*super().describe(), ("kernel", f"16x8 engine, depth padded to "
                                                f"{self.params['kpad']}")]


def _shapes(op: Operator, x: Tensor, w: Tensor, y: Tensor) -> tuple[int, int, int]:
    """(units, depth, batches), checked as the int8 kernel checks them."""
    if len(w.shape) != 2:
        raise unsupported(op, f"weights must be 2-D, found shape {list(w.shape)}")
    units, depth = (int(d) for d in w.shape)
    if x.size % depth:
        raise unsupported(op, f"input size {x.size} is not a multiple of the depth {depth}")
    batches = x.size // depth
    if y.size != batches * units:
        raise unsupported(op, f"output shape {list(y.shape)} does not hold {batches}x{units}")
    return units, depth, batches


def prepare(op: Operator, graph: Graph) -> FullyConnectedInt16:
    x = operand(op, graph, 0, "input")
    w = operand(op, graph, 1, "weights")
    y = only_output(op, graph)
    require_dtype(op, y, (DType.INT16,), "output")
    _conv.require_activations(op, x, y)
    for tensor, role in ((x, "input"), (y, "output")):
        require_zero_point_zero(op, tensor, role)  # the kernel reads neither
    if op.options.get("weights_format", 0) != 0:
        raise unsupported(op, "shuffled weights format is not supported")
    units, depth, batches = _shapes(op, x, w, y)
    multipliers, shifts = _conv.prepare_quantization(op, x, w, y, units, channel_axis=0)
    bias = int16_bias(op, graph, 2, units, (DType.INT64, DType.INT32))
    accumulator = accumulator_type(op, graph, 2)
    bias = int32_bias(bias, accumulator, units)
    rq = _requant.for_accumulator(accumulator, multipliers, shifts)
    weights = np.asarray(w.data, dtype=np.int64).reshape(units, depth)
    bound = np.abs(weights).sum(axis=1) * 32768 + (0 if bias is None else np.abs(bias))
    rq.check(where(op), bound)
    activation, act_min, act_max = _conv.activation_bounds(op, y)
    params: dict[str, object] = {
        "depth": depth, "units": units, "batches": batches,
        "activation": activation, "act_min": act_min, "act_max": act_max,
        "weights_data": weights, "bias_data": bias, "accumulator": accumulator,
        **rq_params(rq),
    }
    if _gemm16.fits(weights):
        params.update(kpad=_gemm16.padded_depth(depth), kiter=_gemm16.padded_depth(depth) // 4,
                      epilogue=_gemm16.epilogue(rq, bias, bound))
        return FullyConnectedInt16Gemm(op, graph, inputs=(x.index,), outputs=(y.index,),
                                       params=params)
    return FullyConnectedInt16(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


KERNELS = {DType.INT16: prepare}
