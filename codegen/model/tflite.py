"""TensorFlow Lite flatbuffer -> graph IR.

Reads the file with bounds-checked accessors of its own, using only the enums and the
builtin-options classes of the schema binding that LiteRT ships
(`ai_edge_litert.schema_py_generated`, which imports without TensorFlow). Everything that
is wrong with the file as a file (not a regular file, too large, not a flatbuffer, dynamic
shapes, indices or external buffers out of range, vectors longer than the file, constant
data of the wrong size, options of another operator's type), control flow (IF, WHILE,
CALL; other subgraphs than CALL_ONCE initializers) or what the IR cannot represent (sparse
tensors, custom quantization) is reported here as a one-line `CodegenError`; checks of the
graph's meaning live in `codegen.model.validate`.

Time and memory stay proportional to the file, whatever it holds:

- the file is read in one go after `fstat` says it is a regular file of at most
  `MAX_MODEL_BYTES` (no FIFO, device or directory, nothing read past its size);
- only what the graph needs is read: the main subgraph and the subgraphs its CALL_ONCE
  operators run (counted, at most `MAX_SUBGRAPHS`, before any is read; each read once,
  none of them calling another), the operator codes and buffers that tensors and
  operators refer to, each once;
- every vector must lie inside the file, and the bytes of all vectors read must not
  exceed `_SHARING_ALLOWANCE` times the file's size: flatbuffer tables and vectors may be
  shared, so a small file could otherwise describe millions of operators (a "DAG bomb");
- at most `MAX_OPERATORS` operators, `MAX_TENSORS` tensors (over all subgraphs read) and
  `MAX_DIMENSIONS` dimensions;
- a custom operator TFLM registers (DETECTION_POSTPROCESS) keeps its options as the file's
  bytes, at most `MAX_CUSTOM_OPTIONS_BYTES` of them (codegen.model.flexbuffers reads them);
  other custom operators are named `CUSTOM(name)` and refused later;
- constant data is never copied: each tensor's array is a read-only view of the file's
  bytes, one per buffer, type and shape, however many tensors share the buffer; and the
  constant data the operators read, counted once per reading operator (the generated C
  holds a copy per use), may exceed the file's size by at most `MAX_REUSED_CONSTANT_BYTES`.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import struct
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from flatbuffers.table import Table

from codegen.errors import ModelFormatError, UnsupportedError
from codegen.model.ir import DType, Graph, Operator, Quantization, Tensor

_FILE_IDENTIFIER = b"TFL3"
# A flatbuffer addresses at most 2 GiB (32-bit signed offsets); models above it keep their
# weights outside the flatbuffer, which no microcontroller model needs.
MAX_MODEL_BYTES = (1 << 31) - 1
# More than any microcontroller model has (the large ones have a few hundred operators),
# and few enough that every later stage stays fast.
MAX_OPERATORS = 1 << 14
MAX_TENSORS = 1 << 17
# A model initializing its resource variables has one CALL_ONCE subgraph, or a few.
MAX_SUBGRAPHS = 64
# Operators that run other subgraphs as control flow (CALL_ONCE, which runs one once to
# initialize resource variables, is the one codegen takes).
_CONTROL_FLOW = ("IF", "WHILE", "CALL")
# Far more dimensions than any kernel takes; the element count of a longer shape is a
# number of thousands of digits, slow to compute and to print.
MAX_DIMENSIONS = 256
# In a file whose tables and vectors are all distinct, the vectors read occupy distinct
# bytes, so their total is at most the file's size; a little sharing (of strings, say) is
# harmless, a lot is a file that describes far more than it holds.
_SHARING_ALLOWANCE = 2
_SHARING_SLACK = 1 << 16
# Weights read by several operators (an unrolled recurrent layer) are fine; a file whose
# few megabytes of weights hundreds of operators read is not a model but a bomb.
MAX_REUSED_CONSTANT_BYTES = 32 << 20

_DTYPES = {
    schema.TensorType.INT8: DType.INT8,
    schema.TensorType.UINT8: DType.UINT8,
    schema.TensorType.INT16: DType.INT16,
    schema.TensorType.INT32: DType.INT32,
    schema.TensorType.INT64: DType.INT64,
    schema.TensorType.FLOAT32: DType.FLOAT32,
    schema.TensorType.BOOL: DType.BOOL,
}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_OPCODE_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_ACTIVATION_NAMES = {
    v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")
}
_PADDING_NAMES = {v: k for k, v in vars(schema.Padding).items() if not k.startswith("_")}
_OPTIONS_NAMES = {
    v: k for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_") and v
}
_OPTIONS_BY_KEY = {name.lower(): name for name in _OPTIONS_NAMES.values()}
# Operators whose options type is not named after them (the rest: FULLY_CONNECTED ->
# FullyConnectedOptions, PADV2 -> PadV2Options, ...).
_EXPECTED_OPTIONS = {
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "L2_POOL_2D": "Pool2DOptions",
    "MAXIMUM": "MaximumMinimumOptions",
    "MINIMUM": "MaximumMinimumOptions",
    **dict.fromkeys(("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY",
                     "REDUCE_ALL"), "ReducerOptions"),
}
# Custom operators TFLM registers under a custom code, by the name the IR gives them (the
# opcode name of TFLM's Register_ function). Their options are kept as the file's bytes.
CUSTOM_OPERATORS = {"TFLite_Detection_PostProcess": "DETECTION_POSTPROCESS"}
_CUSTOM_OPTIONS_FLEXBUFFERS = 0
# Far more than any custom operator's options (DETECTION_POSTPROCESS's are ~300 bytes).
MAX_CUSTOM_OPTIONS_BYTES = 1 << 16




def load_model(source: str | Path | bytes) -> Graph:
    """Parse a .tflite file (path or bytes) into a Graph."""
    if isinstance(source, bytes):
        data, label = source, "model"
    else:
        label = str(source)
        data = read_model_file(Path(source), label)
    return _Reader(data, label).graph()


def read_model_file(path: Path, label: str) -> bytes:
    """The bytes of a regular file of at most MAX_MODEL_BYTES, read in one go.

    Opened without blocking (a FIFO without writer would wait forever) and checked with
    fstat before reading, so a device, FIFO or directory is refused without a read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ModelFormatError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise ModelFormatError(f"{label}: is a directory, expected a .tflite file") from None
    except OSError as exc:
        raise ModelFormatError(f"{label}: cannot read ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        kind = _file_kind(info.st_mode)
        if kind:
            raise ModelFormatError(f"{label}: is {kind}, expected a .tflite file")
        if info.st_size > MAX_MODEL_BYTES:
            raise ModelFormatError(
                f"{label}: is {info.st_size} bytes; a TensorFlow Lite flatbuffer holds at most "
                f"{MAX_MODEL_BYTES} (2 GiB), far more than a microcontroller model needs"
            )
        chunks, left = [], info.st_size
        while left > 0:  # one read, unless the system returns less (or the file shrank)
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise ModelFormatError(f"{label}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _file_kind(mode: int) -> str:
    """'' for a regular file, else what it is."""
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


# -- bounds-checked flatbuffer access ---------------------------------------------------------

_U8, _I8, _U16 = struct.Struct("<B"), struct.Struct("<b"), struct.Struct("<H")
_I32, _U32, _U64 = struct.Struct("<i"), struct.Struct("<I"), struct.Struct("<Q")


class _Corrupt(Exception):
    """A read outside the file or a vector longer than it (turned into a ModelFormatError)."""


class _File:
    """The file's bytes, reads that never leave them, and the tally of vector bytes read."""

    def __init__(self, data: bytes, label: str) -> None:
        self.data = data
        self.size = len(data)
        self.label = label
        self.budget = _SHARING_ALLOWANCE * self.size + _SHARING_SLACK

    def get(self, fmt: struct.Struct, pos: int) -> int:
        if not 0 <= pos <= self.size - fmt.size:
            raise _Corrupt(f"an offset points outside the file ({pos})")
        return fmt.unpack_from(self.data, pos)[0]

    def charge(self, nbytes: int, what: str) -> None:
        self.budget -= nbytes
        if self.budget < 0:
            raise ModelFormatError(
                f"{self.label}: the file's tables are shared over and over ({what} included): "
                f"it describes more than {_SHARING_ALLOWANCE} times the {self.size} bytes it "
                "holds; the TFLite converter never writes that, re-export the model"
            )


class _Table:
    """One flatbuffer table: scalar fields with their defaults, sub-tables, vectors."""

    __slots__ = ("_vtable", "_vtable_size", "file", "pos")

    def __init__(self, file: _File, pos: int) -> None:
        self.file = file
        self.pos = pos
        self._vtable = pos - file.get(_I32, pos)
        self._vtable_size = file.get(_U16, self._vtable)

    def _field(self, slot: int) -> int:
        """File position of a field, 0 when absent."""
        if slot + 2 > self._vtable_size:
            return 0
        offset = self.file.get(_U16, self._vtable + slot)
        return self.pos + offset if offset else 0

    def scalar(self, slot: int, fmt: struct.Struct, default: int = 0) -> int:
        pos = self._field(slot)
        return self.file.get(fmt, pos) if pos else default

    def has(self, slot: int) -> bool:
        return bool(self._field(slot))

    def table(self, slot: int) -> _Table | None:
        pos = self._field(slot)
        return _Table(self.file, pos + self.file.get(_U32, pos)) if pos else None

    def vector(self, slot: int, itemsize: int, what: str) -> tuple[int, int] | None:
        """(start, length) of a vector field, which must lie in the file; charged."""
        pos = self._field(slot)
        if not pos:
            return None
        at = pos + self.file.get(_U32, pos)
        length = self.file.get(_U32, at)
        start = at + 4
        if start + length * itemsize > self.file.size:
            raise _Corrupt(f"the {what} claim {length} entries, more than the file holds")
        self.file.charge(length * itemsize, what)
        return start, length

    def array(self, slot: int, dtype: str, what: str) -> np.ndarray | None:
        """A numeric vector as a read-only view of the file (no copy)."""
        itemsize = np.dtype(dtype).itemsize
        found = self.vector(slot, itemsize, what)
        if found is None:
            return None
        start, length = found
        return np.frombuffer(self.file.data, dtype=dtype, count=length, offset=start)

    def ints(self, slot: int, what: str) -> tuple[int, ...] | None:
        found = self.vector(slot, 4, what)
        if found is None:
            return None
        start, length = found
        return struct.unpack_from(f"<{length}i", self.file.data, start)

    def string(self, slot: int, what: str) -> bytes | None:
        found = self.vector(slot, 1, what)
        if found is None:
            return None
        start, length = found
        return self.file.data[start:start + length]

    def tables(self, slot: int, what: str, limit: int | None = None) -> list[int]:
        """File positions of the tables of a vector of tables (not read yet). With `limit`,
        a longer vector is refused before anything in it is read."""
        found = self.vector(slot, 4, what)
        if found is None:
            return []
        start, length = found
        if limit is not None and length > limit:
            raise UnsupportedError(
                f"{self.file.label}: the model has {length} {what}; codegen takes at most "
                f"{limit}, more than any microcontroller model needs"
            )
        offsets = np.frombuffer(self.file.data, dtype="<u4", count=length, offset=start)
        return (offsets.astype(np.int64) + (start + 4 * np.arange(length))).tolist()


# Field slots (4 + 2 x the field's number in schema.fbs).
class _Model:
    OPERATOR_CODES, SUBGRAPHS, DESCRIPTION, BUFFERS = 6, 8, 10, 12


class _OperatorCode:
    DEPRECATED_BUILTIN_CODE, CUSTOM_CODE, VERSION, BUILTIN_CODE = 4, 6, 8, 10


class _SubGraph:
    TENSORS, INPUTS, OUTPUTS, OPERATORS = 4, 6, 8, 10


class _Tensor:
    SHAPE, TYPE, BUFFER, NAME, QUANTIZATION, IS_VARIABLE, SPARSITY = 4, 6, 8, 10, 12, 14, 16
    SHAPE_SIGNATURE, EXTERNAL_BUFFER = 18, 24


class _Quantization:
    SCALE, ZERO_POINT, DETAILS_TYPE, QUANTIZED_DIMENSION = 8, 10, 12, 16


class _Buffer:
    DATA, OFFSET, SIZE = 4, 6, 8


class _Operator:
    OPCODE_INDEX, INPUTS, OUTPUTS, BUILTIN_OPTIONS_TYPE, BUILTIN_OPTIONS = 4, 6, 8, 10, 12
    CUSTOM_OPTIONS, CUSTOM_OPTIONS_FORMAT = 14, 16
    LARGE_CUSTOM_OPTIONS_OFFSET, LARGE_CUSTOM_OPTIONS_SIZE = 22, 24


# -- the reader -------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, label: str) -> None:
        self.file = _File(data, label)
        self.label = label
        self._tensors_left = MAX_TENSORS
        self._operators_left = MAX_OPERATORS
        self._buffer_positions: list[int] = []
        self._buffer_raw: dict[int, tuple[int, int] | None] = {}
        self._views: dict[tuple[int, str, tuple[int, ...]], np.ndarray] = {}
        self._code_positions: list[int] = []
        self._codes: dict[int, tuple[str, int]] = {}

    def graph(self) -> Graph:
        data, label = self.file.data, self.label
        if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
            raise ModelFormatError(
                f"{label}: not a TensorFlow Lite flatbuffer (no 'TFL3' identifier); "
                "pass a .tflite file written by the TFLite converter"
            )
        try:
            return self._graph()
        except (_Corrupt, struct.error, ValueError, IndexError, OverflowError) as exc:
            detail = f": {exc}" if isinstance(exc, _Corrupt) else f" ({type(exc).__name__})"
            raise ModelFormatError(
                f"{label}: corrupt or truncated TensorFlow Lite flatbuffer{detail}; "
                "re-export the model"
            ) from None

    def _graph(self) -> Graph:
        label = self.label
        model = _Table(self.file, self.file.get(_U32, 0))
        subgraphs = model.tables(_Model.SUBGRAPHS, "subgraphs", MAX_SUBGRAPHS)
        if not subgraphs:
            raise ModelFormatError(f"{label}: the model has no subgraph")
        self._code_positions = model.tables(_Model.OPERATOR_CODES, "operator codes")
        self._buffer_positions = model.tables(_Model.BUFFERS, "buffers")
        self._tensors_left, self._operators_left = MAX_TENSORS, MAX_OPERATORS
        graph = self._subgraph(subgraphs[0], "")
        if not graph.inputs or not graph.outputs:
            raise ModelFormatError(f"{label}: model declares no graph inputs or no graph outputs")
        for index in self._init_subgraphs(graph, len(subgraphs)):
            init = self._subgraph(subgraphs[index], f" of subgraph {index}")
            for op in init.operators:
                if op.opcode == "CALL_ONCE" or op.opcode in _CONTROL_FLOW:
                    raise UnsupportedError(
                        f"{label}: subgraph {index}, a CALL_ONCE initializer, runs "
                        f"{op.opcode} (operator {op.index}); codegen takes initializers that "
                        "run no other subgraph")
            graph.init_graphs[index] = init
        self._check_constant_uses([graph, *graph.init_graphs.values()])
        description = model.string(_Model.DESCRIPTION, "description")
        graph.description = description.decode("utf-8", "replace") if description else ""
        return graph

    def _subgraph(self, position: int, where: str) -> Graph:
        """One subgraph's tensors, operators, inputs and outputs; `where` (" of subgraph
        1") names any but the main one in errors. The limits on tensors and operators are
        over all the subgraphs read."""
        label = self.label
        sg = _Table(self.file, position)
        tensor_positions = sg.tables(_SubGraph.TENSORS, f"tensors{where}", self._tensors_left)
        operator_positions = sg.tables(_SubGraph.OPERATORS, f"operators{where}",
                                       self._operators_left)
        self._tensors_left -= len(tensor_positions)
        self._operators_left -= len(operator_positions)
        tensors = [self._tensor(i, _Table(self.file, p))
                   for i, p in enumerate(tensor_positions)]
        operators = [self._operator(i, _Table(self.file, p), len(tensors))
                     for i, p in enumerate(operator_positions)]
        inputs = _indices(sg.ints(_SubGraph.INPUTS, "graph inputs"), len(tensors), label,
                          f"graph input{where}")
        outputs = _indices(sg.ints(_SubGraph.OUTPUTS, "graph outputs"), len(tensors), label,
                           f"graph output{where}")
        return Graph(tensors, operators, inputs, outputs, file_bytes=self.file.size)

    def _init_subgraphs(self, graph: Graph, count: int) -> list[int]:
        """The subgraphs the main one's CALL_ONCE operators run, sorted; any other subgraph,
        or control flow, is refused."""
        label = self.label
        targets: set[int] = set()
        for op in graph.operators:
            if op.opcode in _CONTROL_FLOW:
                raise UnsupportedError(
                    f"{label}: operator {op.index} ({op.opcode}) is control flow, which is "
                    "not supported; codegen takes other subgraphs only as CALL_ONCE "
                    "initializers")
            if op.opcode != "CALL_ONCE":
                continue
            index = op.options.get("init_subgraph_index", 0)
            if not isinstance(index, int) or not 0 < index < count:
                raise ModelFormatError(
                    f"{label}: operator {op.index} (CALL_ONCE) runs subgraph {index}, but the "
                    f"model has subgraphs 1 to {count - 1} besides the main one; the file is "
                    "corrupt, re-export the model")
            targets.add(index)
        unused = sorted(set(range(1, count)) - targets)
        if unused:
            raise UnsupportedError(
                f"{label}: the model has {count} subgraphs and subgraph {unused[0]} is not the "
                "initializer of a CALL_ONCE operator; codegen takes several subgraphs only "
                "for CALL_ONCE (control flow such as IF and WHILE is not supported)")
        return sorted(targets)

    def _check_constant_uses(self, graphs: list[Graph]) -> None:
        total = 0
        for graph in graphs:
            for op in graph.operators:
                for t in set(op.inputs):
                    data = graph.tensors[t].data if t >= 0 else None
                    if data is not None:
                        total += data.nbytes
        if total > self.file.size + MAX_REUSED_CONSTANT_BYTES:
            raise UnsupportedError(
                f"{self.label}: the operators read {total} bytes of constant data, more than "
                f"the file's {self.file.size} bytes plus {MAX_REUSED_CONSTANT_BYTES >> 20} MiB: "
                "tensors share buffers, or operators share tensors, over and over, and the "
                "generated C would hold a copy for each use; re-export the model"
            )

    # -- tensors ----------------------------------------------------------------------------

    def _tensor(self, index: int, t: _Table) -> Tensor:
        label = self.label
        raw_name = t.string(_Tensor.NAME, f"name of tensor {index}")
        name = raw_name.decode("utf-8", "replace") if raw_name else f"tensor_{index}"
        shape = t.ints(_Tensor.SHAPE, f"shape of tensor '{name}'") or ()
        if len(shape) > MAX_DIMENSIONS:
            raise UnsupportedError(
                f"{label}: tensor '{name}' has {len(shape)} dimensions; codegen takes at most "
                f"{MAX_DIMENSIONS}, far more than any operator supports"
            )
        _check_static_shape(name, shape, t.ints(_Tensor.SHAPE_SIGNATURE,
                                                f"shape signature of tensor '{name}'"), label)
        q = t.table(_Tensor.QUANTIZATION)
        self._check_plain_tensor(name, t, q)
        type_code = t.scalar(_Tensor.TYPE, _I8)
        dtype = _DTYPES.get(type_code, DType.OTHER)
        tensor = Tensor(index, name, shape, dtype, self._quantization(q, name))
        if dtype is DType.OTHER:
            tensor.type_name = _TYPE_NAMES.get(type_code, f"type {type_code}").lower()
        if t.scalar(_Tensor.IS_VARIABLE, _U8):
            # TFLM gives a variable storage of its own and resets it, whatever its buffer
            # holds (ResetVariableTensors).
            tensor.is_variable = True
        else:
            tensor.data = self._constant_data(tensor, t.scalar(_Tensor.BUFFER, _U32))
        return tensor

    def _check_plain_tensor(self, name: str, t: _Table, q: _Table | None) -> None:
        """Refuse tensor features whose meaning the IR cannot carry (and so would drop)."""
        label = self.label
        if t.has(_Tensor.SPARSITY):
            raise UnsupportedError(
                f"{label}: tensor '{name}' is stored sparse; only dense tensors are supported "
                "(convert the model without sparsity)"
            )
        if t.scalar(_Tensor.EXTERNAL_BUFFER, _U32):
            raise UnsupportedError(
                f"{label}: tensor '{name}' keeps its data in an external buffer; "
                "embed the weights in the .tflite file"
            )
        if q is not None and q.scalar(_Quantization.DETAILS_TYPE, _U8):
            raise UnsupportedError(
                f"{label}: tensor '{name}' uses custom quantization; only affine (scale and "
                "zero point) quantization is supported"
            )

    def _quantization(self, q: _Table | None, name: str) -> Quantization | None:
        if q is None:
            return None
        scale = q.array(_Quantization.SCALE, "<f4", f"scales of tensor '{name}'")
        if scale is None or len(scale) == 0:
            return None
        zero_point = q.array(_Quantization.ZERO_POINT, "<i8", f"zero points of tensor '{name}'")
        scales = tuple(float(s) for s in scale.tolist())
        zps = zero_point.tolist() if zero_point is not None and len(zero_point) else \
            [0] * len(scales)
        return Quantization(scales, tuple(zps), q.scalar(_Quantization.QUANTIZED_DIMENSION, _I32))

    def _constant_data(self, tensor: Tensor, buffer_index: int) -> np.ndarray | None:
        if buffer_index == 0:
            return None
        if buffer_index >= len(self._buffer_positions):
            raise ModelFormatError(
                f"{self.label}: tensor '{tensor.name}' refers to buffer {buffer_index}, "
                f"but the model has {len(self._buffer_positions)}"
            )
        raw = self._buffer(buffer_index, tensor.name)
        if raw is None or raw[1] == 0:
            return None
        start, size = raw
        if tensor.dtype is DType.OTHER:
            return self._view(buffer_index, start, "u1", (size,))
        if size != tensor.nbytes:
            raise ModelFormatError(
                f"{self.label}: tensor '{tensor.name}' holds {size} bytes of constant data, "
                f"but its shape {list(tensor.shape)} of {tensor.dtype.numpy_name} needs "
                f"{tensor.nbytes}"
            )
        dtype = tensor.dtype.np.newbyteorder("<").str
        return self._view(buffer_index, start, dtype, tensor.shape)

    def _buffer(self, index: int, name: str) -> tuple[int, int] | None:
        """(file position, size) of a buffer's bytes, read once however many tensors
        share it; None for an empty buffer."""
        if index not in self._buffer_raw:
            self._buffer_raw[index] = self._read_buffer(index, name)
        return self._buffer_raw[index]

    def _read_buffer(self, index: int, name: str) -> tuple[int, int] | None:
        buf = _Table(self.file, self._buffer_positions[index])
        offset = buf.scalar(_Buffer.OFFSET, _U64)
        if offset > 1:  # data stored after the flatbuffer (models over 2 GB, or "external")
            size = buf.scalar(_Buffer.SIZE, _U64)
            if offset + size > self.file.size:
                raise ModelFormatError(
                    f"{self.label}: constant data of tensor '{name}' lies outside the file "
                    "(truncated file?)"
                )
            return offset, size
        return buf.vector(_Buffer.DATA, 1, f"bytes of buffer {index}")

    def _view(self, buffer_index: int, start: int, dtype: str,
              shape: tuple[int, ...]) -> np.ndarray:
        key = (buffer_index, dtype, shape)
        view = self._views.get(key)
        if view is None:
            count = 1
            for d in shape:
                count *= d
            view = np.frombuffer(self.file.data, dtype=dtype, count=count,
                                 offset=start).reshape(shape)
            if not view.dtype.isnative:
                view = view.astype(view.dtype.newbyteorder("="))
            view.flags.writeable = False
            self._views[key] = view
        return view

    # -- operators --------------------------------------------------------------------------

    def _opcode(self, index: int, what: str) -> tuple[str, int]:
        if index not in self._codes:
            if index >= len(self._code_positions):
                raise ModelFormatError(
                    f"{self.label}: {what} uses opcode {index}, "
                    f"but the model defines {len(self._code_positions)}"
                )
            code = _Table(self.file, self._code_positions[index])
            self._codes[index] = (self._opcode_name(code, index),
                                  code.scalar(_OperatorCode.VERSION, _I32, 1) or 1)
        return self._codes[index]

    def _opcode_name(self, code: _Table, index: int) -> str:
        builtin = max(code.scalar(_OperatorCode.BUILTIN_CODE, _I32),
                      code.scalar(_OperatorCode.DEPRECATED_BUILTIN_CODE, _I8))
        name = _OPCODE_NAMES.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom = code.string(_OperatorCode.CUSTOM_CODE, f"name of custom opcode {index}")
            custom_name = (custom or b"").decode("utf-8", "replace")
            return CUSTOM_OPERATORS.get(custom_name, f"CUSTOM({custom_name})")
        return name

    def _operator(self, index: int, op: _Table, tensor_count: int) -> Operator:
        label = self.label
        opcode_index = op.scalar(_Operator.OPCODE_INDEX, _U32)
        opcode, version = self._opcode(opcode_index, f"operator {index}")
        what = f"operator {index} ({opcode})"
        options = self._options(op, opcode, what)
        custom_options = (self._custom_options(op, what)
                          if opcode in CUSTOM_OPERATORS.values() else b"")
        return Operator(
            index=index,
            opcode=opcode,
            inputs=_indices(op.ints(_Operator.INPUTS, f"inputs of {what}"), tensor_count, label,
                            f"{what} input"),
            outputs=_indices(op.ints(_Operator.OUTPUTS, f"outputs of {what}"), tensor_count,
                             label, f"{what} output"),
            options=options,
            version=version,
            custom_options=custom_options,
        )

    def _custom_options(self, op: _Table, what: str) -> bytes:
        """A known custom operator's options bytes (a flexbuffer), at most
        MAX_CUSTOM_OPTIONS_BYTES; charged like every vector read."""
        label = self.label
        if op.scalar(_Operator.CUSTOM_OPTIONS_FORMAT, _I8) != _CUSTOM_OPTIONS_FLEXBUFFERS:
            raise ModelFormatError(
                f"{label}: {what} stores its options in an unknown format (not a "
                "flexbuffer); the file is corrupt, re-export the model"
            )
        if (op.scalar(_Operator.LARGE_CUSTOM_OPTIONS_OFFSET, _U64)
                or op.scalar(_Operator.LARGE_CUSTOM_OPTIONS_SIZE, _U64)):
            raise UnsupportedError(
                f"{label}: {what} keeps its options outside the flatbuffer (a model over "
                "2 GB); convert the model without that"
            )
        found = op.vector(_Operator.CUSTOM_OPTIONS, 1, f"options of {what}")
        if found is None:
            return b""
        start, length = found
        if length > MAX_CUSTOM_OPTIONS_BYTES:
            raise UnsupportedError(
                f"{label}: {what} has {length} bytes of options; codegen reads at most "
                f"{MAX_CUSTOM_OPTIONS_BYTES}, far more than the operator's options need"
            )
        return self.file.data[start:start + length]

    def _options(self, op: _Table, opcode: str, what: str) -> dict[str, object]:
        """Builtin options as a plain dict; options of another operator's type would be
        read as defaults, so they are refused."""
        options_type = op.scalar(_Operator.BUILTIN_OPTIONS_TYPE, _U8)
        if not options_type:
            return {}
        table = op.table(_Operator.BUILTIN_OPTIONS)
        options = None
        if table is not None:
            options = schema.BuiltinOptionsCreator(options_type, Table(self.file.data,
                                                                       table.pos))
        actual = _OPTIONS_NAMES.get(options_type)
        expected = _EXPECTED_OPTIONS.get(opcode)
        if expected is None:
            expected = _OPTIONS_BY_KEY.get(opcode.replace("_", "").lower() + "options")
        if actual is None or options is None or (expected and actual != expected):
            raise ModelFormatError(
                f"{self.label}: {what} has options of type {actual or options_type}"
                f"{f', expected {expected}' if expected else ''}; the file is corrupt, "
                "re-export the model"
            )
        return self._options_dict(options, what)

    def _options_dict(self, options: object, what: str) -> dict[str, object]:
        """Options with snake_case keys and enum names resolved; vectors (views of the
        file) are charged before they become tuples."""
        result: dict[str, object] = {}
        for key, value in vars(options).items():
            name = _snake(key)
            if name == "fused_activation_function":
                value = _ACTIVATION_NAMES.get(value, f"UNKNOWN_{value}")
            elif name == "padding":
                value = _PADDING_NAMES.get(value, f"UNKNOWN_{value}")
            elif isinstance(value, np.ndarray):
                self.file.charge(value.nbytes, f"option {name} of {what}")
                value = tuple(int(v) for v in value.tolist())
            result[name] = value
        return result


def _indices(values: tuple[int, ...] | None, count: int, label: str,
             what: str) -> tuple[int, ...]:
    result = values or ()
    for v in result:
        if not -1 <= v < count:
            raise ModelFormatError(f"{label}: {what} refers to tensor {v}, but there are {count}")
    return result


def _check_static_shape(name: str, shape: tuple[int, ...], signature: tuple[int, ...] | None,
                        label: str) -> None:
    if any(d < 0 for d in shape):
        raise UnsupportedError(
            f"{label}: tensor '{name}' has a dynamic shape {list(shape)}; "
            "export the model with fixed input shapes"
        )
    sig = list(signature or ())
    # A dynamic batch dimension (signature -1 at index 0, stored as 1) is how Keras exports
    # every model; only dynamic dimensions past the batch are a real problem.
    if len(sig) == len(shape) and any(d < 0 for d in sig[1:]):
        raise UnsupportedError(
            f"{label}: tensor '{name}' has dynamic dimensions (shape signature {sig}); "
            "export the model with fixed input shapes"
        )


@functools.cache
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
