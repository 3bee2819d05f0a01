"""Shared pieces of the data-movement operators (PAD, SLICE, STRIDED_SLICE, SPLIT, PACK,
TRANSPOSE, ...): they only move bytes, so each one's kernel is a short list of steps,
  - a fill: memset of a whole output to one byte (PAD's padding value),
  - a copy nest: loops with constant bounds in which
        dst[dst_base + sum_k i_k * dst_step_k] = src[src_base + sum_k i_k * src_step_k],
laid out by templates/kernels/copy.c.j2. The operator module works out the counts, steps and
bases at generation time from the constant shapes and parameters (TFLM's Prepare); the C has
no shape logic left. Adjacent loops that walk memory contiguously on both sides are merged,
and an innermost loop of unit steps becomes one memcpy.

Also here: the checks these operators share (int8 or int16 activations, one type and
quantization for input and output, constant int32 parameter vectors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops.base import Layer, operand, require_dtype, unsupported

_INDENT = "    "
ACTIVATION_TYPES = (DType.INT8, DType.INT16)  # what TFLM's data-movement kernels copy


def dense_strides(shape: Sequence[int]) -> list[int]:
    """Row-major element strides of a shape."""
    strides = [1] * len(shape)
    for k in range(len(shape) - 2, -1, -1):
        strides[k] = strides[k + 1] * int(shape[k + 1])
    return strides


@dataclass(frozen=True)
class Nest:
    """One copy nest, before simplification (see the module docstring)."""

    src: str  # C name of the source pointer (a kernel parameter)
    dst: str
    counts: tuple[int, ...]
    src_steps: tuple[int, ...]
    dst_steps: tuple[int, ...]
    src_base: int = 0
    dst_base: int = 0

    @staticmethod
    def gather(src: str, dst: str, counts: Sequence[int], src_steps: Sequence[int],
               src_base: int = 0) -> Nest:
        """Read `src` at the given steps, write `dst` densely in loop order."""
        return Nest(src, dst, tuple(counts), tuple(src_steps), tuple(dense_strides(counts)),
                    src_base, 0)

    @staticmethod
    def scatter(src: str, dst: str, counts: Sequence[int], dst_steps: Sequence[int],
                dst_base: int = 0) -> Nest:
        """Read `src` densely in loop order, write `dst` at the given steps."""
        return Nest(src, dst, tuple(counts), tuple(dense_strides(counts)), tuple(dst_steps),
                    0, dst_base)

    def simplified(self) -> list[tuple[int, int, int]]:
        """(count, src_step, dst_step) per loop, outermost first: loops of one iteration
        dropped, and a loop merged into the one inside it when both sides continue
        contiguously from one to the other."""
        loops = [(c, s, d) for c, s, d in zip(self.counts, self.src_steps, self.dst_steps,
                                               strict=True) if c != 1]
        merged: list[tuple[int, int, int]] = []
        for count, src_step, dst_step in reversed(loops):
            if merged:
                inner_count, inner_src, inner_dst = merged[-1]
                if src_step == inner_src * inner_count and dst_step == inner_dst * inner_count:
                    merged[-1] = (count * inner_count, inner_src, inner_dst)
                    continue
            merged.append((count, src_step, dst_step))
        return merged[::-1]

    def render(self, itemsize: int) -> dict[str, object]:
        """The copy as the template lays it out: loop headers, then one statement."""
        if any(c == 0 for c in self.counts):
            raise ValueError("empty copy nest")
        loops = self.simplified()
        memcpy_length = 0
        if loops and loops[-1][1] == 1 and loops[-1][2] == 1:
            memcpy_length = loops.pop()[0] * itemsize
        variables = [f"i{depth}" for depth in range(len(loops))]
        headers = [
            {"indent": _INDENT * (depth + 1), "var": var, "count": count}
            for depth, (var, (count, _, _)) in enumerate(zip(variables, loops, strict=True))
        ]
        src_index = linear_expression(self.src_base, variables, [s for _, s, _ in loops])
        dst_index = linear_expression(self.dst_base, variables, [d for _, _, d in loops])
        return {
            "kind": "copy",
            "loops": headers,
            "indent": _INDENT * (len(loops) + 1),
            "src": self.src,
            "dst": self.dst,
            "src_index": src_index,
            "dst_index": dst_index,
            "src_pointer": pointer_expression(self.src, src_index),
            "dst_pointer": pointer_expression(self.dst, dst_index),
            "memcpy_length": memcpy_length,
        }


def linear_expression(base: int, variables: Sequence[str], steps: Sequence[int]) -> str:
    """C text of base + sum var_k * step_k, e.g. `7 + i0 * 68 - i1 * 3`."""
    text = str(base) if base or not variables else ""
    for var, step in zip(variables, steps, strict=True):
        term = var if abs(step) == 1 else f"{var} * {abs(step)}"
        if not text:
            text = term if step > 0 else f"-{term}"
        else:
            text += f" + {term}" if step > 0 else f" - {term}"
    return text


def pointer_expression(name: str, index: str) -> str:
    """C text of `name + index` that never forms an out-of-range intermediate pointer."""
    if index == "0":
        return name
    if " + " in index or " - " in index or index.startswith("-"):
        return f"{name} + ({index})"
    return f"{name} + {index}"


def fill_step(dst: str, count: int, value: int, dtype: DType) -> dict[str, object]:
    """`count` elements set to `value`: a memset where every byte of the value is the same
    (any int8 value, int16 0 and -1), else a loop."""
    raw = int(value).to_bytes(dtype.itemsize, "little", signed=True)
    if len(set(raw)) == 1:
        return {"kind": "fill", "dst": dst, "nbytes": count * dtype.itemsize, "byte": raw[0],
                "value": int(value)}
    return {"kind": "fill_loop", "dst": dst, "count": count, "value": int(value)}


@dataclass
class CopyLayer(Layer):
    """A layer whose kernel is fills and copy nests over its inputs and outputs, which the
    kernel calls input0.. and output0.. ."""

    template: ClassVar[str] = "kernels/copy.c.j2"

    def input_name(self, position: int) -> str:
        return f"input{position}"

    def output_name(self, position: int) -> str:
        return f"output{position}"

    def set_steps(self, steps: list[Nest | dict[str, object]]) -> None:
        """Record the kernel's steps (Nest objects or fill_step dicts), in order."""
        itemsize = self.in_tensor().dtype.itemsize
        params = [f"const {self.tensor(t).dtype.c_type} *{self.input_name(i)}"
                  for i, t in enumerate(self.inputs)]
        params += [f"{self.tensor(t).dtype.c_type} *{self.output_name(i)}"
                   for i, t in enumerate(self.outputs)]
        self.params["signature"] = ", ".join(params)
        self.params["steps"] = [s.render(itemsize) if isinstance(s, Nest) else s
                                for s in steps]


