"""Write TFLite flatbuffers from an explicit description, for tests.

Tests need models whose every scale, zero point, weight and option they choose, including
models that are wrong on purpose. `ModelBuilder` writes them with the schema's object API:

    b = ModelBuilder()
    x = b.add_tensor("x", (1, 4), "int8", quant=Q(0.05, -3))
    w = b.add_tensor("w", (2, 4), "int8", quant=Q([0.01, 0.02], [0, 0]), data=weights)
    y = b.add_tensor("y", (1, 2), "int8", quant=Q(0.1, 5))
    b.add_op("FULLY_CONNECTED", [x, w, -1], [y], fc_options("RELU"))
    b.set_io([x], [y])
    model = b.build()

Nothing is checked: a float weight, a second subgraph, a -1 in `shape_signature` or a custom
operator are all written as asked. `build_object()` returns the `ModelT` for edits the
methods do not cover. `fc_model` is the one-layer recipe most tests want.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

DTYPES: dict[str, tuple[int, np.dtype]] = {
    "float32": (schema.TensorType.FLOAT32, np.dtype("<f4")),
    "int8": (schema.TensorType.INT8, np.dtype("i1")),
    "uint8": (schema.TensorType.UINT8, np.dtype("u1")),
    "int16": (schema.TensorType.INT16, np.dtype("<i2")),
    "int32": (schema.TensorType.INT32, np.dtype("<i4")),
    "int64": (schema.TensorType.INT64, np.dtype("<i8")),
    "bool": (schema.TensorType.BOOL, np.dtype("?")),
}

ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")

_BUFFER_ALIGNMENT = 16
_FILE_IDENTIFIER = b"TFL3"
_SCHEMA_VERSION = 3
# Codes above this go only in builtinCode; deprecatedBuiltinCode holds the placeholder.
_DEPRECATED_CODE_LIMIT = schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES


@dataclass(frozen=True)
class Q:
    """Quantization of one tensor: a scalar (per-tensor) or one value per channel of `axis`."""

    scale: float | Sequence[float]
    zero_point: int | Sequence[int] = 0
    axis: int = 0

    @property
    def scales(self) -> list[float]:
        return [float(s) for s in np.atleast_1d(np.asarray(self.scale, dtype=np.float64))]

    @property
    def zero_points(self) -> list[int]:
        zps = [int(z) for z in np.atleast_1d(np.asarray(self.zero_point, dtype=np.int64))]
        if len(zps) == 1 and len(self.scales) > 1:
            zps *= len(self.scales)
        return zps

    def to_schema(self) -> schema.QuantizationParametersT:
        params = schema.QuantizationParametersT()
        params.scale = self.scales
        params.zeroPoint = self.zero_points
        params.quantizedDimension = self.axis
        return params


class _AlignedBufferT(schema.BufferT):
    """A buffer whose data starts on a 16-byte boundary, as the converter writes them."""

    def Pack(self, builder: flatbuffers.Builder) -> int:
        data_offset = None
        if self.data is not None:
            payload = bytes(self.data)
            builder.StartVector(1, len(payload), _BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            data_offset = builder.EndVector()
        schema.BufferStart(builder)
        if data_offset is not None:
            schema.BufferAddData(builder, data_offset)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def _aligned(buffer: schema.BufferT) -> _AlignedBufferT:
    if isinstance(buffer, _AlignedBufferT):
        return buffer
    aligned = _AlignedBufferT()
    aligned.data, aligned.offset, aligned.size = buffer.data, buffer.offset, buffer.size
    return aligned


def builtin_code(opcode: str) -> int:
    """The BuiltinOperator number of an operator name such as "FULLY_CONNECTED"."""
    try:
        return int(getattr(schema.BuiltinOperator, opcode))
    except AttributeError:
        raise ValueError(f"unknown builtin operator {opcode!r}") from None


def activation_code(activation: str) -> int:
    return int(getattr(schema.ActivationFunctionType, activation))


def fc_options(activation: str = "NONE", keep_num_dims: bool = False) -> object:
    options = schema.FullyConnectedOptionsT()
    options.fusedActivationFunction = activation_code(activation)
    options.keepNumDims = keep_num_dims
    return options


def reshape_options(new_shape: Sequence[int] | None) -> object:
    options = schema.ReshapeOptionsT()
    options.newShape = None if new_shape is None else [int(d) for d in new_shape]
    return options


def _options_type(options: object) -> int:
    """The BuiltinOptions union tag of an options object, from its class name (XOptionsT)."""
    name = type(options).__name__
    if not name.endswith("T"):
        raise TypeError(f"not a schema options object: {name}")
    return int(getattr(schema.BuiltinOptions, name[:-1]))


class ModelBuilder:
    """Collects tensors, buffers and operators, then writes one TFLite flatbuffer."""

    def __init__(self, description: str = "codegen test model") -> None:
        self.model = schema.ModelT()
        self.model.version = _SCHEMA_VERSION
        self.model.description = description
        self.model.operatorCodes = []
        self.model.subgraphs = []
        self.model.buffers = [_AlignedBufferT()]  # buffer 0: the empty sentinel
        self._opcode_index: dict[tuple[int, str | None, int], int] = {}
        self.subgraph = self.new_subgraph("main")

    # -- structure -------------------------------------------------------------------------

    def new_subgraph(self, name: str = "") -> int:
        """Start a new subgraph; later tensors, operators and set_io go to it."""
        subgraph = schema.SubGraphT()
        subgraph.name = name
        subgraph.tensors, subgraph.operators = [], []
        subgraph.inputs, subgraph.outputs = [], []
        self.model.subgraphs.append(subgraph)
        self.subgraph = len(self.model.subgraphs) - 1
        return self.subgraph

    @property
    def _current(self) -> schema.SubGraphT:
        return self.model.subgraphs[self.subgraph]

    def add_buffer(self, data: bytes | None) -> int:
        buffer = _AlignedBufferT()
        buffer.data = None if data is None else np.frombuffer(data, dtype=np.uint8)
        self.model.buffers.append(buffer)
        return len(self.model.buffers) - 1

    def add_tensor(self, name: str, shape: Sequence[int], dtype: str = "int8", *,
                   quant: Q | None = None, data: np.ndarray | Sequence | None = None,
                   shape_signature: Sequence[int] | None = None,
                   variable: bool = False) -> int:
        """Add a tensor to the current subgraph and return its index.

        `data` makes it a constant: it is cast to `dtype` (little-endian) and stored in a
        buffer of its own; its size is not checked against `shape`.
        """
        type_code, np_dtype = DTYPES[dtype]
        tensor = schema.TensorT()
        tensor.name = name
        tensor.shape = [int(d) for d in shape]
        tensor.type = type_code
        tensor.isVariable = variable
        if shape_signature is not None:
            tensor.shapeSignature = [int(d) for d in shape_signature]
        if quant is not None:
            tensor.quantization = quant.to_schema()
        if data is not None:
            tensor.buffer = self.add_buffer(np.asarray(data).astype(np_dtype).tobytes())
        self._current.tensors.append(tensor)
        return len(self._current.tensors) - 1

    def opcode_index(self, opcode: str, *, custom_code: str | None = None,
                     version: int = 1) -> int:
        code = builtin_code("CUSTOM" if custom_code is not None else opcode)
        key = (code, custom_code, version)
        if key not in self._opcode_index:
            entry = schema.OperatorCodeT()
            entry.builtinCode = code
            entry.deprecatedBuiltinCode = min(code, _DEPRECATED_CODE_LIMIT)
            entry.customCode = custom_code
            entry.version = version
            self.model.operatorCodes.append(entry)
            self._opcode_index[key] = len(self.model.operatorCodes) - 1
        return self._opcode_index[key]

    def add_op(self, opcode: str, inputs: Sequence[int], outputs: Sequence[int],
               options: object | None = None, *, version: int = 1,
               custom_code: str | None = None,
               custom_options: bytes | None = None) -> int:
        """Append an operator to the current subgraph; -1 in `inputs` omits an optional input.

        `options` is a schema options object (see fc_options, reshape_options, or any
        `schema.XOptionsT`). `custom_code` makes it a CUSTOM operator of that name.
        """
        operator = schema.OperatorT()
        operator.opcodeIndex = self.opcode_index(opcode, custom_code=custom_code,
                                                 version=version)
        operator.inputs = [int(i) for i in inputs]
        operator.outputs = [int(i) for i in outputs]
        if options is not None:
            operator.builtinOptionsType = _options_type(options)
            operator.builtinOptions = options
        if custom_options is not None:
            operator.customOptions = list(custom_options)
        self._current.operators.append(operator)
        return len(self._current.operators) - 1

    def set_io(self, inputs: Sequence[int], outputs: Sequence[int]) -> None:
        self._current.inputs = [int(i) for i in inputs]
        self._current.outputs = [int(i) for i in outputs]

    # -- output ----------------------------------------------------------------------------

    def build_object(self) -> schema.ModelT:
        """The model as a schema object, for edits before `pack`."""
        return self.model

    def build(self) -> bytes:
        return pack(self.model)


def pack(model: schema.ModelT) -> bytes:
    """Serialize a schema ModelT to flatbuffer bytes with the TFL3 identifier.

    Buffer data is aligned to 16 bytes whatever the buffers' class (e.g. after read_model).
    """
    model.buffers = [_aligned(b) for b in model.buffers or []]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())


def bias_scales(input_scale: float, weight_scales: Sequence[float]) -> list[float]:
    """Bias scales as the converter sets them: input scale times weight scale, in float32."""
    return [float(np.float32(input_scale) * np.float32(s)) for s in weight_scales]


def fc_model(weights: np.ndarray, *, input_q: Q, weight_q: Q, output_q: Q,
             bias: np.ndarray | None = None, activation: str = "NONE",
             keep_num_dims: bool = False, input_shape: Sequence[int] | None = None,
             dtype: str = "int8") -> bytes:
    """One FULLY_CONNECTED layer: input (1, K) (or `input_shape`), weights (units, K).

    The bias, when given, is int32 with scales input_scale * weight_scale (per channel if
    the weights are).
    """
    units, depth = weights.shape
    in_shape = tuple(input_shape) if input_shape is not None else (1, depth)
    rows = int(np.prod(in_shape)) // depth
    out_shape = (*in_shape[:-1], units) if keep_num_dims else (rows, units)
    b = ModelBuilder("fully connected")
    x = b.add_tensor("input", in_shape, dtype, quant=input_q)
    w = b.add_tensor("weights", weights.shape, "int8", quant=weight_q, data=weights)
    bias_index = -1
    if bias is not None:
        scales = bias_scales(input_q.scales[0], weight_q.scales)
        bias_q = Q(scales if len(scales) > 1 else scales[0], 0)
        bias_index = b.add_tensor("bias", (units,), "int32", quant=bias_q, data=bias)
    y = b.add_tensor("output", out_shape, dtype, quant=output_q)
    b.add_op("FULLY_CONNECTED", [x, w, bias_index], [y], fc_options(activation, keep_num_dims))
    b.set_io([x], [y])
    return b.build()


# -- reading back ----------------------------------------------------------------------------


def read_model(model: bytes) -> schema.ModelT:
    """Parse flatbuffer bytes into a schema ModelT (to inspect or edit and `pack` again)."""
    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))


_BUILTIN_NAMES = {int(v): k for k, v in vars(schema.BuiltinOperator).items()
                  if not k.startswith("_")}


def op_names(model: schema.ModelT, subgraph: int = 0) -> list[str]:
    """Operator names of a subgraph in execution order, e.g. ["QUANTIZE", "FULLY_CONNECTED"]."""
    names = []
    for op in model.subgraphs[subgraph].operators:
        code = model.operatorCodes[op.opcodeIndex]
        names.append(_BUILTIN_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)])
    return names


def scale_count(tensor: schema.TensorT) -> int:
    """Number of quantization scales of a tensor (0 if it is not quantized)."""
    quant = tensor.quantization
    return 0 if quant is None or quant.scale is None else len(quant.scale)
