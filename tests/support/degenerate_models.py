"""Valid models at the edges of what the C emitter lays out: no code at all, scalars.

- `views_only`: RESHAPE, SQUEEZE, EXPAND_DIMS in a row: every layer is a view, the invoke
  runs nothing (with the I/O in the arena it does not touch the arena either);
- `lone_reshape`: one RESHAPE;
- `scalar_io`: a rank-0 input and output (ADD of a scalar constant);
- `scalar_inside`: a MEAN over every axis gives a rank-0 tensor inside the graph;
- `float_quantize_only`: float32 in, one QUANTIZE, int8 out (no requantization helper);
- `uint8_requantize`: uint8 in, QUANTIZE to int8, RELU, int8 out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from support.builder import ModelBuilder, Q, reshape_options
from support.elementwise_models import binary_options, reducer_options


def views_only() -> bytes:
    b = ModelBuilder("views only")
    x = b.add_tensor("x", (1, 3, 4), "int8", quant=Q(0.1, -5))
    r = b.add_tensor("r", (1, 12), "int8", quant=Q(0.1, -5))
    s = b.add_tensor("s", (12,), "int8", quant=Q(0.1, -5))
    axis = b.add_tensor("axis", (1,), "int32", data=np.array([1]))
    y = b.add_tensor("y", (12, 1), "int8", quant=Q(0.1, -5))
    b.add_op("RESHAPE", [x], [r], reshape_options([1, 12]))
    b.add_op("SQUEEZE", [r], [s])
    b.add_op("EXPAND_DIMS", [s, axis], [y])
    b.set_io([x], [y])
    return b.build()


def lone_reshape() -> bytes:
    b = ModelBuilder("lone reshape")
    x = b.add_tensor("x", (1, 4), "int8", quant=Q(0.1, 0))
    y = b.add_tensor("y", (4,), "int8", quant=Q(0.1, 0))
    b.add_op("RESHAPE", [x], [y], reshape_options([4]))
    b.set_io([x], [y])
    return b.build()


def scalar_io() -> bytes:
    b = ModelBuilder("scalar in and out")
    x = b.add_tensor("x", (), "int8", quant=Q(0.1, 3))
    c = b.add_tensor("c", (), "int8", quant=Q(0.2, -1), data=np.array(5))
    y = b.add_tensor("y", (), "int8", quant=Q(0.3, 2))
    b.add_op("ADD", [x, c], [y], binary_options("ADD"))
    b.set_io([x], [y])
    return b.build()


def scalar_inside() -> bytes:
    b = ModelBuilder("scalar inside")
    x = b.add_tensor("x", (2, 3), "int8", quant=Q(0.1, 3))
    axes = b.add_tensor("axes", (2,), "int32", data=np.array([0, 1]))
    m = b.add_tensor("m", (), "int8", quant=Q(0.05, -7))
    c = b.add_tensor("c", (), "int8", quant=Q(0.2, 1), data=np.array(-9))
    s = b.add_tensor("s", (), "int8", quant=Q(0.1, 0))
    y = b.add_tensor("y", (1,), "int8", quant=Q(0.1, 0))
    b.add_op("MEAN", [x, axes], [m], reducer_options(False))
    b.add_op("MUL", [m, c], [s], binary_options("MUL"))
    b.add_op("RESHAPE", [s], [y], reshape_options([1]))
    b.set_io([x], [y])
    return b.build()


def float_quantize_only() -> bytes:
    b = ModelBuilder("float in, quantize only")
    x = b.add_tensor("x", (1, 5), "float32")
    y = b.add_tensor("y", (1, 5), "int8", quant=Q(0.02, 4))
    b.add_op("QUANTIZE", [x], [y])
    b.set_io([x], [y])
    return b.build()


def uint8_requantize() -> bytes:
    b = ModelBuilder("uint8 in, requantize")
    x = b.add_tensor("x", (1, 7), "uint8", quant=Q(0.03, 128))
    q = b.add_tensor("q", (1, 7), "int8", quant=Q(0.03, 0))
    y = b.add_tensor("y", (1, 7), "int8", quant=Q(0.03, 0))
    b.add_op("QUANTIZE", [x], [q])
    b.add_op("RELU", [q], [y])
    b.set_io([x], [y])
    return b.build()


MODELS: dict[str, Callable[[], bytes]] = {
    "views_only": views_only,
    "lone_reshape": lone_reshape,
    "scalar_io": scalar_io,
    "scalar_inside": scalar_inside,
    "float_quantize_only": float_quantize_only,
    "uint8_requantize": uint8_requantize,
}
