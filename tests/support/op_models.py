"""Hypothesis strategies for property-based fuzzing: models of one supported operator with
drawn shapes, types, quantization, constant data and options (scripts/fuzz.py).

Most drawn models are wrong somewhere (a shape that does not fit, a scale of NaN, a stride of
0): the property under test is that the generator refuses them in one line or generates
them, never that they are valid.
"""

from __future__ import annotations

import math
import struct

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from hypothesis import strategies as st

from codegen.model import tflite
from codegen.ops import supported_operators
from support.builder import ModelBuilder, Q, bias_scales

# Operand kinds: "x" activation, "x4" 4-D activation, "w" int8 constant (weights),
# "w4" 4-D int8 constant, "b" int32 constant (bias), "i" small int32 constant (shape, axis,
# paddings, begin/end...), "s" int8 constant scalar.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "FULLY_CONNECTED": ("x", "w", "b"),
    "CONV_2D": ("x4", "w4", "b"),
    "DEPTHWISE_CONV_2D": ("x4", "w4", "b"),
    "AVERAGE_POOL_2D": ("x4",),
    "MAX_POOL_2D": ("x4",),
    "ADD": ("x", "x"),
    "SUB": ("x", "x"),
    "MUL": ("x", "x"),
    "MAXIMUM": ("x", "x"),
    "MINIMUM": ("x", "x"),
    "PRELU": ("x", "w"),
    "RESHAPE": ("x", "i"),
    "EXPAND_DIMS": ("x", "i"),
    "TRANSPOSE": ("x", "i"),
    "PAD": ("x", "i"),
    "PADV2": ("x", "i", "s"),
    "SLICE": ("x", "i", "i"),
    "STRIDED_SLICE": ("x", "i", "i", "i"),
    "MEAN": ("x", "i"),
    "CONCATENATION": ("x", "x", "x"),
    "PACK": ("x", "x"),
    "SPLIT": ("i", "x"),
    "SPLIT_V": ("x", "i", "i"),
    "RESIZE_NEAREST_NEIGHBOR": ("x4", "i"),
}
MULTI_OUTPUT = ("SPLIT", "SPLIT_V", "UNPACK")

_EDGE_SCALES = (0.0, -0.5, math.nan, math.inf, 1e-45, 3e38, 1e-30, 1e30)


def _rarely(common: st.SearchStrategy, rare: st.SearchStrategy) -> st.SearchStrategy:
    """`rare` about once in 50 draws (a value inside the range: hypothesis favours the
    ends), else `common`: most drawn models get past validation."""
    return st.integers(0, 49).flatmap(lambda k: rare if k == 23 else common)


def scales() -> st.SearchStrategy[float]:
    return _rarely(st.one_of(st.sampled_from((1 / 256, 0.05, 0.1, 0.5, 1.0, 2.0)),
                             st.floats(1e-6, 1e3)),
                   st.sampled_from(_EDGE_SCALES))


def zero_points(dtype: str) -> st.SearchStrategy[int]:
    if dtype == "int8":
        return _rarely(st.integers(-128, 127), st.sampled_from((-129, 128, 1000)))
    if dtype == "uint8":
        return _rarely(st.integers(0, 255), st.sampled_from((-1, 256)))
    return _rarely(st.just(0), st.just(1))


def shapes(rank: int | None = None) -> st.SearchStrategy[tuple[int, ...]]:
    dims = _rarely(st.one_of(st.integers(1, 6), st.sampled_from((1, 1, 17, 40))), st.just(0))
    if rank is not None:
        return st.tuples(*[dims] * rank)
    return st.lists(dims, min_size=0, max_size=5).map(tuple)


def _options(opcode: str, draw: st.DrawFn) -> object | None:
    name = tflite._EXPECTED_OPTIONS.get(opcode) or tflite._OPTIONS_BY_KEY.get(
        opcode.replace("_", "").lower() + "options")
    if name is None or not hasattr(schema, f"{name}T"):
        return None
    options = getattr(schema, f"{name}T")()
    for field, value in vars(options).items():
        if isinstance(value, bool):
            new: object = draw(st.booleans())
        elif isinstance(value, int):
            new = draw(_rarely(st.integers(0, 4), st.sampled_from((-1, -2, 8, 2**31 - 1,
                                                                   -(2**31)))))
        elif isinstance(value, float):
            new = draw(_rarely(st.floats(0.1, 4), st.sampled_from((0.0, -1.0, *_EDGE_SCALES))))
        elif value is None and field in ("newShape", "squeezeDims"):
            new = draw(st.one_of(st.none(), st.lists(st.integers(-2, 8), max_size=5)))
        else:
            continue
        setattr(options, field, new)
        if not _packs(options):  # the value does not fit the field's type
            setattr(options, field, value)
    return options


