"""TensorFlow Lite flatbuffer -> graph IR.

Reads the file through the schema binding that LiteRT ships
(`ai_edge_litert.schema_py_generated`), which imports without TensorFlow. Everything that
is wrong with the file as a file (not a flatbuffer, several subgraphs, dynamic shapes,
indices or external buffers out of range, constant data of the wrong size, options of
another operator's type) or that the IR cannot represent (sparse or variable tensors,
custom quantization) is reported here as a one-line `CodegenError`; checks of the graph's
meaning live in `codegen.model.validate`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from codegen.errors import ModelFormatError, UnsupportedError
from codegen.model.ir import DType, Graph, Operator, Quantization, Tensor

_FILE_IDENTIFIER = b"TFL3"

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


def load_model(source: str | Path | bytes) -> Graph:
    """Parse a .tflite file (path or bytes) into a Graph."""
    if isinstance(source, bytes):
        data, label = source, "model"
    else:
        path = Path(source)
        label = str(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelFormatError(f"{label}: no such file") from None
        except IsADirectoryError:
            raise ModelFormatError(f"{label}: is a directory, expected a .tflite file") from None
        except OSError as exc:
            raise ModelFormatError(f"{label}: cannot read ({exc.strerror})") from None
    model = _unpack(data, label)
    return _to_graph(model, data, label)


def _unpack(data: bytes, label: str) -> schema.ModelT:
    if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
        raise ModelFormatError(
            f"{label}: not a TensorFlow Lite flatbuffer (no 'TFL3' identifier); "
            "pass a .tflite file written by the TFLite converter"
        )
    try:
        return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # the generated parser raises anything on corrupt input
        raise ModelFormatError(
            f"{label}: corrupt or truncated TensorFlow Lite flatbuffer "
            f"({type(exc).__name__}); re-export the model"
        ) from None


def _to_graph(model: schema.ModelT, data: bytes, label: str) -> Graph:
    subgraphs = model.subgraphs or []
    if len(subgraphs) != 1:
        raise UnsupportedError(
            f"{label}: model has {len(subgraphs)} subgraphs; only single-subgraph models are "
            "supported (no control flow such as WHILE/IF/CALL_ONCE)"
        )
    sg = subgraphs[0]
    buffers = model.buffers or []
    tensors = [_tensor(i, t, buffers, data, label) for i, t in enumerate(sg.tensors or [])]
    opcodes = [_opcode_name(c) for c in (model.operatorCodes or [])]
    versions = [int(c.version or 1) for c in (model.operatorCodes or [])]
    operators = [
        _operator(i, op, opcodes, versions, len(tensors), label)
        for i, op in enumerate(sg.operators or [])
    ]
    inputs = _indices(sg.inputs, len(tensors), label, "graph input")
    outputs = _indices(sg.outputs, len(tensors), label, "graph output")
    if not inputs or not outputs:
        raise ModelFormatError(f"{label}: model declares no graph inputs or no graph outputs")
    description = model.description.decode("utf-8", "replace") if model.description else ""
    return Graph(tensors, operators, inputs, outputs, description)


def _indices(values: object, count: int, label: str, what: str) -> tuple[int, ...]:
    result = tuple(int(v) for v in (values if values is not None else []))
    for v in result:
        if not -1 <= v < count:
            raise ModelFormatError(f"{label}: {what} refers to tensor {v}, but there are {count}")
    return result


def _opcode_name(code: schema.OperatorCodeT) -> str:
    builtin = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
    name = _OPCODE_NAMES.get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
        custom = (code.customCode or b"").decode("utf-8", "replace")
        return f"CUSTOM({custom})"
    return name


def _tensor(index: int, t: schema.TensorT, buffers: list, data: bytes, label: str) -> Tensor:
    name = t.name.decode("utf-8", "replace") if t.name else f"tensor_{index}"
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
    _check_static_shape(name, shape, t.shapeSignature, label)
    _check_plain_tensor(name, t, label)
    dtype = _DTYPES.get(t.type, DType.OTHER)
    tensor = Tensor(index, name, shape, dtype, _quantization(t.quantization))
    if dtype is DType.OTHER:
        tensor.type_name = _TYPE_NAMES.get(t.type, f"type {t.type}").lower()
    tensor.data = _constant_data(tensor, t.buffer, buffers, data, label)
    return tensor


def _check_static_shape(name: str, shape: tuple[int, ...], signature: object,
                        label: str) -> None:
    if any(d < 0 for d in shape):
        raise UnsupportedError(
            f"{label}: tensor '{name}' has a dynamic shape {list(shape)}; "
            "export the model with fixed input shapes"
        )
    sig = [int(d) for d in signature] if signature is not None else []
    # A dynamic batch dimension (signature -1 at index 0, stored as 1) is how Keras exports
    # every model; only dynamic dimensions past the batch are a real problem.
    if len(sig) == len(shape) and any(d < 0 for d in sig[1:]):
        raise UnsupportedError(
            f"{label}: tensor '{name}' has dynamic dimensions (shape signature {sig}); "
            "export the model with fixed input shapes"
        )


def _check_plain_tensor(name: str, t: schema.TensorT, label: str) -> None:
    """Refuse tensor features whose meaning the IR cannot carry (and so would drop)."""
    if t.sparsity is not None:
        raise UnsupportedError(
            f"{label}: tensor '{name}' is stored sparse; only dense tensors are supported "
            "(convert the model without sparsity)"
        )
    if t.isVariable:
        raise UnsupportedError(
            f"{label}: tensor '{name}' is a variable (state kept between invocations); "
            "stateful models are not supported"
        )
    if getattr(t, "externalBuffer", 0):
        raise UnsupportedError(
            f"{label}: tensor '{name}' keeps its data in an external buffer; "
            "embed the weights in the .tflite file"
        )
    q = t.quantization
    if q is not None and (q.detailsType or q.details is not None):
        raise UnsupportedError(
            f"{label}: tensor '{name}' uses custom quantization; only affine (scale and zero "
            "point) quantization is supported"
        )


def _quantization(q: schema.QuantizationParametersT | None) -> Quantization | None:
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scales = tuple(float(s) for s in q.scale)
    zps = q.zeroPoint if q.zeroPoint is not None and len(q.zeroPoint) else [0] * len(scales)
    return Quantization(scales, tuple(int(z) for z in zps), int(q.quantizedDimension or 0))


def _constant_data(tensor: Tensor, buffer_index: int, buffers: list, data: bytes,
                   label: str) -> np.ndarray | None:
    if buffer_index is None or buffer_index == 0:
        return None
    if not 0 <= buffer_index < len(buffers):
        raise ModelFormatError(
            f"{label}: tensor '{tensor.name}' refers to buffer {buffer_index}, "
            f"but the model has {len(buffers)}"
        )
    raw = _buffer_bytes(buffers[buffer_index], data, label, tensor.name)
    if raw is None or len(raw) == 0:
        return None
    if tensor.dtype is DType.OTHER:
        return np.frombuffer(raw, dtype=np.uint8).copy()
    if len(raw) != tensor.nbytes:
        raise ModelFormatError(
            f"{label}: tensor '{tensor.name}' holds {len(raw)} bytes of constant data, "
            f"but its shape {list(tensor.shape)} of {tensor.dtype.numpy_name} needs {tensor.nbytes}"
        )
    dtype = tensor.dtype.np.newbyteorder("<")
    return np.frombuffer(raw, dtype=dtype).astype(tensor.dtype.np).reshape(tensor.shape)


def _buffer_bytes(buf: schema.BufferT, data: bytes, label: str, name: str) -> bytes | None:
    offset = int(buf.offset or 0)
    if offset > 1:  # data stored after the flatbuffer (models over 2 GB, or "external")
        size = int(buf.size or 0)
        if offset + size > len(data):
            raise ModelFormatError(
                f"{label}: constant data of tensor '{name}' lies outside the file "
                "(truncated file?)"
            )
        return data[offset:offset + size]
    if buf.data is None:
        return None
    return np.asarray(buf.data, dtype=np.uint8).tobytes()


def _operator(index: int, op: schema.OperatorT, opcodes: list[str], versions: list[int],
              tensor_count: int, label: str) -> Operator:
    if not 0 <= op.opcodeIndex < len(opcodes):
        raise ModelFormatError(
            f"{label}: operator {index} uses opcode {op.opcodeIndex}, "
            f"but the model defines {len(opcodes)}"
        )
    what = f"operator {index} ({opcodes[op.opcodeIndex]})"
    _check_options_type(op, opcodes[op.opcodeIndex], what, label)
    return Operator(
        index=index,
        opcode=opcodes[op.opcodeIndex],
        inputs=_indices(op.inputs, tensor_count, label, f"{what} input"),
        outputs=_indices(op.outputs, tensor_count, label, f"{what} output"),
        options=_options(op.builtinOptions),
        version=versions[op.opcodeIndex],
    )


def _check_options_type(op: schema.OperatorT, opcode: str, what: str, label: str) -> None:
    """Options of another operator's type would be read as defaults: refuse them."""
    if not op.builtinOptionsType:
        return
    actual = _OPTIONS_NAMES.get(op.builtinOptionsType)
    expected = _EXPECTED_OPTIONS.get(opcode)
    if expected is None:
        expected = _OPTIONS_BY_KEY.get(opcode.replace("_", "").lower() + "options")
    if actual is None or op.builtinOptions is None or (expected and actual != expected):
        raise ModelFormatError(
            f"{label}: {what} has options of type {actual or op.builtinOptionsType}"
            f"{f', expected {expected}' if expected else ''}; the file is corrupt, "
            "re-export the model"
        )


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _options(options: object) -> dict[str, object]:
    """Builtin options as a plain dict with snake_case keys and enum names resolved."""
    if options is None:
        return {}
    result: dict[str, object] = {}
    for key, value in vars(options).items():
        name = _snake(key)
        if name == "fused_activation_function":
            value = _ACTIVATION_NAMES.get(value, f"UNKNOWN_{value}")
        elif name == "padding":
            value = _PADDING_NAMES.get(value, f"UNKNOWN_{value}")
        elif isinstance(value, np.ndarray):
            value = tuple(int(v) for v in value)
        result[name] = value
    return result
