"""MAXIMUM, MINIMUM: int8 or int16 in/out with one quantization shared by both inputs and
the output, numpy-style broadcasting up to 6-D (a constant operand and the same tensor on
both inputs included).

TFLM: maximum_minimum.cc has no Prepare: reference_ops::MaximumMinimumBroadcastSlow compares
the raw int8 (or int16) values and writes the winner unchanged, whatever the tensors'
quantization. That is only the maximum/minimum of the real values when every tensor has the
same scale and zero point (which the converter guarantees), so other models are refused
rather than given TFLM's meaningless result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops._binary import (
    BinaryLayer,
    activation_inputs,
    describe_levels,
    prepare_binary,
)
from codegen.ops.base import unsupported

OPCODES = ("MAXIMUM", "MINIMUM")


@dataclass
class MaximumMinimum(BinaryLayer):
    template: ClassVar[str] = "kernels/maximum_minimum.c.j2"

    def combine(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # TFLM's MaximumOp is `el1 > el2 ? el1 : el2`, MinimumOp `el1 < el2 ? el1 : el2`.
        return np.maximum(a, b) if self.params["maximum"] else np.minimum(a, b)

    def macs(self) -> int:
        return 0

    def describe(self) -> list[tuple[str, str]]:
        return [("broadcast", describe_levels(self.params["levels"]))]  # type: ignore[arg-type]


def _prepare(op: Operator, graph: Graph, dtype: DType) -> MaximumMinimum:
    x1, x2, y, params = prepare_binary(op, graph, dtype)
    for t in (x1, x2):
        if (t.quant.scale, t.quant.zero_point) != (y.quant.scale, y.quant.zero_point):
            raise unsupported(
                op, f"'{t.name}' (scale {t.quant.scale:g}, zero point {t.quant.zero_point}) is "
                f"quantized differently from the output (scale {y.quant.scale:g}, zero point "
                f"{y.quant.zero_point}); TFLM compares raw values, which needs one "
                "quantization for all three")
    params["maximum"] = op.opcode == "MAXIMUM"
    return MaximumMinimum(op, graph,
                          inputs=activation_inputs(params["operands"]),  # type: ignore[arg-type]
                          outputs=(y.index,), params=params)


def prepare_int8(op: Operator, graph: Graph) -> MaximumMinimum:
    return _prepare(op, graph, DType.INT8)


def prepare_int16(op: Operator, graph: Graph) -> MaximumMinimum:
    return _prepare(op, graph, DType.INT16)


KERNELS = {DType.INT8: prepare_int8, DType.INT16: prepare_int16}
