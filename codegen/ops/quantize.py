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
