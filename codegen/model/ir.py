"""The graph IR that every stage reads: tensors, operators, graph inputs and outputs.

The reader (`codegen.model.tflite`) builds it, `codegen.model.validate` checks it, and
everything downstream (operator preparation, planning, emission, the reference) reads it
and never goes back to the flatbuffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class DType(Enum):
    """Element types the generator knows about, with their numpy and C spellings."""

    INT8 = ("int8", "int8_t", 1)
    UINT8 = ("uint8", "uint8_t", 1)
    INT16 = ("int16", "int16_t", 2)
    INT32 = ("int32", "int32_t", 4)
    INT64 = ("int64", "int64_t", 8)
    FLOAT32 = ("float32", "float", 4)
    # C99's bool would need <stdbool.h> and makes any byte other than 0 and 1 a trap value;
    # bool tensors are bytes instead: kernels write 0 or 1 and read any nonzero byte as true.
    BOOL = ("bool", "uint8_t", 1)
    OTHER = ("other", "void", 0)

    def __init__(self, numpy_name: str, c_type: str, itemsize: int) -> None:
        self.numpy_name = numpy_name
        self.c_type = c_type
        self.itemsize = itemsize

    @property
    def np(self) -> np.dtype:
        return np.dtype(self.numpy_name)

    @property
    def is_integer(self) -> bool:
        return self in (DType.INT8, DType.UINT8, DType.INT16, DType.INT32, DType.INT64)

    @property
    def qmin(self) -> int:
        return int(np.iinfo(self.np).min)

    @property
    def qmax(self) -> int:
        return int(np.iinfo(self.np).max)


@dataclass(frozen=True)
class Quantization:
    """Affine quantization: real = scale * (q - zero_point), per tensor or along `axis`."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1

    @property
    def scale(self) -> float:
        """The per-tensor scale (only meaningful when not per-channel)."""
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0]


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: DType
    quant: Quantization | None = None
    data: np.ndarray | None = None  # constant data, already shaped and typed
    type_name: str = ""  # the file's own type name when dtype is OTHER (e.g. "float16")
    # A variable: state that persists between invokes (an LSTM's hidden and cell state, an
    # SVDF's memory), reset as TFLM's ResetVariableTensors resets it; never constant.
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        """Number of elements."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def dtype_name(self) -> str:
        return self.type_name or self.dtype.numpy_name

    def describe(self) -> str:
        """Short human description: `int8[1,16] s=0.0039 zp=-128`."""
        text = f"{self.dtype_name}[{','.join(str(d) for d in self.shape)}]"
        if self.quant is not None:
            if self.quant.per_channel:
                text += f" per-channel(axis {self.quant.axis}, {len(self.quant.scales)} scales)"
            else:
                text += f" s={self.quant.scale:.6g} zp={self.quant.zero_point}"
        return text


@dataclass
class Operator:
    index: int
    opcode: str  # builtin operator name, e.g. "FULLY_CONNECTED"
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, object] = field(default_factory=dict)
    version: int = 1
    # A custom operator's options as the file stores them (a flexbuffer), b"" otherwise;
    # the operator module parses them (codegen.model.flexbuffers).
    custom_options: bytes = b""


@dataclass
class Graph:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str = ""
    file_bytes: int = 0  # size of the model file it was read from (bounds generation)
    # The subgraphs that CALL_ONCE operators run to initialize resource variables, by their
    # index in the file (the only other subgraphs codegen takes); empty for most models.
    init_graphs: dict[int, Graph] = field(default_factory=dict)

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def consumers(self, tensor_index: int) -> list[Operator]:
        return [op for op in self.operators if tensor_index in op.inputs]

    @property
    def activation_tensors(self) -> list[int]:
        """Indices of non-constant tensors that operators produce (not graph inputs)."""
        produced: dict[int, None] = {}  # ordered, and linear in the operators
        for op in self.operators:
            produced.update(dict.fromkeys(op.outputs))
        return list(produced)
