"""FULLY_CONNECTED: int8 in/out, int8 weights per-tensor or per-channel, optional int32
bias, fused NONE/RELU/RELU6/RELU_N1_TO_1, keep_num_dims.

TFLM: reference_integer_ops::FullyConnected / FullyConnectedPerChannel. The accumulator is
sum_k (w + filter_offset) * (x + input_offset) + bias in int32, then
MultiplyByQuantizedMultiplier, the output zero point, and the fused-activation clamp.

Generation time folds every term that does not depend on x into one bias per unit:
    bias' = bias + input_offset * sum_k (w + filter_offset) ,
leaving sum_k w*x (+ filter_offset * sum_k x, only when the weights have a zero point) to
run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _fc_rvv, _gemm, _gemm_mve, _gemm_rv, _gemm_v6m, _litert, _requant
from codegen.ops.base import (
    CArray,
    Layer,
    only_output,
    operand,
    require_dtype,
    require_per_tensor,
    unsupported,
)

# A layer of at most this many MACs per row whose depth gives the loop of eight input words
# takes the loop of two instead: eight words per iteration save it a few loop tests but cost
# 1.5 KB of code (vww's 256 x 2 classifier: 840 B less for 183 cycles more)
SMALL_FC_MACS = 1000

OPCODES = ("FULLY_CONNECTED",)


@dataclass
class FullyConnected(Layer):
    template: ClassVar[str] = "kernels/fully_connected.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("requantize", "clamp", *_rvv_snippet(self))

    @property
    def weights(self) -> np.ndarray:
        return self.params["weights_data"]  # type: ignore[return-value]

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        n = inputs[0].shape[0]
        depth, units = int(p["depth"]), int(p["units"])
        x = inputs[0].reshape(n * int(p["batches"]), depth).astype(np.int64)
        w = self.weights.astype(np.int64) + int(p["filter_offset"])
        acc = (x + int(p["input_offset"])) @ w.T + self.params["bias_data"]
        acc = quant.wrap_int32(acc)
        out = quant.requantize(acc, p["multipliers"], p["shifts"], int(p["output_zero_point"]),
                               int(p["act_min"]), int(p["act_max"]))
        shape = (n, *self.out_tensor().shape)
        return [out.reshape(n, -1, units).astype(np.int8).reshape(shape)]

    def constants(self) -> list[CArray]:
        arrays = [
            CArray("weights", np.asarray(self.weights, np.int8).ravel()),
            CArray("bias", np.asarray(self.params["folded_bias"], dtype=np.int32)),
        ]
        if self.params["per_channel"]:
            arrays.append(CArray("multiplier", np.asarray(self.params["multipliers"], np.int32)))
            arrays.append(CArray("shift", np.asarray(self.params["shifts"], np.int32)))
        return _with_rvv(self, arrays)

    def macs(self) -> int:
        p = self.params
        return int(p["batches"]) * int(p["units"]) * int(p["depth"])

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        rows = [
            ("activation", f"{p['activation']} -> clamp [{p['act_min']}, {p['act_max']}]"),
            ("shape", f"{p['batches']} x ({p['depth']} -> {p['units']})"),
        ]
        mult, shift = p["multipliers"], p["shifts"]
        if p["per_channel"]:
            rows.append(("multipliers", _preview(mult)))
            rows.append(("shifts", _preview(shift)))
        else:
            rows.append(("multiplier", f"{int(mult)} shift {int(shift)}"))
        return rows


@dataclass
class FullyConnectedGemm(FullyConnected):
    """The matrix-product engine (codegen/ops/_gemm.py): eight output channels per pass
    over an input row, widened to 16-bit pairs as it is read (no scratch buffer)."""

    template: ClassVar[str] = "kernels/fully_connected_fast.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.params["snippets"], "gemm_v6m_fc", "gemm_v7m_fc",  # type: ignore[misc]
                self.params["mve"]["snippet"], *_rvv_snippet(self))  # type: ignore[index]

    def constants(self) -> list[CArray]:
        p = self.params
        return _with_rvv(self, [
            *_gemm_rv.constants(p["stream"], p["rv_stream"]),
            *_gemm_v6m.constants(p["v6m"], _gemm_v6m.V6M_ONLY_GUARD if p["v7m"]
                                 else _gemm_v6m.GUARD),
            *_gemm_v6m.constants_fc7(p["v7m"]),  # type: ignore[arg-type]
            *_gemm_mve.constants(p["mve"])])

    def describe(self) -> list[tuple[str, str]]:
        return [*super().describe(), ("kernel", self.params["engine"])]



@dataclass
class FullyConnectedLiteRTRef(FullyConnected):
    """Numerics mode litert-ref: LiteRT's reference kernels (reference_integer_ops::
    FullyConnected and FullyConnectedPerChannel, the overloads taking the float scales)
    requantize the same int32 accumulator in double precision:
    round(double(acc) * (double(s_in) * double(s_w) / double(s_out))), half away from zero,
    then add the output zero point and clamp. The C does the same double operations (soft
    float on cores without a double-precision FPU)."""

    runtime: ClassVar[tuple[str, ...]] = ("add_wrap", "requantize_double", "clamp")

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x, acc = _accumulators(self, inputs[0])
        if p["filter_offset"]:
            acc = quant.wrap_int32(acc + int(p["filter_offset"]) * x.sum(axis=1, keepdims=True))
        scaled = _requant.requantize_double(acc, p["double_scales"])
        out = np.clip(quant.wrap_int32(scaled + int(p["output_zero_point"])),
                      int(p["act_min"]), int(p["act_max"]))
        return [_shaped(self, out, inputs[0].shape[0])]

    def constants(self) -> list[CArray]:
        return _float_scaled_constants(self, np.asarray(self.params["double_scales"],
                                                        np.float64),
                                       bool(self.params["per_channel"]))

    def describe(self) -> list[tuple[str, str]]:
        scales = np.asarray(self.params["double_scales"])
        return [*super().describe()[:2],
                ("requantization", f"double scale {float(scales[0])!r}"
                 f"{' (per channel)' if self.params['per_channel'] else ''}, LiteRT reference")]


def litert_ref(layer: FullyConnected) -> FullyConnected:
    """The layer as LiteRT's reference kernel computes it (numerics mode litert-ref)."""
    w = layer.graph.tensors[layer.op.inputs[1]]
    x, y = layer.in_tensor(), layer.out_tensor()
    units = int(layer.params["units"])
    scales = _requant.litert_double_scales(x.quant.scale, w.quant.scales, units, y.quant.scale)
    params = {k: v for k, v in layer.params.items()
              if k not in ("engine", "clamp_args", "kiter", "scale", "packed", "rq", "rvv")}
    params["double_scales"] = scales
    params["double_scale"] = _emit_double(scales[0])
    return FullyConnectedLiteRTRef(layer.op, layer.graph, inputs=layer.inputs,
                                   outputs=layer.outputs, params=params)


