"""One small, valid builder model per supported operator family, for the checks that look at
the generated C as text or under analysers (tests/test_static_analysis.py): each model is
fixed (no TensorFlow), and together they instantiate every kernel template.

These models are not proof of the arithmetic (the operator tests compare with TFLM); they
only have to be accepted by the generator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from support.builder import ModelBuilder, Q, bias_scales

X_SHAPE = (1, 5, 5, 3)
X_Q = Q(0.05, -3)


def _options(name: str, **fields: object) -> object:
    options = getattr(schema, f"{name}T")()
    for key, value in fields.items():
        setattr(options, key, value)
    return options


def unary(opcode: str, y_q: Q = X_Q, options: object | None = None) -> bytes:
    b = ModelBuilder(opcode)
    x = b.add_tensor("x", X_SHAPE, "int8", quant=X_Q)
    y = b.add_tensor("y", X_SHAPE, "int8", quant=y_q)
    b.add_op(opcode, [x], [y], options)
    b.set_io([x], [y])
    return b.build()


def with_constants(opcode: str, constants: Sequence[tuple[Sequence[int], str, object, Q | None]],
                   y_shape: Sequence[int], y_q: Q = X_Q, options: object | None = None,
                   x_first: bool = True, x_shape: Sequence[int] = X_SHAPE,
                   outputs: int = 1) -> bytes:
    """x (graph input) and constant operands (shape, dtype, values, quantization)."""
    b = ModelBuilder(opcode)
    x = b.add_tensor("x", x_shape, "int8", quant=X_Q)
    consts = [b.add_tensor(f"c{i}", shape, dtype, quant=q, data=np.asarray(values))
              for i, (shape, dtype, values, q) in enumerate(constants)]
    ys = [b.add_tensor(f"y{i}", y_shape, "int8", quant=y_q) for i in range(outputs)]
    b.add_op(opcode, [x, *consts] if x_first else [*consts, x], ys, options)
    b.set_io([x], ys)
    return b.build()


def conv() -> bytes:
    rng = np.random.default_rng(0)
    w_scales = [0.01, 0.02, 0.015, 0.03]
    return with_constants(
        "CONV_2D",
        [((4, 3, 3, 3), "int8", rng.integers(-127, 128, (4, 3, 3, 3)), Q(w_scales, 0)),
         ((4,), "int32", rng.integers(-500, 500, 4), Q(bias_scales(X_Q.scale, w_scales), 0))],
        (1, 3, 3, 4), Q(0.2, 1),
        _options("Conv2DOptions", padding=schema.Padding.VALID, strideH=1, strideW=1,
                 dilationHFactor=1, dilationWFactor=1, fusedActivationFunction=1))


def depthwise() -> bytes:
    rng = np.random.default_rng(1)
    w_scales = [0.01, 0.02, 0.015, 0.03, 0.01, 0.02]
    return with_constants(
        "DEPTHWISE_CONV_2D",
        [((1, 3, 3, 6), "int8", rng.integers(-127, 128, (1, 3, 3, 6)), Q(w_scales, 0, axis=3)),
         ((6,), "int32", rng.integers(-500, 500, 6), Q(bias_scales(X_Q.scale, w_scales), 0))],
        (1, 5, 5, 6), Q(0.2, 1),
        _options("DepthwiseConv2DOptions", padding=schema.Padding.SAME, strideH=1, strideW=1,
                 depthMultiplier=2, dilationHFactor=1, dilationWFactor=1))


def pool(opcode: str) -> bytes:
    return with_constants(opcode, [], (1, 2, 2, 3), X_Q,
                          _options("Pool2DOptions", padding=schema.Padding.VALID, strideH=2,
                                   strideW=2, filterHeight=2, filterWidth=2))


def binary(opcode: str) -> bytes:
    options = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}.get(opcode)
    same_q = opcode in ("MAXIMUM", "MINIMUM")
    return with_constants(
        opcode, [((1, 1, 1, 3), "int8", [[[[5, -100, 120]]]], X_Q if same_q else Q(0.03, 2))],
        X_SHAPE, X_Q if same_q else Q(0.08, -1), _options(options) if options else None)


def softmax() -> bytes:
    b = ModelBuilder("SOFTMAX")
    x = b.add_tensor("x", (2, 10), "int8", quant=Q(0.1, 3))
    y = b.add_tensor("y", (2, 10), "int8", quant=Q(1 / 256, -128))
    b.add_op("SOFTMAX", [x], [y], _options("SoftmaxOptions", beta=1.0))
    b.set_io([x], [y])
    return b.build()


def pack() -> bytes:
    b = ModelBuilder("PACK")
    x = b.add_tensor("x", (5, 3), "int8", quant=X_Q)
    y = b.add_tensor("y", (5, 2, 3), "int8", quant=X_Q)
    b.add_op("PACK", [x, x], [y], _options("PackOptions", valuesCount=2, axis=1))
    b.set_io([x], [y])
    return b.build()


def data_movement() -> dict[str, Callable[[], bytes]]:
    i32 = "int32"
    return {
        "PAD": lambda: with_constants(
            "PAD", [((4, 2), i32, [[0, 0], [1, 1], [2, 0], [0, 0]], None)], (1, 7, 7, 3)),
        "TRANSPOSE": lambda: with_constants(
            "TRANSPOSE", [((4,), i32, [0, 3, 1, 2], None)], (1, 3, 5, 5)),
        "CONCATENATION": lambda: with_constants(
            "CONCATENATION", [(X_SHAPE, "int8", np.ones(X_SHAPE), X_Q)], (1, 5, 5, 6),
            options=_options("ConcatenationOptions", axis=3)),
        "MEAN": lambda: with_constants(
            "MEAN", [((2,), i32, [1, 2], None)], (1, 1, 1, 3), Q(0.04, 0),
            _options("ReducerOptions", keepDims=True)),
        "STRIDED_SLICE": lambda: with_constants(
            "STRIDED_SLICE", [((4,), i32, [0, 1, 0, 0], None), ((4,), i32, [1, 5, 4, 3], None),
                              ((4,), i32, [1, 2, 1, 1], None)], (1, 2, 4, 3),
            options=_options("StridedSliceOptions")),
        "SLICE": lambda: with_constants(
            "SLICE", [((4,), i32, [0, 1, 1, 0], None), ((4,), i32, [1, 3, -1, 2], None)],
            (1, 3, 4, 2)),
        "RESIZE_NEAREST_NEIGHBOR": lambda: with_constants(
            "RESIZE_NEAREST_NEIGHBOR", [((2,), i32, [8, 10], None)], (1, 8, 10, 3),
            options=_options("ResizeNearestNeighborOptions")),
        "SPLIT": lambda: with_constants(
            "SPLIT", [((), i32, 3, None)], (1, 5, 5, 1), x_first=False, outputs=3,
            options=_options("SplitOptions", numSplits=3)),
        "PACK": pack,
        "RESHAPE": lambda: with_constants("RESHAPE", [((2,), i32, [5, 15], None)], (5, 15)),
    }


def int16_models() -> dict[str, Callable[[], bytes]]:
    """The 16x8 builder models (tests/support/int16_models.py): every int16 kernel template
    but the ones only the converter's models reach."""
    from support import int16_models as im

    return {"int16_layers": im.builder_16x8, "int16_activations": im.activations_16x8,
            "int16_mixed": im.mixed_model,
            "transpose_conv_int8": lambda: _transpose_conv_int8()}


