"""Checks shared by the operators whose tensors are not all int8: index, mask and shape
tensors (int32, bool) next to the quantized int8 values (ARG_MAX, GATHER, the comparisons,
SELECT_V2, CAST, ...), and the generation-time reading of their constant operands.

Each operator names the element types it takes in one tuple (`INT8`, `INDEX`, ...), so that an
int16 variant later only widens that tuple where TFLM's kernel has one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops.base import operand, require_dtype, unsupported

INT8 = (DType.INT8,)
INT32 = (DType.INT32,)
BOOL = (DType.BOOL,)
# int64 tensors are accepted only as constants (read at generation time): in the arena they
# would need 8-byte alignment, and no TFLM kernel that an int8 model reaches produces them.
CONSTANT_INDEX = (DType.INT32, DType.INT64)


def input_tensor(op: Operator, graph: Graph, position: int, role: str,
                 dtypes: tuple[DType, ...], *, constant: bool | None = False) -> Tensor:
    """An operand of one of `dtypes`; `constant` False: must be an activation, True: must be
    a constant, None: either."""
    t = operand(op, graph, position, role)
    require_dtype(op, t, dtypes, role)
    if constant is False and t.is_constant:
        raise unsupported(op, f"a constant {role} is not supported (the converter folds "
                          "operators of constants)")
    if constant is True and not t.is_constant:
        raise unsupported(op, f"{role} '{t.name}' must be constant")
    return t


def input_count(op: Operator, expected: int | Sequence[int]) -> None:
    allowed = (expected,) if isinstance(expected, int) else tuple(expected)
    if len(op.inputs) not in allowed:
        what = " or ".join(str(n) for n in allowed)
        raise unsupported(op, f"expected {what} inputs, found {len(op.inputs)}")


def output_tensor(op: Operator, graph: Graph, dtypes: tuple[DType, ...]) -> Tensor:
    if len(op.outputs) != 1 or op.outputs[0] < 0:
        raise unsupported(op, f"expected 1 output, found {len(op.outputs)}")
    y = graph.tensors[op.outputs[0]]
    require_dtype(op, y, dtypes, "output")
    return y


def quantized(op: Operator, t: Tensor, role: str) -> None:
    """An int8 tensor needs per-tensor quantization; other types carry none that matters."""
    if t.dtype is not DType.INT8:
        return
    if t.quant is None:
        raise unsupported(op, f"{role} '{t.name}' has no quantization parameters")
    if t.quant.per_channel:
        raise unsupported(op, f"{role} '{t.name}' must be quantized per tensor")


def same_quantization(op: Operator, tensors: Sequence[Tensor], why: str) -> None:
    """Values that are copied unchanged keep their meaning only under one scale and zero
    point (TFLM copies without looking)."""
    first = tensors[0]
    for t in tensors:
        quantized(op, t, f"'{t.name}'")
    if first.dtype is not DType.INT8:
        return
    for t in tensors[1:]:
        if (t.quant.scale, t.quant.zero_point) != (first.quant.scale, first.quant.zero_point):
            raise unsupported(
                op, f"'{t.name}' (scale {t.quant.scale:g}, zero point {t.quant.zero_point}) "
                f"is quantized differently from '{first.name}' (scale {first.quant.scale:g}, "
                f"zero point {first.quant.zero_point}); {why}")


def constant_values(op: Operator, graph: Graph, position: int, role: str,
                    dtypes: tuple[DType, ...] = CONSTANT_INDEX) -> np.ndarray:
    """The int64 values of a constant integer operand, in its shape."""
    t = input_tensor(op, graph, position, role, dtypes, constant=True)
    return np.asarray(t.data, dtype=np.int64).reshape(t.shape)


def axis_value(op: Operator, graph: Graph, position: int, rank: int,
               role: str = "axis") -> int:
    """A constant one-element int32 axis in [-rank, rank), made non-negative."""
    values = constant_values(op, graph, position, role, INT32).ravel()
    if values.size != 1:
        raise unsupported(op, f"{role} has {values.size} values, expected 1")
    return normalized_axis(op, int(values[0]), rank, role)


def normalized_axis(op: Operator, axis: int, rank: int, role: str = "axis") -> int:
    if not -rank <= axis < rank:
        raise unsupported(op, f"{role} {axis} is out of range for {rank} dimensions")
    return axis % rank


def require_shape(op: Operator, t: Tensor, expected: Sequence[int], role: str = "output") -> None:
    if tuple(t.shape) != tuple(int(d) for d in expected):
        raise unsupported(op, f"{role} '{t.name}' has shape {list(t.shape)}, expected "
                              f"{[int(d) for d in expected]}")


def require_rank(op: Operator, t: Tensor, low: int, high: int, role: str) -> None:
    if not low <= len(t.shape) <= high:
        span = f"{low}-D" if low == high else f"{low}-D to {high}-D"
        raise unsupported(op, f"{role} '{t.name}' is {len(t.shape)}-D; TFLM takes {span}")