@dataclass
class FullyConnectedLiteRT(FullyConnected):
    """Numerics mode litert: XNNPACK's fully connected operator (qs8, or qc8w for
    per-channel weights) on the same int32 accumulator, requantized by its fp32 scale
    (in_scale * w_scale / out_scale in float32), rounded to nearest even."""

    runtime: ClassVar[tuple[str, ...]] = ("requantize_fp32",)

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        _, acc = _accumulators(self, inputs[0])
        out = _requant.requantize_fp32(acc, p["fp32_scales"], int(p["output_zero_point"]),
                                       int(p["act_min"]), int(p["act_max"]))
        return [_shaped(self, out, inputs[0].shape[0])]

    def constants(self) -> list[CArray]:
        return _float_scaled_constants(self, np.asarray(self.params["fp32_scales"], np.float32),
                                       bool(self.params["fp32_per_channel"]))

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [*super().describe()[1:2],
                ("activation", f"{p['activation']} -> clamp [{p['act_min']}, {p['act_max']}] "
                               "(XNNPACK's bounds)"),
                ("requantization", f"float32 scale {p['fp32_scale']}"
                 f"{' (per channel)' if p['fp32_per_channel'] else ''}, XNNPACK")]


def litert(layer: FullyConnected) -> FullyConnected:
    """The layer as LiteRT's default interpreter computes it: XNNPACK (numerics litert).
    XNNPACK declines weights with a zero point; LiteRT's optimized kernel then computes
    TFLM's values (its gemm's fixed-point multiplier, double rounding: 5,000 full-range
    samples of the operator test model agree, where ruy's single rounding differs on 13 in
    3,000)."""
    if layer.params["filter_offset"]:
        return layer
    w = layer.graph.tensors[layer.op.inputs[1]]
    units = int(layer.params["units"])
    w_scales = w.quant.scales if w.quant.per_channel else [w.quant.scale] * units
    params = {k: v for k, v in layer.params.items()
              if k not in ("engine", "clamp_args", "kiter", "scale", "packed", "rq", "rvv")}
    params.update(_litert.fp32_params(layer, w_scales, str(layer.params["activation"])))
    return FullyConnectedLiteRT(layer.op, layer.graph, inputs=layer.inputs,
                                outputs=layer.outputs, params=params)


def _rvv_snippet(layer: FullyConnected) -> tuple[str, ...]:
    return ("fc_rvv",) if layer.params.get("rvv") else ()


