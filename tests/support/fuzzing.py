"""Malformed models for fuzzing: deterministic mutations of valid .tflite files, structural
classes of hostile files, and generation runs of the CLI with the checks every run must pass.

    data, what = mutate(seed_model_bytes, random.Random(seed))
    problem = run_generate(data, work_dir, time_limit=10.0)   # None when the run behaved
    outcomes = run_isolated(make_cases, work_dir)             # the same, under limits

Mutations are of two kinds. Byte-level ones (bit flips, stomped 32-bit words, truncation,
inserted or deleted bytes) exercise the flatbuffer parser; they prefer the structural bytes
of the file (tables, vectors of indices, quantization) over the bytes of constant data.
Schema-level ones read the model with the schema's object API, change one field the way a
broken converter or a hostile file would (a dimension of 0, -1 or 2^31-1; a scale of 0, -1,
NaN or inf; a zero point out of range; a quantization array of the wrong length; an index
out of range; a missing buffer; operators out of order; options at their limits) and pack
the model again, so the file is a well-formed flatbuffer whose meaning is wrong (a custom
operator's flexbuffer options too: a value of another type, NaN, an extreme, a key dropped,
damaged bytes). Structural
classes (`support.hostile`: shared-table DAGs, shared buffers, long chains, deep branches,
lying vector lengths) are files that are cheap to write and expensive to take.

`run_isolated` runs cases in a forked child process, each under a memory limit
(RLIMIT_AS: 10 x the file's size + 300 MB more than before the case, README "Guarantees")
and a time limit (of CPU time, so that a busy CI machine does not fail a case; a case that
blocks without computing is killed by the parent after several times the limit of wall
time); running out of memory or time is a failure like any other.

`tests/test_fuzz.py` runs a fixed set of seeds in CI; `scripts/fuzz.py` runs more locally.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import resource
import select
import shutil
import signal
import struct
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from support import hostile
from support.builder import ModelBuilder, Q, fc_model, fc_options, pack, read_model

MODEL_FILE = "fuzz.tflite"  # its stem, "fuzz", is the name of the generated files
KEEP_FILE = "keep.txt"  # a file of the user's in an existing output directory

_INT_VALUES = (0, 1, -1, 2, 3, 4, 7, 127, 128, -128, 255, 256, 65535, 2**31 - 1, -(2**31),
               2**24 + 1, 1 << 20)
_FLOAT_VALUES = (0.0, -0.0, -1.0, math.nan, math.inf, -math.inf, 1e-45, 1e-38, 3.0e38, 1e-12,
                 1e12, 0.5)
_NAMES = (b"", b"\xff\xfe\x00bad utf-8", b"x */ int evil; /*", b"a\nb\\\r\n??/", b"n" * 5000,
          b"\x1b[2J")


# -- seed models ------------------------------------------------------------------------------


def small_models() -> dict[str, bytes]:
    """Small valid models built with support.builder, covering the operators the shared
    models do not have and the quantization variants (per-channel, float I/O, bias)."""
    rng = np.random.default_rng(1234)
    weights = rng.integers(-127, 128, size=(3, 5)).astype(np.int8)
    models = {
        "fc_bias": fc_model(weights, input_q=Q(0.05, -3), weight_q=Q(0.01), output_q=Q(0.1, 5),
                            bias=np.array([10, -20, 30]), activation="RELU6"),
        "fc_per_channel": fc_model(weights, input_q=Q(0.02, 4),
                                   weight_q=Q([0.01, 0.02, 0.03], 0), output_q=Q(0.07, -9),
                                   bias=np.array([-7, 0, 99]), keep_num_dims=True,
                                   input_shape=(1, 2, 5)),
    }
    b = ModelBuilder("float io")
    x = b.add_tensor("x", (1, 5), "float32")
    xq = b.add_tensor("xq", (1, 5), "int8", quant=Q(0.04, 1))
    w = b.add_tensor("w", (3, 5), "int8", quant=Q(0.02), data=weights)
    bias = b.add_tensor("bias", (3,), "int32", quant=Q(0.04 * 0.02), data=[1, 2, 3])
    h = b.add_tensor("h", (1, 3), "int8", quant=Q(0.2, -1))
    r = b.add_tensor("r", (3, 1), "int8", quant=Q(0.2, -1))
    s = b.add_tensor("shape", (2,), "int32", data=[3, 1])
    q2 = b.add_tensor("q2", (3, 1), "int8", quant=Q(0.3, 2))
    y = b.add_tensor("y", (3, 1), "float32")
    b.add_op("QUANTIZE", [x], [xq])
    b.add_op("FULLY_CONNECTED", [xq, w, bias], [h], fc_options("RELU"))
    reshape = schema.ReshapeOptionsT()
    reshape.newShape = [3, 1]
    b.add_op("RESHAPE", [h, s], [r], reshape)
    b.add_op("QUANTIZE", [r], [q2])
    b.add_op("DEQUANTIZE", [q2], [y])
    b.set_io([x], [y])
    models["float_io_chain"] = b.build()

    b = ModelBuilder("branches")
    x = b.add_tensor("x", (1, 4), "int8", quant=Q(0.05, -3))
    outs = []
    for i in range(2):
        w = b.add_tensor(f"w{i}", (2, 4), "int8", quant=Q(0.01 * (i + 1)),
                         data=rng.integers(-127, 128, size=(2, 4)))
        yi = b.add_tensor(f"y{i}", (1, 2), "int8", quant=Q(0.1, i))
        b.add_op("FULLY_CONNECTED", [x, w, -1], [yi], fc_options("RELU_N1_TO_1"))
        outs.append(yi)
    b.set_io([x], outs)
    models["two_outputs"] = b.build()
    models.update(issue13_models())
    return models


# Small cases of tests/support/more_cases.py per seed model: the operators of issue 13 (index
# and mask tensors, spatial moves and the dilated chain, arithmetic and normalisations).
_ISSUE13_SEEDS = {
    "more_indices": ("arg_max_4d_axis2", "gather_axis1", "gather_nd_pairs", "embedding_table",
                     "cast_int8_int32", "equal_int8_scales", "select_broadcast_3",
                     "logical_or_broadcast", "shape_4d", "fill_int8_activation"),
    "more_spatial": ("bilinear_up_odd_half_pixel", "mirror_reflect_2d", "depth_to_space_2",
                     "s2b_4d_padded", "b2s_4d_cropped", "reverse_middle_two",
                     "broadcast_to_rows", "update_slice_2d", "dilated_conv1d_same"),
    "more_math": ("bmm_adj_y_attention", "bmm_constant_rhs_engine", "div_int8_relu",
                  "sqdiff_broadcast_4d", "rsqrt_layer_norm", "log_softmax_rows", "l2_norm_rows",
                  "cumsum_exclusive", "add_n_three_with_constant", "sum_last",
                  "reduce_max_last", "elu_typical", "abs_rescale_up"),
}


# Seeds with a custom operator: a third of their cases change its flexbuffer options.
_CUSTOM_OPTION_SEEDS = ("ssd_head",)


def issue13_models() -> dict[str, bytes]:
    """Seeds with the operators of issue 13: bundles of small test cases, and an SSD head
    ending in DETECTION_POSTPROCESS (a custom operator with flexbuffer options)."""
    from support import detection_models, more_cases, more_models

    models = {name: more_models.bundle([more_cases.CASES[c] for c in cases])
              for name, cases in _ISSUE13_SEEDS.items()}
    head = detection_models.Head(detection_models.grid_anchors(2, 2),
                                 detection_models.detection_options(
                                     use_regular_nms=True, detections_per_class=3,
                                     **detection_models.CONVERTER_KEYS))
    models["ssd_head"] = detection_models.head_model(head)
    return models


# -- byte-level mutations ---------------------------------------------------------------------


def _data_ranges(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the constant-data vectors (the bulk of a real model)."""
    ranges = []
    try:
        model = schema.Model.GetRootAs(data, 0)
        for i in range(model.BuffersLength()):
            buf = model.Buffers(i)
            o = flatbuffers.number_types.UOffsetTFlags.py_type(buf._tab.Offset(4))
            if o:
                start = buf._tab.Vector(o)
                ranges.append((start, start + buf._tab.VectorLen(o)))
    except Exception:  # a seed model always parses; be lenient anyway
        return []
    return ranges


