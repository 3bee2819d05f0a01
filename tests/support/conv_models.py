"""Models for the 2-D window operators (CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D,
MAX_POOL_2D): option builders for support.builder, multi-branch builder models, Keras models
through the real converter, and sub-models cut out of real models.

Every model here has one input and several outputs, one per branch, so that one build
exercises many option combinations while a failure still names the branch (the output
index) it comes from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from support.builder import ModelBuilder, Q, activation_code, bias_scales, pack
from support.models import cached, convert_int8

# -- builder options -----------------------------------------------------------------------


def _padding(padding: str) -> int:
    return int(getattr(schema.Padding, padding))


def conv_options(padding: str = "SAME", stride: tuple[int, int] = (1, 1),
                 dilation: tuple[int, int] = (1, 1), activation: str = "NONE") -> object:
    options = schema.Conv2DOptionsT()
    options.padding = _padding(padding)
    options.strideH, options.strideW = stride
    options.dilationHFactor, options.dilationWFactor = dilation
    options.fusedActivationFunction = activation_code(activation)
    return options


def depthwise_options(padding: str = "SAME", stride: tuple[int, int] = (1, 1),
                      dilation: tuple[int, int] = (1, 1), activation: str = "NONE",
                      multiplier: int = 1) -> object:
    options = schema.DepthwiseConv2DOptionsT()
    options.padding = _padding(padding)
    options.strideH, options.strideW = stride
    options.dilationHFactor, options.dilationWFactor = dilation
    options.fusedActivationFunction = activation_code(activation)
    options.depthMultiplier = multiplier
    return options


def pool_options(padding: str = "SAME", stride: tuple[int, int] = (1, 1),
                 size: tuple[int, int] = (2, 2), activation: str = "NONE") -> object:
    options = schema.Pool2DOptionsT()
    options.padding = _padding(padding)
    options.strideH, options.strideW = stride
    options.filterHeight, options.filterWidth = size
    options.fusedActivationFunction = activation_code(activation)
    return options


# -- geometry ------------------------------------------------------------------------------


def out_size(padding: str, size: int, taps: int, stride: int, dilation: int = 1) -> int:
    """Output extent of a window, as TensorFlow defines SAME and VALID."""
    if padding == "SAME":
        return -(-size // stride)
    return (size - (taps - 1) * dilation - 1) // stride + 1


# -- multi-branch builder models -----------------------------------------------------------


@dataclass(frozen=True)
class Branch:
    """One operator reading the model input.

    kind: "conv" (weights [out_c, kh, kw, in_c/groups]), "depthwise" (weights
    [1, kh, kw, in_c*multiplier]), "avg" or "max". `weight_scale` is a scalar (per-tensor)
    or "per_channel" for random per-channel scales, in `scale_range`, times `scale_base`;
    `output` is the
    output's (scale, zero point) for convolutions (pools keep the input's)."""

    kind: str
    kernel: tuple[int, int] = (3, 3)
    padding: str = "SAME"
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    activation: str = "NONE"
    out_c: int = 0  # conv: output channels (0: as many as the input)
    multiplier: int = 1  # depthwise
    weight_scale: float | str = "per_channel"
    scale_base: float = 0.02
    scale_range: tuple[float, float] = (0.25, 4.0)  # of the per-channel scales / scale_base
    output: tuple[float, int] = (0.1, 0)
    bias: bool = True
    bias_range: int = 4000
    min_weight: int = -128  # the weights are drawn from [min_weight, 127]
    extra: dict[str, Any] = field(default_factory=dict)


def branch_model(input_shape: Sequence[int], input_q: tuple[float, int],
                 branches: Sequence[Branch], seed: int = 0,
                 description: str = "window branches") -> bytes:
    """One int8 input (N, H, W, C) and one output per branch; weights drawn over the full
    int8 range (including -128) from `seed`."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder(description)
    shape = tuple(int(d) for d in input_shape)
    in_scale, in_zp = input_q
    x = b.add_tensor("input", shape, "int8", quant=Q(in_scale, in_zp))
    outputs = []
    for i, br in enumerate(branches):
        outputs.append(_add_branch(b, x, shape, input_q, br, i, rng))
    b.set_io([x], outputs)
    return b.build()


