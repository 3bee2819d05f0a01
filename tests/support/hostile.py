"""Small files that are expensive to take: structure-aware inputs for bounded-resource tests.

Each builder returns the bytes of a .tflite file that is small or cheap on disk but would
cost a naive reader, planner or emitter time or memory out of proportion to its size:

- `shared_table_dag`: vectors whose entries all point to one table (2,000 subgraph entries
  of one subgraph whose 2,000 operator entries are one operator: 16 KB that a recursive
  unpacker expands into four million operators);
- `shared_buffer`: many tensors that all refer to one large constant buffer;
- `chain`: a long chain of operators of one type (any of `CHAIN_OPS`);
- `large_weights`: one legitimate layer with 16 MiB of weights;
- `resize`: a RESIZE_NEAREST_NEIGHBOR whose tables grow with its output, not the file;
- `deep_branches`: a graph whose branches make the run order a search, deeper than
  Python's recursion limit;
- `lying_vector`: a valid model with one vector length field raised beyond what the file
  holds (or to what it holds, read as garbage).

`tests/test_bounded_input.py` runs them through the CLI under memory and time limits;
`tests/test_fuzz.py` draws variants of each class.
"""

from __future__ import annotations

import random
import struct

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from support.builder import ModelBuilder, Q, bias_scales, fc_options

_FILE_IDENTIFIER = b"TFL3"
_UNARY = ("RELU", "RELU6", "TANH", "LOGISTIC", "LEAKY_RELU")


def _int_vector(builder: flatbuffers.Builder, values: list[int]) -> int:
    builder.StartVector(4, len(values), 4)
    for v in reversed(values):
        builder.PrependInt32(v)
    return builder.EndVector()


def _shared_offsets(builder: flatbuffers.Builder, offset: int, count: int) -> int:
    """A vector of `count` entries that all refer to the table at `offset`."""
    builder.StartVector(4, count, 4)
    for _ in range(count):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def shared_table_dag(subgraphs: int = 2000, operators: int = 2000, tensors: int = 1,
                     scales: int = 1, operator_inputs: int = 1) -> bytes:
    """A model whose `subgraphs` vector repeats one subgraph, whose `operators` (and
    `tensors`) vectors repeat one operator (tensor): a few bytes per entry in the file,
    `subgraphs x operators` operators for a reader that unpacks every entry. The one tensor
    has `scales` quantization scales and the one operator `operator_inputs` inputs, vectors
    read again for every entry that repeats them."""
    b = flatbuffers.Builder(1024)
    name = b.CreateString("t")
    shape = _int_vector(b, [1, 4])
    b.StartVector(4, scales, 4)
    for _ in range(scales):
        b.PrependFloat32(0.1)
    scale = b.EndVector()
    b.StartVector(8, scales, 8)
    for _ in range(scales):
        b.PrependInt64(0)
    zp_vec = b.EndVector()
    schema.QuantizationParametersStart(b)
    schema.QuantizationParametersAddScale(b, scale)
    schema.QuantizationParametersAddZeroPoint(b, zp_vec)
    quant = schema.QuantizationParametersEnd(b)
    schema.TensorStart(b)
    schema.TensorAddShape(b, shape)
    schema.TensorAddType(b, schema.TensorType.INT8)
    schema.TensorAddName(b, name)
    schema.TensorAddQuantization(b, quant)
    tensor = schema.TensorEnd(b)
    op_inputs = _int_vector(b, [0] * operator_inputs)
    op_outputs = _int_vector(b, [0])
    schema.OperatorStart(b)
    schema.OperatorAddOpcodeIndex(b, 0)
    schema.OperatorAddInputs(b, op_inputs)
    schema.OperatorAddOutputs(b, op_outputs)
    operator = schema.OperatorEnd(b)
    tensor_vec = _shared_offsets(b, tensor, tensors)
    op_vec = _shared_offsets(b, operator, operators)
    sg_inputs = _int_vector(b, [0])
    sg_outputs = _int_vector(b, [0])
    schema.SubGraphStart(b)
    schema.SubGraphAddTensors(b, tensor_vec)
    schema.SubGraphAddOperators(b, op_vec)
    schema.SubGraphAddInputs(b, sg_inputs)
    schema.SubGraphAddOutputs(b, sg_outputs)
    subgraph = schema.SubGraphEnd(b)
    sg_vec = _shared_offsets(b, subgraph, subgraphs)
    schema.OperatorCodeStart(b)
    schema.OperatorCodeAddBuiltinCode(b, schema.BuiltinOperator.RELU)
    schema.OperatorCodeAddDeprecatedBuiltinCode(b, schema.BuiltinOperator.RELU)
    schema.OperatorCodeAddVersion(b, 1)
    code = schema.OperatorCodeEnd(b)
    codes = _shared_offsets(b, code, 1)
    schema.BufferStart(b)
    empty = schema.BufferEnd(b)
    buffers = _shared_offsets(b, empty, 1)
    schema.ModelStart(b)
    schema.ModelAddVersion(b, 3)
    schema.ModelAddOperatorCodes(b, codes)
    schema.ModelAddSubgraphs(b, sg_vec)
    schema.ModelAddBuffers(b, buffers)
    b.Finish(schema.ModelEnd(b), file_identifier=_FILE_IDENTIFIER)
    return bytes(b.Output())


