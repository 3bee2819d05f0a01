"""QUANTIZE: float32 -> int8/uint8/int16, and requantization int8/uint8 -> int8/uint8,
int8 <-> int16 and int16 -> int16 (what joins the int8 and int16 parts of a mixed model).

TFLM: reference_ops::AffineQuantize divides in float32 (`val / static_cast<float>(scale)`),
rounds half away from zero and clamps; reference_ops::Requantize subtracts the input zero
point, applies MultiplyByQuantizedMultiplier(in_scale / out_scale) and adds the output zero
point, clamped to the output type. The float path only ever runs at a model's float input.
TFLM has no int16 -> uint8 or uint8 -> int16 kernel; those pairs are refused (`_PAIRS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.model.ir import DType, Graph, Operator
from codegen.ops._lut import LutLayer
from codegen.ops.base import Layer, only_output, operand, require_dtype, require_per_tensor

OPCODES = ("QUANTIZE",)
_QUANTIZED = (DType.INT8, DType.UINT8, DType.INT16)
# input type -> the output types it may be quantized to (TFLM's Eval switch; int32 aside)
_PAIRS = {
    DType.FLOAT32: (DType.INT8, DType.UINT8, DType.INT16),
    DType.INT8: (DType.INT8, DType.UINT8, DType.INT16),
    DType.UINT8: (DType.INT8, DType.UINT8),
    DType.INT16: (DType.INT8, DType.INT16),
}


@dataclass
class Quantize(Layer):
    template: ClassVar[str] = "kernels/quantize.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        # From float only the clamp: an unused static function is a warning under clang.
        return ("clamp",) if self.params["from_float"] else ("requantize", "clamp")

    def inplace_inputs(self) -> tuple[int, ...]:
        # Element i is read before it is written when both take as many bytes.
        x, y = self.in_tensor(), self.out_tensor()
        return (0,) if x.dtype.itemsize == y.dtype.itemsize else ()

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        y = self.out_tensor()
        if p["from_float"]:
            q = quantize_float(inputs[0], float(p["scale"]), int(p["output_zero_point"]),
                               int(p["qmin"]), int(p["qmax"]))
        else:
            x = inputs[0].astype(np.int64) - int(p["input_zero_point"])
            q = quant.requantize(x, int(p["multiplier"]), int(p["shift"]),
                                 int(p["output_zero_point"]), int(p["qmin"]), int(p["qmax"]))
        return [q.astype(y.dtype.np)]


def quantize_float(x: np.ndarray, scale: float, zero_point: int, qmin: int,
                   qmax: int) -> np.ndarray:
    """float32 / float32 scale, round half away from zero, + zero point, clamp.

    Values whose quotient is out of int32 range (and NaN) saturate as on x86, where TFLM's
    float-to-int conversion gives INT32_MIN for them; NaN therefore maps to qmin.
    """
    ratio = (np.asarray(x, dtype=np.float32) / np.float32(scale)).astype(np.float64)
    finite = np.abs(ratio) < 2.0**31
    safe = np.where(finite, ratio, 0.0)
    rounded = np.sign(safe) * np.floor(np.abs(safe) + 0.5)
    saturated = np.where(ratio > 0, qmax, qmin)
    return np.where(finite, np.clip(rounded.astype(np.int64) + zero_point, qmin, qmax),
                    saturated)


def prepare(op: Operator, graph: Graph) -> Quantize:
    x = operand(op, graph, 0, "input")
    y = only_output(op, graph)
    require_dtype(op, x, tuple(_PAIRS), "input")
    require_dtype(op, y, _PAIRS[x.dtype], "output")
    require_per_tensor(op, y, "output")
    params: dict[str, object] = {
        "from_float": x.dtype is DType.FLOAT32,
        "count": y.size,
        "in_type": x.dtype.c_type,
        "out_type": y.dtype.c_type,
        "output_zero_point": y.quant.zero_point,
        "qmin": y.dtype.qmin,
        "qmax": y.dtype.qmax,
        "scale": y.quant.scale,
    }
    if x.dtype is not DType.FLOAT32:
        require_per_tensor(op, x, "input")
        multiplier, shift = quant.quantize_multiplier(x.quant.scale / y.quant.scale)
        params.update(input_zero_point=x.quant.zero_point, multiplier=multiplier, shift=shift)
    return Quantize(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


KERNELS = dict.fromkeys(_QUANTIZED, prepare)  # the type of a float input's output


# -- numerics modes litert-ref and litert (codegen/numerics.py) ------------------------------

def _int16(layer: Layer, mode: str) -> bool:
    """Whether the layer has an int16 side. LiteRT requantizes to and from int16 with
    reference_ops::Requantize in both modes (the optimized kernel's vector loops are for int8
    and uint8 only; XNNPACK takes no int16), TFLM's arithmetic with the same double
    input_scale / output_scale multiplier; its Prepare refuses int16 -> int16 with zero
    points other than 0. Float -> int16 is TFLM's in the reference kernel, not in the
    optimized one (QuantizeInt16LiteRT, mode litert)."""
    from codegen.ops import _litert

    x, y = layer.in_tensor(), layer.out_tensor()
    if DType.INT16 not in (x.dtype, y.dtype):
        return False
    if x.dtype is y.dtype is DType.INT16 and (x.quant.zero_point or y.quant.zero_point):
        raise _litert.refuse(layer, mode, "LiteRT fails to prepare an int16 -> int16 QUANTIZE "
                             "whose zero points are not 0")
    return True


def litert_ref(layer: Quantize) -> Quantize:
    """LiteRT's reference QUANTIZE computes TFLM's (float, int8, uint8 and int16)."""
    _int16(layer, "litert-ref")
    return layer


@dataclass
class RequantizeXnnpack(LutLayer):
    """XNNPACK's int8 -> int8 QUANTIZE (qs8 vcvt): m = lrintf(256 * (s_in / s_out)) in
    float32, then ((zp_out << 8) - m * zp_in + 0x80 + x * m) >> 8 (arithmetic), clamped."""

    def function(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        m = int(p["xnn_multiplier"])
        bias = (int(p["output_zero_point"]) << 8) - m * int(p["input_zero_point"]) + 0x80
        return np.clip((bias + np.asarray(x, dtype=np.int64) * m) >> 8, -128, 127)


@dataclass
class QuantizeFloatXnnpack(Quantize):
    """XNNPACK's float -> int8/uint8 QUANTIZE (f32 -> qs8/qu8 vcvt): x * (1 / scale) in
    float32, clamped to the output range less the zero point (NaN to the lowest: x86's
    max/min), rounded to nearest even (TFLM divides and rounds half away from zero)."""

    template: ClassVar[str] = "kernels/quantize_xnnpack.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return ()

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        y = self.out_tensor()
        zp, lo, hi = int(p["output_zero_point"]), int(p["qmin"]), int(p["qmax"])
        with np.errstate(invalid="ignore", over="ignore"):
            v = np.asarray(inputs[0], np.float32) * np.float32(p["xnn_inv_scale"])
        v = np.where(np.isnan(v), np.float32(lo - zp), v)
        v = np.clip(v, np.float32(lo - zp), np.float32(hi - zp))
        return [(np.rint(v).astype(np.int64) + zp).astype(y.dtype.np)]


@dataclass
class RequantizeLiteRT(Quantize):
    """LiteRT's optimized int8 <-> uint8 Requantize (optimized_ops.h): its vector loop, 16
    elements at a time, takes the first 16 * floor(count / 16) elements with its NEON
    MultiplyByQuantizedMultiplier4Rows (double-rounding build: vqrdmulh(x << left, m), then
    a rounding shift right, both rounding ties toward +infinity; NEON_2_SSE on x86); the
    tail goes through TFLM's MultiplyByQuantizedMultiplier (ties away from zero)."""

    template: ClassVar[str] = "kernels/requantize_litert.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        y = self.out_tensor()
        x = inputs[0].astype(np.int64).reshape(len(inputs[0]), -1) - int(p["input_zero_point"])
        left, right = int(p["left_shift"]), int(p["right_shift"])
        high = (2 * (x << left) * int(p["multiplier"]) + (1 << 31)) >> 32
        vector = (high + ((1 << (right - 1)) if right else 0)) >> right
        tail = quant.multiply_by_quantized_multiplier(x, int(p["multiplier"]), int(p["shift"]))
        r = np.where(np.arange(x.shape[1]) < int(p["vector_count"]), vector, tail)
        q = np.clip(quant.add_int32(r, int(p["output_zero_point"])), int(p["qmin"]),
                    int(p["qmax"]))
        return [q.astype(y.dtype.np).reshape(len(inputs[0]), *y.shape)]


