"""What the operators share in numerics modes litert and litert-ref (codegen/numerics.py).

Mode `litert` is LiteRT's default interpreter: the XNNPACK delegate takes FULLY_CONNECTED,
CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, ADD, SUB, MUL, MEAN, LEAKY_RELU, LOGISTIC, TANH
and QUANTIZE of the int8 models it sees (measured with the pinned ai-edge-litert:
`Interpreter._get_ops_details()` lists the delegate's partitions; the delegate's own checks
decide which layers it declines) and requantizes with float32 scales, rounding to nearest
even (`_requant.requantize_fp32`); its unary operators are tables of its float formulas
(relu.py, logistic_tanh.py, quantize.py). AVERAGE_POOL_2D, RELU, RELU6, HARD_SWISH, PRELU,
SOFTMAX and what XNNPACK declines stay with LiteRT's optimized builtin kernels; SOFTMAX is a
float lookup table (softmax.py), RELU6 and LEAKY_RELU are LiteRT's (relu.py), the others
compute what TFLM does.

An operator whose arithmetic in a mode is not known to be reproduced is refused in that mode
rather than given TFLM's arithmetic under another name (`refuse`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from codegen.emit import c_float
from codegen.errors import UnsupportedError
from codegen.model.ir import DType
from codegen.ops import _requant
from codegen.ops.base import Layer, where

# The schema's TensorType number of INT32 (quantized_bias_type in the options).
_TENSOR_TYPE_INT32 = 2
# The largest requantization scale XNNPACK takes (it refuses 256 and more, and the delegate
# then leaves the operator to LiteRT's builtin kernel, which this mode does not reproduce).
XNNPACK_MAX_SCALE = np.float32(256.0)


def fp32_params(layer: Layer, filter_scales: Sequence[float], activation: str
                ) -> dict[str, object]:
    """The parameters of XNNPACK's fp32 requantization for a convolution or a fully
    connected layer: per-channel float32 scales, and the clamp bounds XNNPACK derives from
    the fused activation (in place of TFLM's)."""
    x, y = layer.in_tensor(), layer.out_tensor()
    _check_normal_scales(layer, {f"input '{x.name}'": [x.quant.scale],
                                 f"output '{y.name}'": [y.quant.scale],
                                 "the filter": list(filter_scales)})
    scales = np.array([_requant.xnnpack_scale(x.quant.scale, s, y.quant.scale)
                       for s in filter_scales], dtype=np.float32)
    if not np.all(np.isfinite(scales)) or np.any(scales >= XNNPACK_MAX_SCALE):
        raise UnsupportedError(
            f"{where(layer.op)}: a requantization scale of {float(np.max(scales)):g} is beyond "
            "XNNPACK's (below 256), so LiteRT leaves this layer to a builtin kernel that "
            "--numerics litert does not reproduce; use --numerics tflm or litert-ref")
    lo, hi = _requant.xnnpack_activation_bounds(activation, y.quant.scale, y.quant.zero_point)
    return {
        "fp32_scales": scales,
        "fp32_scale": c_float(float(scales[0])),
        "fp32_per_channel": bool(np.any(scales != scales[0])),
        "act_min": lo,
        "act_max": hi,
    }


def _check_normal_scales(layer: Layer, scales: dict[str, Sequence[float]]) -> None:
    """XNNPACK takes an int8 tensor only with normal float32 scales; with another (a
    denormal one, or one that rounds to 0) its delegate fails to prepare and LiteRT's
    default interpreter refuses the whole model."""
    for what, values in scales.items():
        for value in values:
            scale = np.float32(value)
            if not (np.isfinite(scale) and scale >= np.finfo(np.float32).tiny):
                raise UnsupportedError(
                    f"{where(layer.op)}: {what} has scale {float(value):g}, not a normal "
                    "float32: XNNPACK refuses it and LiteRT's default interpreter fails to "
                    "prepare the model; use --numerics tflm or litert-ref")


def refuse(layer: Layer, mode: str, why: str) -> UnsupportedError:
    return UnsupportedError(
        f"{where(layer.op)}: --numerics {mode} does not reproduce this layer ({why}); use "
        "--numerics tflm")


def require_bias(layer: Layer, mode: str) -> Layer:
    """LiteRT's CONV_2D and DEPTHWISE_CONV_2D fail to prepare without their bias input
    (TFLM takes it), so a mode reproducing LiteRT refuses such a layer."""
    if len(layer.op.inputs) < 3 or layer.op.inputs[2] < 0:
        raise refuse(layer, mode, "LiteRT's kernels refuse a convolution without a bias")
    return layer


def conv_layer(layer: Layer, cls: type[Layer], channels: int) -> Layer:
    """A CONV_2D or DEPTHWISE_CONV_2D layer (any of its kernels) as the plain kernel `cls`
    with XNNPACK's requantization (numerics litert)."""
    require_bias(layer, "litert")
    w = layer.graph.tensors[layer.op.inputs[1]]
    scales = w.quant.scales if w.quant.per_channel else [w.quant.scale] * channels
    params = dict(layer.params)
    params.update(fp32_params(layer, scales, str(layer.params["activation"])))
    return cls(layer.op, layer.graph, inputs=layer.inputs, outputs=layer.outputs, params=params)


def _bias_dtype(layer: Layer, position: int) -> DType | None:
    inputs = layer.op.inputs
    if len(inputs) <= position or inputs[position] < 0:
        return None
    return layer.graph.tensors[inputs[position]].dtype


def check_16x8_bias(layer: Layer, mode: str, position: int,
                    prepared: tuple[DType, ...] = (DType.INT64, DType.INT32)) -> Layer:
    """A 16x8 layer's bias as LiteRT takes it: its Prepare refuses a bias type outside
    `prepared`, and its kernels read the bias as int64 unless the options'
    quantized_bias_type says int32 (TFLM accumulates in the bias type), so an int32 bias
    the options do not name gives other values: both refused."""
    dtype = _bias_dtype(layer, position)
    if dtype is None:
        return layer
    if dtype not in prepared:
        raise refuse(layer, mode, f"LiteRT fails to prepare a 16x8 {layer.opcode} with an "
                     f"{dtype.numpy_name} bias")
    asked = int(layer.op.options.get("quantized_bias_type", 0) or 0)
    if dtype is DType.INT32 and asked != _TENSOR_TYPE_INT32:
        raise refuse(layer, mode, "LiteRT reads an int32 bias as int64 unless the options' "
                     "quantized_bias_type says int32")
    return layer