def _with_rvv(layer: FullyConnected, arrays: list[CArray]) -> list[CArray]:
    """The layer's arrays, and where it has the RVV kernel, that kernel's arrays beside them
    (each compiled only where its kernel is)."""
    rvv = layer.params.get("rvv")
    if not rvv:
        return arrays
    return [*_fc_rvv.elsewhere(arrays),
            *_fc_rvv.constants(rvv, np.asarray(layer.params["folded_bias"]))]  # type: ignore[arg-type]


def _emit_double(value: float) -> str:
    from codegen.emit import c_double

    return c_double(value)


def _gemm_params(params: dict[str, object]) -> dict[str, object] | None:
    """The engine's parameters, or None when the layer keeps the plain kernel: weights with
    a zero point (the engine has no filter offset), a depth that is not a multiple of 8 (the
    engine reads the input row eight values at a time), or accumulators the short
    requantization cannot take."""
    if params["filter_offset"] or int(params["depth"]) % _gemm.K_STEP:
        return None
    weights = np.asarray(params["weights_data"])  # int8, not copied
    folded = np.asarray(params["bias_data"], np.int64) + int(params["input_offset"]) * weights.sum(
        axis=1, dtype=np.int64)
    zero_point, act_min, act_max = (int(params[k]) for k in ("output_zero_point", "act_min",
                                                              "act_max"))
    rq = _gemm.plan_requant(weights, folded, params["multipliers"], params["shifts"],
                            zero_point, act_min, act_max, channel_pad=_gemm.FC_BLOCK)
    if rq is None:
        return None
    full = (act_min, act_max) == (-128, 127)
    fixup = _gemm.needs_sign_fixup(zero_point, act_min)
    depth, units = int(params["depth"]), int(params["units"])
    blocks, tail = divmod(units, _gemm.FC_BLOCK)
    clamp = "sat" if full else "clamp"
    # up to eight input words per iteration as the depth allows (fewer loop tests), two for
    # a small layer
    words = 8 if depth % 32 == 0 else 4 if depth % 16 == 0 else 2
    if words == 8 and depth * units <= SMALL_FC_MACS:
        words = 2
    variant = ("fix" if fixup else "floor", clamp, f"x{words}")
    rv = _gemm_rv.split_stream(weights, rq, _gemm_rv.FC_WIDE, _gemm.FC_BLOCK,
                               _gemm_rv.fc_chunks(depth), small_tail=True)
    return {
        "engine": "cg_gemm_fc_" + "_".join(variant),
        "snippets": (f"gemm_fc_plain.{clamp}", "gemm_fc." + ".".join(variant)),
        "clamp_args": "" if full else f", {act_min}, {act_max}",
        "blocks": blocks,
        "tail": tail,
        "tail_offset": blocks * (2 * depth + 4 * _gemm.FC_BLOCK),
        "scale": rq.scale,
        "stream": _gemm.block_stream(weights, rq, _gemm.FC_BLOCK),
        "v6m": _gemm_v6m.plan(weights, rq, _gemm_v6m.FC_BLOCK),
        "v7m": _gemm_v6m.plan_fc7(weights, rq),
        "mve": {**_gemm_mve.plan_fc(weights, rq),
                "engine": "cg_gemm_mve8_fc_" + "_".join(variant[:2]),
                "snippet": "gemm_mve8_fc." + ".".join(variant[:2])},
        "rv_stream": None if rv is None else rv["stream"],
        "rv": None if rv is None else {**rv, **_gemm_rv.fc_runs(weights, rv, _gemm_rv.FC_WIDE,
                                                                _gemm.FC_BLOCK)},
        "rv_engine": f"cg_gemm_fc_rv_{variant[0]}_{clamp}",
    }


def _preview(values: object, count: int = 4) -> str:
    arr = np.asarray(values).ravel()
    head = ", ".join(str(int(v)) for v in arr[:count])
    return f"[{head}{', ...' if arr.size > count else ''}] ({arr.size})"