def _transpose_conv_int8() -> bytes:
    b = ModelBuilder("TRANSPOSE_CONV")
    x = b.add_tensor("x", X_SHAPE, "int8", quant=X_Q)
    w = b.add_tensor("w", (2, 3, 3, 3), "int8", quant=Q([0.01, 0.02], 0),
                     data=np.arange(54).reshape(2, 3, 3, 3) % 11 - 5)
    bias = b.add_tensor("b", (2,), "int32", quant=Q(bias_scales(X_Q.scale, [0.01, 0.02]), 0),
                        data=[100, -200])
    shape = b.add_tensor("shape", (4,), "int32", data=np.array([1, 10, 10, 2]))
    y = b.add_tensor("y", (1, 10, 10, 2), "int8", quant=Q(0.05, 3))
    options = _options("TransposeConvOptions", padding=schema.Padding.SAME, strideH=2, strideW=2)
    b.add_op("TRANSPOSE_CONV", [shape, w, x, bias], [y], options)
    b.set_io([x], [y])
    return b.build()


def models() -> dict[str, Callable[[], bytes]]:
    """name -> model factory."""
    zoo: dict[str, Callable[[], bytes]] = {
        "relu": lambda: unary("RELU"),
        "relu6": lambda: unary("RELU6"),
        "logistic": lambda: unary("LOGISTIC", Q(1 / 256, -128)),
        "tanh": lambda: unary("TANH", Q(1 / 128, 0)),
        "hard_swish": lambda: unary("HARD_SWISH", Q(0.03, -20)),
        "leaky_relu": lambda: unary("LEAKY_RELU", Q(0.04, -10),
                                    _options("LeakyReluOptions", alpha=0.2)),
        "conv_2d": conv,
        "depthwise_conv_2d": depthwise,
        "average_pool_2d": lambda: pool("AVERAGE_POOL_2D"),
        "max_pool_2d": lambda: pool("MAX_POOL_2D"),
        "softmax": softmax,
        **{op.lower(): (lambda op=op: binary(op))
           for op in ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM")},
        **{op.lower(): make for op, make in data_movement().items()},
        **int16_models(),
    }
    return zoo