def _position(data: bytes, rng: random.Random, structural: list[int]) -> int:
    if structural and rng.random() < 0.8:
        return rng.choice(structural)
    return rng.randrange(len(data))


def _structural_positions(data: bytes) -> list[int]:
    mask = np.ones(len(data), dtype=bool)
    for start, end in _data_ranges(data):
        mask[start:end] = False
    return np.flatnonzero(mask).tolist()


def byte_mutation(data: bytes, rng: random.Random,
                  structural: list[int] | None = None) -> tuple[bytes, str]:
    structural = _structural_positions(data) if structural is None else structural
    buf = bytearray(data)
    kind = rng.choice(("flip", "flip", "bytes", "word", "truncate", "insert", "delete"))
    if kind == "flip":
        count = rng.choice((1, 1, 2, 4, 8))
        spots = [_position(data, rng, structural) for _ in range(count)]
        for p in spots:
            buf[p] ^= 1 << rng.randrange(8)
        return bytes(buf), f"flip bits at {spots[:4]}"
    if kind == "bytes":
        p = _position(data, rng, structural)
        n = rng.randint(1, 16)
        buf[p:p + n] = bytes(rng.randrange(256) for _ in range(len(buf[p:p + n])))
        return bytes(buf), f"random bytes at {p}+{n}"
    if kind == "word":
        p = _position(data, rng, structural) & ~3
        value = rng.choice((0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, len(data), len(data) + 4,
                            len(data) - 4, rng.randrange(1 << 32), rng.randrange(len(data))))
        buf[p:p + 4] = value.to_bytes(4, "little")[:len(buf[p:p + 4])]
        return bytes(buf), f"word {value:#x} at {p}"
    if kind == "truncate":
        n = rng.choice((0, 4, 8, 12, 16, rng.randrange(len(data)), len(data) - 1))
        return bytes(buf[:n]), f"truncate to {n}"
    if kind == "insert":
        p = _position(data, rng, structural)
        chunk = bytes(rng.randrange(256) for _ in range(rng.choice((1, 4, 8))))
        return bytes(buf[:p] + chunk + buf[p:]), f"insert {len(chunk)} bytes at {p}"
    p = _position(data, rng, structural)
    n = rng.choice((1, 4, 8))
    return bytes(buf[:p] + buf[p + n:]), f"delete {n} bytes at {p}"


