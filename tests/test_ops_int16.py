"""16x8 (int16 activations, int8 weights) and TRANSPOSE_CONV: the numpy reference against
TFLM, the generated C against the reference on every target and under sanitizers, and what
TFLM refuses in int16 refused in one line.

The models (tests/support/int16_models.py) are Keras graphs converted with TensorFlow's
16x8 converter (int16 I/O) with one output per operator or option, so that one build
covers many and a mismatch names its branch by output index, plus builder models for what
the converter does not write (PRELU, int32 biases, fused activations it leaves apart, a
mixed int8/int16 model joined by QUANTIZE). Inputs are full-range int16 with an all -32768
and an all 32767 sample first.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from support import int16_models as im
from support.builder import ModelBuilder, Q
from support.conv_models import conv_options, depthwise_options
from support.op_tests import op_tests
from support.tflm import run_tflm

from codegen.errors import UnsupportedError
from codegen.model.tflite import load_model
from codegen.ops import prepare_layer
from codegen.ops.logistic_tanh_int16 import SIGMOID_Q16
from codegen.program import load_program

TFLM_SAMPLES = 1000


def _conv(filters, kernel, padding="same", stride=1, activation="none", **extra):
    return {"kind": "conv", "filters": filters, "kernel": kernel, "padding": padding,
            "stride": stride, "activation": activation, **extra}


def _dw(kernel, padding="same", stride=1, activation="none", multiplier=1):
    return {"kind": "depthwise", "kernel": kernel, "padding": padding, "stride": stride,
            "activation": activation, "multiplier": multiplier}


# Channels 3, 17 and 1; kernels 1x1 to 5x5 with 3x4 and 4x4; strides 1, 2 and mixed; SAME
# (symmetric and not) and VALID; groups; depth multipliers; every fused activation.
WINDOWS = {
    "rgb": ((9, 11, 3), [
        _conv(17, 3, stride=2, activation="relu"),
        _conv(5, (3, 4), padding="valid", activation="relu6"),
        _conv(6, 3, activation="relu_n1_to_1", groups=3),
        _conv(1, 1),
        _conv(4, 4, stride=2),
        _dw(3, stride=2, activation="relu", multiplier=2),
        _dw(5, padding="valid", activation="relu6"),
        _dw((4, 4)),
    ]),
    "deep": ((7, 6, 17), [
        _conv(3, (1, 5), stride=(1, 2), activation="relu_n1_to_1"),
        _conv(17, 3, stride=2, activation="relu6"),
        _conv(4, 2),
        _dw(3, activation="relu"),
        _dw((1, 3), stride=(2, 1), multiplier=3),
    ]),
    # An even channel count: the four-channel depthwise kernel (with a tail of two) and
    # pointwise convolutions, in place and strided.
    "even": ((8, 7, 6), [
        _dw(3, activation="relu"),
        _dw((3, 4), padding="valid", stride=2),
        _dw(5, activation="relu6"),
        _conv(6, 1),
        _conv(5, 1, stride=2, activation="relu"),
        _conv(3, 3, padding="valid"),
    ]),
    "mono": ((8, 7, 1), [
        _conv(17, (4, 4), stride=2, activation="relu"),
        _conv(3, 5),
        _dw((3, 4), padding="valid", stride=2, multiplier=4),
    ]),
}

MODELS: dict[str, Callable[[], bytes]] = {
    **{f"window_{name}": (lambda name=name: im.window_model(name, *WINDOWS[name]))
       for name in WINDOWS},
    # Per-tensor weights (the 16x8 converter fails on per-tensor DEPTHWISE_CONV_2D).
    "window_rgb_per_tensor": lambda: im.window_model(
        "rgb", WINDOWS["rgb"][0], [b for b in WINDOWS["rgb"][1] if b["kind"] == "conv"],
        per_channel=False),
    "dense": im.dense_model,
    "misc": im.misc_model,
    "transpose_conv_16x8": lambda: im.transpose_conv_model("16x8"),
    "transpose_conv_int8": lambda: im.transpose_conv_model("int8"),
    "builder": im.builder_16x8,
    "activations": im.activations_16x8,
    "mixed": im.mixed_model,
}
_BUILDER = ("builder", "activations", "mixed")
CASES = [pytest.param(n, marks=[] if n in _BUILDER else [pytest.mark.tf]) for n in MODELS]


# The reference against TFLM, the C against the reference on every target and under the
# sanitizers (support.op_tests).
(test_reference_matches_tflm, test_generated_c_matches_reference,
 test_generated_c_is_clean_under_sanitizers) = op_tests(
    MODELS, CASES, tflm_samples=TFLM_SAMPLES)


@pytest.mark.tf
def test_the_models_cover_every_16x8_operator() -> None:
    """The converter wrote what the branches are meant to test (it fuses, folds and
    rewrites otherwise), with int16 activations and int8 weights throughout."""
    expected = {
        "ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "PAD", "PADV2", "CONCATENATION",
        "STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V", "PACK", "UNPACK", "TRANSPOSE", "RESHAPE",
        "SQUEEZE", "EXPAND_DIMS",
        "RESIZE_NEAREST_NEIGHBOR", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "LEAKY_RELU",
        "RELU", "RELU6", "PRELU", "LOGISTIC", "TANH", "SOFTMAX", "QUANTIZE", "DEQUANTIZE",
        "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV",
    }
    seen: set[str] = set()
    for name, make in MODELS.items():
        program = load_program(make())
        for layer in program.layers:
            seen.add(layer.opcode)
            if name not in ("transpose_conv_int8", "mixed") and layer.opcode != "DEQUANTIZE":
                assert program.graph.tensors[layer.outputs[0]].dtype.numpy_name == "int16", (
                    name, layer.opcode)
    assert expected <= seen, sorted(expected - seen)


@pytest.mark.tflm
def test_sigmoid_table_is_tflms() -> None:
    """TANH at the table's knots gives the table's values back (an input scale of 1/6144 makes
    |v| = 2x, so x = 128 i lands on entry i): the table is TFLM's, not a formula's."""
    b = ModelBuilder("tanh knots")
    x = b.add_tensor("x", (1, 255), "int16", quant=Q(1 / 6144))
    y = b.add_tensor("y", (1, 255), "int16", quant=Q(1 / 32768))
    b.add_op("TANH", [x], [y])
    b.set_io([x], [y])
    knots = (128 * np.arange(255)).astype(np.int16).reshape(1, 1, 255)
    out = run_tflm(b.build(), [knots])[0].ravel().astype(np.int64)
    assert list(out + 32768) == list(SIGMOID_Q16[:255])


# -- refusals ------------------------------------------------------------------------------


_Q16 = Q(1e-4)


def _one(opcode: str, *, x_dtype: str = "int16", y_dtype: str = "int16", x_q: Q = _Q16,
         y_q: Q = _Q16, shape=(1, 4, 4, 3), y_shape=None, extra=(), options=None) -> bytes:
    """One operator: input x, `extra` constant inputs (shape, dtype, values, quant), output y."""
    b = ModelBuilder(opcode)
    x = b.add_tensor("x", shape, x_dtype, quant=x_q)
    consts = [b.add_tensor(f"c{i}", s, d, quant=q, data=np.asarray(v))
              for i, (s, d, v, q) in enumerate(extra)]
    y = b.add_tensor("y", y_shape or shape, y_dtype, quant=y_q)
    b.add_op(opcode, [x, *consts], [y], options)
    b.set_io([x], [y])
    return b.build()


_W = ((4, 3, 3, 3), "int8", np.ones((4, 3, 3, 3)), Q(0.01))
_DW = ((1, 3, 3, 3), "int8", np.ones((1, 3, 3, 3)), Q(0.01, axis=3))

REFUSED = {
    "hard_swish": (lambda: _one("HARD_SWISH"), "int16 activations are not supported"),
    "conv_int8_output": (lambda: _one("CONV_2D", y_dtype="int8", y_shape=(1, 4, 4, 4),
                                      extra=[_W], options=conv_options()),
                         "output 'y' is int8, expected int16"),
    "conv_zero_point": (lambda: _one("CONV_2D", x_q=Q(1e-4, 5), y_shape=(1, 4, 4, 4),
                                     extra=[_W], options=conv_options()),
                        "zero point 5; TFLM's int16 CONV_2D needs 0"),
    "conv_int16_bias": (lambda: _one("CONV_2D", y_shape=(1, 4, 4, 4), options=conv_options(),
                                     extra=[_W, ((4,), "int16", np.ones(4), Q(1e-6))]),
                        "int64 or int32 bias"),
    "depthwise_int32_bias": (lambda: _one("DEPTHWISE_CONV_2D", options=depthwise_options(),
                                          extra=[_DW, ((3,), "int32", np.ones(3), Q(1e-6))]),
                             "take an int64 bias"),
    "mul_zero_point": (lambda: _one("MUL", y_q=Q(1e-4, -3),
                                    extra=[((3,), "int16", np.ones(3), Q(1e-4))]),
                       "TFLM's int16 MUL needs 0"),
    "sub_zero_point": (lambda: _one("SUB", x_q=Q(1e-4, 7),
                                    extra=[((3,), "int16", np.ones(3), Q(1e-4))]),
                       "TFLM's int16 SUB needs 0"),
    "relu_zero_point": (lambda: _one("RELU", y_q=Q(1e-4, 1)), "TFLM's int16 RELU needs 0"),
    "logistic_output_scale": (lambda: _one("LOGISTIC"), "must be 2^-15"),
    "tanh_zero_point": (lambda: _one("TANH", x_q=Q(1e-4, 2), y_q=Q(1 / 32768)),
                        "TFLM's int16 TANH needs 0"),
    "softmax_output_scale": (lambda: _one("SOFTMAX", y_q=Q(1 / 256)), "must be 1/32768"),
    "quantize_int16_to_uint8": (lambda: _one("QUANTIZE", y_dtype="uint8", y_q=Q(0.1, 128)),
                                "expected int8/int16"),
    "prelu_int16_alpha": (lambda: _one("PRELU", extra=[((3,), "int16", np.ones(3), Q(0.1))]),
                          "alpha 'c0' is int16, expected int8"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_tflm_refuses_in_int16_is_refused_in_one_line(case: str) -> None:
    make, reason = REFUSED[case]
    graph = load_model(make())
    with pytest.raises(UnsupportedError) as info:
        prepare_layer(graph.operators[0], graph)
    message = str(info.value)
    assert message.startswith(f"operator 0 ({graph.operators[0].opcode}): "), message
    assert reason in message and "\n" not in message, message


def test_every_16x8_kernel_variant_is_covered() -> None:
    """The models reach the fast kernels and the plain ones, and both epilogues of the
    engine (so a variant that only one path uses cannot go untested)."""
    from codegen.ops.conv_2d_int16 import Conv2DInt16Gemm
    from codegen.ops.depthwise_conv_2d_int16 import DepthwiseConv2DInt16Fast
    from codegen.ops.fully_connected_int16 import FullyConnectedInt16Gemm

    layers = [layer for make in MODELS.values() for layer in load_program(make()).layers]
    kinds = {type(layer).__name__ for layer in layers}
    assert {"Conv2DInt16", "Conv2DInt16Gemm", "DepthwiseConv2DInt16",
            "DepthwiseConv2DInt16Fast", "FullyConnectedInt16Gemm"} <= kinds, sorted(kinds)
    fast = (Conv2DInt16Gemm, DepthwiseConv2DInt16Fast, FullyConnectedInt16Gemm)
    epilogues = {(layer.params["epilogue"].kind, layer.params["epilogue"].accumulator)
                 for layer in layers if isinstance(layer, fast)}
    assert {("smmulr", "int32"), ("generic", "int32"), ("generic", "int64")} <= epilogues, \
        epilogues
    assert any(isinstance(la, Conv2DInt16Gemm) and la.params["pointwise"]
               and not la.params["unit_stride"] for la in layers)
    assert any(isinstance(la, DepthwiseConv2DInt16Fast) and la.params["out_c"] % 4 for la in layers)
