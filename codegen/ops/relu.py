"""RELU, RELU6 and LEAKY_RELU: standalone int8 -> int8 operators, as a 256-entry table;
int16 -> int16 (16x8) computed per element.

TFLM:
  - RELU (CalculateReluOpData, ReluQuantized): requantization by in_scale / out_scale (a
    double division) with MultiplyByQuantizedMultiplier, plus the output zero point, clamped
    to [max(-128, output zero point), 127].
  - RELU6 (Relu6Prepare, Relu6Quantized): a clamp of the raw input to [input zero point,
    FloatToQuantizedType(6.0f, input scale, input zero point)] - no requantization at all.
    Quirk reproduced: the output's scale and zero point are never read, so TFLM's result is
    in the input's quantization whatever the output tensor says.
  - LEAKY_RELU (CalculateOpDataLeakyRelu, reference_ops::QuantizeLeakyRelu): inputs at or
    above the zero point use the identity multiplier in_scale / out_scale, the others
    in_scale * alpha / out_scale (both in double: the oracle matches double and not float32
    arithmetic), then the output zero point and the int8 clamp. A negative alpha multiplier
    is applied as its magnitude and the product negated afterwards, so its ties round the
    other way than a negative multiplier would (reproduced).
int16 runs the same arithmetic (ReluQuantized / Relu6Quantized / QuantizeLeakyRelu
instantiated on int16) with the int16 range, in C per element: a table of every int16 value
would take 64 KiB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.emit import render
from codegen.errors import UnsupportedError
from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _litert
from codegen.ops._lut import LutLayer, elementwise_operands
from codegen.ops.base import CArray, require_zero_point_zero, unsupported

OPCODES = ("RELU", "RELU6", "LEAKY_RELU")


@dataclass
class Rectifier(LutLayer):
    def function(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        if self.opcode == "RELU6":
            return np.clip(x, int(p["lower"]), int(p["upper"]))
        value = x - int(p["input_zero_point"])
        out = quant.multiply_by_quantized_multiplier(value, int(p["multiplier"]),
                                                     int(p["shift"]))
        if self.opcode == "LEAKY_RELU":
            alpha_multiplier = int(p["alpha_multiplier"])
            negative = quant.multiply_by_quantized_multiplier(
                value, abs(alpha_multiplier), int(p["alpha_shift"]))
            out = np.where(value >= 0, out, -negative if alpha_multiplier < 0 else negative)
        out = quant.add_int32(out, int(p["output_zero_point"]))  # TFLM's int32 addition
        return np.clip(out, int(p["lower"]), int(p["upper"]))

    def summary(self) -> str:
        return f"{self.opcode}: " + ", ".join(f"{k} {v}" for k, v in self.describe())

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        rows = [("clamp", f"[{p['lower']}, {p['upper']}]")]
        if self.opcode != "RELU6":
            rows.append(("multiplier", f"{p['multiplier']} shift {p['shift']}"))
        if self.opcode == "LEAKY_RELU":
            rows.append(("alpha multiplier", f"{p['alpha_multiplier']} shift {p['alpha_shift']}"))
        return rows


def _multiplier(op: Operator, real: float) -> tuple[int, int]:
    try:
        return quant.quantize_multiplier(real)
    except UnsupportedError as error:
        raise unsupported(op, str(error)) from None


def float_to_quantized(op: Operator, value: float, scale: float, zero_point: int,
                       dtype: DType = DType.INT8) -> int:
    """TFLM's FloatToQuantizedType<T>: round(value / scale) in float32 plus the zero point,
    clamped to T. A quotient beyond int32 would be converted with undefined behaviour."""
    ratio = float(np.float32(value) / np.float32(scale))
    if not abs(ratio) < 2.0**31 - 65536:
        raise unsupported(op, f"{value:g} / scale {scale:g} overflows TFLM's int32 conversion")
    return int(np.clip(quant.round_half_away(ratio) + zero_point, dtype.qmin, dtype.qmax))


@dataclass
class RectifierInt16(Rectifier):
    """int16: the same arithmetic (`function`), in C per element."""

    template: ClassVar[str] = "kernels/rectifier_int16.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        # RELU6 only clamps the raw input
        return ("clamp",) if self.opcode == "RELU6" else ("requantize", "clamp")

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        out = self.function(inputs[0].astype(np.int64))
        return [out.astype(np.int16).reshape(inputs[0].shape[0], *self.out_tensor().shape)]

    def constants(self) -> list[CArray]:
        return []

    def kernel(self, symbol: str) -> str:
        return render(self.template, fn=symbol, layer=self, count=self.out_tensor().size,
                      **self.params)


_LAYERS = {DType.INT8: Rectifier, DType.INT16: RectifierInt16}


def _prepare(op: Operator, graph: Graph, dtype: DType) -> Rectifier:
    x, y = elementwise_operands(op, graph, dtype)
    in_scale, out_scale = x.quant.scale, y.quant.scale
    params: dict[str, object] = {
        "input_zero_point": x.quant.zero_point,
        "output_zero_point": y.quant.zero_point,
        "lower": dtype.qmin,
        "upper": dtype.qmax,
    }
    if op.opcode == "RELU6":
        params["lower"] = x.quant.zero_point
        params["upper"] = float_to_quantized(op, 6.0, in_scale, x.quant.zero_point, dtype)
    elif op.opcode == "RELU":
        real = float(np.float32(in_scale)) / float(np.float32(out_scale))  # in double
        multiplier, shift = _multiplier(op, real)
        # quantized_activation_min: zero point + roundf(0.0f / scale), at least the type's.
        params.update(multiplier=multiplier, shift=shift,
                      lower=max(dtype.qmin, y.quant.zero_point))
    else:
        alpha = np.float32(op.options.get("alpha", 0.0))  # the schema default
        identity = float(np.float32(in_scale)) / float(np.float32(out_scale))
        negative = float(np.float32(in_scale)) * float(alpha) / float(np.float32(out_scale))
        multiplier, shift = _multiplier(op, identity)
        alpha_multiplier, alpha_shift = _multiplier(op, negative)
        params.update(multiplier=multiplier, shift=shift, alpha=float(alpha),
                      alpha_multiplier=alpha_multiplier, alpha_shift=alpha_shift)
    return _LAYERS[dtype](op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


def prepare_int8(op: Operator, graph: Graph) -> Rectifier:
    return _prepare(op, graph, DType.INT8)


def prepare_int16(op: Operator, graph: Graph) -> Rectifier:
    layer = _prepare(op, graph, DType.INT16)
    if op.opcode == "RELU":  # ReluPrepare requires it for int16; RELU6 and LEAKY_RELU do not
        require_zero_point_zero(op, layer.in_tensor(), "input")
        require_zero_point_zero(op, layer.out_tensor(), "output")
    return layer


KERNELS = {DType.INT8: prepare_int8, DType.INT16: prepare_int16}


# -- numerics modes litert-ref and litert (codegen/numerics.py) ------------------------------

def _f32(value: float) -> np.float32:
    return np.float32(value)


@dataclass
class RectifierLiteRT(Rectifier):
    """RELU, RELU6 and LEAKY_RELU as LiteRT's builtin kernels compute them, and LEAKY_RELU as
    XNNPACK does (`xnnpack` set), as a table like TFLM's:
      - RELU: TFLM's arithmetic, the multiplier of in_scale / out_scale divided in float32;
      - RELU6 (ReluPrepare, QuantizedReluX): requantized like RELU by in_scale / out_scale (a
        float32 division), clamped to [max(-128, zp), min(127, zp + roundf(6.0f / out_scale))]:
        unlike TFLM's, the output quantization is read;
      - LEAKY_RELU (LeakyReluPrepare, QuantizeLeakyRelu): TFLM's arithmetic with both
        multipliers computed in float32 (in_scale / out_scale, in_scale * alpha / out_scale);
      - LEAKY_RELU in XNNPACK (qs8 vlrelu): multipliers lrintf(256 * s) of the float32 scales
        s = in_scale / out_scale and s * alpha, then (zp_out << 8) + 0x80 + (x - zp_in) * m,
        arithmetic shift right by 8, clamp."""

    def function(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        if self.opcode == "RELU6":
            out = quant.multiply_by_quantized_multiplier(x - int(p["input_zero_point"]),
                                                         int(p["multiplier"]), int(p["shift"]))
            out = quant.add_int32(out, int(p["output_zero_point"]))
            return np.clip(out, int(p["lower"]), int(p["upper"]))
        if not p.get("xnnpack"):
            return super().function(x)
        value = x - int(p["input_zero_point"])
        m = np.where(value >= 0, int(p["positive_multiplier"]), int(p["negative_multiplier"]))
        acc = (int(p["output_zero_point"]) << 8) + 0x80 + value * m
        return np.clip(acc >> 8, -128, 127)


@dataclass
class RectifierInt16LiteRT(RectifierLiteRT, RectifierInt16):
    """int16 RELU, RELU6 and LEAKY_RELU as LiteRT's builtin kernels compute them (the
    arithmetic of `RectifierLiteRT` on int16, XNNPACK taking none): in C per element. RELU6
    requantizes like RELU (unlike TFLM's, which only clamps)."""

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("requantize", "add_wrap", "clamp")


def _litert_layer(layer: Rectifier, params: dict[str, object]) -> Rectifier:
    cls = RectifierInt16LiteRT if isinstance(layer, RectifierInt16) else RectifierLiteRT
    return cls(layer.op, layer.graph, inputs=layer.inputs, outputs=layer.outputs,
               params=params)


def _dtype(layer: Rectifier) -> DType:
    return DType.INT16 if isinstance(layer, RectifierInt16) else DType.INT8


def _require_zero_points(layer: Rectifier, mode: str) -> None:
    """LiteRT's ReluPrepare and LeakyReluPrepare refuse an int16 tensor whose zero point is
    not 0 (TFLM's RELU6 and LEAKY_RELU take it)."""
    if isinstance(layer, RectifierInt16) and (layer.in_tensor().quant.zero_point
                                              or layer.out_tensor().quant.zero_point):
        raise _litert.refuse(layer, mode, "LiteRT fails to prepare an int16 layer whose zero "
                             "points are not 0")


def _relu6_litert(layer: Rectifier) -> Rectifier:
    x, y = layer.in_tensor(), layer.out_tensor()
    dtype = _dtype(layer)
    multiplier, shift = _multiplier(layer.op, float(_f32(x.quant.scale) / _f32(y.quant.scale)))
    top = quant.round_half_away(float(_f32(6.0) / _f32(y.quant.scale)))
    params = {**layer.params, "multiplier": multiplier, "shift": shift,
              "lower": max(dtype.qmin, y.quant.zero_point),
              "upper": min(dtype.qmax, y.quant.zero_point + top)}
    return _litert_layer(layer, params)


def _leaky_relu_float32(layer: Rectifier) -> Rectifier:
    x, y = layer.in_tensor(), layer.out_tensor()
    s_in, s_out, alpha = _f32(x.quant.scale), _f32(y.quant.scale), _f32(layer.params["alpha"])
    multiplier, shift = _multiplier(layer.op, float(s_in / s_out))
    alpha_multiplier, alpha_shift = _multiplier(layer.op, float(s_in * alpha / s_out))
    params = {**layer.params, "multiplier": multiplier, "shift": shift,
              "alpha_multiplier": alpha_multiplier, "alpha_shift": alpha_shift}
    return _litert_layer(layer, params)


def _xnnpack_leaky_relu(layer: Rectifier) -> Rectifier | None:
    """XNNPACK's LEAKY_RELU, or None where the delegate leaves the layer to LiteRT (an alpha
    of 0 or not normal, scales outside its range)."""
    x, y = layer.in_tensor(), layer.out_tensor()
    alpha = _f32(layer.params["alpha"])
    if not np.isfinite(alpha) or alpha == 0 or abs(alpha) < np.finfo(np.float32).tiny:
        return None
    positive = _f32(x.quant.scale) / _f32(y.quant.scale)
    negative = positive * alpha
    if not (_f32(1 / 256) <= positive <= _f32(128)) or not (
            _f32(-127.99609375) <= negative <= _f32(128) and abs(negative) >= _f32(1 / 256)):
        return None
    params = {**layer.params, "xnnpack": True,
              "positive_multiplier": int(np.rint(_f32(256) * positive)),
              "negative_multiplier": int(np.rint(_f32(256) * negative))}
    return RectifierLiteRT(layer.op, layer.graph, inputs=layer.inputs, outputs=layer.outputs,
                           params=params)


def _relu_float32(layer: Rectifier) -> Rectifier:
    """RELU as LiteRT prepares it: TFLM's arithmetic, the multiplier of in_scale / out_scale
    divided in float32 (ReluPrepare; TFLM divides in double)."""
    x, y = layer.in_tensor(), layer.out_tensor()
    multiplier, shift = _multiplier(layer.op, float(_f32(x.quant.scale) / _f32(y.quant.scale)))
    params = {**layer.params, "multiplier": multiplier, "shift": shift}
    return _litert_layer(layer, params)


def litert_ref(layer: Rectifier) -> Rectifier:
    """LiteRT's reference kernels: RELU, RELU6 and LEAKY_RELU requantized as above (int8 and
    int16 alike)."""
    _require_zero_points(layer, "litert-ref")
    if layer.opcode == "RELU6":
        return _relu6_litert(layer)
    if layer.opcode == "LEAKY_RELU":
        return _leaky_relu_float32(layer)
    return _relu_float32(layer)


def litert(layer: Rectifier) -> Rectifier:
    """LiteRT's default interpreter: XNNPACK takes int8 LEAKY_RELU where it can (the builtin
    kernel, LiteRT's float32 multipliers, the rest); RELU and RELU6 stay with the builtin
    kernels (XNNPACK takes them in float only), as in litert-ref; int16 layers are all
    LiteRT's builtin kernels (its optimized int16 LEAKY_RELU gives the reference's values on
    the 16x8 test models)."""
    _require_zero_points(layer, "litert")
    if layer.opcode == "LEAKY_RELU" and not isinstance(layer, RectifierInt16):
        xnnpack = _xnnpack_leaky_relu(layer)
        return xnnpack if xnnpack is not None else _leaky_relu_float32(layer)
    return litert_ref(layer)


NUMERICS = {"litert-ref": litert_ref, "litert": litert}
