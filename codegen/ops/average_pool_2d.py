"""AVERAGE_POOL_2D: int8 or int16 in/out with equal quantization, SAME/VALID padding, any
filter size and strides, fused NONE/RELU/RELU6/RELU_N1_TO_1.

TFLM: reference_integer_ops::AveragePool (int8 and int16). The int32 sum of the in-bounds
elements is divided by their count (padded positions are neither summed nor counted),
rounding half away from zero through C's truncating division:
    acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count
The quirk is that the sign picks the direction of the half-count nudge: a negative sum is
pushed further from zero before the truncation, so -2.5 becomes -3, not -2 as floor(x + 0.5)
would give. No requantization: the output keeps the input's scale and zero point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops._pool import PoolLayer, prepare_pool
from codegen.ops.base import Layer, unsupported

OPCODES = ("AVERAGE_POOL_2D",)


@dataclass
class AveragePool2D(PoolLayer):
    template: ClassVar[str] = "kernels/average_pool_2d.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        xs = self._padded(inputs, 0)  # padded zeros add nothing to the sum
        acc = sum(self._taps(xs))
        count = np.asarray(self.params["counts"])[None, :, :, None]
        half = count // 2
        # C division truncates toward zero; both branches divide a same-signed numerator.
        rounded = np.where(acc > 0, (acc + half) // count, -((half - acc) // count))
        return self._finish(inputs, rounded)


# Sums of int8 in an int16 half stay exact up to this many values (255 * 128 < 2^15).
_PAIR_SUM_LIMIT = 255


@dataclass
class GlobalAveragePool2D(AveragePool2D):
    """One output per image whose window holds every input pixel: a sum per channel."""

    template: ClassVar[str] = "kernels/average_pool_2d_global.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("clamp", "pool_pairs", "mve") if self.params["pairs"] else ("clamp",)


# The sum of a window and its nudge, count * 2^(bits - 1) + count / 2, must fit in int32 (it
# overflows in TFLM's int32 too): at most 16,711,935 int8 or 65,535 int16 values in a window.
MAX_WINDOW = {DType.INT8: (2**31 - 1) * 2 // 257, DType.INT16: (2**31 - 1) * 2 // 65537}


def _reciprocal(count: int) -> int:
    """ceil(2^32 / count), for 2 <= count <= 255 (else 0): the high word of n times it is
    n // count for every 0 <= n < 2^16 (the error count * r - 2^32 < count < 2^8, and
    n * error < 2^32), which covers |sum| + count // 2 of at most 255 int8 values. The Helium
    global pool divides with it (VMULH), as C's division cannot be vectorised."""
    if not 2 <= count <= _PAIR_SUM_LIMIT:
        return 0
    return -(-(1 << 32) // count)


def _prepare(op: Operator, graph: Graph, dtype: DType, pairs: bool) -> AveragePool2D:
    """`pairs`: the global pool may sum four int8 channels at a time in int16 halves."""
    x, y, params = prepare_pool(op, graph, dtype)
    largest = int(np.asarray(params["counts"]).max())
    if largest > MAX_WINDOW[dtype]:
        raise unsupported(op, f"a window of {largest} values; the int32 sum of at most "
                              f"{MAX_WINDOW[dtype]} {dtype.numpy_name} values cannot overflow")
    _, h, w, c = graph.tensors[x].shape
    win = params["window"]
    covers_all = len(win.rows.inside(0)) == h and len(win.cols.inside(0)) == w  # type: ignore[attr-defined]
    if params["out_h"] == params["out_w"] == 1 and covers_all:
        count = h * w
        params.update(count=count, half=count // 2,
                      pairs=pairs and count <= _PAIR_SUM_LIMIT and c >= 4,
                      reciprocal=_reciprocal(count))
        return GlobalAveragePool2D(op, graph, inputs=(x,), outputs=(y,), params=params)
    return AveragePool2D(op, graph, inputs=(x,), outputs=(y,), params=params)


def prepare_int8(op: Operator, graph: Graph) -> AveragePool2D:
    return _prepare(op, graph, DType.INT8, pairs=True)


def prepare_int16(op: Operator, graph: Graph) -> AveragePool2D:
    return _prepare(op, graph, DType.INT16, pairs=False)


KERNELS = {DType.INT8: prepare_int8, DType.INT16: prepare_int16}


@dataclass
class GlobalPoolRows(Layer):
    """Some rows of a global average pool's int8 input, in a patch-based schedule that
    streams them (codegen/patch.py): their values added to int32 sums per channel, the
    sums of the rows before them read from `inputs[1]` (none for the first rows); the
    last rows then round each mean as the whole pool does (`AveragePool2D.reference`).
    The sums are the whole pool's, so the means are too."""

    template: ClassVar[str] = "kernels/average_pool_2d_rows.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("clamp", "pool_pairs") if self.params["pairs"] else ("clamp",)

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        n = inputs[0].shape[0]
        acc = inputs[0].reshape(n, -1, int(p["in_c"])).astype(np.int64).sum(axis=1)
        if not p["first"]:
            acc = acc + inputs[1].reshape(n, -1).astype(np.int64)
        if not p["last"]:
            return [acc.astype(np.int32).reshape(n, *self.out_tensor().shape)]
        count, half = int(p["count"]), int(p["half"])
        mean = np.where(acc > 0, (acc + half) // count, -((half - acc) // count))
        out = np.clip(mean, int(p["act_min"]), int(p["act_max"])).astype(np.int8)
        return [out.reshape(n, *self.out_tensor().shape)]

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        what = "started" if p["first"] else "carried"
        return [("rows", f"{p['pixels']} pixels added to int32 sums ({what}"
                         f"{', then the means' if p['last'] else ''})")]


def global_pool_rows(pool: GlobalAveragePool2D, op: Operator, graph: Graph,
                     inputs: tuple[int, ...], output: int, first: bool,
                     last: bool) -> GlobalPoolRows:
    """Rows `inputs[0]` (int8, the pool's row width and channels) of `pool`'s input summed
    into int32 sums, after the sums `inputs[1]` unless `first`; the output is the sums
    (int32, one per channel), or the pool's output when `last`."""
    x = graph.tensors[inputs[0]]
    p = pool.params
    params = {key: p[key] for key in ("in_c", "count", "half", "act_min", "act_max")}
    pixels = x.size // int(p["in_c"])
    params.update(pixels=pixels, first=first, last=last,
                  pairs=pixels <= _PAIR_SUM_LIMIT and int(p["in_c"]) >= 4)
    return GlobalPoolRows(op, graph, inputs=inputs, outputs=(output,), params=params)
