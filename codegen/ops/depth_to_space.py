"""DEPTH_TO_SPACE, SPACE_TO_DEPTH: int8 4-D NHWC in/out with one quantization, block_size
>= 1 (the spatial size divisible by it for SPACE_TO_DEPTH, the depth by its square for
DEPTH_TO_SPACE).

TFLM: depth_to_space.cc / space_to_depth.cc (4-D, float32 or int8, equal types) and
reference_ops::DepthToSpace / SpaceToDepth: DEPTH_TO_SPACE writes output[b, h, w, d] =
input[b, h / bs, w / bs, d + ((h % bs) * bs + w % bs) * out_depth], SPACE_TO_DEPTH the
inverse. Both are one gather nest over the output in order, six loops that merge where
memory runs on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.model.ir import Graph, Operator
from codegen.ops._copy import (
    CopyLayer,
    Nest,
    activation_input,
    require_same_quantization,
    require_shape,
    single_output,
)
from codegen.ops.base import unsupported

OPCODES = ("DEPTH_TO_SPACE", "SPACE_TO_DEPTH")


@dataclass
class DepthSpace(CopyLayer):
    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        n = inputs[0].shape[0]
        b, h, w, c = self.in_tensor().shape
        bs = int(self.params["block_size"])  # type: ignore[call-overload]
        x = inputs[0]
        if self.opcode == "DEPTH_TO_SPACE":
            out = x.reshape(n, b, h, w, bs, bs, c // (bs * bs)).transpose(0, 1, 2, 4, 3, 5, 6)
        else:
            out = x.reshape(n, b, h // bs, bs, w // bs, bs, c).transpose(0, 1, 2, 4, 3, 5, 6)
        return [np.ascontiguousarray(out).reshape(n, *self.out_tensor().shape)]

    def describe(self) -> list[tuple[str, str]]:
        return [("block_size", str(self.params["block_size"]))]


def prepare(op: Operator, graph: Graph) -> DepthSpace:
    if len(op.inputs) != 1:
        raise unsupported(op, f"expected 1 input, found {len(op.inputs)}")
    x = activation_input(op, graph, 0)
    y = single_output(op, graph)
    require_same_quantization(op, x, y)
    if len(x.shape) != 4:
        raise unsupported(op, f"input must be 4-D (NHWC), found {list(x.shape)}")
    bs = int(op.options.get("block_size", 0))  # type: ignore[call-overload]
    if bs < 1:
        raise unsupported(op, f"block_size {bs} must be positive")
    b, h, w, c = (int(d) for d in x.shape)
    if op.opcode == "DEPTH_TO_SPACE":
        if c % (bs * bs):
            raise unsupported(op, f"depth {c} is not divisible by block_size^2 = {bs * bs}")
        od = c // (bs * bs)
        require_shape(op, y, [b, h * bs, w * bs, od])
        # output order: b, h, dy, w, dx, d (output row h * bs + dy, column w * bs + dx)
        counts = (b, h, bs, w, bs, od)
        steps = (h * w * c, w * c, bs * od, c, od, 1)
    else:
        if h % bs or w % bs:
            raise unsupported(op, f"spatial shape {[h, w]} is not divisible by block_size "
                              f"{bs}")
        require_shape(op, y, [b, h // bs, w // bs, c * bs * bs])
        # output order: b, h, w, dy, dx, d (input row h * bs + dy, column w * bs + dx)
        counts = (b, h // bs, w // bs, bs, bs, c)
        steps = (h * w * c, bs * w * c, bs * c, w * c, c, 1)
    layer = DepthSpace(op, graph, inputs=(x.index,), outputs=(y.index,),
                       params={"block_size": bs})
    layer.set_steps([Nest.gather("input0", "output0", counts, steps)])
    return layer
