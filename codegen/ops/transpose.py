"""TRANSPOSE: int8 or int16 in/out, constant int32 permutation, 1-D to 5-D; input and output
quantized alike.

TFLM: TransposePrepare (kernels/transpose_common.cc: at most 5 dimensions, constant int32
perm with values in [0, rank)) and reference_ops::Transpose: output[i_0, ..., i_n] =
input[i_perm^-1...], i.e. output axis k walks input axis perm[k].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops._copy import (
    CopyLayer,
    Nest,
    activation_input,
    constant_vector,
    dense_strides,
    require_same_quantization,
    require_shape,
    single_output,
)
from codegen.ops.base import unsupported

OPCODES = ("TRANSPOSE",)
MAX_DIMS = 5


@dataclass
class Transpose(CopyLayer):
    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        perm = [0, *(p + 1 for p in self.params["perm"])]
        return [np.ascontiguousarray(np.transpose(inputs[0], perm))]

    def describe(self) -> list[tuple[str, str]]:
        return [("perm", str(self.params["perm"]))]


def prepare(op: Operator, graph: Graph) -> Transpose:
    x = activation_input(op, graph, 0)
    y = single_output(op, graph)
    require_same_quantization(op, x, y)
    rank = len(x.shape)
    if not 1 <= rank <= MAX_DIMS:
        raise unsupported(op, f"{rank}-D input; TFLM transposes 1 to {MAX_DIMS} dimensions")
    perm = constant_vector(op, graph, 1, "perm", rank)
    if sorted(perm) != list(range(rank)):
        raise unsupported(op, f"perm {perm} is not a permutation of 0..{rank - 1}")
    require_shape(op, y, [x.shape[p] for p in perm])
    in_strides = dense_strides(x.shape)
    layer = Transpose(op, graph, inputs=(x.index,), outputs=(y.index,), params={"perm": perm})
    layer.set_steps([Nest.gather("input0", "output0", y.shape,
                                 [in_strides[p] for p in perm])])
    return layer


KERNELS = dict.fromkeys((DType.INT8, DType.INT16), prepare)