def _add_branch(b: ModelBuilder, x: int, shape: tuple[int, ...], input_q: tuple[float, int],
                br: Branch, i: int, rng: np.random.Generator) -> int:
    n, h, w, c = shape
    kh, kw = br.kernel
    oh = out_size(br.padding, h, kh, br.stride[0], br.dilation[0])
    ow = out_size(br.padding, w, kw, br.stride[1], br.dilation[1])
    if br.kind in ("avg", "max"):
        y = b.add_tensor(f"y{i}", (n, oh, ow, c), "int8", quant=Q(*input_q))
        opcode = "AVERAGE_POOL_2D" if br.kind == "avg" else "MAX_POOL_2D"
        b.add_op(opcode, [x], [y], pool_options(br.padding, br.stride, br.kernel,
                                                 br.activation))
        return y
    if br.kind == "conv":
        out_c = br.out_c or c
        groups = int(br.extra.get("groups", 1))
        w_shape: tuple[int, ...] = (out_c, kh, kw, c // groups)
        axis = 0
    else:
        out_c = c * br.multiplier
        w_shape = (1, kh, kw, out_c)
        axis = 3
    weights = rng.integers(br.min_weight, 128, size=w_shape)
    if br.weight_scale == "per_channel":
        scales = list(br.scale_base * rng.uniform(*br.scale_range, size=out_c))
        weight_q = Q(scales, 0, axis=axis)
    else:
        scales = [float(br.weight_scale)]
        weight_q = Q(float(br.weight_scale), 0, axis=axis)
    wt = b.add_tensor(f"w{i}", w_shape, "int8", quant=weight_q, data=weights)
    bias_index = -1
    if br.bias:
        bq = bias_scales(input_q[0], scales)
        bias_index = b.add_tensor(
            f"b{i}", (out_c,), "int32", quant=Q(bq if len(bq) > 1 else bq[0], 0, axis=0),
            data=rng.integers(-br.bias_range, br.bias_range + 1, size=out_c))
    y = b.add_tensor(f"y{i}", (n, oh, ow, out_c), "int8", quant=Q(*br.output))
    if br.kind == "conv":
        options = conv_options(br.padding, br.stride, br.dilation, br.activation)
        b.add_op("CONV_2D", [x, wt, bias_index], [y], options)
    else:
        options = depthwise_options(br.padding, br.stride, br.dilation, br.activation,
                                    br.multiplier)
        b.add_op("DEPTHWISE_CONV_2D", [x, wt, bias_index], [y], options)
    return y


def chain_model(input_shape: Sequence[int], input_q: tuple[float, int],
                layers: Sequence[Branch], seed: int = 0,
                description: str = "window chain") -> bytes:
    """One int8 input (N, H, W, C) through `layers` one after the other (each Branch reads
    the one before; a pool keeps its input's quantization), one output."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder(description)
    shape = tuple(int(d) for d in input_shape)
    q = input_q
    x = first = b.add_tensor("input", shape, "int8", quant=Q(*q))
    for i, layer in enumerate(layers):
        x = _add_branch(b, x, shape, q, layer, i, rng)
        shape = tuple(int(d) for d in b._current.tensors[x].shape)
        q = q if layer.kind in ("avg", "max") else layer.output
    b.set_io([first], [x])
    return b.build()


# -- sub-models of real models -------------------------------------------------------------


def submodel(model: bytes, keep: Sequence[int]) -> bytes:
    """The operators `keep` of `model` (first subgraph) as a model of their own.

    Its inputs are the activation tensors the kept operators read but do not produce; its
    outputs the tensors they produce that no kept operator reads, plus any original graph
    output they produce. Tensors and buffers are left as they are (unused ones included)."""
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    sg = m.subgraphs[0]
    ops = [sg.operators[i] for i in keep]
    produced = [t for op in ops for t in op.outputs]
    read = [t for op in ops for t in op.inputs if t >= 0]
    constant = {
        t for t in read
        if sg.tensors[t].buffer and m.buffers[sg.tensors[t].buffer].data is not None
    }
    inputs = list(dict.fromkeys(t for t in read if t not in constant and t not in produced))
    originals = {int(t) for t in sg.outputs}
    outputs = [t for t in produced if t not in read or t in originals]
    sg.operators = ops
    sg.inputs, sg.outputs = inputs, outputs
    return pack(m)


# -- Keras models through the converter ----------------------------------------------------


def _keras_branch(inp: Any, spec: dict[str, Any], seed: int) -> Any:
    import keras

    kind = spec["kind"]
    act = spec.get("activation", "none")
    common = {"padding": spec.get("padding", "same"), "strides": spec.get("stride", 1)}
    if kind == "conv":
        h = keras.layers.Conv2D(
            spec["filters"], spec["kernel"], groups=spec.get("groups", 1),
            use_bias=spec.get("bias", True),
            kernel_initializer=keras.initializers.GlorotUniform(seed),
            bias_initializer=keras.initializers.RandomUniform(-0.3, 0.3, seed + 1), **common,
        )(inp)
    elif kind == "depthwise":
        h = keras.layers.DepthwiseConv2D(
            spec["kernel"], depth_multiplier=spec.get("multiplier", 1),
            depthwise_initializer=keras.initializers.GlorotUniform(seed),
            bias_initializer=keras.initializers.RandomUniform(-0.3, 0.3, seed + 1), **common,
        )(inp)
    elif kind == "avg":
        h = keras.layers.AveragePooling2D(spec["kernel"], **common)(inp)
    elif kind == "max":
        h = keras.layers.MaxPooling2D(spec["kernel"], **common)(inp)
    else:
        raise ValueError(f"unknown branch kind {kind!r}")
    if act == "relu":
        return keras.ops.relu(h)
    if act == "relu6":
        return keras.ops.relu6(h)
    if act == "relu_n1_to_1":
        return keras.ops.clip(h, -1.0, 1.0)
    if act != "none":
        raise ValueError(f"unknown activation {act!r}")
    return h


def keras_branches(input_shape: Sequence[int], branches: Sequence[dict[str, Any]], *,
                   per_channel: bool = True, seed: int = 0) -> bytes:
    """A Keras model with one (H, W, C) input and one output per branch spec, converted with
    int8 I/O and cached. A spec is a dict: kind ("conv", "depthwise", "avg", "max"),
    kernel, padding ("same"/"valid"), stride, activation ("none", "relu", "relu6",
    "relu_n1_to_1"), and filters/groups/bias (conv) or multiplier (depthwise)."""
    params = {"input_shape": [int(d) for d in input_shape], "branches": list(branches),
              "per_channel": per_channel, "seed": seed}

    def make() -> bytes:
        import keras

        keras.utils.set_random_seed(seed)
        inp = keras.Input(tuple(input_shape))
        outs = [_keras_branch(inp, spec, seed + 10 * i) for i, spec in enumerate(branches)]
        model = keras.Model(inp, outs)
        rng = np.random.default_rng(seed)
        representative = rng.uniform(-1.0, 1.0, (128, *input_shape)).astype(np.float32)
        return convert_int8(model, representative, per_channel=per_channel)

    return cached("conv_branches", params, make)