# -- schema-level mutations -------------------------------------------------------------------


def _subgraph(model: schema.ModelT) -> schema.SubGraphT:
    return model.subgraphs[0]


def _ints(values: object) -> list[int]:
    return [int(v) for v in (values if values is not None else [])]  # type: ignore[union-attr]


def _tensor(model: schema.ModelT, rng: random.Random,
            want: Callable[[schema.TensorT], bool] | None = None) -> tuple[int, schema.TensorT]:
    tensors = _subgraph(model).tensors
    candidates = [i for i, t in enumerate(tensors) if want is None or want(t)]
    i = rng.choice(candidates or list(range(len(tensors))))
    return i, tensors[i]


def _quantized(t: schema.TensorT) -> bool:
    return t.quantization is not None and t.quantization.scale is not None \
        and len(t.quantization.scale) > 0


def _per_channel(t: schema.TensorT) -> bool:
    return _quantized(t) and len(t.quantization.scale) > 1


def m_shape_dim(model: schema.ModelT, rng: random.Random) -> str:
    i, t = _tensor(model, rng)
    shape = _ints(t.shape)
    value = rng.choice((0, -1, -5, 2**31 - 1, 1 << 16, 1 << 24, 3, 1000))
    if shape:
        k = rng.randrange(len(shape))
        shape[k] = value
    else:
        shape = [value]
    t.shape = shape
    return f"tensor {i} shape -> {shape}"


def m_shape_rank(model: schema.ModelT, rng: random.Random) -> str:
    i, t = _tensor(model, rng)
    shape = _ints(t.shape)
    choice = rng.randrange(4)
    if choice == 0:
        shape = []
    elif choice == 1:
        shape = [*shape, rng.choice((1, 2))]
    elif choice == 2:
        shape = shape[1:]
    else:
        shape = [1] * rng.choice((7, 40)) + shape
    t.shape = shape
    return f"tensor {i} shape -> {shape}"


def m_shape_signature(model: schema.ModelT, rng: random.Random) -> str:
    i, t = _tensor(model, rng)
    sig = _ints(t.shape) or [1]
    sig[rng.randrange(len(sig))] = -1
    if rng.random() < 0.3:
        sig.append(-1)
    t.shapeSignature = sig
    return f"tensor {i} shape signature -> {sig}"


def m_type(model: schema.ModelT, rng: random.Random) -> str:
    i, t = _tensor(model, rng)
    t.type = rng.randrange(20)
    return f"tensor {i} type -> {t.type}"


def m_scale(model: schema.ModelT, rng: random.Random) -> str:
    i, t = _tensor(model, rng, _quantized)
    if not _quantized(t):
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale = [1.0]
        t.quantization.zeroPoint = [0]
    scales = [float(s) for s in t.quantization.scale]
    k = rng.randrange(len(scales))
    scales[k] = rng.choice(_FLOAT_VALUES) * (1 if rng.random() < 0.7 else scales[k])
    t.quantization.scale = scales
    return f"tensor {i} scale[{k}] -> {scales[k]}"


def m_zero_point(model: schema.ModelT, rng: random.Random) -> str:
    i, t = _tensor(model, rng, _quantized)
    if not _quantized(t):
        return m_scale(model, rng)
    zps = _ints(t.quantization.zeroPoint) or [0] * len(t.quantization.scale)
    k = rng.randrange(len(zps))
    zps[k] = rng.choice((128, -129, 255, 256, -1, 1, 2**31 - 1, -(2**31), 40000, -40000))
    t.quantization.zeroPoint = zps
    return f"tensor {i} zero point[{k}] -> {zps[k]}"


def m_quant_length(model: schema.ModelT, rng: random.Random) -> str:
    i, t = _tensor(model, rng, _per_channel if rng.random() < 0.5 else _quantized)
    if not _quantized(t):
        return m_scale(model, rng)
    q = t.quantization
    scales, zps = [float(s) for s in q.scale], _ints(q.zeroPoint)
    choice = rng.randrange(6)
    if choice == 0:
        q.scale = [*scales, scales[-1]]
    elif choice == 1:
        q.scale = scales[:-1] or None
    elif choice == 2:
        q.zeroPoint = [*zps, 0]
    elif choice == 3:
        q.zeroPoint = zps[:-1] or None
    elif choice == 4:
        q.scale = scales * 3
        q.zeroPoint = zps * 3
    else:
        q.quantizedDimension = rng.choice((-1, 1, 2, 3, 4, 99, len(_ints(t.shape))))
    return f"tensor {i} quantization lengths {len(_ints(q.scale))}/{len(_ints(q.zeroPoint))}" \
           f" axis {q.quantizedDimension}"


