"""Checks of the graph's meaning that precede operator preparation.

The reader guarantees a well-formed file; this module says whether the graph is something
the generator can take at all (fully int8-quantized, inputs and outputs it can pass through
the C API), before each operator module checks its own options.
"""

from __future__ import annotations

from codegen.errors import UnsupportedError
from codegen.model.ir import DType, Graph, Tensor

# Operators allowed to touch float tensors: the edges of a float-I/O model.
_FLOAT_EDGE_OPS = ("QUANTIZE", "DEQUANTIZE")
_IO_TYPES = (DType.INT8, DType.UINT8, DType.FLOAT32)

FULL_INT8_HINT = (
    "convert it with full-integer post-training quantization (a representative dataset and "
    "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8])"
)


def validate_graph(graph: Graph, label: str = "model") -> None:
    if not graph.operators:
        raise UnsupportedError(f"{label}: the model has no operators")
    _check_quantized(graph, label)
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        for i in indices:
            if i < 0:
                raise UnsupportedError(f"{label}: graph {role} refers to no tensor")
            _check_io_tensor(graph.tensors[i], role, label)


def _check_quantized(graph: Graph, label: str) -> None:
    for op in graph.operators:
        if op.opcode in _FLOAT_EDGE_OPS:
            continue
        for t in (graph.tensors[i] for i in (*op.inputs, *op.outputs) if i >= 0):
            if t.dtype is DType.FLOAT32:
                kind = "float weights" if t.is_constant else "float activations"
                hybrid = any(
                    graph.tensors[i].is_constant and graph.tensors[i].dtype is DType.INT8
                    for i in op.inputs if i >= 0
                )
                what = "dynamic-range (hybrid) quantized" if hybrid else "not quantized"
                raise UnsupportedError(
                    f"{label}: operator {op.index} ({op.opcode}) has {kind} ('{t.name}'): "
                    f"the model is {what}; codegen needs a fully int8-quantized model: "
                    f"{FULL_INT8_HINT}"
                )


def _check_io_tensor(t: Tensor, role: str, label: str) -> None:
    if t.dtype not in _IO_TYPES:
        raise UnsupportedError(
            f"{label}: graph {role} '{t.name}' is {t.dtype_name}; supported I/O types are "
            "int8, uint8 and float32"
        )
    if t.dtype is not DType.FLOAT32 and (t.quant is None or t.quant.per_channel):
        raise UnsupportedError(
            f"{label}: graph {role} '{t.name}' needs per-tensor quantization parameters"
        )