def shared_buffer(tensors: int = 240, elements: int = 1 << 24, used: int = 0) -> bytes:
    """A small FULLY_CONNECTED model plus one constant buffer of `elements` int8 (16 MiB by
    default) that `tensors` tensor entries share; `used` of them are the weights of further
    FULLY_CONNECTED layers reading the input (the rest are referenced by nothing)."""
    depth = min(elements, 1 << 12)
    units = max(1, elements // depth)
    b = ModelBuilder("shared buffer")
    x = b.add_tensor("x", (1, depth), "int8", quant=Q(0.05, -3))
    w = b.add_tensor("w", (4, depth), "int8", quant=Q(0.01), data=np.ones((4, depth), np.int8))
    h = b.add_tensor("h", (1, 4), "int8", quant=Q(0.1, 0))
    b.add_op("FULLY_CONNECTED", [x, w, -1], [h], fc_options())
    buffer = b.add_buffer(np.ones(units * depth, np.int8).tobytes())
    sharers = [b.add_tensor(f"w{i}", (units, depth), "int8", quant=Q(0.01))
               for i in range(tensors)]
    for i in sharers:
        b.model.subgraphs[0].tensors[i].buffer = buffer
    outputs = [h]
    for k in range(min(used, tensors)):
        y = b.add_tensor(f"y{k}", (1, units), "int8", quant=Q(0.1, 0))
        b.add_op("FULLY_CONNECTED", [x, sharers[k], -1], [y], fc_options())
        outputs.append(y)
    b.set_io([x], outputs)
    return b.build()


def large_weights(kind: str = "FULLY_CONNECTED", weight_bytes: int = 1 << 24) -> bytes:
    """One legitimate layer with about `weight_bytes` of int8 weights (random, so that the
    generated C is as long as it gets): `FULLY_CONNECTED` (the matrix-product engine),
    `FULLY_CONNECTED_ZP` (weights with a zero point: the plain kernel), `CONV_2D` (1x1),
    `CONV_2D_3X3` or `DEPTHWISE_CONV_2D` (3x3, one channel per ~9 bytes)."""
    rng = np.random.default_rng(0)
    b = ModelBuilder(kind.lower())
    xq, yq = Q(0.05, -3), Q(0.2, 1)
    side = 1 << (weight_bytes.bit_length() - 1) // 2  # units x depth of a square matrix
    if kind.startswith("FULLY_CONNECTED"):
        shape, x_shape, y_shape = (side, side), (1, side), (1, side)
        wq = Q(0.01, 3) if kind.endswith("_ZP") else Q(0.01)
        opcode, options = "FULLY_CONNECTED", fc_options()
    elif kind == "DEPTHWISE_CONV_2D":
        channels = weight_bytes // 9
        shape, x_shape, y_shape = (1, 3, 3, channels), (1, 3, 3, channels), (1, 1, 1, channels)
        wq, opcode = Q(0.01), kind
        options = _options("DepthwiseConv2DOptions", strideW=1, strideH=1, depthMultiplier=1,
                           padding=schema.Padding.VALID)
    else:
        taps = 3 if kind == "CONV_2D_3X3" else 1
        depth = weight_bytes // side // (taps * taps)
        shape, x_shape, y_shape = ((side, taps, taps, depth), (1, taps, taps, depth),
                                   (1, 1, 1, side))
        wq, opcode = Q(list(np.linspace(0.005, 0.02, side))), "CONV_2D"
        options = _options("Conv2DOptions", strideW=1, strideH=1, padding=schema.Padding.VALID)
    x = b.add_tensor("x", x_shape, "int8", quant=xq)
    w = b.add_tensor("w", shape, "int8", quant=wq,
                     data=rng.integers(-128, 128, shape, dtype=np.int8))
    out_c = shape[-1] if kind == "DEPTHWISE_CONV_2D" else shape[0]
    bias = b.add_tensor("bias", (out_c,), "int32", quant=Q(bias_scales(xq.scale, wq.scales)),
                        data=rng.integers(-5000, 5000, out_c, dtype=np.int32))
    y = b.add_tensor("y", y_shape, "int8", quant=yq)
    b.add_op(opcode, [x, w, bias], [y], options)
    b.set_io([x], [y])
    return b.build()


def chain(length: int = 16000, opcode: str = "ADD", width: int = 8,
          distinct: bool = False) -> bytes:
    """`length` operators of one type, each reading the previous one's output: elementwise
    operators on (1, width) tensors (ADD and MUL add the tensor to itself; unary operators
    apply themselves), every other operator of `CHAIN_OPS` on (1, 1, width, 1) tensors with
    options and constant operands (shared by all layers) that keep the shape. `distinct`
    gives every tensor a scale of its own (for the operators that requantize, `RESCALING`),
    so that no two layers have the same generation-time constants."""
    b = ModelBuilder("chain")
    q = _CHAIN_QUANT.get(opcode, Q(0.05, -3))
    shape = (1, width) if opcode in _ELEMENTWISE else (1, 1, width, 1)
    prev = b.add_tensor("x", shape, "int8", quant=q)
    first = prev
    shared: dict[str, int] = {}
    for i in range(length):
        if distinct and opcode in RESCALING:
            q = Q(0.05 * (1 + (i + 1) / (4 * length)), -3)
        y = b.add_tensor(f"h{i}", shape, "int8", quant=q)
        if opcode in _ELEMENTWISE:
            if opcode in _BINARY:
                b.add_op(opcode, [prev, prev], [y], _binary_options(opcode))
            else:
                b.add_op(opcode, [prev], [y], _unary_options(opcode))
        else:
            constants = [shared.get(k) or shared.setdefault(k, make(b, width))
                         for k, make in _CHAIN_CONSTANTS.get(opcode, {}).items()]
            inputs = [*constants, prev] if opcode == "SPLIT" else [prev, *constants]
            b.add_op(opcode, inputs, [y], _chain_options(opcode))
        prev = y
    b.set_io([first], [prev])
    return b.build()


_BINARY = ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM")
_ELEMENTWISE = (*_BINARY, "RELU", "RELU6", "TANH", "LOGISTIC", "LEAKY_RELU",
                "HARD_SWISH")
# LOGISTIC's and SOFTMAX's outputs have TFLM's fixed quantization (scale 1/256, zero point
# -128), and so, along a chain, do their inputs.
_CHAIN_QUANT = {"LOGISTIC": Q(1 / 256, -128), "SOFTMAX": Q(1 / 256, -128)}


def _int32(values: list[int], shape: tuple[int, ...] | None = None) -> object:
    def make(b: ModelBuilder, width: int) -> int:
        data = np.asarray(values, np.int32)
        return b.add_tensor("c", shape if shape is not None else data.shape, "int32",
                            data=data)
    return make


def _weights(shape: tuple[int, ...]) -> object:
    def make(b: ModelBuilder, width: int) -> int:
        full = tuple(width if d == 0 else d for d in shape)
        data = np.random.default_rng(0).integers(-127, 128, full).astype(np.int8)
        return b.add_tensor("w", full, "int8", quant=Q(0.01), data=data)
    return make


def _bias(b: ModelBuilder, width: int) -> int:
    return b.add_tensor("bias", (width,), "int32", quant=Q(0.05 * 0.01),
                        data=np.arange(width, dtype=np.int32))


def _sized(make_values: object) -> object:
    def make(b: ModelBuilder, width: int) -> int:
        return _int32(make_values(width))(b, width)  # type: ignore[operator]
    return make


# Constant operands per operator type: name -> maker(builder, width) -> tensor index.
_CHAIN_CONSTANTS: dict[str, dict[str, object]] = {
    "PRELU": {"alpha": lambda b, width: b.add_tensor(
        "alpha", (1, 1, 1, 1), "int8", quant=Q(0.01), data=np.full((1, 1, 1, 1), 25))},
    "RESHAPE": {"shape": _sized(lambda width: [1, 1, width, 1])},
    "TRANSPOSE": {"perm": _int32([0, 1, 2, 3])},
    "PAD": {"paddings": _int32([0] * 8, (4, 2))},
    "SLICE": {"begin": _int32([0, 0, 0, 0]), "size": _int32([-1, -1, -1, -1])},
    "STRIDED_SLICE": {"begin": _int32([0, 0, 0, 0]), "end": _sized(lambda w: [1, 1, w, 1]),
                      "strides": _int32([1, 1, 1, 1])},
    "RESIZE_NEAREST_NEIGHBOR": {"size": _sized(lambda width: [1, width])},
    "MEAN": {"axis": _int32([3])},
    "SPLIT": {"axis": _int32([3], ())},
    "CONV_2D": {"weights": _weights((1, 1, 1, 1)), "bias": lambda b, width: b.add_tensor(
        "bias", (1,), "int32", quant=Q(0.05 * 0.01), data=np.ones(1, np.int32))},
    "DEPTHWISE_CONV_2D": {"weights": _weights((1, 1, 1, 1)), "bias": lambda b, width:
                          b.add_tensor("bias", (1,), "int32", quant=Q(0.05 * 0.01),
                                       data=np.ones(1, np.int32))},
    "FULLY_CONNECTED": {"weights": _weights((1, 1)), "bias": lambda b, width: b.add_tensor(
        "bias", (1,), "int32", quant=Q(0.05 * 0.01), data=np.ones(1, np.int32))},
}
# The operators whose input and output may be quantized differently (the others copy or
# compare values, or fix their output's quantization).
RESCALING = ("ADD", "SUB", "MUL", "RELU", "RELU6", "TANH", "LEAKY_RELU", "HARD_SWISH", "PRELU",
             "QUANTIZE", "MEAN", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Every operator type but the views (EXPAND_DIMS, SQUEEZE: RESHAPE's module), the variants
# of a module in the list (PADV2, SPLIT_V, UNPACK), PACK (it changes the rank) and
# DEQUANTIZE (its output is float).
CHAIN_OPS = (*_ELEMENTWISE, "PRELU", "QUANTIZE", "SOFTMAX", "RESHAPE", "TRANSPOSE", "PAD",
             "SLICE", "STRIDED_SLICE", "RESIZE_NEAREST_NEIGHBOR", "MEAN", "SPLIT",
             "CONCATENATION", "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONV_2D",
             "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _options(name: str, **fields: object) -> object:
    options = getattr(schema, f"{name}T")()
    for key, value in fields.items():
        setattr(options, key, value)
    return options


def _chain_options(opcode: str) -> object | None:
    pool = {"strideW": 1, "strideH": 1, "filterWidth": 1, "filterHeight": 1}
    return {
        "SOFTMAX": lambda: _options("SoftmaxOptions", beta=1.0),
        "RESHAPE": lambda: _options("ReshapeOptions"),
        "STRIDED_SLICE": lambda: _options("StridedSliceOptions"),
        "RESIZE_NEAREST_NEIGHBOR": lambda: _options("ResizeNearestNeighborOptions"),
        "MEAN": lambda: _options("ReducerOptions", keepDims=True),
        "SPLIT": lambda: _options("SplitOptions", numSplits=1),
        "CONCATENATION": lambda: _options("ConcatenationOptions", axis=2),
        "AVERAGE_POOL_2D": lambda: _options("Pool2DOptions", **pool),
        "MAX_POOL_2D": lambda: _options("Pool2DOptions", **pool),
        "CONV_2D": lambda: _options("Conv2DOptions", strideW=1, strideH=1),
        "DEPTHWISE_CONV_2D": lambda: _options("DepthwiseConv2DOptions", strideW=1,
                                              strideH=1, depthMultiplier=1),
        "FULLY_CONNECTED": lambda: _options("FullyConnectedOptions", keepNumDims=True),
    }.get(opcode, lambda: None)()


def _binary_options(opcode: str) -> object | None:
    if opcode == "ADD":
        return schema.AddOptionsT()
    if opcode == "SUB":
        return schema.SubOptionsT()
    if opcode == "MUL":
        return schema.MulOptionsT()
    return None


def _unary_options(opcode: str) -> object | None:
    if opcode == "LEAKY_RELU":
        options = schema.LeakyReluOptionsT()
        options.alpha = 0.25
        return options
    return None


def resize(in_width: int = 1 << 12, out_width: int = 1 << 24) -> bytes:
    """One RESIZE_NEAREST_NEIGHBOR of a (1, 1, in_width, 1) input to `out_width` columns: a
    file of a kilobyte whose column table has `out_width` entries."""
    b = ModelBuilder("resize")
    q = Q(0.05, -3)
    x = b.add_tensor("x", (1, 1, in_width, 1), "int8", quant=q)
    size = b.add_tensor("size", (2,), "int32", data=np.array([1, out_width], np.int32))
    y = b.add_tensor("y", (1, 1, out_width, 1), "int8", quant=q)
    b.add_op("RESIZE_NEAREST_NEIGHBOR", [x, size], [y],
             _options("ResizeNearestNeighborOptions"))
    b.set_io([x], [y])
    return b.build()


def deep_branches(depth: int = 1200, width: int = 4, fork_every: int = 0) -> bytes:
    """A chain of `depth` unary operators with side branches: the input also feeds a RELU
    whose output is added to the chain's end (one fork spanning the whole depth), and, when
    `fork_every` is set, every `fork_every` layers a diamond (two operators on the same
    tensor, joined by an ADD). The run order then is a search over a graph `depth` deep."""
    b = ModelBuilder("deep branches")
    q = Q(0.05, -3)
    x = b.add_tensor("x", (1, width), "int8", quant=q)
    side = b.add_tensor("side", (1, width), "int8", quant=q)
    b.add_op("RELU", [x], [side])
    prev = x
    for i in range(depth):
        y = b.add_tensor(f"h{i}", (1, width), "int8", quant=q)
        if fork_every and i % fork_every == fork_every - 1:
            a = b.add_tensor(f"a{i}", (1, width), "int8", quant=q)
            c = b.add_tensor(f"c{i}", (1, width), "int8", quant=q)
            b.add_op("RELU", [prev], [a])
            b.add_op("RELU6", [prev], [c])
            b.add_op("ADD", [a, c], [y], schema.AddOptionsT())
        else:
            b.add_op(_UNARY[i % 2], [prev], [y])
        prev = y
    out = b.add_tensor("y", (1, width), "int8", quant=q)
    b.add_op("ADD", [prev, side], [out], schema.AddOptionsT())
    b.set_io([x], [out])
    return b.build()


def high_rank(rank: int = 1_000_000, dim: int = 2) -> bytes:
    """A RELU whose tensors have `rank` dimensions of `dim`: 4 bytes per dimension, and an
    element count of `rank x log2(dim)` bits (slow to multiply out, and to print)."""
    b = ModelBuilder("high rank")
    q = Q(0.05, -3)
    x = b.add_tensor("x", [dim] * rank, "int8", quant=q)
    y = b.add_tensor("y", [dim] * rank, "int8", quant=q)
    b.add_op("RELU", [x], [y])
    b.set_io([x], [y])
    return b.build()


# -- lying vector lengths ---------------------------------------------------------------------


def vector_length_fields(data: bytes) -> list[tuple[int, str]]:
    """(file position of the length field, what the vector is) of the vectors a reader
    walks: the model's subgraphs, buffers and operator codes, the subgraph's tensors,
    operators, inputs and outputs, and each tensor's shape, name, quantization arrays and
    buffer data."""
    model = schema.Model.GetRootAs(data, 0)
    fields: list[tuple[int, str]] = []

    def add(table: object, slot: int, what: str) -> None:
        tab = table._tab  # type: ignore[attr-defined]
        o = flatbuffers.number_types.UOffsetTFlags.py_type(tab.Offset(slot))
        if o:
            fields.append((tab.Vector(o) - 4, what))

    add(model, 6, "operator codes")
    add(model, 8, "subgraphs")
    add(model, 12, "buffers")
    for i in range(model.BuffersLength()):
        add(model.Buffers(i), 4, f"buffer {i} data")
    sg = model.Subgraphs(0)
    add(sg, 4, "tensors")
    add(sg, 6, "graph inputs")
    add(sg, 8, "graph outputs")
    add(sg, 10, "operators")
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        add(t, 4, f"tensor {i} shape")
        add(t, 10, f"tensor {i} name")
        q = t.Quantization()
        if q is not None:
            add(q, 8, f"tensor {i} scales")
            add(q, 10, f"tensor {i} zero points")
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        add(op, 6, f"operator {i} inputs")
        add(op, 8, f"operator {i} outputs")
    return fields


def lying_vector(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """`data` with one vector's length field set to a lie: far beyond the file, just beyond
    it, or as many elements as the rest of the file holds (read as garbage)."""
    position, what = rng.choice(vector_length_fields(data))
    rest = len(data) - position - 4
    value = rng.choice((0x7FFFFFFF, 0xFFFFFFFF, 0x10000000, rest + 1, rest // 4 + 1,
                        rest // 4, rest // 8, rest))
    out = bytearray(data)
    out[position:position + 4] = struct.pack("<I", value)
    return bytes(out), f"{what} length -> {value}"


# -- random variants, for the fuzz suite ------------------------------------------------------

CLASSES = ("shared_tables", "shared_buffers", "long_chains", "deep_branches", "lying_lengths")


def draw(kind: str, rng: random.Random, seeds: dict[str, bytes]) -> tuple[bytes, str]:
    """A random file of one structural class (`CLASSES`), small enough for a quick run;
    `seeds` are the valid models that lying lengths start from."""
    if kind == "shared_tables":
        args = {"subgraphs": rng.choice((1, 1, 1, 2, 3, 2000, 65535)),
                "operators": rng.choice((1, 2, 500, 4000, 20000, 40000)),
                "tensors": rng.choice((1, 100, 5000, 200000)),
                "scales": rng.choice((1, 1, 1000, 20000)),
                "operator_inputs": rng.choice((1, 1, 2, 1000, 20000))}
        return shared_table_dag(**args), f"shared tables {args}"
    if kind == "shared_buffers":
        args = {"tensors": rng.choice((2, 40, 400)), "elements": 1 << rng.choice((10, 16, 20, 20)),
                "used": rng.choice((0, 0, 1, 3, 400))}
        return shared_buffer(**args), f"shared buffer {args}"
    if kind == "long_chains":
        args = {"length": rng.randint(500, 1500), "opcode": rng.choice(CHAIN_OPS),
                "width": rng.choice((1, 8, 64)), "distinct": rng.random() < 0.5}
        return chain(**args), f"chain {args}"
    if kind == "deep_branches":
        args = {"depth": rng.randint(985, 2000), "fork_every": rng.choice((0, 0, 3, 50)),
                "width": rng.choice((1, 4))}
        return deep_branches(**args), f"deep branches {args}"
    if kind == "lying_lengths":
        source = rng.choice(sorted(seeds))
        data, what = lying_vector(seeds[source], rng)
        return data, f"{source}: {what}"
    raise ValueError(f"unknown structural class {kind!r}")
