"""HARD_SWISH, int8 -> int8, as a 256-entry table: x * relu6(x + 3) / 6.

TFLM: HardSwishPrepare (hard_swish_common.cc) and reference_ops::HardSwish, all in int16:
  - Prepare, in float32: hires_input_scale = input_scale / 128, then
    output multiplier = hires / output_scale and reluish multiplier = hires / (3 / 32768),
    each through QuantizeMultiplier and DownScaleInt32ToInt16Multiplier (a rounded Q15);
    an output multiplier of 1 or more (exponent > 0) is rejected;
  - Eval: the input (minus its zero point) times 128; its product with the output
    multiplier (SaturatingRoundingDoublingHighMul); the "reluish" value: saturating left
    shift by exponent - 1, the multiplier, a last saturating shift by 1 (or a rounding right
    shift for negative exponents), then mapped from [-1, 1] to [0, 1]; the two multiplied with
    the truncating SaturatingDoublingHighMul; RoundingDivideByPOT by the output exponent;
    the output zero point added in int16; clamp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen import quant
from codegen.errors import UnsupportedError
from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _fixedpoint as fp
from codegen.ops._lut import LutLayer, elementwise_operands
from codegen.ops.base import unsupported

OPCODES = ("HARD_SWISH",)


@dataclass
class HardSwish(LutLayer):
    def function(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        reluish_exponent = int(p["reluish_exponent"])
        value = fp.wrap_int16(x - int(p["input_zero_point"]))
        hires = fp.wrap_int16(value * 128)
        preshift_output = fp.srdhm16(hires, int(p["output_multiplier"]))
        reluish = hires
        if reluish_exponent > 0:
            reluish = fp.saturating_left_shift16(reluish, reluish_exponent - 1)
        reluish = fp.srdhm16(reluish, int(p["reluish_multiplier"]))
        if reluish_exponent > 0:
            reluish = fp.saturating_left_shift16(reluish, 1)
        if reluish_exponent < 0:
            reluish = fp.rdbp16(reluish, -reluish_exponent)
        reluish = (reluish + (1 << 15)) >> 1
        preshift = fp.sdhm16(reluish, preshift_output)
        out = fp.rdbp16(preshift, -int(p["output_exponent"]))
        out = fp.wrap_int16(out + int(p["output_zero_point"]))
        return np.clip(out, -128, 127)

    def summary(self) -> str:
        p = self.params
        return (f"HARD_SWISH: reluish multiplier {p['reluish_multiplier']} exponent "
                f"{p['reluish_exponent']}, output multiplier {p['output_multiplier']} exponent "
                f"{p['output_exponent']}")

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [
            ("reluish multiplier", f"{p['reluish_multiplier']} exponent {p['reluish_exponent']}"),
            ("output multiplier", f"{p['output_multiplier']} exponent {p['output_exponent']}"),
        ]


def downscale_to_int16(multiplier: int) -> int:
    """DownScaleInt32ToInt16Multiplier: a Q31 multiplier rounded to Q15."""
    if multiplier >= quant.INT32_MAX - (1 << 15):
        return fp.INT16_MAX
    return (multiplier + (1 << 15)) >> 16


def _int16_multiplier(op: Operator, real: float) -> tuple[int, int]:
    try:
        multiplier, exponent = quant.quantize_multiplier(real)
    except UnsupportedError as error:
        raise unsupported(op, str(error)) from None
    return downscale_to_int16(multiplier), exponent


def prepare(op: Operator, graph: Graph) -> HardSwish:
    x, y = elementwise_operands(op, graph)
    hires_input_scale = np.float32(1.0 / 128.0) * np.float32(x.quant.scale)
    reluish_scale = np.float32(3.0) / np.float32(32768.0)
    output_multiplier, output_exponent = _int16_multiplier(
        op, float(np.float32(hires_input_scale / np.float32(y.quant.scale))))
    if output_exponent > 0:
        raise unsupported(op, f"input scale / 128 / output scale must be below 1, found "
                          f"{float(hires_input_scale) / y.quant.scale:g}")
    reluish_multiplier, reluish_exponent = _int16_multiplier(
        op, float(np.float32(hires_input_scale / reluish_scale)))
    params: dict[str, object] = {
        "input_zero_point": x.quant.zero_point,
        "output_zero_point": y.quant.zero_point,
        "output_multiplier": output_multiplier,
        "output_exponent": output_exponent,
        "reluish_multiplier": reluish_multiplier,
        "reluish_exponent": reluish_exponent,
    }
    return HardSwish(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)


# TFLM has no int16 HARD_SWISH kernel (hard_swish.cc handles float32 and int8 only).
KERNELS = {DType.INT8: prepare}
