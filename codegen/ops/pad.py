"""PAD, PADV2: int8 or int16 in/out, constant int32 paddings (none negative), up to 5-D;
PAD pads with the output zero point, PADV2 with its constant value; input and output
quantized alike.

TFLM: PadPrepare / PadEval (kernels/pad_common.cc, pad.cc) and reference_ops::PadImpl, which
writes the output in order, taking the next input element inside the padded box and the
padding value outside it. The padding value is the output zero point for int8 (PAD, or
PADV2 without a third input), 0 for int16 (quirk reproduced: TFLM's int16 case does not
read the zero point), or PADV2's constant_values scalar of the input's type, whose
scale and zero point TFLM requires to equal the output's (for int8; the same is required
here for int16, where TFLM copies the raw value).

The kernel fills the output with the padding value and copies the input into the box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops._copy import (
    CopyLayer,
    Nest,
    activation_input,
    constant_vector,
    dense_strides,
    fill_step,
    require_same_quantization,
    require_shape,
    single_output,
)
from codegen.ops.base import operand, require_dtype, unsupported

OPCODES = ("PAD", "PADV2")
MAX_DIMS = 5  # reference_ops::PadKernelMaxDimensionCount()


@dataclass
class Pad(CopyLayer):
    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = inputs[0]
        y = self.out_tensor()
        out = np.full((x.shape[0], *y.shape), int(self.params["value"]), dtype=y.dtype.np)
        box = tuple(slice(lo, lo + d) for lo, d in zip(self.params["before"], x.shape[1:],
                                                        strict=True))
        out[(slice(None), *box)] = x
        return [out]

    def describe(self) -> list[tuple[str, str]]:
        pairs = zip(self.params["before"], self.params["after"], strict=True)
        return [("paddings", str([list(p) for p in pairs])),
                ("value", str(self.params["value"]))]


def prepare(op: Operator, graph: Graph) -> Pad:
    x = activation_input(op, graph, 0)
    y = single_output(op, graph)
    require_same_quantization(op, x, y)
    rank = len(x.shape)
    if rank > MAX_DIMS:
        raise unsupported(op, f"{rank}-D input; TFLM pads up to {MAX_DIMS} dimensions")
    if len(y.shape) != rank:
        raise unsupported(op, f"output rank {len(y.shape)} differs from input rank {rank}")
    # TFLM reads the paddings as int32 whatever their declared type.
    paddings = constant_vector(op, graph, 1, "paddings", 2 * rank)
    before, after = paddings[0::2], paddings[1::2]
    if any(p < 0 for p in paddings):
        raise unsupported(op, f"negative paddings {paddings} are not supported "
                              "(TFLM does not crop for them)")
    require_shape(op, y, [d + b + a for d, b, a in zip(x.shape, before, after, strict=True)])

    value = _padding_value(op, graph, y)
    steps: list = []
    if y.size != x.size:
        steps.append(fill_step("output0", y.size, value, y.dtype))
    out_strides = dense_strides(y.shape)
    base = sum(b * s for b, s in zip(before, out_strides, strict=True))
    steps.append(Nest.scatter("input0", "output0", x.shape, out_strides, base))
    layer = Pad(op, graph, inputs=(x.index,), outputs=(y.index,),
                params={"before": before, "after": after, "value": value})
    layer.set_steps(steps)
    return layer


def _padding_value(op: Operator, graph: Graph, y: Tensor) -> int:
    # Without constant_values TFLM pads int8 with the zero point and int16 with 0.
    zero_point = y.quant.zero_point if y.dtype is DType.INT8 else 0
    if not y.dtype.qmin <= zero_point <= y.dtype.qmax:
        raise unsupported(op, f"output zero point {zero_point} is outside the {y.dtype_name} "
                              "range")
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return zero_point
    c = operand(op, graph, 2, "constant_values")
    require_dtype(op, c, (y.dtype,), "constant_values")
    if c.data is None:
        raise unsupported(op, "constant_values must be constant")
    if c.size != 1:
        raise unsupported(op, f"constant_values must be a scalar, found {c.size} values")
    if c.quant is None or c.quant.per_channel or (
            (c.quant.scale, c.quant.zero_point) != (y.quant.scale, y.quant.zero_point)):
        raise unsupported(op, "constant_values must be quantized like the output "
                              "(TFLM requires the same scale and zero point)")
    return int(np.asarray(c.data).ravel()[0])


KERNELS = dict.fromkeys((DType.INT8, DType.INT16), prepare)