def m_quant_remove(model: schema.ModelT, rng: random.Random) -> str:
    i, t = _tensor(model, rng, _quantized)
    if not _quantized(t):
        return m_scale(model, rng)
    if rng.random() < 0.5:
        t.quantization = None
    else:
        t.quantization.detailsType = 1
        t.quantization.details = schema.CustomQuantizationT()
        t.quantization.details.custom = [1, 2, 3]
    return f"tensor {i} quantization removed or custom"


def m_buffer_index(model: schema.ModelT, rng: random.Random) -> str:
    i, t = _tensor(model, rng)
    t.buffer = rng.choice((0, len(model.buffers), len(model.buffers) + 7, 2**32 - 1,
                           rng.randrange(len(model.buffers))))
    return f"tensor {i} buffer -> {t.buffer}"


def m_buffer_data(model: schema.ModelT, rng: random.Random) -> str:
    used = [t.buffer for t in _subgraph(model).tensors if t.buffer]
    if not used:
        return m_buffer_index(model, rng)
    k = rng.choice(used)
    buf = model.buffers[k]
    data = np.asarray(buf.data if buf.data is not None else [], dtype=np.uint8)
    choice = rng.randrange(6)
    if choice == 0:
        buf.data = None
    elif choice == 1:
        buf.data = data[:-1]
    elif choice == 2:
        buf.data = np.concatenate([data, np.zeros(rng.choice((1, 4, 64)), np.uint8)])
    elif choice == 3:
        buf.data = data[: len(data) // 2]
    elif choice == 4:  # external data out of range
        buf.data = None
        buf.offset = rng.choice((2, 1 << 20, 2**63))
        buf.size = rng.choice((0, 1, 4, len(data), 2**40))
    else:
        buf.offset, buf.size = 1, len(data)
    return f"buffer {k} data/offset changed ({choice})"


def m_buffers_missing(model: schema.ModelT, rng: random.Random) -> str:
    keep = rng.choice((0, 1, len(model.buffers) // 2, len(model.buffers) - 1))
    model.buffers = model.buffers[:keep]
    return f"buffers truncated to {keep}"


def m_op_index(model: schema.ModelT, rng: random.Random) -> str:
    sg = _subgraph(model)
    if not sg.operators:
        return m_io(model, rng)
    j = rng.randrange(len(sg.operators))
    op = sg.operators[j]
    field = rng.choice(("inputs", "outputs"))
    values = _ints(getattr(op, field))
    n = len(sg.tensors)
    choice = rng.randrange(5)
    if choice == 0 and values:
        k = rng.randrange(len(values))
        values[k] = rng.choice((n, n + 100, -1, -2, -(2**31), rng.randrange(n)))
    elif choice == 1:
        values = values[:-1]
    elif choice == 2:
        values.append(rng.choice((-1, rng.randrange(n))))
    elif choice == 3 and values:
        values = values + values
    else:
        values = []
    setattr(op, field, values)
    return f"operator {j} {field} -> {values[:8]}"


def m_op_produce(model: schema.ModelT, rng: random.Random) -> str:
    """An operator writes a graph input, a constant, or another operator's output."""
    sg = _subgraph(model)
    if not sg.operators:
        return m_io(model, rng)
    j = rng.randrange(len(sg.operators))
    op = sg.operators[j]
    pool = [*_ints(sg.inputs)]
    pool += [i for i, t in enumerate(sg.tensors) if t.buffer]
    for other in sg.operators:
        pool += _ints(other.outputs) + _ints(other.inputs)
    target = rng.choice(pool or [0])
    outputs = _ints(op.outputs) or [0]
    outputs[rng.randrange(len(outputs))] = target
    op.outputs = outputs
    return f"operator {j} outputs -> {outputs}"


def m_op_order(model: schema.ModelT, rng: random.Random) -> str:
    ops = _subgraph(model).operators
    if len(ops) < 2:
        ops.append(ops[0]) if ops else None
        return "operator duplicated"
    choice = rng.randrange(4)
    if choice == 0:
        a, b = rng.sample(range(len(ops)), 2)
        ops[a], ops[b] = ops[b], ops[a]
        return f"operators {a} and {b} swapped"
    if choice == 1:
        ops.reverse()
        return "operators reversed"
    if choice == 2:
        k = rng.randrange(len(ops))
        del ops[k]
        return f"operator {k} deleted"
    k = rng.randrange(len(ops))
    ops.insert(rng.randrange(len(ops)), ops[k])
    return f"operator {k} duplicated"


def m_cycle(model: schema.ModelT, rng: random.Random) -> str:
    """Feed an operator's output (or a later operator's) back into its inputs."""
    ops = _subgraph(model).operators
    if not ops:
        return m_io(model, rng)
    a = rng.randrange(len(ops))
    b = rng.randrange(a, len(ops))
    inputs = _ints(ops[a].inputs) or [0]
    outs = _ints(ops[b].outputs) or [0]
    inputs[0] = outs[0]
    ops[a].inputs = inputs
    return f"operator {a} input 0 <- output of operator {b}"


def m_opcode(model: schema.ModelT, rng: random.Random) -> str:
    sg = _subgraph(model)
    choice = rng.randrange(4)
    if choice == 0 and sg.operators:
        op = rng.choice(sg.operators)
        op.opcodeIndex = rng.choice((len(model.operatorCodes), 2**32 - 1, 1000))
        return f"opcode index -> {op.opcodeIndex}"
    if not model.operatorCodes:
        return "no opcodes"
    code = rng.choice(model.operatorCodes)
    if choice == 1:
        code.builtinCode = rng.randrange(220)
        code.deprecatedBuiltinCode = min(code.builtinCode, 127)
        return f"builtin code -> {code.builtinCode}"
    if choice == 2:
        code.version = rng.choice((0, -1, 99, 2**31 - 1))
        return f"opcode version -> {code.version}"
    code.deprecatedBuiltinCode = rng.randrange(128)
    return f"deprecated builtin code -> {code.deprecatedBuiltinCode}"


def _option_fields(options: object) -> list[str]:
    return [k for k, v in vars(options).items()
            if isinstance(v, (bool, int, float, list, np.ndarray)) or v is None]


def _custom_option_value(rng: random.Random) -> tuple[str, object]:
    return rng.choice((("int", rng.choice(_INT_VALUES)), ("int", -(2**63)), ("uint", 2**64 - 1),
                       ("float", rng.choice(_FLOAT_VALUES)), ("bool", rng.random() < 0.5),
                       ("string", "7"), ("vector", [1, 2, 3]), ("null", None)))


def _flexbuffer_map(values: dict[str, tuple[str, object]]) -> bytes:
    from flatbuffers import flexbuffers

    fbb = flexbuffers.Builder()
    with fbb.Map():
        for key, (kind, value) in values.items():
            if kind == "null":
                fbb.Key(key)
                fbb.Null()
            elif kind == "vector":
                fbb.VectorFromElements(key, value)
            else:
                getattr(fbb, {"int": "Int", "uint": "UInt", "float": "Float", "bool": "Bool",
                              "string": "String"}[kind])(key, value)
    return bytes(fbb.Finish())


def m_custom_options(model: schema.ModelT, rng: random.Random) -> str:
    """A custom operator's flexbuffer options: one value changed (to another type, an
    extreme, NaN), a key dropped or added, or the bytes damaged."""
    from flatbuffers import flexbuffers

    ops = [op for op in _subgraph(model).operators if op.customOptions is not None]
    if not ops:
        return m_op_index(model, rng)
    op = rng.choice(ops)
    raw = bytes(int(b) for b in op.customOptions)
    choice = rng.randrange(4)
    if choice == 0:
        damaged, what = byte_mutation(raw, rng, [])
        op.customOptions = list(damaged)
        return f"custom options bytes: {what}"
    if choice == 1:
        op.customOptions = None if rng.random() < 0.5 else []
        return "custom options removed"
    decoded = flexbuffers.Loads(raw)
    kinds = {key: ("bool" if isinstance(v, bool) else "int" if isinstance(v, int)
                   else "float", v) for key, v in decoded.items()}
    key = rng.choice(sorted(kinds))
    if choice == 2:
        del kinds[key]
        what = f"custom option {key} dropped"
    else:
        kinds[key] = _custom_option_value(rng)
        what = f"custom option {key} -> {kinds[key][1]!r}"
    op.customOptions = list(_flexbuffer_map(kinds))
    return what


def m_options(model: schema.ModelT, rng: random.Random) -> str:
    if any(op.customOptions is not None for op in _subgraph(model).operators):
        return m_custom_options(model, rng)
    ops = [op for op in _subgraph(model).operators if op.builtinOptions is not None]
    if not ops:
        return m_op_index(model, rng)
    op = rng.choice(ops)
    if rng.random() < 0.1:
        op.builtinOptions, op.builtinOptionsType = None, 0
        return "options removed"
    if rng.random() < 0.1:  # options of another operator type
        names = sorted(k for k in vars(schema.BuiltinOptions) if not k.startswith("_")
                       and hasattr(schema, f"{k}T"))
        name = rng.choice(names)
        op.builtinOptionsType = int(getattr(schema.BuiltinOptions, name))
        op.builtinOptions = getattr(schema, f"{name}T")()
        return f"options -> {name}"
    fields = _option_fields(op.builtinOptions)
    if not fields:
        return m_op_index(model, rng)
    name = rng.choice(fields)
    value = getattr(op.builtinOptions, name)
    if isinstance(value, bool):
        new: object = not value
    elif isinstance(value, float):
        new = rng.choice(_FLOAT_VALUES)
    elif isinstance(value, int):
        new = rng.choice((*_INT_VALUES, value + 1, value - 1, rng.randrange(-3, 12)))
    else:
        items = _ints(value)
        if items and rng.random() < 0.7:
            items[rng.randrange(len(items))] = rng.choice((0, -1, -2, 2**31 - 1, 7))
        else:
            items = rng.choice(([], [-1, -1], [0], [*items, 1]))
        new = items
    setattr(op.builtinOptions, name, new)
    return f"option {name} -> {new if not isinstance(new, list) else new[:8]}"


def m_io(model: schema.ModelT, rng: random.Random) -> str:
    sg = _subgraph(model)
    field = rng.choice(("inputs", "outputs"))
    values = _ints(getattr(sg, field))
    n = len(sg.tensors)
    choice = rng.randrange(6)
    if choice == 0:
        values = []
    elif choice == 1 and values:
        values[rng.randrange(len(values))] = rng.choice((-1, n, n + 5, -(2**31)))
    elif choice == 2 and values:
        values = values + values[:1]
    elif choice == 3:
        values = [*values, rng.randrange(n)]
    elif choice == 4:  # a constant or an intermediate as graph I/O
        values = [rng.randrange(n)]
    else:
        other = _ints(sg.outputs if field == "inputs" else sg.inputs)
        values = other or values
    setattr(sg, field, values)
    return f"graph {field} -> {values[:8]}"


def m_subgraphs(model: schema.ModelT, rng: random.Random) -> str:
    if rng.random() < 0.5:
        model.subgraphs = [] if rng.random() < 0.5 else [*model.subgraphs, model.subgraphs[0]]
    else:
        sg = _subgraph(model)
        sg.tensors = sg.tensors[: rng.randrange(len(sg.tensors) + 1)]
    return f"{len(model.subgraphs)} subgraphs"


def m_sparsity_variable(model: schema.ModelT, rng: random.Random) -> str:
    i, t = _tensor(model, rng)
    if rng.random() < 0.5:
        t.isVariable = True
        return f"tensor {i} variable"
    t.sparsity = schema.SparsityParametersT()
    t.sparsity.traversalOrder = list(range(len(_ints(t.shape))))
    return f"tensor {i} sparse"


def m_names(model: schema.ModelT, rng: random.Random) -> str:
    i, t = _tensor(model, rng)
    t.name = rng.choice(_NAMES)
    if rng.random() < 0.3 and model.operatorCodes:
        code = rng.choice(model.operatorCodes)
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode = rng.choice(_NAMES)
    return f"tensor {i} name -> {t.name[:20]!r}"


SCHEMA_MUTATIONS: dict[str, Callable[[schema.ModelT, random.Random], str]] = {
    "shape_dim": m_shape_dim,
    "shape_rank": m_shape_rank,
    "shape_signature": m_shape_signature,
    "type": m_type,
    "scale": m_scale,
    "zero_point": m_zero_point,
    "quant_length": m_quant_length,
    "quant_remove": m_quant_remove,
    "buffer_index": m_buffer_index,
    "buffer_data": m_buffer_data,
    "buffers_missing": m_buffers_missing,
    "op_index": m_op_index,
    "op_produce": m_op_produce,
    "op_order": m_op_order,
    "cycle": m_cycle,
    "opcode": m_opcode,
    "options": m_options,
    "io": m_io,
    "subgraphs": m_subgraphs,
    "sparsity_variable": m_sparsity_variable,
    "names": m_names,
}


def schema_mutation(data: bytes, rng: random.Random,
                    kind: str | None = None) -> tuple[bytes, str]:
    """One or two schema-level edits; falls back to a byte mutation if packing fails (a
    value that does not fit its field)."""
    for _ in range(8):
        model = read_model(data)
        names = [kind or rng.choice(sorted(SCHEMA_MUTATIONS))]
        if kind is None and rng.random() < 0.25:
            names.append(rng.choice(sorted(SCHEMA_MUTATIONS)))
        try:
            what = "; ".join(SCHEMA_MUTATIONS[n](model, rng) for n in names)
            return pack(model), f"{'+'.join(names)}: {what}"
        except (ValueError, OverflowError, TypeError, IndexError, AttributeError,
                struct.error):
            continue  # the value does not fit its field; draw another
    return byte_mutation(data, rng)


def mutate(data: bytes, rng: random.Random,
           structural: list[int] | None = None) -> tuple[bytes, str]:
    """A malformed variant of `data` (byte-level 40%, schema-level 60%)."""
    if rng.random() < 0.4:
        return byte_mutation(data, rng, structural)
    return schema_mutation(data, rng)


def derive_case(data: bytes, source: str, k: int,
                structural: list[int] | None = None) -> tuple[bytes, str]:
    """Case k of a seed model, the same on every machine: every third case a byte-level
    mutation, the others each schema-level kind in turn (every fourth of them a random
    one or two; for a seed with custom options, every third case changes those)."""
    rng = random.Random(f"{source}:{k}")  # str seeds hash with SHA-512: deterministic
    if k % 3 == 0:
        return byte_mutation(data, rng, structural)
    if source in _CUSTOM_OPTION_SEEDS and k % 3 == 1:  # a third on the flexbuffer options
        return schema_mutation(data, rng, "options")
    j = k - k // 3 - 1
    kinds = sorted(SCHEMA_MUTATIONS)
    return schema_mutation(data, rng, None if j % 4 == 3 else kinds[j % len(kinds)])


def structural_case(kind: str, k: int, seeds: dict[str, bytes]) -> tuple[bytes, str]:
    """Case k of a structural class (hostile.CLASSES), the same on every machine."""
    return hostile.draw(kind, random.Random(f"{kind}:{k}"), seeds)


def seed_models(shared_models: Path) -> dict[str, bytes]:
    """The models the fuzzers start from: the shared real models, the demo MLPs and the
    small builder models."""
    import codegen.demo

    seeds = {p.stem: p.read_bytes() for p in sorted(shared_models.glob("*.tflite"))}
    demo = Path(codegen.demo.__file__).parent
    seeds.update({p.stem: p.read_bytes() for p in sorted(demo.glob("*.tflite"))})
    seeds.update(small_models())
    return seeds


# -- one run of the CLI -----------------------------------------------------------------------


class CaseTimeout(BaseException):
    """Raised in the generator by the per-case alarm (a BaseException, so that no
    `except Exception` in the code under test swallows it)."""


@contextlib.contextmanager
def time_limit(seconds: float, cpu: bool = False) -> Iterator[None]:
    """Interrupt the block after `seconds` of wall-clock time (SIGALRM), or with `cpu` of
    this process's CPU time (SIGPROF: the same on a busy machine as on an idle one). Main
    thread only; elsewhere the elapsed time is only checked afterwards."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal,
                                                                                 "setitimer"):
        yield
        return
    which, signum = ((signal.ITIMER_PROF, signal.SIGPROF) if cpu
                     else (signal.ITIMER_REAL, signal.SIGALRM))

    def expire(signum: int, frame: object) -> None:
        raise CaseTimeout(f"no answer within {seconds} s{' of CPU time' if cpu else ''}")

    previous = signal.signal(signum, expire)
    signal.setitimer(which, seconds)
    try:
        yield
    finally:
        signal.setitimer(which, 0)
        signal.signal(signum, previous)


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Python warnings printed to (the redirected) stderr every time, as a user would see
    them, whatever pytest does with warnings."""
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: object = None, line: str | None = None) -> None:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        yield


@dataclass
class RunResult:
    status: int | None
    stdout: str
    stderr: str
    seconds: float
    problem: str | None  # None: the run behaved


def run_generate(data: bytes, work_dir: Path, *, time_limit_s: float = 10.0,
                 existing_output: bool = False, cpu_time: bool = False) -> RunResult:
    """Run `codegen generate` in-process on `data` and check the contract: exit 0 with the
    two files, or exit 1 with exactly one `codegen: error:` line on stderr and the output
    directory as it was; never exit 2 (internal error), an exception, or a timeout (of
    wall-clock time, or with `cpu_time` of CPU time)."""
    from codegen.cli import main

    work_dir.mkdir(parents=True, exist_ok=True)
    for p in work_dir.iterdir():  # leftovers of the previous case
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
    model = work_dir / MODEL_FILE
    model.write_bytes(data)
    out = work_dir / "out"
    if existing_output:
        out.mkdir()
        (out / KEEP_FILE).write_text("the user's file\n")
    stdout, stderr = io.StringIO(), io.StringIO()
    clock = time.process_time if cpu_time else time.perf_counter
    start = clock()
    status: int | None = None
    problem: str | None = None
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
                _warnings_to_stderr(), time_limit(time_limit_s, cpu_time):
            status = main(["generate", str(model), "-o", str(out)])
    except CaseTimeout as exc:
        problem = f"timeout: {exc}"
    except BaseException as exc:
        problem = f"{type(exc).__name__} escaped main(): {exc}"
    seconds = clock() - start
    err = stderr.getvalue()
    if problem is None and seconds > time_limit_s:
        problem = f"took {seconds:.1f} s{' of CPU time' if cpu_time else ''} " \
                  f"(limit {time_limit_s} s)"
    if problem is None:
        problem = _check_outcome(status, stdout.getvalue(), err, work_dir, out,
                                 existing_output)
    return RunResult(status, stdout.getvalue(), err, seconds, problem)


def _check_outcome(status: int | None, out_text: str, err: str, work_dir: Path, out: Path,
                   existing_output: bool) -> str | None:
    expected_dir = {MODEL_FILE, "out"} if existing_output or status == 0 else {MODEL_FILE}
    left = {p.name for p in work_dir.iterdir()}
    if left != expected_dir:
        return f"exit {status}: working directory holds {sorted(left)}"
    if "Traceback" in err or "Traceback" in out_text:
        return f"exit {status}: traceback printed"
    if status == 0:
        names = {p.name for p in out.iterdir()}
        expected = {"fuzz.c", "fuzz.h"} | ({KEEP_FILE} if existing_output else set())
        if names != expected or err:
            return f"exit 0 but output {sorted(names)}, stderr {err!r}"
        return None
    if status != 1:
        return f"exit {status}: {err.strip()}"
    lines = err.splitlines()
    if len(lines) != 1 or not lines[0].startswith("codegen: error: ") or out_text:
        return f"exit 1 but stderr {err!r}, stdout {out_text[:200]!r}"
    if existing_output:
        names = {p.name for p in out.iterdir()}
        if names != {KEEP_FILE}:
            return f"exit 1 but the output directory holds {sorted(names)}"
    return None




# -- runs under memory and time limits, in a child process ------------------------------------

MEMORY_SLACK = 300 << 20  # bytes a run may use beyond 10 x the file's size
# Wall-clock time a case may take before the parent kills the child: the CPU time limit
# times _WALL_FACTOR (a busy machine), plus _GRACE_S.
_WALL_FACTOR = 6
_GRACE_S = 10.0
_BETWEEN_CASES_S = 120.0  # deriving the next case


def memory_allowance(data: bytes) -> int:
    """The memory a generation run may add for this file: 10 x its size + 300 MB."""
    return 10 * len(data) + MEMORY_SLACK


@dataclass(frozen=True)
class Case:
    name: str  # how to find it again, e.g. "kws_ref_model:17"
    what: str  # what was done to the file
    data: bytes
    existing_output: bool = False


@dataclass(frozen=True)
class Outcome:
    name: str
    what: str
    status: int | None
    seconds: float
    problem: str | None  # None: the run behaved


def _address_space() -> int:
    """This process's mapped virtual memory (what RLIMIT_AS limits), in bytes."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _run_limited(case: Case, work_dir: Path, time_limit_s: float) -> Outcome:
    """One case in this (child) process, with RLIMIT_AS lowered for its duration."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    allowance = memory_allowance(case.data)
    limit = _address_space() + allowance
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        result = run_generate(case.data, work_dir, time_limit_s=time_limit_s,
                              existing_output=case.existing_output, cpu_time=True)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    problem = result.problem
    if problem is not None and "MemoryError" in problem + result.stderr:
        problem = f"out of memory (limit {allowance >> 20} MiB for {len(case.data)} bytes): " \
                  f"{problem}"
    return Outcome(case.name, case.what, result.status, result.seconds, problem)


def _child(cases: Callable[[], Iterable[Case]], work_dir: Path, time_limit_s: float,
           pipe: int) -> None:
    def send(message: dict[str, object]) -> None:
        os.write(pipe, (json.dumps(message) + "\n").encode())

    code = 0
    try:
        for case in cases():
            send({"start": case.name, "what": case.what})
            outcome = _run_limited(case, work_dir, time_limit_s)
            send({"outcome": vars(outcome)})
    except BaseException:  # the harness itself broke: say where
        send({"crash": traceback.format_exc()[-2000:]})
        code = 3
    finally:
        os._exit(code)


def run_isolated(cases: Callable[[], Iterable[Case]], work_dir: Path, *,
                 time_limit_s: float = 10.0) -> list[Outcome]:
    """Run the cases that `cases()` yields, in a forked child, each with run_generate's
    checks under a memory limit (memory_allowance) and a limit of CPU time. A case that
    runs out of memory or time, blocks (the child is then killed) or kills the child is an
    Outcome with a problem; the cases after a killed one are not run. Linux only (the
    limit is relative to /proc/self/statm)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        _child(cases, work_dir, time_limit_s, write_end)
    os.close(write_end)
    outcomes: list[Outcome] = []
    current: dict[str, object] | None = None
    deadline = time.monotonic() + _BETWEEN_CASES_S
    pending = b""
    killed = False
    try:
        while True:
            wait = max(0.0, deadline - time.monotonic())
            if not select.select([read_end], [], [], wait)[0]:
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                message = json.loads(line)
                if "start" in message:
                    current = message
                    deadline = time.monotonic() + _WALL_FACTOR * time_limit_s + _GRACE_S
                elif "outcome" in message:
                    outcomes.append(Outcome(**message["outcome"]))
                    current = None
                    deadline = time.monotonic() + _BETWEEN_CASES_S
                else:
                    outcomes.append(Outcome("harness", "", None, 0.0,
                                            f"the fuzzing child failed: {message['crash']}"))
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    if current is not None or killed:
        name = str(current["start"]) if current else "harness"
        what = str(current["what"]) if current else "deriving the next case"
        if killed:
            problem = (f"timeout: no answer within {_WALL_FACTOR * time_limit_s + _GRACE_S:g} s "
                       "of wall-clock time, killed")
        elif os.WIFSIGNALED(status):
            problem = f"the process died of signal {os.WTERMSIG(status)}"
        else:
            problem = f"the process exited ({os.waitstatus_to_exitcode(status)}) mid-case"
        outcomes.append(Outcome(name, what, None, 0.0, problem))
    return outcomes
