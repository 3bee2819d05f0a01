"""PRELU, int8 or int16 input and constant int8 alpha -> the input's type, alpha broadcast
against the input.

TFLM: CalculatePreluParams (prelu_common.cc) and reference_ops::BroadcastPrelu4DSlow:
  - multiplier 1 = in_scale / out_scale, multiplier 2 = in_scale * alpha_scale / out_scale
    (doubles), both through QuantizeMultiplier;
  - per element, x = input - input zero point; x >= 0 gives MultiplyByQuantizedMultiplier(x,
    multiplier 1), otherwise MultiplyByQuantizedMultiplier(x * (alpha - alpha zero point),
    multiplier 2); then the output zero point and the int8 clamp;
  - shapes of up to 4 dimensions, broadcast numpy-style (NdArrayDescsForElementwiseBroadcast);
  - int16 (16x8): the same arithmetic on int16 inputs with the int16 clamp; TFLM requires an
    int8 alpha there.

Generation time folds the alpha zero point into the alpha values (int16). The common case,
alpha repeating along the leading dimensions of an unbroadcast input (Keras PReLU, with or
without shared axes), runs as two flat loops; any other broadcast walks the four dimensions
with strides computed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.errors import UnsupportedError
from codegen.model.ir import DType, Graph, Operator
from codegen.ops.base import (
    CArray,
    Layer,
    only_output,
    operand,
    require_dtype,
    require_per_tensor,
    unsupported,
)

OPCODES = ("PRELU",)
_MAX_RANK = 4


@dataclass
class Prelu(Layer):
    runtime: ClassVar[tuple[str, ...]] = ("requantize", "clamp")
    template: ClassVar[str] = "kernels/prelu.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        n = inputs[0].shape[0]
        out_shape = tuple(self.out_tensor().shape)
        x = inputs[0].astype(np.int64) + int(p["input_offset"])
        x = np.broadcast_to(x, (n, *out_shape))
        alpha = np.broadcast_to(np.asarray(p["alpha_values"], dtype=np.int64), out_shape)
        positive = quant.multiply_by_quantized_multiplier(x, int(p["multiplier_1"]),
                                                          int(p["shift_1"]))
        negative = quant.multiply_by_quantized_multiplier(x * alpha, int(p["multiplier_2"]),
                                                          int(p["shift_2"]))
        out = quant.add_int32(np.where(x >= 0, positive, negative), int(p["output_zero_point"]))
        dtype = self.out_tensor().dtype
        return [np.clip(out, dtype.qmin, dtype.qmax).astype(dtype.np)]

    def constants(self) -> list[CArray]:
        alpha = np.asarray(self.params["alpha_values"], dtype=np.int16)
        return [CArray("alpha", alpha.ravel())]

    def inplace_inputs(self) -> tuple[int, ...]:
        return (0,) if self.params["tiled"] else ()

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("multiplier x >= 0", f"{p['multiplier_1']} shift {p['shift_1']}"),
                ("multiplier x < 0", f"{p['multiplier_2']} shift {p['shift_2']}"),
                ("alpha", f"{list(np.shape(p['alpha_values']))}, "
                          f"{'tiled' if p['tiled'] else 'strided'} broadcast")]


def _multiplier(op: Operator, real: float) -> tuple[int, int]:
    try:
        return quant.quantize_multiplier(real)
    except UnsupportedError as error:
        raise unsupported(op, str(error)) from None


def _extended(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (1,) * (_MAX_RANK - len(shape)) + tuple(shape)


def _broadcast_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> list[int]:
    """Element strides of `shape` (extended to 4-D) walking `out`; 0 where it broadcasts."""
    ext = _extended(shape)
    strides, step = [0] * _MAX_RANK, 1
    for d in reversed(range(_MAX_RANK)):
        strides[d] = step if ext[d] == out[d] else 0
        step *= ext[d]
    return strides


def _prepare(op: Operator, graph: Graph, dtype: DType) -> Prelu:
    x = operand(op, graph, 0, "input")
    a = operand(op, graph, 1, "alpha")
    y = only_output(op, graph)
    for tensor, role, dtypes in ((x, "input", dtype), (a, "alpha", DType.INT8),
                                 (y, "output", dtype)):
        require_dtype(op, tensor, (dtypes,), role)
        require_per_tensor(op, tensor, role)
    if x.is_constant:
        raise unsupported(op, "a constant input is not supported")
    if a.data is None:
        raise unsupported(op, "alpha must be a constant tensor")
    if max(len(x.shape), len(a.shape), len(y.shape)) > _MAX_RANK:
        raise unsupported(op, f"shapes of more than {_MAX_RANK} dimensions are not supported")
    try:
        broadcast = np.broadcast_shapes(tuple(x.shape), tuple(a.shape))
    except ValueError:
        raise unsupported(op, f"alpha shape {list(a.shape)} does not broadcast against input "
                          f"shape {list(x.shape)}") from None
    if tuple(broadcast) != tuple(y.shape):
        raise unsupported(op, f"output shape {list(y.shape)} is not the broadcast shape "
                          f"{list(broadcast)}")

    in_scale, alpha_scale, out_scale = (float(np.float32(t.quant.scale)) for t in (x, a, y))
    multiplier_1, shift_1 = _multiplier(op, in_scale / out_scale)
    multiplier_2, shift_2 = _multiplier(op, in_scale * alpha_scale / out_scale)
    alpha_values = a.data.astype(np.int64).reshape(a.shape) - a.quant.zero_point

    out4 = _extended(tuple(y.shape))
    alpha4 = _extended(tuple(a.shape))
    size, alpha_size = y.size, a.size
    # Tiled: the input is not broadcast and alpha covers the trailing dimensions of the
    # output (after leading 1s), so the alpha index is the output index modulo its size.
    lead = next((d for d in range(_MAX_RANK) if alpha4[d] != 1), _MAX_RANK)
    tiled = tuple(x.shape) == tuple(y.shape) and alpha4[lead:] == out4[lead:]
    params: dict[str, object] = {
        "input_offset": -x.quant.zero_point,
        "output_zero_point": y.quant.zero_point,
        "multiplier_1": multiplier_1,
        "shift_1": shift_1,
        "multiplier_2": multiplier_2,
        "shift_2": shift_2,
        "alpha_values": alpha_values,
        "tiled": tiled,
        "outer": size // alpha_size if tiled else 0,
        "alpha_size": alpha_size,
        "extents": list(out4),
        "input_strides": _broadcast_strides(tuple(x.shape), out4),
        "alpha_strides": _broadcast_strides(tuple(a.shape), out4),
        "c_type": dtype.c_type, "qmin": dtype.qmin, "qmax": dtype.qmax,
    }
    return Prelu(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


def prepare_int8(op: Operator, graph: Graph) -> Prelu:
    return _prepare(op, graph, DType.INT8)


def prepare_int16(op: Operator, graph: Graph) -> Prelu:
    return _prepare(op, graph, DType.INT16)


KERNELS = {DType.INT8: prepare_int8, DType.INT16: prepare_int16}


def _litert(mode: str) -> Callable[[Prelu], Prelu]:
    def adapt(layer: Prelu) -> Prelu:
        """LiteRT's PRELU (its builtin kernels; XNNPACK takes it in float only) is TFLM's
        arithmetic with both multipliers computed in float32 (PreluPrepare:
        in_scale / out_scale and in_scale * alpha_scale / out_scale; TFLM's in double), and
        fails to prepare when the input does not have the output's shape (an input
        broadcast against alpha)."""
        from codegen.ops import _litert

        x, y = layer.in_tensor(), layer.out_tensor()
        if tuple(x.shape) != tuple(y.shape):
            raise _litert.refuse(layer, mode, "LiteRT's PRELU takes an input of the output's "
                                 "shape only")
        a = layer.graph.tensors[layer.op.inputs[1]]
        s_in, s_alpha, s_out = (np.float32(t.quant.scale) for t in (x, a, y))
        multiplier_1, shift_1 = _multiplier(layer.op, float(s_in / s_out))
        multiplier_2, shift_2 = _multiplier(layer.op, float(s_in * s_alpha / s_out))
        params = {**layer.params, "multiplier_1": multiplier_1, "shift_1": shift_1,
                  "multiplier_2": multiplier_2, "shift_2": shift_2}
        return Prelu(layer.op, layer.graph, inputs=layer.inputs, outputs=layer.outputs,
                     params=params)
    return adapt


NUMERICS = {"litert-ref": _litert("litert-ref"), "litert": _litert("litert")}
