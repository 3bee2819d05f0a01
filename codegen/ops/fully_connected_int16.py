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

from codegen import quant
from codegen.emit import c_double
from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops import _conv, _gemm16, _requant
from codegen.ops._dot16 import (
    TENSOR_TYPE_INT64,
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


def prepare(op: Operator, graph: Graph, accumulator: str | None = None
            ) -> FullyConnectedInt16:
    """TFLM's layer; `accumulator` ("int32") overrides the type TFLM derives from the bias
    (numerics litert: LiteRT's optimized kernel accumulates in int32 whatever the bias)."""
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
    accumulator = accumulator or accumulator_type(op, graph, 2)
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


# -- numerics modes litert-ref and litert (codegen/numerics.py) ------------------------------

@dataclass
class FullyConnectedInt16LiteRT(FullyConnectedInt16):
    """LiteRT's 16x8 FULLY_CONNECTED (FullyConnectedInt16 / FullyConnectedPerChannelInt16,
    reference_integer_ops' overloads taking the float scales): the same accumulator as
    TFLM's, requantized in double precision, round(double(acc) * (double(s_in) *
    double(s_w) / double(s_out))) half away from zero, then clamped, in place of TFLM's
    fixed-point multiplier (MultiplyByQuantizedMultiplier, whose int64 overload rounds the
    multiplier to 16 bits)."""

    template: ClassVar[str] = "kernels/fully_connected_int16_litert.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("add_wrap", "requantize_double64", "clamp")

    def finish(self, acc: np.ndarray) -> np.ndarray:
        p = self.params
        acc = self.with_bias(acc)
        if p["accumulator"] == "int32":
            acc = quant.wrap_int32(acc)
        out = _requant.requantize_double(acc, np.asarray(p["double_scales"], np.float64))
        return np.clip(out, int(p["act_min"]), int(p["act_max"])).astype(np.int16)

    def constants(self) -> list[CArray]:
        p = self.params
        arrays = self.weight_bias_arrays()
        if p["per_channel"]:
            arrays.append(CArray("scale", np.asarray(p["double_scales"], np.float64)))
        return arrays

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        scales = np.asarray(p["double_scales"])
        return [("shape", f"{p['batches']} x ({p['depth']} -> {p['units']})"),
                ("activation", f"{p['activation']} -> clamp [{p['act_min']}, {p['act_max']}]"),
                ("requantization", f"double scale {float(scales[0])!r}"
                 f"{' (per channel)' if p['per_channel'] else ''}, LiteRT")]


def _bias_type(layer: FullyConnectedInt16) -> DType | None:
    inputs = layer.op.inputs
    return layer.graph.tensors[inputs[2]].dtype if len(inputs) > 2 and inputs[2] >= 0 else None


def _litert(layer: FullyConnectedInt16, mode: str) -> FullyConnectedInt16:
    """The layer as LiteRT computes it. Its Prepare takes the accumulator type from the
    options (quantized_bias_type), int64 otherwise: an int32 bias the options do not name is
    read as int64 values (TFLM accumulates in int32), so such a layer is refused. The
    default interpreter (XNNPACK takes no int16) runs this reference kernel only with an
    int64 bias or int64 named in the options, and otherwise its optimized kernel (ruy,
    FullyConnectedInt16Ruy)."""
    from codegen.ops import _litert as lt

    asked = int(layer.op.options.get("quantized_bias_type", 0) or 0)
    if mode == "litert" and _bias_type(layer) is not DType.INT64 and asked != TENSOR_TYPE_INT64:
        return _ruy(prepare(layer.op, layer.graph, accumulator="int32"))
    lt.check_16x8_bias(layer, mode, 2)
    w = layer.graph.tensors[layer.op.inputs[1]]
    x, y = layer.in_tensor(), layer.out_tensor()
    units = int(layer.params["units"])
    scales = _requant.litert_double_scales(x.quant.scale, w.quant.scales, units, y.quant.scale)
    params = {k: v for k, v in layer.params.items() if k not in ("kpad", "kiter", "epilogue")}
    params.update(double_scales=scales, double_scale=c_double(float(scales[0])), ruy=False,
                  per_channel=bool(np.any(scales != scales[0])))
    return FullyConnectedInt16LiteRT(layer.op, layer.graph, inputs=layer.inputs,
                                     outputs=layer.outputs, params=params)


@dataclass
class FullyConnectedInt16Ruy(FullyConnectedInt16LiteRT):
    """LiteRT's optimized 16x8 FULLY_CONNECTED (optimized_integer_ops::FullyConnected, ruy;
    numerics litert, where LiteRT takes it: no int64 bias): the int32 accumulator (the bias
    added with wraparound), TFLM's quantized multipliers and shifts, applied as ruy does:
    (2 * acc * m + 2^31) >> 32, then + 2^(right - 1) and >> right, both ties toward
    +infinity (TFLM's round half away from zero); checked on the oracle."""

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("add_wrap", "requantize_ruy", "clamp")

    def finish(self, acc: np.ndarray) -> np.ndarray:
        p = self.params
        acc = quant.wrap_int32(self.with_bias(acc))
        multiplier, right = np.asarray(p["ruy_multipliers"]), np.asarray(p["ruy_rights"])
        high = (2 * acc * multiplier + (1 << 31)) >> 32
        rounding = np.where(right > 0, np.left_shift(1, np.maximum(right - 1, 0)), 0)
        out = (high + rounding) >> right
        return np.clip(out, int(p["act_min"]), int(p["act_max"])).astype(np.int16)

    def constants(self) -> list[CArray]:
        p = self.params
        arrays = [CArray("weights", self.weights.astype(np.int8).ravel()),
                  CArray("bias", np.asarray(p["bias_data"]).astype(np.int32))]
        if p["per_channel"]:
            arrays += [CArray("multiplier", np.asarray(p["ruy_multipliers"], np.int32)),
                       CArray("right", np.asarray(p["ruy_rights"], np.int32))]
        return arrays

    def describe(self) -> list[tuple[str, str]]:
        return [*super().describe()[:2],
                ("requantization", "LiteRT's optimized kernel (ruy): fixed point, ties up")]


def _ruy(layer: FullyConnectedInt16) -> FullyConnectedInt16:
    from codegen.ops import _litert as lt

    multipliers, shifts = layer.params["rq"].arguments()  # type: ignore[attr-defined]
    if np.any(np.asarray(shifts) > 0):
        raise lt.refuse(layer, "litert", "LiteRT's optimized 16x8 FULLY_CONNECTED with a "
                        "multiplier of 1 or more")
    params = {k: v for k, v in layer.params.items() if k not in ("kpad", "kiter", "epilogue")}
    params.update(ruy=True, ruy_multipliers=np.asarray(multipliers, np.int64),
                  ruy_rights=-np.asarray(shifts, np.int64),
                  per_channel=bool(layer.params["per_channel"]))
    return FullyConnectedInt16Ruy(layer.op, layer.graph, inputs=layer.inputs,
                                  outputs=layer.outputs, params=params)


NUMERICS = {mode: lambda layer, mode=mode: _litert(layer, mode)
            for mode in ("litert-ref", "litert")}
