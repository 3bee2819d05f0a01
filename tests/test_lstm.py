"""UNIDIRECTIONAL_SEQUENCE_LSTM (issue 12) on Keras LSTMs converted to int8 (units 1, 5, 6, 8
and 20; inputs 2 to 6 wide, most not a multiple of the kernel's groups of four; 3 to 10
steps; the last step or the whole sequence; stacked layers; batch 2; time-major), and the
same models made 16x8: TFLM keeps the hidden and cell state in variable tensors from one
invoke to the next, so each model is a stream. Reference == TFLM over 40-invoke streams
(plus the all-low and all-high samples) and from fresh interpreters; generated C ==
reference as one stream on host and cortex-m4 (the DSP products) for every model, on
cortex-m3 and cortex-m0 (the plain-C products) for the edge shapes, on every target for the
stacked one, under the sanitizers, and reset each; the short requantization against TFLM's
at the bounds it is taken for; a 16x8 LSTM whose sums could pass int32 on the plain kernel;
what TFLM's kernel does not take is refused in one line.
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
    edge_inputs,
    inputs_with_edges,
    stream_matches_tflm,
)

from codegen import quant
from codegen.errors import UnsupportedError
from codegen.execute import execute
from codegen.ops import _rnn
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


# units 1, 5 and 20, inputs 2, 3 and 6 wide (padded to groups of four), batch 2
EDGE = ["units1_sequence", "units5_batch2", "units20_last"]


@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m0"])
@pytest.mark.parametrize("name", EDGE)
def test_c_without_dsp_matches_reference(name: str, target: str, tmp_path: Path) -> None:
    c_matches_reference(_model(name), target, tmp_path, seed=11)


def test_products_take_the_fast_kernel() -> None:
    """Every test model, int8 and 16x8, gets the four-gate kernel (the 16x8 sums proved
    within int32), and the int8 ones the short requantization of every gate."""
    for name in lm.SPECS:
        for model in (_model(name), _model16(name)):
            for layer in load_program(model).layers:
                if layer.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM":
                    assert layer.params["fast"], name
                    assert layer.template.endswith("_fast.c.j2")
                    assert "rnn_dot" in layer.runtime
                    text = layer.kernel("f")
                    assert "cg_rnn_gates(f_wx" in text
                    if not layer.params["int16"]:
                        assert text.count("cg_requantize_fast(") == 11, name


def test_packed_gate_weights() -> None:
    """Per unit, per group of four columns (zero-padded), per gate: columns 0, 2, 1, 3."""
    units, depth = 3, 5
    gates = [np.arange(units * depth).reshape(units, depth) + 16 * g - 64 for g in range(4)]
    packed = _rnn.pack_gates(gates).reshape(units, 2, 4, 4)
    for u in range(units):
        for g in range(4):
            assert list(packed[u, 0, g]) == [gates[g][u, c] for c in (0, 2, 1, 3)]
            assert list(packed[u, 1, g]) == [gates[g][u, 4], 0, 0, 0]


def _short(acc: np.ndarray, s: _rnn.ShortRequant) -> np.ndarray:
    """cg_requantize_fast in Python integers (templates/runtime/requantize_fast.c.j2)."""
    out = []
    for a in acc.tolist():
        acc2 = a << s.scale_shift
        assert -(1 << 31) <= acc2 < 1 << 31
        high = s.add - (s.sign if acc2 < 0 else 0)
        t = acc2 * s.multiplier + high * (1 << 32) + (1 << 31)
        out.append((t >> 32) >> s.right)
    return np.array(out, dtype=np.int64)


@pytest.mark.parametrize(("multiplier", "shift", "bound", "zero_point"), [
    (1073741824, -14, 32767 * 32768, 0),  # the cell products at scale 2^-15
    (1281813628, -21, 32767 * 32768, -5),  # tanh(cell) x output gate -> hidden
    (1121667532, -3, 127 * 128 * 20 + 5000, 0),  # a gate's fully connected sum
    (2147483647, 0, (1 << 29) - 3, 7),  # no right shift
    (1518500250, 2, (1 << 27) - 1, 0),  # a left shift
])
def test_short_requantization_is_tflms(multiplier: int, shift: int, bound: int,
                                       zero_point: int) -> None:
    s = _rnn.short_requant(multiplier, shift, bound, zero_point)
    assert s is not None
    rng = np.random.default_rng(12)
    right = max(-shift, 0)
    # exact ties of the final rounding where the multiplier is 2^30 (y = acc / 2)
    ties = 2 * ((np.arange(-50, 50, dtype=np.int64) << right) + (1 << right >> 1))
    acc = np.concatenate([np.array([-bound, -bound + 1, -1, 0, 1, bound - 1, bound]),
                          rng.integers(-bound, bound + 1, 2000),
                          rng.integers(-300, 301, 600), ties[np.abs(ties) <= bound]])
    expected = quant.requantize(acc, multiplier, shift, zero_point, -(1 << 31), (1 << 31) - 1)
    np.testing.assert_array_equal(_short(acc, s), expected)
    # beyond what it is exact for, it is not offered
    assert _rnn.short_requant(multiplier, shift, 1 << 30, zero_point) is None


@pytest.mark.parametrize("name", list(lm.SPECS))
def test_c_under_sanitizers(name: str, tmp_path: Path) -> None:
    """From the all-low and all-high samples on (integer extremes), then random ones."""
    model = _model(name)
    c_matches_reference(model, "host", tmp_path, seed=4, sanitize=True, samples=200,
                        extra=edge_inputs(load_program(model)))


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


@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m0"])
def test_16x8_c_without_dsp_matches_reference(target: str, tmp_path: Path) -> None:
    c_matches_reference(_model16("units20_last"), target, tmp_path, seed=12)


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
@pytest.mark.parametrize("name", ["units8_stacked", "units5_batch2", "units6_time_major",
                                  "units1_sequence"])
def test_16x8_c_matches_reference(name: str, target: str, tmp_path: Path) -> None:
    c_matches_reference(_model16(name), target, tmp_path, seed=9)


@pytest.mark.parametrize("name", ["units8_stacked", "units20_last"])
def test_16x8_c_under_sanitizers(name: str, tmp_path: Path) -> None:
    model = _model16(name)
    c_matches_reference(model, "host", tmp_path, seed=10, sanitize=True, samples=200,
                        extra=edge_inputs(load_program(model)))


# 520 inputs, whose forget-gate weights are then all set to 127: a row's sum of |w| x 32768
# passes int32, so the 16x8 kernel cannot sum in int32 and the plain kernel (int64) is taken
WIDE = lm.LstmSpec(units=2, steps=2, depth=520, return_sequences=True, seed=6)


def _wide16() -> bytes:
    model = read_model(lm.to_16x8(lm.lstm_model(WIDE)))
    graph = model.subgraphs[0]
    op = next(o for o in graph.operators if o.inputs is not None and len(o.inputs) == 24)
    buffer = model.buffers[graph.tensors[op.inputs[2]].buffer]
    buffer.data = np.full(len(buffer.data), 127, np.uint8)
    return pack(model)


@pytest.mark.tflm
def test_16x8_beyond_int32_takes_the_plain_kernel(tmp_path: Path) -> None:
    model = _wide16()
    layer = next(layer for layer in load_program(model).layers
                 if layer.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    assert not layer.params["fast"]
    assert layer.template == "kernels/unidirectional_sequence_lstm.c.j2"
    stream_matches_tflm(model, "wide 16x8", stream=10, fresh=2, seed=13)
    c_matches_reference(model, "host", tmp_path, seed=13, samples=50, sanitize=True,
                        extra=edge_inputs(load_program(model)))


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
