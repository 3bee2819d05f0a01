"""Small files that are expensive to take: structure-aware inputs for bounded-resource tests.

Each builder returns the bytes of a .tflite file that is small or cheap on disk but would
cost a naive reader, planner or emitter time or memory out of proportion to its size:

- `shared_table_dag`: vectors whose entries all point to one table (2,000 subgraph entries
  of one subgraph whose 2,000 operator entries are one operator: 16 KB that a recursive
  unpacker expands into four million operators);
- `shared_buffer`: many tensors that all refer to one large constant buffer;
- `chain`: a long chain of elementwise operators;
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

from support.builder import ModelBuilder, Q, fc_options

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


def chain(length: int = 16000, opcode: str = "ADD", width: int = 8) -> bytes:
    """`length` elementwise operators, each reading the previous one's output (ADD and MUL
    add the tensor to itself; unary operators apply themselves)."""
    b = ModelBuilder("chain")
    q = Q(0.05, -3)
    prev = b.add_tensor("x", (1, width), "int8", quant=q)
    first = prev
    for i in range(length):
        y = b.add_tensor(f"h{i}", (1, width), "int8", quant=q)
        if opcode in ("ADD", "MUL", "SUB", "MAXIMUM", "MINIMUM"):
            b.add_op(opcode, [prev, prev], [y], _binary_options(opcode))
        else:
            b.add_op(opcode, [prev], [y], _unary_options(opcode))
        prev = y
    b.set_io([first], [prev])
    return b.build()


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
_CHAIN_OPS = ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "RELU", "RELU6", "TANH", "LOGISTIC",
              "LEAKY_RELU")


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
        args = {"length": rng.randint(500, 1500), "opcode": rng.choice(_CHAIN_OPS),
                "width": rng.choice((1, 8, 64))}
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