def prepare(op: Operator, graph: Graph) -> FullyConnected:
    x = operand(op, graph, 0, "input")
    w = operand(op, graph, 1, "weights")
    y = only_output(op, graph)
    has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
    b = graph.tensors[op.inputs[2]] if has_bias else None

    require_dtype(op, x, (DType.INT8,), "input")
    require_dtype(op, w, (DType.INT8,), "weights")
    require_dtype(op, y, (DType.INT8,), "output")
    if x.is_constant:
        raise unsupported(op, "a constant input is not supported")
    if w.data is None:
        raise unsupported(op, "weights must be constant")
    if op.options.get("weights_format", 0) != 0:
        raise unsupported(op, "shuffled weights format is not supported")
    if len(w.shape) != 2:
        raise unsupported(op, f"weights must be 2-D, found shape {list(w.shape)}")
    units, depth = w.shape
    if depth == 0 or x.size % depth:
        raise unsupported(op, f"input size {x.size} is not a multiple of the depth {depth}")
    batches = x.size // depth
    if y.size != batches * units:
        raise unsupported(op, f"output shape {list(y.shape)} does not hold {batches}x{units}")
    require_per_tensor(op, x, "input")
    require_per_tensor(op, y, "output")
    if w.quant is None:
        raise unsupported(op, f"weights '{w.name}' have no quantization parameters")

    bias = np.zeros(units, dtype=np.int64)
    if b is not None:
        require_dtype(op, b, (DType.INT32,), "bias")
        if b.data is None or b.size != units:
            raise unsupported(op, f"bias must be a constant of {units} int32 values")
        bias = b.data.astype(np.int64).ravel()

    multipliers, shifts, filter_offset = _requantization(op, x.quant.scale, w, y.quant.scale,
                                                         units)
    activation = quant.fused_activation(op.options)
    act_min, act_max = quant.activation_range(activation, y.quant.scale, y.quant.zero_point,
                                              DType.INT8.qmin, DType.INT8.qmax)
    input_offset = -x.quant.zero_point
    # sum_k (w + filter_offset), without a wider copy of the weights
    weight_sums = w.data.sum(axis=1, dtype=np.int64) + filter_offset * int(depth)
    folded = bias + input_offset * weight_sums

    per_channel = w.quant.per_channel
    params: dict[str, object] = {
        "depth": int(depth),
        "units": int(units),
        "batches": int(batches),
        "input_offset": input_offset,
        "filter_offset": filter_offset,
        "output_zero_point": y.quant.zero_point,
        "activation": activation,
        "act_min": act_min,
        "act_max": act_max,
        "per_channel": per_channel,
        "multipliers": multipliers if per_channel else int(multipliers[0]),
        "shifts": shifts if per_channel else int(shifts[0]),
        "weights_data": w.data,
        "bias_data": bias,
        "folded_bias": quant.wrap_int32(folded),
    }
    params["rvv"] = _fc_rvv.plan(params)
    gemm = _gemm_params(params)
    if gemm is not None:
        params.update(gemm)
        return FullyConnectedGemm(op, graph, inputs=(x.index,), outputs=(y.index,),
                                  params=params)
    return FullyConnected(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


def _requantization(op: Operator, input_scale: float, w, output_scale: float,
                    units: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-unit (multiplier, shift) of in_scale * w_scale / out_scale, as TFLM computes it."""
    q = w.quant
    if q.per_channel:
        if len(q.scales) != units or q.axis != 0:
            raise unsupported(
                op, f"per-channel weights need {units} scales on axis 0, "
                f"found {len(q.scales)} on axis {q.axis}"
            )
        if any(z != 0 for z in q.zero_points):
            raise unsupported(op, "per-channel weights must have zero points of 0")
        scales = np.array(q.scales, dtype=np.float64)
        filter_offset = 0
    else:
        scales = np.full(units, q.scale, dtype=np.float64)
        filter_offset = -q.zero_point
    reals = float(input_scale) * scales / float(output_scale)  # TFLM's double arithmetic
    multipliers, shifts = quant.quantize_multipliers(reals)
    return multipliers, shifts, filter_offset


KERNELS = {DType.INT8: prepare}
NUMERICS = {"litert-ref": litert_ref, "litert": litert}


def _accumulators(layer: FullyConnected, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The input as rows of int64 and the int32 accumulators (bias folded in) of a layer
    whose weights stay unpacked (the numerics modes' plain kernels)."""
    p = layer.params
    rows = x.reshape(x.shape[0] * int(p["batches"]), int(p["depth"])).astype(np.int64)
    return rows, quant.wrap_int32(rows @ layer.weights.T.astype(np.int64) + p["folded_bias"])


def _shaped(layer: FullyConnected, out: np.ndarray, n: int) -> np.ndarray:
    units = int(layer.params["units"])
    return out.reshape(n, -1, units).astype(np.int8).reshape((n, *layer.out_tensor().shape))


def _float_scaled_constants(layer: FullyConnected, scales: np.ndarray,
                            per_channel: bool) -> list[CArray]:
    """Weights, folded bias and (per channel) the float requantization scales."""
    arrays = [
        CArray("weights", np.asarray(layer.weights, np.int8).ravel()),
        CArray("bias", np.asarray(layer.params["folded_bias"], dtype=np.int32)),
    ]
    return [*arrays, CArray("scale", scales)] if per_channel else arrays
