"""MEAN: int8 or int16 in/out over any constant set of axes (negative and repeated axes included, up
to 6-D), keep_dims true or false, any input and output quantization.

TFLM: PrepareMeanOrSumHelper / EvalMeanHelper (reduce_common.cc) and
reference_ops::QuantizedMeanOrSum (reduce.h), for int8 and int16 alike. Prepare:
QuantizeMultiplier(s_in / s_out) in double. Eval sums the raw values of each output element
in int32, then folds 1/n (n = the number of reduced elements) into the multiplier:
    shift' = min(floor(log2 n), 32, 31 + shift)
    m'     = (int64(m) << shift') / n          (integer division)
    out    = clamp(MultiplyByQuantizedMultiplier(sum - zp_in * n, m', shift - shift') + zp_out)

Older TFLM releases took other paths (reference_integer_ops::Mean for 4-D keep_dims means
over axes 1 and 2, a truncating integer division when input and output quantization are
equal, a float path otherwise); the TFLM this project matches uses QuantizedMeanOrSum for all
of them, which the tests check on each of those cases. Generation time resolves the axes,
merges neighbouring dimensions that are kept or reduced together, and folds -zp_in * n into
the accumulator's start value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _broadcast, _reduce
from codegen.ops._binary import multiplier
from codegen.ops.base import (
    only_output,
    operand,
    require_dtype,
    require_per_tensor,
    unsupported,
)

OPCODES = ("MEAN",)
# The int32 sum must not overflow: |sum - zp * n| <= 2^bits * n.
_MAX_REDUCED = {DType.INT8: (2**31 - 1) // 256, DType.INT16: (2**31 - 1) // 65536}


@dataclass
class Mean(_reduce.ReductionLayer):
    runtime: ClassVar[tuple[str, ...]] = ("requantize", "clamp")
    template: ClassVar[str] = "kernels/mean.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = inputs[0].astype(np.int64)
        axes = tuple(a + 1 for a in p["axes"])  # type: ignore[attr-defined]
        total = x.sum(axis=axes) + int(p["bias"])
        dtype = self.out_tensor().dtype
        out = quant.requantize(quant.wrap_int32(total), int(p["multiplier"]), int(p["shift"]),
                               int(p["output_zero_point"]), dtype.qmin, dtype.qmax)
        return [out.astype(dtype.np).reshape((x.shape[0], *self.out_tensor().shape))]

    def macs(self) -> int:
        return self.in_tensor().size

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [
            ("axes", f"{list(p['axes'])} ({p['count']} elements per mean)"),  # type: ignore[call-overload]
            ("multiplier", f"{p['multiplier']} shift {p['shift']} (1/{p['count']} folded in)"),
            ("accumulator start", str(p["bias"])),
        ]


def _prepare(op: Operator, graph: Graph, dtype: DType) -> Mean:
    x = operand(op, graph, 0, "input")
    y = only_output(op, graph)
    if len(op.inputs) != 2:
        raise unsupported(op, f"expected 2 inputs (input, axis), found {len(op.inputs)}")
    for tensor, role in ((x, "input"), (y, "output")):
        require_dtype(op, tensor, (dtype,), role)
        require_per_tensor(op, tensor, role)
    if x.is_constant:
        raise unsupported(op, "a constant input is not supported")
    _broadcast.check_rank(op, (x, y))
    shape = tuple(x.shape)
    axes = _reduce.axes(op, graph, len(shape))
    keep = bool(op.options.get("keep_dims", False))
    expected = [1 if d in axes else n for d, n in enumerate(shape) if keep or d not in axes]
    if y.size != int(np.prod(expected, dtype=np.int64)):
        raise unsupported(op, f"output shape {list(y.shape)} does not match the input "
                          f"{list(shape)} reduced over axes {list(axes)}")
    count = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    if count > _MAX_REDUCED[dtype]:
        raise unsupported(op, f"{count} elements per mean would overflow the int32 sum")

    mult, shift = multiplier(op, x.quant.scale / y.quant.scale, "output multiplier")
    # QuantizedMeanOrSum folds 1/count into the multiplier (for count 1 it changes nothing).
    fold = min(count.bit_length() - 1, 32, 31 + shift)
    mean_multiplier = (mult << fold) // count
    kept, reduced = _reduce.loop_groups(shape, axes)
    params: dict[str, object] = {
        "axes": axes,
        "keep_dims": keep,
        "count": count,
        "multiplier": mean_multiplier,
        "shift": shift - fold,
        "bias": int(quant.wrap_int32(np.int64(-x.quant.zero_point * count))),
        "output_zero_point": y.quant.zero_point,
        "kept": kept,
        "reduced": reduced,
        "c_type": dtype.c_type, "qmin": dtype.qmin, "qmax": dtype.qmax,
    }
    return Mean(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


def prepare_int8(op: Operator, graph: Graph) -> Mean:
    return _prepare(op, graph, DType.INT8)


def prepare_int16(op: Operator, graph: Graph) -> Mean:
    return _prepare(op, graph, DType.INT16)


KERNELS = {DType.INT8: prepare_int8, DType.INT16: prepare_int16}


@dataclass
class MeanXnnpack(Mean):
    """Numerics mode litert: XNNPACK's int8 MEAN (reduce-nd.c, its qs8 rsum and the int32 ->
    int8 conversion): the raw int32 sum, then nearbyint(float(sum) * scale + zp') in float32,
    clamped, with scale = (s_in / s_out) * (1 / n) and zp' = zp_out - float(n * zp_in) * scale,
    each rounded to float32 (n: the number of reduced elements)."""

    runtime: ClassVar[tuple[str, ...]] = ()
    template: ClassVar[str] = "kernels/mean_xnnpack.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = inputs[0].astype(np.int64)
        axes = tuple(a + 1 for a in p["axes"])  # type: ignore[attr-defined]
        total = x.sum(axis=axes)
        v = total.astype(np.float32) * np.float32(p["xnn_scale"])
        v = v + np.float32(p["xnn_zero_point"])
        out = np.clip(np.rint(v), -128, 127).astype(np.int64)
        return [out.astype(np.int8).reshape((x.shape[0], *self.out_tensor().shape))]

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [
            ("axes", f"{list(p['axes'])} ({p['count']} elements per mean)"),  # type: ignore[call-overload]
            ("scale", f"{p['fp32_scale']}, zero point {p['fp32_zero_point']} (float32, XNNPACK)"),
        ]


def litert(layer: Mean) -> Mean:
    """Numerics litert: XNNPACK takes every int8 MEAN (above); an int16 one runs LiteRT's
    EvalQuantizedMean, TFLM's arithmetic (its optimized Mean is for int8 and uint8 only)."""
    from codegen.emit import c_float

    if layer.in_tensor().dtype is DType.INT16:
        return litert_ref(layer, "litert")

    x, y = layer.in_tensor(), layer.out_tensor()
    f32 = np.float32
    count = int(layer.params["count"])  # type: ignore[call-overload]
    scale = (f32(x.quant.scale) / f32(y.quant.scale)) * (f32(1.0) / f32(count))
    zero_point = f32(y.quant.zero_point) - f32(f32(count * x.quant.zero_point) * scale)
    params = {**layer.params, "xnn_scale": float(scale), "xnn_zero_point": float(zero_point),
              "fp32_scale": c_float(float(scale)), "fp32_zero_point": c_float(float(zero_point))}
    return MeanXnnpack(layer.op, layer.graph, inputs=layer.inputs, outputs=layer.outputs,
                       params=params)


def litert_ref(layer: Mean, mode: str = "litert-ref") -> Mean:
    """LiteRT's reference MEAN (EvalQuantizedMean) computes TFLM's; its Prepare refuses an
    int16 layer whose zero points are not 0."""
    from codegen.ops import _litert

    if layer.in_tensor().dtype is DType.INT16 and (layer.in_tensor().quant.zero_point
                                                   or layer.out_tensor().quant.zero_point):
        raise _litert.refuse(layer, mode, "LiteRT fails to prepare an int16 MEAN whose zero "
                             "points are not 0")
    return layer


NUMERICS = {"litert-ref": litert_ref, "litert": litert}
