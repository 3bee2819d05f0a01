"""SPACE_TO_BATCH_ND: int8 3-D (NHC) or 4-D (NHWC) in/out with one quantization, constant
int32 block shape (>= 1) and paddings (>= 0); the padding is the raw value 0 (TFLM's quirk).

TFLM: space_to_batch_nd.cc (3-D or 4-D, equal types) and reference_ops::SpaceToBatchND:
output batch ob reads input batch ob % B at the block offset (ob / B) / bw, (ob / B) % bw,
so output[ob, oh, ow] = input[ob % B, oh * bh + sh - pad_top, ow * bw + sw - pad_left]
or, outside the input, `memset(pad_value)` where pad_value is params.output_offset, which
nothing in TFLM sets: it reads its persistent buffer uninitialised, which is zero in a fresh
arena (a microcontroller's .bss; in a long-lived host process it may hold an earlier
interpreter's bytes). So TFLM pads with the raw int8 0 whatever the zero point (TF Lite pads
with the zero point), and so does the generated code: one memset of the padded output, then
one copy nest per output batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops import _typed
from codegen.ops._copy import (
    CopyLayer,
    Nest,
    activation_input,
    fill_step,
    require_same_quantization,
    require_shape,
    single_output,
)
from codegen.ops.base import unsupported

OPCODES = ("SPACE_TO_BATCH_ND",)
PAD_VALUE = 0  # TFLM's unset params.output_offset
# The converter writes a dilated convolution of a model with a dynamic batch dimension as
# SPACE_TO_BATCH_ND -> CONV_2D -> BATCH_TO_SPACE_ND with the batch of every tensor stored as 1,
# which TFLM runs into tensors too small for the data (wrong results).
DYNAMIC_BATCH_HINT = (
    "the converter stored a dynamic batch dimension as 1, and TFLM computes this dilated "
    "convolution wrongly; convert with a fixed batch of 1 (keras.Input(shape, batch_size=1) "
    "or a fixed input signature), which gives one dilated CONV_2D")


@dataclass
class SpaceToBatchNd(CopyLayer):
    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x = inputs[0].reshape(inputs[0].shape[0], *p["shape4"])  # type: ignore[misc]
        n, batches, height, width, depth = x.shape
        bh, bw = p["block"]  # type: ignore[misc]
        (pt, pb), (pl, pr) = p["paddings"]  # type: ignore[misc]
        padded = np.full((n, batches, height + pt + pb, width + pl + pr, depth), PAD_VALUE,
                         dtype=x.dtype)
        padded[:, :, pt:pt + height, pl:pl + width] = x
        oh, ow = padded.shape[2] // bh, padded.shape[3] // bw
        blocks = padded.reshape(n, batches, oh, bh, ow, bw, depth)
        # output batch (sh * bw + sw) * B + b
        out = blocks.transpose(0, 3, 5, 1, 2, 4, 6)
        return [np.ascontiguousarray(out).reshape(n, *self.out_tensor().shape)]

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("block", str(list(p["block"]))),  # type: ignore[call-overload]
                ("paddings", f"{[list(q) for q in p['paddings']]} with the raw value "  # type: ignore[attr-defined]
                             f"{PAD_VALUE}")]


def spatial_operands(op: Operator, graph: Graph, rank: int,
                     role: str) -> tuple[tuple[int, int], tuple[tuple[int, int], ...]]:
    """(block (bh, bw), ((top, bottom), (left, right))) of SPACE_TO_BATCH_ND's block shape and
    paddings or BATCH_TO_SPACE_ND's block shape and crops; 3-D tensors have block width 1."""
    spatial = rank - 2
    block = _typed.constant_values(op, graph, 1, "block_shape", _typed.INT32)
    amounts = _typed.constant_values(op, graph, 2, role, _typed.INT32)
    if block.shape != (spatial,):
        raise unsupported(op, f"block_shape has shape {list(block.shape)}, expected "
                          f"[{spatial}]")
    if amounts.shape != (spatial, 2):
        raise unsupported(op, f"{role} has shape {list(amounts.shape)}, expected "
                          f"[{spatial}, 2]")
    if (block < 1).any():
        raise unsupported(op, f"block_shape {block.tolist()} must be positive")
    if (amounts < 0).any():
        raise unsupported(op, f"negative {role} {amounts.tolist()}")
    pairs = [(int(a), int(b)) for a, b in amounts]
    if spatial == 1:
        return (int(block[0]), 1), (pairs[0], (0, 0))
    return (int(block[0]), int(block[1])), (pairs[0], pairs[1])


