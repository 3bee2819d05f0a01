"""SUM: int8 in/out over any constant set of axes (negative and repeated axes included, up to
6-D), keep_dims true or false, any input and output quantization.

TFLM: PrepareMeanOrSumHelper / EvalSumHelper (reduce_common.cc) and
reference_ops::QuantizedMeanOrSum with compute_sum = true: MEAN's arithmetic without the
1/n folded into the multiplier,
    out = clamp(MultiplyByQuantizedMultiplier(sum - zp_in * n, m, shift) + zp_out)
with m, shift = QuantizeMultiplier(s_in / s_out) in double. The checks, axes and loops are
MEAN's (codegen/ops/mean.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from codegen.model.ir import Graph, Operator
from codegen.ops import mean
from codegen.ops._binary import multiplier

OPCODES = ("SUM",)


@dataclass
class Sum(mean.Mean):
    template: ClassVar[str] = "kernels/sum.c.j2"

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [
            ("axes", f"{list(p['axes'])} ({p['count']} elements per sum)"),  # type: ignore[call-overload]
            ("multiplier", f"{p['multiplier']} shift {p['shift']}"),
            ("accumulator start", str(p["bias"])),
        ]


def prepare(op: Operator, graph: Graph) -> Sum:
    layer = mean.prepare_int8(op, graph)
    x, y = layer.in_tensor(), layer.out_tensor()
    mult, shift = multiplier(op, x.quant.scale / y.quant.scale, "output multiplier")
    params = {**layer.params, "multiplier": mult, "shift": shift}
    return Sum(op, graph, inputs=layer.inputs, outputs=layer.outputs, params=params)
