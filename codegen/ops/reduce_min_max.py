"""REDUCE_MAX, REDUCE_MIN: int8 in/out with one quantization, over any constant set of axes
(negative and repeated axes included, none at all: a copy), up to 6-D, keep_dims true or
false.

TFLM: PrepareMinMaxHelper / EvalMinMaxHelper (reduce_common.cc): int8 input and output
must have equal scales and zero points (TF_LITE_ENSURE_EQ at Eval; refused here), and
reference_ops::ReduceGeneric starts every output at -128 (max) or 127 (min) and folds the
raw values in with `in > current` (`in < current`). The axes and loops are MEAN's
(codegen/ops/_reduce.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops import _broadcast, _reduce, _typed
from codegen.ops.base import unsupported

OPCODES = ("REDUCE_MAX", "REDUCE_MIN")
# Types of TFLM's kernel on the integer path.
_TYPES = _typed.INT8


@dataclass
class ReduceMinMax(_reduce.ReductionLayer):
    template: ClassVar[str] = "kernels/reduce_min_max.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        axes = tuple(a + 1 for a in self.params["axes"])  # type: ignore[attr-defined]
        reduce = np.max if self.params["is_max"] else np.min
        out = reduce(inputs[0], axis=axes) if axes else inputs[0]
        return [out.reshape((inputs[0].shape[0], *self.out_tensor().shape))]

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("axes", f"{list(p['axes'])} ({p['count']} values per output)")]  # type: ignore[call-overload]


def prepare(op: Operator, graph: Graph) -> ReduceMinMax:
    _typed.input_count(op, 2)
    x = _typed.input_tensor(op, graph, 0, "input", _TYPES)
    y = _typed.output_tensor(op, graph, (x.dtype,))
    _typed.same_quantization(op, [x, y], "TFLM requires one quantization for both")
    _broadcast.check_rank(op, (x, y))
    shape = tuple(x.shape)
    axes = _reduce.axes(op, graph, len(shape))
    keep = bool(op.options.get("keep_dims", False))
    expected = [1 if d in axes else n for d, n in enumerate(shape) if keep or d not in axes]
    if y.size != int(np.prod(expected, dtype=np.int64)):
        raise unsupported(op, f"output shape {list(y.shape)} does not match the input "
                          f"{list(shape)} reduced over axes {list(axes)}")
    kept, reduced = _reduce.loop_groups(shape, axes)
    params: dict[str, object] = {
        "axes": axes, "keep_dims": keep, "is_max": op.opcode == "REDUCE_MAX",
        "count": int(np.prod([shape[a] for a in axes], dtype=np.int64)),
        "kept": kept, "reduced": reduced, "c_type": x.dtype.c_type,
        "initial": DType.INT8.qmin if op.opcode == "REDUCE_MAX" else DType.INT8.qmax,
    }
    return ReduceMinMax(op, graph, inputs=(x.index,), outputs=(y.index,), params=params)
