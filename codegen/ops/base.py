"""What every operator module provides: a prepared `Layer`.

An operator module turns one IR `Operator` into a `Layer` at generation time (TFLM's
Prepare): it checks the options and types it supports, derives every integer constant
(multipliers, shifts, folded biases, clamp bounds), and then offers
  - `reference(inputs)`: the numpy integer reference (TFLM's Eval, vectorised over a batch),
  - `kernel()`: the C function body, rendered from its template under `templates/kernels/`,
  - `constants()`: the const arrays that body reads,
  - `macs()`: multiply-accumulates per invoke, for reports.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from codegen.emit import render
from codegen.errors import UnsupportedError
from codegen.model.ir import DType, Graph, Operator, Tensor


@dataclass(frozen=True)
class CArray:
    """A const array emitted into NAME.c (`name` gets the model prefix at emission)."""

    name: str
    values: np.ndarray
    guard: str = ""
    """A C preprocessor condition under which the array is emitted ("" for always): the
    arrays of an engine that only some cores compile (runtime/gemm_v6m.c.j2)."""

    @property
    def c_type(self) -> str:
        return {
            "int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t",
            "int32": "int32_t", "int64": "int64_t",
            "float32": "float",  # finite values only (DETECTION_POSTPROCESS's anchors)
            "float64": "double",  # finite, as hexadecimal literals (float requantization)
        }[self.values.dtype.name]

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)

    @property
    def identity(self) -> tuple[str, str, int, bytes]:
        """(C type, guard, count, digest of the values): arrays of one identity are emitted
        once per file, the others as aliases of it (the bands of a patch-based stage share
        their weights, biases and requantization constants)."""
        data = np.ascontiguousarray(self.values).tobytes()
        return self.c_type, self.guard, int(self.values.size), hashlib.sha256(data).digest()


@dataclass(frozen=True)
class RowAccess:
    """How a kernel walks its (first) input and its output, for input/output overlap
    (`codegen.plan`): rows are those of every image in turn (batch x height), and once the
    kernel has written any byte of output row k it reads no input row below
    `first_read[k]` (a non-decreasing sequence; the input's row count means "none").

    Then the output may start `shift()` bytes before the input, and every output byte is
    written after the last read of the input byte it overwrites."""

    in_row: int  # bytes per input row
    out_row: int  # bytes per output row
    first_read: np.ndarray  # int64, one per output row

    def shift(self) -> int:
        """The least d such that output offset = input offset - d is safe: for every row k,
        the bytes written up to the end of row k stay below the first input byte still to
        be read, (k + 1) * out_row - d <= first_read[k] * in_row."""
        k = np.arange(1, self.first_read.size + 1, dtype=np.int64)
        return int(np.max(k * self.out_row - self.first_read * self.in_row, initial=0))


def window_rows(batches: int, in_h: int, out_h: int, stride: int, pad: int,
                ahead: int = 0) -> np.ndarray:
    """first_read of a kernel that walks its output row by row and reads, for output row
    oy, the input rows from oy * stride - pad (plus `ahead` rows it has already taken into
    a buffer of its own), clipped to the image; images one after the other."""
    oy = np.arange(out_h, dtype=np.int64)
    row = np.clip(oy * stride - pad + ahead, 0, in_h)
    return (np.arange(batches, dtype=np.int64)[:, None] * in_h + row[None, :]).ravel()


@dataclass
class Layer:
    """One operator, prepared: everything the reference and the C need, and nothing else."""

    op: Operator
    graph: Graph
    inputs: tuple[int, ...]  # activation (non-constant) tensors read, in kernel order
    outputs: tuple[int, ...]  # tensors written
    template: ClassVar[str] = ""
    # C helper snippets the kernel calls: templates/runtime/<name>.c.j2, emitted once per file
    runtime: ClassVar[tuple[str, ...]] = ()
    params: dict[str, object] = field(default_factory=dict)
    # The output is the input's bytes under another shape (RESHAPE, SQUEEZE, ...): the
    # planner lets both share one buffer and then emits no call at all.
    alias: ClassVar[bool] = False
    # Nothing to run (VAR_HANDLE, CALL_ONCE: what they do is settled at generation time).
    no_code: ClassVar[bool] = False
    # The C name of a band of a layer in a patch-based schedule (codegen/patch.py): bands
    # of the same shape share it, and their one function.
    stem: str = ""

    @property
    def index(self) -> int:
        return self.op.index

    @property
    def opcode(self) -> str:
        return self.op.opcode

    def symbol(self, prefix: str) -> str:
        """C identifier stem of this layer, e.g. `model_l3_fully_connected`."""
        if self.stem:
            return f"{prefix}_{self.stem}"
        return f"{prefix}_l{self.index}_{self.opcode.lower()}"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Batched numpy reference: arrays shaped (N, *tensor.shape), one per input."""
        raise NotImplementedError

    def constants(self) -> list[CArray]:
        return []

    def macs(self) -> int:
        return 0

    def inplace_inputs(self) -> tuple[int, ...]:
        """Input positions the output may overwrite: the kernel reads element i of that
        input before it writes element i of the output, with the same layout and size."""
        return ()

    def state_updates(self) -> tuple[int, ...]:
        """Input positions holding state (variable tensors, resource variables: see
        codegen/state.py) that the kernel updates in place: the C gets a writable pointer,
        and `reference` returns their new values after the outputs, in this order."""
        return ()

    def scratch_bytes(self) -> int:
        """Bytes of scratch memory the kernel needs during its step (passed last)."""
        return 0

    def row_access(self) -> RowAccess | None:
        """The kernel's row order over its first input and its output, when it lets the
        output overlap the input (see RowAccess); None: no overlap. A kernel that changes
        its loop order must keep this true (tests/test_memory.py simulates it)."""
        return None

    def kernel(self, symbol: str) -> str:
        """The C definition of `static void <symbol>(...)`, rendered from the template."""
        return render(self.template, fn=symbol, layer=self, **self.params)

    def tensor(self, index: int) -> Tensor:
        return self.graph.tensors[index]

    def in_tensor(self, position: int = 0) -> Tensor:
        return self.tensor(self.inputs[position])

    def out_tensor(self, position: int = 0) -> Tensor:
        return self.tensor(self.outputs[position])

    def describe(self) -> list[tuple[str, str]]:
        """Derived parameters worth showing in `codegen inspect` (label, value)."""
        return []


def where(op: Operator) -> str:
    return f"operator {op.index} ({op.opcode})"


def unsupported(op: Operator, reason: str) -> UnsupportedError:
    return UnsupportedError(f"{where(op)}: {reason}")


def require_dtype(op: Operator, tensor: Tensor, allowed: tuple[DType, ...], role: str) -> None:
    if tensor.dtype not in allowed:
        names = "/".join(d.numpy_name for d in allowed)
        raise unsupported(
            op, f"{role} '{tensor.name}' is {tensor.dtype_name}, expected {names}"
        )


def require_zero_point_zero(op: Operator, tensor: Tensor, role: str) -> None:
    """16x8 quantization is symmetric: the int16 kernels of TFLM that require a zero point
    of 0, or ignore it, get one."""
    if tensor.quant is not None and any(z != 0 for z in tensor.quant.zero_points):
        raise unsupported(
            op, f"{role} '{tensor.name}' has zero point {tensor.quant.zero_points[0]}; TFLM's "
            f"int16 {op.opcode} needs 0 (16x8 quantization is symmetric: convert with "
            "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8)")


def require_per_tensor(op: Operator, tensor: Tensor, role: str) -> None:
    if tensor.quant is None:
        raise unsupported(op, f"{role} '{tensor.name}' has no quantization parameters")
    if tensor.quant.per_channel:
        raise unsupported(op, f"{role} '{tensor.name}' must be quantized per tensor")


def operand(op: Operator, graph: Graph, position: int, role: str) -> Tensor:
    if position >= len(op.inputs) or op.inputs[position] < 0:
        raise unsupported(op, f"missing {role} input")
    return graph.tensors[op.inputs[position]]


def only_output(op: Operator, graph: Graph) -> Tensor:
    if len(op.outputs) != 1:
        raise unsupported(op, f"expected 1 output, found {len(op.outputs)}")
    return graph.tensors[op.outputs[0]]
