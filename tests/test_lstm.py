"""UNIDIRECTIONAL_SEQUENCE_LSTM (issue 12) on Keras LSTMs converted to int8 (units 1, 5, 6, 8
and 20; 3 to 10 steps; the last step or the whole sequence; stacked layers; batch 2;
time-major), and the same models made 16x8: TFLM keeps the hidden and cell state in variable
tensors from one invoke to the next, so each model is a stream. Reference == TFLM over
40-invoke streams (plus the all-low and all-high samples) and from fresh interpreters;
generated C == reference as one stream on host and cortex-m4 for every model, on every
target for the stacked one, under the sanitizers, and reset each; what TFLM's kernel does
not take is refused in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import lstm_models as lm
from support.builder import pack, read_model
from support.tflm import run_tflm_sequence
from support.verify import (
    C_TARGETS,
    assert_same,
    c_matches_reference,
    inputs_with_edges,
    stream_matches_tflm,
)

from codegen.errors import UnsupportedError
from codegen.execute import execute
from codegen.program import load_program

STREAM = 40
FRESH = 5


def _model(name: str) -> bytes:
    return lm.lstm_model(lm.SPECS[name])


@pytest.mark.tflm
@pytest.mark.parametrize("name", list(lm.SPECS))
def test_reference_matches_tflm(name: str) -> None:
    model = _model(name)
    program = load_program(model)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in {layer.opcode for layer in program.layers}
    assert program.state is not None
    stream, each = stream_matches_tflm(model, name, stream=STREAM, fresh=FRESH, seed=1,
                                       program=program)
    assert not np.array_equal(stream[0][:FRESH], each[0])  # the state carries over


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
@pytest.mark.parametrize("name", list(lm.SPECS))
def test_c_matches_reference(name: str, target: str, tmp_path: Path) -> None:
    c_matches_reference(_model(name), target, tmp_path, seed=2)


@pytest.mark.parametrize("target", [t for t in C_TARGETS if t not in ("host", "cortex-m4")])
def test_stacked_c_matches_reference_on_every_target(target: str, tmp_path: Path) -> None:
    c_matches_reference(_model("units8_stacked"), target, tmp_path, seed=3)


@pytest.mark.parametrize("name", list(lm.SPECS))
def test_c_under_sanitizers(name: str, tmp_path: Path) -> None:
    c_matches_reference(_model(name), "host", tmp_path, seed=4, sanitize=True, samples=200)


def test_c_reset_each(tmp_path: Path) -> None:
    c_matches_reference(_model("units5_batch2"), "host", tmp_path, seed=5, samples=100,
                        reset_each=True)


# -- 16x8: int16 activations, int8 weights, int64 biases -----------------------------------


def _model16(name: str) -> bytes:
    return lm.to_16x8(_model(name))


@pytest.mark.tflm
@pytest.mark.parametrize("name", list(lm.SPECS))
def test_16x8_reference_matches_tflm(name: str) -> None:
    model = _model16(name)
    graph = load_program(model).graph
    assert graph.tensors[graph.inputs[0]].dtype.np == np.int16
    stream_matches_tflm(model, f"{name} 16x8", stream=STREAM, fresh=FRESH, seed=8)


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
@pytest.mark.parametrize("name", ["units8_stacked", "units5_batch2", "units6_time_major"])
def test_16x8_c_matches_reference(name: str, target: str, tmp_path: Path) -> None:
    c_matches_reference(_model16(name), target, tmp_path, seed=9)


@pytest.mark.parametrize("name", ["units8_stacked", "units20_last"])
def test_16x8_c_under_sanitizers(name: str, tmp_path: Path) -> None:
    c_matches_reference(_model16(name), "host", tmp_path, seed=10, sanitize=True, samples=200)


def _clipped(clip: float) -> bytes:
    """The stacked model with a cell clip (the converter writes none from Keras)."""
    model = read_model(_model("units8_stacked"))
    for op in model.subgraphs[0].operators:
        if op.inputs is not None and len(op.inputs) == 24:
            op.builtinOptions.cellClip = clip
    return pack(model)


@pytest.mark.tflm
@pytest.mark.parametrize("clip", [0.5, 1e-6])  # 16384 in the first layer's cell scale; 0
def test_cell_clip(clip: float, tmp_path: Path) -> None:
    model = _clipped(clip)
    program = load_program(model)
    assert any(layer.params.get("clipped") for layer in program.layers)
    inputs = inputs_with_edges(model, STREAM, seed=6)
    assert_same(execute(program, "reference", inputs), run_tflm_sequence(model, inputs),
                f"clip {clip}: stream vs TFLM")
    c_matches_reference(model, "host", tmp_path, seed=7, samples=200)


def _variant(position: int) -> bytes:
    """The units-8 model with optional input `position` (a peephole, projection or
    layer-normalization weight) set to one of its tensors."""
    model = read_model(_model("units8_last_dense"))
    graph = model.subgraphs[0]
    op = next(o for o in graph.operators
              if o.inputs is not None and len(o.inputs) == 24)
    inputs = list(op.inputs)
    inputs[position] = inputs[2]
    op.inputs = inputs
    return pack(model)


@pytest.mark.parametrize(("position", "message"), [
    (9, "peephole"), (16, "projection"), (20, "layer normalization")])
def test_variants_are_refused_in_one_line(position: int, message: str) -> None:
    with pytest.raises(UnsupportedError, match=message) as info:
        load_program(_variant(position))
    assert "\n" not in str(info.value)