def _packs(options: object) -> bool:
    try:
        options.Pack(flatbuffers.Builder(64))  # type: ignore[attr-defined]
    except (TypeError, ValueError, OverflowError, struct.error):
        return False
    return True


def _constant(kind: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "i":
        return rng.integers(-2, 7, size=shape)
    if kind == "b":
        return rng.integers(-(2**20), 2**20, size=shape)
    return rng.integers(-127, 128, size=shape)


@st.composite
def single_op_models(draw: st.DrawFn) -> tuple[bytes, str]:
    """(model bytes, description) of one operator with drawn operands and options."""
    opcode = draw(st.sampled_from(supported_operators()))
    kinds = SIGNATURES.get(opcode, ("x",))
    if draw(st.integers(0, 9)) == 0:  # sometimes an operand too many or too few
        kinds = kinds[:-1] if len(kinds) > 1 and draw(st.booleans()) else (*kinds, "x")
    act_dtype = draw(_rarely(st.just("int8"), st.sampled_from(("uint8", "int16", "float32"))))
    base = draw(shapes())
    b = ModelBuilder(f"fuzz {opcode}")
    inputs, graph_inputs, notes = [], [], []
    input_q: Q | None = None
    weight_q = Q(1.0)
    for k, kind in enumerate(kinds):
        if kind in ("x", "x4"):
            shape = base if kind == "x" and draw(st.booleans()) else draw(
                shapes(4 if kind == "x4" else None))
            q = Q(draw(scales()), draw(zero_points(act_dtype)))
            input_q = q if k == 0 else input_q
            t = b.add_tensor(f"in{k}", shape, act_dtype,
                             quant=None if act_dtype == "float32" else q)
            graph_inputs.append(t)
        else:
            dtype = {"w": "int8", "w4": "int8", "s": "int8"}.get(kind, "int32")
            shape = (() if kind == "s" else draw(shapes(4 if kind == "w4" else None)))
            if kind == "i":
                shape = draw(st.sampled_from(((1,), (2,), (len(base),), (len(base), 2), ())))
            channels = shape[0] if shape and kind in ("w", "w4") else 1
            if channels > 1 and draw(st.booleans()):
                q = Q([draw(scales()) for _ in range(channels)], 0)
            else:
                q = Q(draw(scales()), draw(zero_points(dtype)))
            if kind in ("w", "w4"):
                weight_q = q
            if kind == "b" and draw(st.integers(0, 9)) and len(inputs) == 2:
                x_scale = Q(0).scales[0] if input_q is None else input_q.scales[0]
                scales_ = bias_scales(x_scale, weight_q.scales)
                q = Q(scales_ if len(scales_) > 1 else scales_[0], 0)
            seed = draw(st.integers(0, 2**16))
            t = b.add_tensor(f"c{k}", shape, dtype, quant=None if kind == "i" else q,
                             data=_constant(kind, shape, seed))
        inputs.append(t)
        notes.append(f"{kind}{list(b.model.subgraphs[0].tensors[t].shape)}")
    if not graph_inputs:
        extra = b.add_tensor("extra", base, act_dtype, quant=Q(0.1))
        graph_inputs.append(extra)
    out_count = draw(st.integers(1, 3)) if opcode in MULTI_OUTPUT else 1
    out_dtype = draw(_rarely(st.just("int8"), st.sampled_from(("uint8", "int32", "float32"))))
    outputs = []
    for k in range(out_count):
        shape = base if draw(st.integers(0, 3)) else draw(shapes())
        q = None if out_dtype == "float32" else Q(draw(scales()), draw(zero_points(out_dtype)))
        outputs.append(b.add_tensor(f"out{k}", shape, out_dtype, quant=q))
        notes.append(f"-> {out_dtype}{list(shape)}")
    options = _options(opcode, draw)
    b.add_op(opcode, inputs, outputs, options)
    b.set_io(graph_inputs, outputs)
    described = {k: v for k, v in vars(options).items()} if options is not None else {}
    return b.build(), f"{opcode} {act_dtype} {' '.join(notes)} options {described}"
