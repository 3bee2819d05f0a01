"""CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D and MAX_POOL_2D: the numpy reference against
TFLM, the generated C against the reference on every target and under sanitizers, and the
options that are refused.

Each model has one input and one output per branch (tests/support/conv_models.py), so one
build covers many option combinations and a failure names its branch by output index:
  - Keras layers through the real converter (int8 I/O; per-channel and per-tensor weights):
    channel counts 1, 3, 17; odd spatial sizes; kernels 1x1, 2x2, 3x3, 1xN, 5x5; strides
    1 and 2 (and mixed); SAME with symmetric and asymmetric padding, VALID; groups; depth
    multipliers; every fused activation (relu, relu6 and clip(-1, 1) fuse into the op);
  - builder models for what the converter does not produce: dilations (it rewrites them as
    SPACE_TO_BATCH_ND around the op), dilation with stride, per-tensor weights next to
    per-channel ones, extreme and odd scales and zero points, multipliers above 1 and below
    2^-31, windows with no interior or no border, pools with every fused activation, two
    images per sample, no bias input;
  - every CONV_2D, DEPTHWISE_CONV_2D and AVERAGE_POOL_2D layer of the MLPerf Tiny models,
    cut out as sub-models (their ADD, FULLY_CONNECTED, RESHAPE and SOFTMAX left out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support.builder import ModelBuilder, Q
from support.conv_models import (
    Branch,
    branch_model,
    conv_options,
    depthwise_options,
    keras_branches,
    pool_options,
    submodel,
)
from support.policy import SHARED_MODELS, require_file
from support.tflm import run_tflm
from support.verify import (
    C_TARGETS,
    assert_same,
    c_matches_reference,
    edge_inputs,
    inputs_with_edges,
    random_inputs,
    reference_matches_tflm,
)

from codegen.errors import UnsupportedError
from codegen.execute import execute
from codegen.model.tflite import load_model
from codegen.ops import prepare_layer
from codegen.program import load_program
from codegen.targets import TARGETS

WINDOW_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"}
TFLM_SAMPLES = 1000

# -- Keras models --------------------------------------------------------------------------


def _conv(filters, kernel, padding="same", stride=1, activation="none", **extra):
    return {"kind": "conv", "filters": filters, "kernel": kernel, "padding": padding,
            "stride": stride, "activation": activation, **extra}


def _dw(kernel, padding="same", stride=1, activation="none", multiplier=1):
    return {"kind": "depthwise", "kernel": kernel, "padding": padding, "stride": stride,
            "activation": activation, "multiplier": multiplier}


def _pool(kind, kernel, padding="same", stride=1, activation="none"):
    return {"kind": kind, "kernel": kernel, "padding": padding, "stride": stride,
            "activation": activation}


KERAS = {
    "rgb": ((9, 11, 3), [
        _conv(17, 3, stride=2, activation="relu"),
        _conv(5, 5, padding="valid", activation="relu6"),
        _conv(6, 3, activation="relu_n1_to_1", groups=3),
        _conv(1, 1, bias=False),
        _conv(4, (2, 4), stride=2, activation="relu"),  # even kernel: asymmetric SAME
        _dw(3, stride=2, activation="relu", multiplier=2),
        _dw(5, padding="valid", activation="relu6"),
        _pool("avg", 3, stride=2),
        _pool("max", 2, padding="valid", stride=2, activation="relu"),
        _pool("avg", 4, stride=(2, 3), activation="relu6"),
    ]),
    "deep": ((10, 7, 17), [
        _conv(3, (1, 5), stride=(1, 2), activation="relu_n1_to_1"),
        _conv(17, 3, stride=2, activation="relu6"),  # height 10: padding 0 before, 1 after
        _conv(4, 2, activation="none"),
        _dw(3, activation="relu"),
        _dw((1, 3), stride=(2, 1), multiplier=3),
        _dw((4, 2), stride=2, activation="relu_n1_to_1"),
        _pool("avg", 5),
        _pool("max", 3, stride=(2, 1), activation="relu6"),
        _pool("avg", (2, 3), padding="valid", stride=(2, 3), activation="relu_n1_to_1"),
    ]),
    "mono": ((7, 9, 1), [
        _conv(17, 3, stride=2, activation="relu"),
        _conv(3, 5, activation="none"),
        _conv(2, 1, padding="valid", stride=2, activation="relu6"),
        _dw(3, padding="valid", stride=2, activation="relu_n1_to_1", multiplier=4),
        _dw(5, activation="relu6"),
        _pool("avg", 3, padding="valid", activation="relu"),
        _pool("max", 5, stride=3),
    ]),
}
KERAS_CASES = [("rgb", True), ("rgb", False), ("deep", True), ("deep", False),
               ("mono", True)]


def _keras(name: str, per_channel: bool) -> Callable[[], bytes]:
    shape, branches = KERAS[name]
    return lambda: keras_branches(shape, branches, per_channel=per_channel)


# -- builder models ------------------------------------------------------------------------

BUILDER = {
    # Per-tensor next to per-channel weights, dilations (with SAME, VALID and strides), a
    # large odd input zero point, groups, no bias, multipliers above 1 and below 2^-31.
    "b_conv": ((1, 11, 10, 3), (0.5, 113), [
        Branch("conv", (3, 3), dilation=(2, 2), activation="RELU6", out_c=17,
               weight_scale=0.003, output=(0.05, -7)),
        Branch("conv", (5, 5), padding="VALID", dilation=(1, 2), activation="RELU_N1_TO_1",
               out_c=4, output=(0.01, 3)),
        Branch("conv", (3, 3), stride=(2, 3), bias=False, out_c=5, output=(3.0, 0)),
        Branch("conv", (3, 3), stride=(2, 2), dilation=(2, 2), out_c=3, output=(0.4, -20)),
        Branch("conv", (1, 3), stride=(2, 1), activation="RELU", out_c=6,
               weight_scale=0.004, output=(0.2, -60), extra={"groups": 3}),
        Branch("conv", (2, 2), out_c=2, scale_base=0.05, output=(0.004, 10)),  # multiplier>1
        Branch("conv", (3, 3), out_c=2, weight_scale=1e-12, output=(0.1, 7)),  # flushes to 0
    ]),
    # Depth multipliers 1, 2 and 4, dilations, per-tensor and per-channel, negative zero point.
    "b_depthwise": ((1, 9, 12, 17), (0.02, -101), [
        Branch("depthwise", (3, 3), stride=(2, 2), activation="RELU", multiplier=4,
               weight_scale=0.01, output=(0.07, 20)),
        Branch("depthwise", (5, 5), dilation=(2, 3), activation="RELU6",
               output=(0.03, -50)),
        Branch("depthwise", (1, 4), padding="VALID", stride=(1, 2), multiplier=2,
               activation="RELU_N1_TO_1", output=(0.005, 0)),
        Branch("depthwise", (3, 3), padding="VALID", dilation=(3, 3), weight_scale=0.02,
               output=(0.02, 5)),
        Branch("depthwise", (3, 3), stride=(2, 2), dilation=(2, 2), output=(0.05, -128)),
    ]),
    # Every fused activation on both pools, odd counts, a window larger than the input.
    "b_pool": ((1, 9, 10, 17), (0.1, -3), [
        Branch("avg", (3, 3), stride=(2, 2), activation="RELU"),
        Branch("avg", (2, 4), activation="RELU6"),
        Branch("avg", (5, 5), padding="VALID", stride=(2, 1), activation="RELU_N1_TO_1"),
        Branch("avg", (11, 12)),
        Branch("avg", (1, 1), padding="VALID"),
        Branch("max", (3, 3), activation="RELU6"),
        Branch("max", (2, 2), stride=(2, 2), activation="RELU_N1_TO_1"),
        Branch("max", (4, 3), padding="VALID", stride=(3, 2), activation="RELU"),
        Branch("max", (11, 12), stride=(3, 3)),
    ]),
    # Two images per sample, one channel, input scale 1 with zero point 127, windows with
    # no interior at all.
    "b_edge": ((2, 5, 7, 1), (1.0, 127), [
        Branch("conv", (7, 7), out_c=3, activation="RELU", output=(4.0, -128)),
        Branch("conv", (5, 7), padding="VALID", out_c=17, scale_base=0.001,
               output=(0.3, 1)),
        Branch("depthwise", (6, 9), multiplier=3, output=(2.0, -9), bias_range=100000),
        Branch("avg", (5, 7), stride=(2, 2), activation="RELU_N1_TO_1"),
        Branch("max", (3, 3), stride=(2, 3)),
    ]),
}


# No bias input at all. TFLM's DEPTHWISE_CONV_2D Prepare crashes on an omitted bias (it
# releases the missing tensor unconditionally), so this model's oracle is TFLM running its
# twin with an explicit all-zero bias, which is what its kernels do without one.
NO_BIAS = ((1, 8, 7, 3), (0.03, 50), [
    Branch("depthwise", (1, 4), padding="VALID", stride=(1, 2), multiplier=2,
           activation="RELU_N1_TO_1", bias=False, output=(0.005, 0)),
    Branch("depthwise", (3, 3), stride=(2, 2), weight_scale=0.01, bias=False,
           output=(0.02, -3)),
    Branch("conv", (3, 3), dilation=(2, 2), out_c=4, bias=False, output=(0.05, 9)),
])


def _builder(name: str) -> Callable[[], bytes]:
    shape, input_q, branches = BUILDER[name]
    return lambda: branch_model(shape, input_q, branches, seed=len(name), description=name)


def _no_bias(zero_bias_twin: bool = False) -> bytes:
    shape, input_q, branches = NO_BIAS
    if zero_bias_twin:
        branches = [replace(br, bias=True, bias_range=0) for br in branches]
    return branch_model(shape, input_q, branches, seed=5, description="no bias")


# -- the MLPerf Tiny models' window layers -------------------------------------------------

REAL = {
    "kws": ("kws_ref_model", list(range(10))),
    "vww": ("vww_96_int8", list(range(28))),
    "resnet": ("pretrainedResnet_quant", [0, 1, 2, 4, 5, 6, 8, 9, 10, 12]),
}
REAL_TFLM_SAMPLES = 300
REAL_HOST_SAMPLES = 200
REAL_QEMU_SAMPLES = 10
REAL_SANITIZER_SAMPLES = 30


def _real(name: str) -> Callable[[], bytes]:
    file, keep = REAL[name]

    def load() -> bytes:
        model = require_file(SHARED_MODELS / f"{file}.tflite").read_bytes()
        return submodel(model, keep)

    return load


MODELS: dict[str, Callable[[], bytes]] = {
    **{f"keras_{n}_{'pc' if pc else 'pt'}": _keras(n, pc) for n, pc in KERAS_CASES},
    **{n: _builder(n) for n in BUILDER},
    "b_no_bias": _no_bias,
    **{f"mlperf_{n}": _real(n) for n in REAL},
}
CASES = [pytest.param(n, marks=[pytest.mark.tf] if n.startswith("keras_") else [])
         for n in MODELS]


@pytest.mark.tflm
@pytest.mark.parametrize("name", CASES)
def test_reference_matches_tflm(name: str) -> None:
    model = MODELS[name]()
    program = load_program(model)
    count = REAL_TFLM_SAMPLES if name.startswith("mlperf_") else TFLM_SAMPLES
    inputs = inputs_with_edges(model, count, seed=1)
    if name == "b_no_bias":
        expected = run_tflm(_no_bias(zero_bias_twin=True), inputs)
        assert_same(execute(program, "reference", inputs), expected, "reference vs TFLM")
        return
    reference_matches_tflm(model, inputs)


def _real_c_matches_reference(model: bytes, target: str, work_dir: Path, *, seed: int,
                              sanitize: bool = False) -> None:
    """c_matches_reference with fewer samples: the real models are slow under QEMU and
    the sanitizers (millions of multiply-accumulates per sample)."""
    program = load_program(model)
    if sanitize:
        count = REAL_SANITIZER_SAMPLES
    else:
        count = REAL_HOST_SAMPLES if TARGETS[target].is_host else REAL_QEMU_SAMPLES
    inputs = inputs_with_edges(model, count, seed=seed)
    expected = execute(program, "reference", inputs)
    got = execute(program, target, inputs, work_dir=work_dir, sanitize=sanitize)
    assert_same(got, expected, f"{target}{' (sanitizers)' if sanitize else ''} vs reference")


@pytest.mark.parametrize("target", C_TARGETS)
@pytest.mark.parametrize("name", CASES)
def test_generated_c_matches_reference(name: str, target: str, tmp_path: Path) -> None:
    model = MODELS[name]()
    if name.startswith("mlperf_"):
        _real_c_matches_reference(model, target, tmp_path, seed=2)
        return
    c_matches_reference(model, target, tmp_path, seed=2, extra=edge_inputs(load_program(model)))


@pytest.mark.parametrize("name", CASES)
def test_generated_c_is_clean_under_sanitizers(name: str, tmp_path: Path) -> None:
    model = MODELS[name]()
    if name.startswith("mlperf_"):
        _real_c_matches_reference(model, "host", tmp_path, seed=3, sanitize=True)
        return
    c_matches_reference(model, "host", tmp_path, seed=3, sanitize=True,
                        extra=edge_inputs(load_program(model)))


@pytest.mark.tf
@pytest.mark.parametrize("name,per_channel", KERAS_CASES)
def test_keras_models_are_one_window_operator_per_branch(name: str, per_channel: bool) -> None:
    """The converter fused every activation: otherwise the branch would test something else."""
    program = load_program(_keras(name, per_channel)())
    opcodes = [layer.opcode for layer in program.layers]
    assert set(opcodes) <= WINDOW_OPS and len(opcodes) == len(KERAS[name][1]), opcodes
    for layer in program.layers:
        if layer.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = program.graph.tensors[layer.op.inputs[1]]
            channels = w.shape[0] if layer.opcode == "CONV_2D" else w.shape[3]
            # One output channel has one scale either way.
            assert w.quant.per_channel == (per_channel and channels > 1), layer.index


def test_every_layer_kind_and_border_case_is_covered() -> None:
    """The builder models reach the code paths the Keras models cannot: interior only,
    border only, both, dilations, multipliers of every sign of shift."""
    models = [_builder(name)() for name in BUILDER] + [_no_bias()]
    layers = [layer for model in models for layer in load_program(model).layers]
    convs = [la for la in layers if la.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert any(not la.params["has_interior"] for la in convs)
    assert any(not la.params["has_border"] for la in convs)
    assert any(la.params["has_border"] and la.params["has_interior"] for la in convs)
    assert any(la.params["dil_h"] > 1 and la.params["stride_h"] > 1 for la in convs)
    shifts = np.concatenate([np.asarray(la.params["shifts"]) for la in convs])
    mults = np.concatenate([np.asarray(la.params["multipliers"]) for la in convs])
    assert (shifts > 0).any() and (shifts < 0).any() and (mults == 0).any()
    assert any(not la.params["per_channel"] for la in convs)
    assert any(la.params["window"].rows.pad_after != la.params["window"].rows.pad
               for la in layers)


# -- refusals ------------------------------------------------------------------------------


def _single_op(opcode: str, *, x_shape=(1, 6, 6, 3), w_shape=(4, 3, 3, 3), y_shape=None,
               options=None, x_dtype="int8", weight_q=None, bias=None, bias_dtype="int32",
               out_q=None) -> bytes:
    b = ModelBuilder(opcode)
    x = b.add_tensor("x", x_shape, x_dtype, quant=Q(0.05, 3))
    inputs = [x]
    if opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        weights = np.ones(w_shape, dtype=np.int8)
        inputs.append(b.add_tensor("w", w_shape, "int8", quant=weight_q or Q(0.01, 0),
                                   data=weights))
        count = w_shape[0] if opcode == "CONV_2D" else w_shape[3]
        if bias is not False:
            inputs.append(b.add_tensor("b", (count,), bias_dtype, quant=Q(0.0005, 0),
                                       data=np.zeros(count)))
    y = b.add_tensor("y", y_shape or (1, 6, 6, 4), x_dtype, quant=out_q or Q(0.1, 0))
    b.add_op(opcode, inputs, [y], options)
    b.set_io([x], [y])
    return b.build()


REFUSED = {
    "int16 zero point": (dict(opcode="CONV_2D", x_dtype="int16", options=conv_options()),
                         "TFLM's int16 CONV_2D needs 0"),
    "weight zero point": (dict(opcode="CONV_2D", weight_q=Q(0.01, 3), options=conv_options()),
                          "non-zero zero point"),
    "wrong output size": (dict(opcode="CONV_2D", options=conv_options("VALID")),
                          "gives 4x4"),
    "tanh": (dict(opcode="CONV_2D", options=conv_options(activation="TANH")),
             "fused activation TANH"),
    "int64 bias": (dict(opcode="CONV_2D", bias_dtype="int64", options=conv_options()),
                   "int32 bias"),
    "groups": (dict(opcode="CONV_2D", w_shape=(4, 3, 3, 2), options=conv_options()),
               "not a multiple"),
    "stride 0": (dict(opcode="CONV_2D", options=conv_options(stride=(0, 1))),
                 "strides must be >= 1"),
    "window too big": (dict(opcode="CONV_2D", w_shape=(4, 7, 3, 3), y_shape=(1, 1, 4, 4),
                            options=conv_options("VALID")), "does not fit"),
    "per-channel count": (dict(opcode="CONV_2D", weight_q=Q([0.01] * 3, 0, axis=3),
                               w_shape=(4, 3, 3, 3), options=conv_options()),
                          "need 4 scales (dimension 0), found 3"),
    "depth multiplier": (dict(opcode="DEPTHWISE_CONV_2D", w_shape=(1, 3, 3, 4),
                              options=depthwise_options(multiplier=2)),
                         "depth_multiplier 2"),
    "pool requantizes": (dict(opcode="AVERAGE_POOL_2D", y_shape=(1, 3, 3, 3),
                              options=pool_options(stride=(2, 2))), "quantization differ"),
    "pool zero point": (dict(opcode="MAX_POOL_2D", y_shape=(1, 3, 3, 3), out_q=Q(0.05, 4),
                             options=pool_options(stride=(2, 2))), "quantization differ"),
    "pool padding": (dict(opcode="MAX_POOL_2D", y_shape=(1, 2, 2, 3), out_q=Q(0.05, 3),
                          options=pool_options("VALID", (2, 2), (2, 2))), "gives 3x3"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_unsupported_options_are_refused_with_one_line(case: str) -> None:
    kwargs, reason = REFUSED[case]
    # Straight to the operator's Prepare: graph validation would catch some cases first.
    graph = load_model(_single_op(**kwargs))
    with pytest.raises(UnsupportedError) as info:
        prepare_layer(graph.operators[0], graph)
    message = str(info.value)
    assert message.startswith(f"operator 0 ({kwargs['opcode']}): "), message
    assert reason in message and "\n" not in message, message


def test_pool_scales_within_tflm_tolerance_are_accepted() -> None:
    model = _single_op("AVERAGE_POOL_2D", y_shape=(1, 3, 3, 3), out_q=Q(0.05 + 5e-7, 3),
                       options=pool_options(stride=(2, 2)))
    program = load_program(model)
    reference_matches_tflm(model, random_inputs(program, 50, seed=4))