# -- shared checks -------------------------------------------------------------------------


def activation_input(op: Operator, graph: Graph, position: int, role: str = "input") -> Tensor:
    """An int8 or int16 non-constant operand."""
    t = operand(op, graph, position, role)
    require_dtype(op, t, ACTIVATION_TYPES, role)
    if t.is_constant:
        raise unsupported(op, f"a constant {role} is not supported")
    if t.size == 0:
        raise unsupported(op, f"{role} '{t.name}' is empty ({list(t.shape)})")
    return t


def outputs_of(op: Operator, graph: Graph) -> list[Tensor]:
    if not op.outputs or any(i < 0 for i in op.outputs):
        raise unsupported(op, "missing output")
    outs = [graph.tensors[i] for i in op.outputs]
    for i, t in enumerate(outs):
        require_dtype(op, t, ACTIVATION_TYPES, f"output {i}" if len(outs) > 1 else "output")
        if t.size == 0:
            raise unsupported(op, f"output '{t.name}' is empty ({list(t.shape)})")
    return outs


def single_output(op: Operator, graph: Graph) -> Tensor:
    outs = outputs_of(op, graph)
    if len(outs) != 1:
        raise unsupported(op, f"expected 1 output, found {len(outs)}")
    return outs[0]


def require_same_quantization(op: Operator, x: Tensor, y: Tensor) -> None:
    """The bytes are copied unchanged, so the values keep their meaning only if both tensors
    have the same type, scale and zero point (TFLM itself copies without checking)."""
    if x.dtype is not y.dtype:
        raise unsupported(op, f"'{x.name}' is {x.dtype_name} but '{y.name}' is {y.dtype_name}; "
                              "this operator copies values and cannot convert them")
    if x.quant is None or y.quant is None:
        raise unsupported(op, "input and output need quantization parameters")
    if x.quant.per_channel or y.quant.per_channel:
        raise unsupported(op, "input and output must be quantized per tensor")
    if (x.quant.scale, x.quant.zero_point) != (y.quant.scale, y.quant.zero_point):
        raise unsupported(
            op, f"'{x.name}' (scale {x.quant.scale:g}, zero point {x.quant.zero_point}) and "
            f"'{y.name}' (scale {y.quant.scale:g}, zero point {y.quant.zero_point}) are "
            "quantized differently; this operator copies values and cannot requantize"
        )


def constant_vector(op: Operator, graph: Graph, position: int, role: str, length: int | None,
                    dtypes: tuple[DType, ...] = (DType.INT32,)) -> list[int]:
    """The values of a constant integer operand, checked for type and element count."""
    t = operand(op, graph, position, role)
    if t.data is None:
        raise unsupported(op, f"{role} must be constant")
    require_dtype(op, t, dtypes, role)
    values = [int(v) for v in np.asarray(t.data).ravel()]
    if length is not None and len(values) != length:
        raise unsupported(op, f"{role} has {len(values)} values, expected {length}")
    return values


def require_shape(op: Operator, t: Tensor, expected: Sequence[int], role: str = "output") -> None:
    if tuple(t.shape) != tuple(int(d) for d in expected):
        raise unsupported(op, f"{role} '{t.name}' has shape {list(t.shape)}, expected "
                              f"{[int(d) for d in expected]}")