@dataclass
class QuantizeInt16LiteRT(Quantize):
    """LiteRT's optimized float -> int16 AffineQuantize (optimized_ops.h), numerics litert:
    its vector loop (NEON, NEON_2_SSE on x86) takes the first 8 * floor(count / 8) values,
    x * float(1.0 / double(scale)) in float32 rounded to nearest even; the scalar tail
    divides in double, x / double(scale), rounded half away from zero. A value outside int32
    (or NaN) converts to INT32_MIN in both (x86's conversions); the zero point is added with
    int32 wraparound and the sum clamped to int16 (measured on the oracle: 1e10, inf and NaN
    give -32768 with a zero point of 5, 32767 with -5). TFLM divides in float32."""

    template: ClassVar[str] = "kernels/quantize_int16_litert.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("add_wrap", "clamp")

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = np.asarray(inputs[0], np.float32).reshape(len(inputs[0]), -1)
        with np.errstate(invalid="ignore", over="ignore"):
            v = x * np.float32(p["xnn_inv_scale"])
            vector = np.where((v >= -2.0**31) & (v < 2.0**31), np.rint(v), quant.INT32_MIN)
            d = x.astype(np.float64) / float(np.float32(p["scale"]))
            t = np.trunc(np.where(np.isfinite(d), d, 0.0))
            t = t + (d >= t + 0.5) - (d <= t - 0.5)
            tail = np.where((d < 2147483647.5) & (d > -2147483648.5), t, quant.INT32_MIN)
        q = np.where(np.arange(x.shape[1]) < int(p["vector_count"]), vector, tail)
        out = np.clip(quant.wrap_int32(q.astype(np.int64) + int(p["output_zero_point"])),
                      -32768, 32767)
        return [out.astype(np.int16).reshape(len(inputs[0]), *self.out_tensor().shape)]