@dataclass(frozen=True)
class SpatialOperands:
    """What SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND read and check alike."""

    x: Tensor
    y: Tensor
    block: tuple[int, int]
    amounts: tuple[tuple[int, int], ...]  # paddings or crops, ((top, bottom), (left, right))
    shape4: tuple[int, int, int, int]  # the input as TFLM extends it


def spatial_prepare(op: Operator, graph: Graph, role: str) -> SpatialOperands:
    """Three inputs, one activation in and out of one quantization, 3-D or 4-D, the block
    shape and the `role` operand (paddings or crops) checked."""
    _typed.input_count(op, 3)
    x = activation_input(op, graph, 0)
    y = single_output(op, graph)
    require_same_quantization(op, x, y)
    if len(x.shape) not in (3, 4):
        raise unsupported(op, f"input must be 3-D or 4-D, found {list(x.shape)}")
    block, amounts = spatial_operands(op, graph, len(x.shape), role)
    return SpatialOperands(x, y, block, amounts, extended_shape(tuple(x.shape)))


def extended_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """NHC -> NH1C, as TFLM's ExtendShapeSpaceToBatch / ExtendShapeBatchToSpace."""
    if len(shape) == 4:
        return (shape[0], shape[1], shape[2], shape[3])
    return (shape[0], shape[1], 1, shape[2])


def prepare(op: Operator, graph: Graph) -> SpaceToBatchNd:
    s = spatial_prepare(op, graph, "paddings")
    x, y, block, paddings = s.x, s.y, s.block, s.amounts
    batches, height, width, depth = s.shape4
    padded = (height + sum(paddings[0]), width + sum(paddings[1]))
    if padded[0] % block[0] or padded[1] % block[1]:
        raise unsupported(op, f"padded spatial shape {list(padded)} is not divisible by the "
                          f"block {list(block)}")
    out4 = (batches * block[0] * block[1], padded[0] // block[0], padded[1] // block[1], depth)
    if out4[0] != batches and y.shape[0] == batches:
        raise unsupported(op, f"output '{y.name}' has batch {batches}, expected {out4[0]}: "
                          f"{DYNAMIC_BATCH_HINT}")
    require_shape(op, y, out4 if len(x.shape) == 4 else (out4[0], out4[1], depth))
    layer = SpaceToBatchNd(op, graph, inputs=(x.index,), outputs=(y.index,),
                           params={"block": block, "paddings": paddings,
                                   "shape4": (batches, height, width, depth)})
    steps: list[Nest | dict[str, object]] = []
    if any(paddings[0]) or any(paddings[1]):
        steps.append(fill_step("output0", y.size, PAD_VALUE, DType.INT8))
    (bh, bw), (top, left) = block, (paddings[0][0], paddings[1][0])
    _, out_h, out_w, _ = out4
    for ob in range(out4[0]):
        b, sh, sw = ob % batches, (ob // batches) // bw, (ob // batches) % bw
        rows = [r for r in range(out_h) if 0 <= r * bh + sh - top < height]
        cols = [c for c in range(out_w) if 0 <= c * bw + sw - left < width]
        if not rows or not cols:
            continue
        src = ((b * height + rows[0] * bh + sh - top) * width + cols[0] * bw + sw - left) * depth
        dst = ((ob * out_h + rows[0]) * out_w + cols[0]) * depth
        steps.append(Nest("input0", "output0", (len(rows), len(cols), depth),
                          (bh * width * depth, bw * depth, 1), (out_w * depth, depth, 1),
                          src, dst))
    layer.set_steps(steps)
    return layer
