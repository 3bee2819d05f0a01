"""Shared by the elementwise operators: numpy-style broadcasting of operand shapes, the
loop levels that walk a broadcast, and the operands' C sources (parameter or constant).

TFLM broadcasts the binary operators (ADD, SUB, MUL, MAXIMUM, MINIMUM) numpy-style: shapes
are aligned on their last dimension and padded with leading 1s, and a dimension of 1 repeats
against the other operand's (reference_ops::BroadcastBinaryOpSimple). Which element of each
operand meets which output element is all that matters for the result, so generation time
reduces the broadcast to a few loop levels: dimensions of size 1 in the output disappear, and
neighbouring dimensions merge into one level when every operand walks them contiguously (or
not at all). (1,1,1,17)+(1,5,3,17) becomes 15 x 17 with strides (0, 17)/(1, 1);
(1,5,1,3)*(1,1,4,3) becomes 5 x 4 x 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from codegen.model.ir import Operator, Tensor
from codegen.ops.base import unsupported

# TFLM's broadcasting binary kernels are named ...6DSlow; its CONCATENATION refuses more than
# 6 dimensions. Ranks above this are refused here rather than relied upon.
MAX_RANK = 6


@dataclass(frozen=True)
class Level:
    """One loop over `count` output elements; operand i advances `strides[i]` elements per
    step (0: the operand is broadcast along this level). The output is always contiguous."""

    count: int
    strides: tuple[int, ...]


def check_rank(op: Operator, tensors: Sequence[Tensor]) -> None:
    for t in tensors:
        if len(t.shape) > MAX_RANK:
            raise unsupported(op, f"'{t.name}' has {len(t.shape)} dimensions; at most "
                              f"{MAX_RANK} are supported")
        if t.size == 0:
            raise unsupported(op, f"'{t.name}' has no elements (shape {list(t.shape)})")


def broadcast_output(op: Operator, inputs: Sequence[Tensor], output: Tensor) -> tuple[int, ...]:
    """The broadcast shape of the inputs; refuses shapes that do not broadcast and an output
    whose shape is not the broadcast shape."""
    check_rank(op, [*inputs, output])
    try:
        shape = tuple(int(d) for d in np.broadcast_shapes(*(tuple(t.shape) for t in inputs)))
    except ValueError:
        shapes = " and ".join(str(list(t.shape)) for t in inputs)
        raise unsupported(op, f"input shapes {shapes} do not broadcast") from None
    if shape != tuple(output.shape):
        raise unsupported(op, f"output shape {list(output.shape)} is not the broadcast shape "
                          f"{list(shape)} of the inputs")
    return shape


def extended(shape: Sequence[int], rank: int) -> tuple[int, ...]:
    return (1,) * (rank - len(shape)) + tuple(int(d) for d in shape)


def loop_levels(out_shape: Sequence[int], shapes: Sequence[Sequence[int]]) -> list[Level]:
    """The loop levels (outermost first) that walk `out_shape` with each operand of
    `shapes` broadcast against it. The innermost level's strides are 0 or 1."""
    rank = len(out_shape)
    ext = [extended(s, rank) for s in shapes]
    walked = [1] * len(shapes)  # elements of each operand inside the current dimension
    inner_first: list[Level] = []
    for d in reversed(range(rank)):
        count = int(out_shape[d])
        if count != 1:
            strides = tuple(0 if e[d] == 1 else walked[i] for i, e in enumerate(ext))
            last = inner_first[-1] if inner_first else None
            if last is not None and all(
                s == p * last.count if p else s == 0
                for s, p in zip(strides, last.strides, strict=True)
            ):
                inner_first[-1] = Level(last.count * count, last.strides)
            else:
                inner_first.append(Level(count, strides))
        walked = [w * e[d] for w, e in zip(walked, ext, strict=True)]
    if not inner_first:
        return [Level(1, (0,) * len(shapes))]
    return inner_first[::-1]


def batch_broadcast(values: np.ndarray, shape: Sequence[int], out_shape: Sequence[int],
                    batch: int, constant: bool) -> np.ndarray:
    """An operand as an int64 array of shape (batch, *out_shape) for the numpy reference:
    `values` is (batch, *shape) for an activation, `shape` for a constant."""
    rank = len(out_shape)
    lead = (1,) * (rank - len(shape))
    v = np.asarray(values, dtype=np.int64)
    v = v.reshape((1, *lead, *shape)) if constant else v.reshape((batch, *lead, *shape))
    return np.broadcast_to(v, (batch, *out_shape))


@dataclass(frozen=True)
class Operand:
    """One input of an elementwise kernel: a function parameter (an activation tensor) or a
    const array emitted with the layer (a constant tensor)."""

    tensor: Tensor
    name: str  # parameter name, or the constant array's name (without the layer prefix)

    @property
    def constant(self) -> bool:
        return self.tensor.is_constant

    def source(self, symbol: str) -> str:
        """The C expression of the operand's data inside the kernel `symbol`."""
        return f"{symbol}_{self.name}" if self.constant else self.name


def operands(op: Operator, tensors: Sequence[Tensor], names: Sequence[str]) -> list[Operand]:
    result = [Operand(t, n) for t, n in zip(tensors, names, strict=True)]
    if all(o.constant for o in result):
        raise unsupported(op, "every input is constant (the converter folds such operators)")
    return result


def kernel_parameters(ops: Sequence[Operand], c_type: str = "int8_t") -> str:
    """`const int8_t *input1, ..., int8_t *output`: the activation operands, then the output."""
    params = [f"const {c_type} *{o.name}" for o in ops if not o.constant]
    return ", ".join([*params, f"{c_type} *output"])
