"""Activations: SOFTMAX, LOGISTIC, TANH, HARD_SWISH, RELU, RELU6, LEAKY_RELU and PRELU.

Builder models set every scale, zero point and option exactly; several independent
operators share one model (graph input i -> operator i -> graph output i), so that each sees
its own full-range input while one build covers them all. Every input of the one-input
table (LUT) operators is swept through all 256 int8 values. Keras layers through the real
converter cover the quantization parameters the converter chooses. (The TF 2.21 converter
never sets SOFTMAX's beta: a Keras softmax(x * beta) becomes MUL then SOFTMAX with beta 1,
so beta values other than 1 come from the builder. It gives a standalone RELU6 an output
quantization different from its input's, which TFLM's RELU6 ignores: reproduced.)

Checks: the numpy reference against TFLM, the generated C against the reference on every
target, the C under sanitizers with edge inputs, and the refusals.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from support import activation_models as am
from support.activation_models import Prelu, Unary, fanout_model, unary_model
from support.builder import ModelBuilder, Q
from support.verify import (
    C_TARGETS,
    c_matches_reference,
    edge_inputs,
    random_inputs,
    reference_matches_tflm,
)

from codegen.errors import UnsupportedError
from codegen.program import Program, load_program

TFLM_SAMPLES = 400
OUT_LOGISTIC = Q(1 / 256, -128)
OUT_TANH = Q(1 / 128, 0)
OUT_SOFTMAX = Q(1 / 256, -128)


def _alpha(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=shape).astype(np.int8)


# Input scales from tiny to huge: Q4.27 shifts from 1 to past 31 (radius 0) for
# LOGISTIC/TANH, reluish and output exponents of every sign for HARD_SWISH, multipliers
# above and below 1, odd zero points up to the int8 limits.
LUT_SPECS: dict[str, list[Unary]] = {
    "logistic_tanh": [
        Unary(op, Q(scale, zp), out, shape=shape)
        for op, out in (("LOGISTIC", OUT_LOGISTIC), ("TANH", OUT_TANH))
        for scale, zp, shape in (
            (0.05, 3, (1, 256)), (0.5, -7, (1, 256)), (0.002, 100, (1, 256)),
            (1 / 16, 0, (2, 3, 17)), (20.0, 5, (1, 256)), (2.0**-27, -128, (1, 256)),
            (0.0137, 127, (1, 3)), (0.4, -128, (1, 1)),
        )
    ] + [
        # TFLM never reads these output scales (nor TANH's zero point): quirk reproduced.
        Unary("LOGISTIC", Q(0.1, -20), Q(0.02, -128)),
        Unary("TANH", Q(0.1, -20), Q(0.03, 17)),
    ],
    "hard_swish_relu": [
        Unary(op, Q(si, zi), Q(so, zo), shape=shape)
        for op in ("HARD_SWISH", "RELU", "RELU6")
        for si, zi, so, zo, shape in (
            (0.05, 3, 0.04, -100, (1, 256)), (0.1, -20, 0.02, 5, (1, 256)),
            (0.003, 0, 0.3, 0, (1, 256)), (1.0, 10, 0.01, 0, (1, 256)),
            (0.02, 127, 0.00016, 0, (1, 256)), (0.0001, -128, 1.0, 77, (1, 256)),
            (0.0313, -1, 0.0157, -128, (2, 17)), (0.2, 50, 0.2, 50, (1, 3)),
        )
    ],
    "leaky_relu": [
        Unary("LEAKY_RELU", Q(si, zi), Q(so, zo), shape=shape, options=(("alpha", alpha),))
        for alpha in (0.2, -0.5, 1.7, 0.0, 3.3, -1.0)
        for si, zi, so, zo, shape in (
            (0.05, 3, 0.04, -100, (1, 256)), (0.1, -20, 0.1, 5, (1, 256)),
            (0.003, 127, 0.3, 0, (1, 17)), (0.7, -128, 0.01, 0, (1, 256)),
        )
    ],
}

SOFTMAX_SPECS: dict[str, list[Unary]] = {
    "softmax": [
        Unary("SOFTMAX", Q(scale, zp), OUT_SOFTMAX, shape=shape, options=(("beta", beta),))
        for scale, zp, beta, shape in (
            (0.05, 3, 1.0, (1, 10)), (0.1, -7, 0.5, (2, 3, 17)), (0.01, 0, 2.7, (1, 3)),
            (1.0, 0, 1.0, (1, 1)), (0.001, 127, 0.1, (4, 5)), (0.0625, -128, 1.0, (3, 64)),
            # beta * scale * 2^26 capped at 2^31 - 1: shift 31, diff_min 0
            (1.0, 0, 1e6, (2, 17)),
            (20.0, 9, 1.0, (1, 33)), (0.3, -1, 1.0, (1, 256)), (1e-6, 0, 16.0, (2, 7)),
        )
    ],
    # Rows of 640: a sum of exps of 512 or more makes TFLM abort; see softmax_wide_inputs.
    "softmax_wide": [
        Unary("SOFTMAX", Q(0.05, -3), OUT_SOFTMAX, shape=(2, 640), options=(("beta", 1.0),)),
        Unary("SOFTMAX", Q(0.2, 0), OUT_SOFTMAX, shape=(1, 4095), options=(("beta", 0.5),)),
    ],
}

PRELU_SPECS: dict[str, list[Prelu]] = {
    "prelu": [
        # Keras PReLU with shared axes [1, 2]: alpha (1, 1, C), the tiled loop
        Prelu((1, 4, 5, 3), _alpha((1, 1, 3), 1), Q(0.03, -1), Q(0.004, 7), Q(0.02, -40)),
        Prelu((1, 4, 5, 3), _alpha((3,), 2), Q(0.05, 20), Q(0.01, -77), Q(0.04, 0)),
        # one alpha per element, 17 channels
        Prelu((1, 4, 5, 17), _alpha((4, 5, 17), 3), Q(0.1, 127), Q(0.002, 0), Q(0.05, -128)),
        Prelu((1, 2, 3, 1), _alpha((1, 1, 1), 4), Q(0.02, -128), Q(0.008, 100), Q(0.01, 3)),
        Prelu((2, 17), _alpha((17,), 5), Q(0.5, 0), Q(0.05, 0), Q(0.03, 0)),
        # strided: alpha shared over axis 2 only, and an input broadcast along axis 1
        Prelu((1, 4, 5, 3), _alpha((4, 1, 3), 6), Q(0.03, -1), Q(0.004, 7), Q(0.02, -40)),
        Prelu((1, 1, 5, 3), _alpha((4, 1, 3), 7), Q(0.03, 5), Q(0.04, -3), Q(0.9, 9)),
        # multipliers above 1 (left shifts) and tiny ones
        Prelu((1, 3, 17), _alpha((1, 17), 8), Q(1.0, 0), Q(0.9, 1), Q(0.001, 0)),
        Prelu((1, 3, 17), _alpha((1, 17), 9), Q(0.001, -9), Q(1e-4, 0), Q(2.0, 0)),
    ],
}

BUILDER_MODELS: dict[str, Callable[[], bytes]] = {
    name: (lambda specs=specs, name=name: fanout_model(specs, name))
    for name, specs in {**LUT_SPECS, **SOFTMAX_SPECS, **PRELU_SPECS}.items()
}
# One operator after the other on intermediate tensors: the planner runs them in place.
BUILDER_MODELS["chain_in_place"] = lambda: am.chain_model(
    ["LEAKY_RELU", "PRELU", "SOFTMAX", "LOGISTIC", "HARD_SWISH", "RELU", "TANH", "RELU6"],
    (3, 17),
    [Q(0.05, 3), Q(0.04, -10), Q(0.03, 7), Q(1 / 256, -128), Q(1 / 256, -128), Q(0.01, -5),
     Q(0.008, -128), OUT_TANH, OUT_TANH],
    [{"alpha": 0.3}, {}, {"beta": 1.5}, {}, {}, {}, {}, {}])
KERAS_MODELS: dict[str, Callable[[], bytes]] = {
    "keras_activations": lambda: am.keras_activations(),
    "keras_prelu_shared": lambda: am.keras_prelu((1, 2)),
    "keras_prelu": lambda: am.keras_prelu(()),
    "keras_mlp": lambda: am.keras_mlp(),
}
MODELS = {**BUILDER_MODELS, **KERAS_MODELS}
CASES = [pytest.param(name, marks=[pytest.mark.tf] if name in KERAS_MODELS else [])
         for name in MODELS]


def sweep_inputs(program: Program) -> list[np.ndarray]:
    """Samples that, together, give every input element every int8 value (in a different
    order for each element), for the table operators."""
    shapes = [program.graph.tensors[i].shape for i in program.graph.inputs]
    count = max(-(-256 // int(np.prod(s))) for s in shapes)
    arrays = []
    for shape in shapes:
        size = int(np.prod(shape))
        values = np.arange(count * size) * 7 % 256 - 128  # 7 is prime to 256
        arrays.append(values.reshape(count, *shape).astype(np.int8))
    return arrays


def _join(*batches: list[np.ndarray]) -> list[np.ndarray]:
    return [np.concatenate(parts) for parts in zip(*batches, strict=True)]


def _wide_softmax(name: str) -> bool:
    return name == "softmax_wide"


@pytest.mark.tflm
@pytest.mark.parametrize("name", CASES)
def test_reference_matches_tflm(name: str) -> None:
    model = MODELS[name]()
    program = load_program(model)
    batches = [sweep_inputs(program), random_inputs(program, TFLM_SAMPLES, seed=1)]
    if not _wide_softmax(name):
        # All-equal rows of 512 or more make TFLM abort (checked against the reference
        # in the C tests instead).
        batches.insert(0, edge_inputs(program))
    reference_matches_tflm(model, _join(*batches))


@pytest.mark.tflm
def test_wide_softmax_near_the_abort_matches_tflm() -> None:
    """Rows of 640 whose sum of exps comes close to 512 without reaching it: 500 equal
    maxima and 140 values far below."""
    model = unary_model("SOFTMAX", (3, 640), Q(0.05, 0), OUT_SOFTMAX, beta=1.0)
    x = np.full((4, 3, 640), 100, dtype=np.int8)
    x[:, :, 500:] = np.random.default_rng(0).integers(-128, -60, size=(4, 3, 140))
    reference_matches_tflm(model, [x])


@pytest.mark.parametrize("target", C_TARGETS)
@pytest.mark.parametrize("name", CASES)
def test_generated_c_matches_reference(name: str, target: str, tmp_path: Path) -> None:
    model = MODELS[name]()
    program = load_program(model)
    extra = _join(edge_inputs(program), sweep_inputs(program))
    c_matches_reference(model, target, tmp_path, seed=2, extra=extra)


@pytest.mark.parametrize("name", CASES)
def test_generated_c_is_clean_under_sanitizers(name: str, tmp_path: Path) -> None:
    model = MODELS[name]()
    program = load_program(model)
    extra = _join(edge_inputs(program), sweep_inputs(program))
    c_matches_reference(model, "host", tmp_path, seed=3, sanitize=True, extra=extra)


def test_table_layers_run_the_arithmetic_not_the_table() -> None:
    """The reference computes the operator's arithmetic; the C reads the table built from
    it. Both must agree, and the table must be the arithmetic on -128..127 in order."""
    program = load_program(BUILDER_MODELS["leaky_relu"]())
    values = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256)
    for layer in program.layers:
        if layer.in_tensor().shape != (1, 256):
            continue
        (out,) = layer.reference([values])
        table = layer.constants()[0].values
        assert np.array_equal(out.ravel(), table), layer.opcode


def test_wide_softmax_gives_the_rounding_limit_where_tflm_aborts() -> None:
    """All-equal rows of 640: the sum of exps is 640 >= 512, the final shift exceeds 31
    (TFLM aborts); the reference gives the limit of the rounding, -128."""
    program = load_program(unary_model("SOFTMAX", (1, 640), Q(0.05, 0), OUT_SOFTMAX, beta=1.0))
    x = np.full((1, 1, 640), 7, dtype=np.int8)
    (out,) = program.layers[0].reference([x])
    assert (out == -128).all()


# -- refusals ---------------------------------------------------------------------------


def _softmax(shape=(1, 10), in_q: Q | None = None, out_q=OUT_SOFTMAX, out_dtype="int8",
             **options: float) -> bytes:
    """A SOFTMAX; an int16 output goes through a QUANTIZE to int8 (int16 graph outputs are
    refused before any operator is looked at)."""
    b = ModelBuilder("softmax refusal")
    x = b.add_tensor("input", shape, "int8", quant=in_q or Q(0.05, 0))
    y = b.add_tensor("output", shape, out_dtype, quant=out_q)
    b.add_op("SOFTMAX", [x], [y], am._options("SOFTMAX", **options))
    if out_dtype == "int8":
        b.set_io([x], [y])
    else:
        z = b.add_tensor("requantized", shape, "int8", quant=OUT_SOFTMAX)
        b.add_op("QUANTIZE", [y], [z])
        b.set_io([x], [z])
    return b.build()


def _prelu_variable_alpha() -> bytes:
    b = ModelBuilder("prelu with a variable alpha")
    x = b.add_tensor("input", (1, 4, 3), "int8", quant=Q(0.05, 0))
    a = b.add_tensor("alpha", (1, 4, 3), "int8", quant=Q(0.01, 0))
    y = b.add_tensor("output", (1, 4, 3), "int8", quant=Q(0.05, 0))
    b.add_op("PRELU", [x, a], [y])
    b.set_io([x, a], [y])
    return b.build()


REFUSALS: dict[str, tuple[Callable[[], bytes], str]] = {
    "softmax_int16_output_zero_point": (
        lambda: _softmax(out_q=Q(1 / 65536, 0), out_dtype="int16"), "zero point -32768"),
    "softmax_output_scale": (lambda: _softmax(out_q=Q(1 / 255, -128)), "scale 1/256"),
    "softmax_output_zero_point": (lambda: _softmax(out_q=Q(1 / 256, 0)), "zero point -128"),
    "softmax_beta_too_small": (lambda: _softmax(in_q=Q(1e-9, 0), beta=1.0), "must be above 1"),
    "softmax_beta_zero": (lambda: _softmax(beta=0.0), "must be above 1"),
    "softmax_too_long": (lambda: _softmax(shape=(1, 4096)), "rows of 4096"),
    "logistic_output_zero_point": (
        lambda: unary_model("LOGISTIC", (1, 4), Q(0.05, 0), Q(1 / 256, 0)), "zero point"),
    "logistic_tiny_scale": (
        lambda: unary_model("LOGISTIC", (1, 4), Q(1e-10, 0), OUT_LOGISTIC), "input scale"),
    "tanh_huge_scale": (lambda: unary_model("TANH", (1, 4), Q(1e12, 0), OUT_TANH), "input scale"),
    "hard_swish_output_multiplier": (
        lambda: unary_model("HARD_SWISH", (1, 4), Q(1.0, 0), Q(0.001, 0)), "below 1"),
    "relu6_tiny_scale": (
        lambda: unary_model("RELU6", (1, 4), Q(1e-12, 0), Q(1e-12, 0)), "overflows"),
    "prelu_variable_alpha": (_prelu_variable_alpha, "alpha must be a constant"),
    "prelu_bad_output_shape": (
        lambda: am.prelu_model((1, 4, 3), _alpha((3,), 0), input_q=Q(0.05, 0),
                               alpha_q=Q(0.01, 0), output_q=Q(0.05, 0), output_shape=(1, 12)),
        "broadcast shape"),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_refusals(name: str) -> None:
    make, message = REFUSALS[name]
    with pytest.raises(UnsupportedError) as error:
        load_program(make())
    text = str(error.value)
    assert "operator 0" in text and message in text, text
    assert "\n" not in text
