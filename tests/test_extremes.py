"""Every kernel with a bias or an accumulator at the extremes of the integer types.

Biases at and near INT32_MAX and INT32_MIN, zero points at -128 and 127, inputs of all -128,
all 127, all at the zero point (the accumulator is then the bias) and random values, through
FULLY_CONNECTED, CONV_2D and DEPTHWISE_CONV_2D (plain kernels and fast paths), ADD, SUB,
MUL, MEAN, AVERAGE_POOL_2D, SOFTMAX, PRELU and QUANTIZE (support.extreme_models), and the
recurrent SVDF and LSTM with their states (support.state_hostile). Where
TFLM's int32 arithmetic wraps around (a requantized bias next to INT32_MAX plus the output
zero point), the reference must wrap as TFLM does, and the generated C too, without
undefined behaviour: it runs under AddressSanitizer and UndefinedBehaviorSanitizer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import state_hostile
from support.extreme_models import SHAPE, extremes_model
from support.verify import (
    c_matches_reference,
    edge_inputs,
    random_inputs,
    reference_matches_tflm,
    stream_matches_tflm,
)

from codegen.program import load_program

ZERO_POINTS = (-128, 127)
TFLM_SAMPLES = 300
# Plain C (host, the M0 without the DSP extension), the DSP paths (M4) and the RISC-V vector
# kernel of small FULLY_CONNECTED layers (riscv32-v: all four FULLY_CONNECTED layers).
TARGETS = ("host", "cortex-m0", "cortex-m4", "riscv32-v")


def _extra(zero_point: int) -> tuple[bytes, list[np.ndarray]]:
    """The model and its special samples: all -128, all 127, then the fill values."""
    model, fills = extremes_model(zero_point)
    fill = np.stack([np.full(SHAPE, f, dtype=np.int8) for f in fills])
    return model, [np.concatenate([edge_inputs(load_program(model))[0], fill])]


def test_every_path_is_taken() -> None:
    expected = (["FullyConnected"] * 3 + ["FullyConnectedGemm"] + ["Conv2D"] * 2
                + ["Conv2DGemm"] + ["DepthwiseConv2D"] * 2 + ["DepthwiseConv2D3x3"] * 2)
    for zero_point in ZERO_POINTS:
        layers = load_program(extremes_model(zero_point)[0]).layers
        assert [type(la).__name__ for la in layers[:len(expected)]] == expected
        assert layers[0].params["filter_offset"] and layers[1].params["filter_offset"]
        assert int(layers[0].params["multipliers"]) == 2**31 - 8  # the wrap-around case
        opcodes = [la.opcode for la in layers[len(expected):]]
        assert sorted(set(opcodes)) == ["ADD", "AVERAGE_POOL_2D", "MEAN", "MUL", "PRELU",
                                        "QUANTIZE", "SOFTMAX", "SUB"]


@pytest.mark.tflm
@pytest.mark.parametrize("zero_point", ZERO_POINTS)
def test_reference_matches_tflm(zero_point: int) -> None:
    model, extra = _extra(zero_point)
    program = load_program(model)
    inputs = [np.concatenate([extra[0], random_inputs(program, TFLM_SAMPLES, seed=1)[0]])]
    reference_matches_tflm(model, inputs)


@pytest.mark.parametrize("zero_point", ZERO_POINTS)
def test_generated_c_is_clean_under_sanitizers(zero_point: int, tmp_path: Path) -> None:
    model, extra = _extra(zero_point)
    c_matches_reference(model, "host", tmp_path, seed=2, sanitize=True, extra=extra,
                        samples=200)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("zero_point", ZERO_POINTS)
def test_generated_c_matches_reference(zero_point: int, target: str, tmp_path: Path) -> None:
    model, extra = _extra(zero_point)
    c_matches_reference(model, target, tmp_path, seed=3, extra=extra, samples=50)


# -- the recurrent kernels: SVDF and LSTM, int8 and int16 state -------------------------

RECURRENT = {
    "svdf_int8_state": lambda: state_hostile.extreme_svdf("int8"),
    "svdf_int16_state": lambda: state_hostile.extreme_svdf("int16"),
    "lstm_int8": lambda: state_hostile.extreme_lstm("units8_last_dense"),
    "lstm_16x8": lambda: state_hostile.extreme_lstm("units5_batch2", int16=True),
}


@pytest.mark.tflm
@pytest.mark.parametrize("name", sorted(RECURRENT))
def test_recurrent_extremes_match_tflm(name: str) -> None:
    """Zero points at the ends of their ranges, weights at their type's extremes, biases
    at INT32_MAX and INT32_MIN: the state saturates and the accumulators wrap as TFLM's,
    over one stream and from fresh interpreters."""
    stream_matches_tflm(RECURRENT[name](), name, stream=60, fresh=4, seed=11)


@pytest.mark.parametrize("name", sorted(RECURRENT))
def test_recurrent_extremes_clean_under_sanitizers(name: str, tmp_path: Path) -> None:
    model = RECURRENT[name]()
    c_matches_reference(model, "host", tmp_path, seed=12, sanitize=True,
                        extra=edge_inputs(load_program(model)), samples=150)


# Options a hostile file may hold that TFLM's integer kernels ignore or clamp: accepted, and
# computed as TFLM computes them (a cell clip of NaN clips nothing, of inf or 3e38 clamps
# to the int16 range, a negative one clips nothing; SVDF's integer kernel ignores its
# activation, even an unknown one).
HOSTILE_OPTIONS = {
    "lstm_cell_clip_nan": lambda: state_hostile.with_options(
        state_hostile.extreme_lstm("units1_sequence"), cellClip=float("nan")),
    "lstm_cell_clip_inf": lambda: state_hostile.with_options(
        state_hostile.extreme_lstm("units1_sequence"), cellClip=float("inf")),
    "lstm_cell_clip_huge": lambda: state_hostile.with_options(
        state_hostile.extreme_lstm("units1_sequence"), cellClip=3e38),
    "lstm_cell_clip_negative": lambda: state_hostile.with_options(
        state_hostile.extreme_lstm("units1_sequence"), cellClip=-1.0),
    "svdf_unknown_activation": lambda: state_hostile.with_options(
        state_hostile.extreme_svdf("int8"), fusedActivationFunction=99),
}


@pytest.mark.tflm
@pytest.mark.parametrize("name", sorted(HOSTILE_OPTIONS))
def test_hostile_recurrent_options_match_tflm(name: str) -> None:
    stream_matches_tflm(HOSTILE_OPTIONS[name](), name, stream=30, fresh=3, seed=13)