def _float_to_int16(layer: Quantize) -> Quantize:
    from codegen.emit import c_double, c_float

    scale = float(np.float32(layer.out_tensor().quant.scale))
    inv = np.float32(1.0 / scale)
    count = int(layer.params["count"])  # type: ignore[call-overload]
    params = {**layer.params, "xnn_inv_scale": float(inv), "inv_scale": c_float(float(inv)),
              "scale_double": c_double(scale), "vector_count": count // 8 * 8}
    return QuantizeInt16LiteRT(layer.op, layer.graph, inputs=layer.inputs,
                               outputs=layer.outputs, params=params)


def litert(layer: Quantize) -> Layer:
    """LiteRT's default interpreter: XNNPACK takes a float QUANTIZE (above) and int8 -> int8
    with a scale ratio in [1/256, 128]; LiteRT's optimized kernel takes int8 <-> uint8
    (above), and requantizes to and from int16 as TFLM does; uint8 -> uint8 and int8 -> int8
    outside XNNPACK's range are not reproduced."""
    from codegen.emit import c_float
    from codegen.ops import _litert

    if _int16(layer, "litert"):
        return _float_to_int16(layer) if layer.in_tensor().dtype is DType.FLOAT32 else layer
    x, y = layer.in_tensor(), layer.out_tensor()
    if x.dtype is DType.FLOAT32:
        inv = np.float32(1.0) / np.float32(y.quant.scale)
        return QuantizeFloatXnnpack(layer.op, layer.graph, inputs=layer.inputs,
                                    outputs=layer.outputs,
                                    params={**layer.params, "xnn_inv_scale": float(inv),
                                            "inv_scale": c_float(float(inv))})
    ratio = np.float32(x.quant.scale) / np.float32(y.quant.scale)
    if {x.dtype, y.dtype} == {DType.INT8, DType.UINT8}:
        shift = int(layer.params["shift"])
        params = {**layer.params, "left_shift": max(shift, 0), "right_shift": -min(shift, 0),
                  "vector_count": int(layer.params["count"]) // 16 * 16}  # type: ignore[call-overload]
        return RequantizeLiteRT(layer.op, layer.graph, inputs=layer.inputs,
                                outputs=layer.outputs, params=params)
    if (x.dtype, y.dtype) == (DType.INT8, DType.INT8) and (
            np.float32(1 / 256) <= ratio <= np.float32(128)):
        params = {"input_zero_point": x.quant.zero_point,
                  "output_zero_point": y.quant.zero_point,
                  "xnn_multiplier": int(np.rint(np.float32(256) * ratio))}
        return RequantizeXnnpack(layer.op, layer.graph, inputs=layer.inputs,
                                 outputs=layer.outputs, params=params)
    raise _litert.refuse(layer, "litert", f"{x.dtype.numpy_name} -> {y.dtype.numpy_name} "
                         "requantization by LiteRT's builtin kernel")


NUMERICS = {"litert-ref": litert_ref, "litert": litert}
