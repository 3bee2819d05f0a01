"""Inputs the fuzzers found that once broke the CLI's contract, rebuilt as explicit models.

Each entry says what the fuzzer saw and where the fix lives; each case must now end in the
generated files or one `codegen: error:` line naming the culprit, with nothing left behind
(support.fuzzing.run_generate checks all of that).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from support import fuzzing, lstm_models, op_zoo, state_hostile, svdf_models
from support.builder import ModelBuilder, Q, fc_model, fc_options, pack, read_model


def _edited(model: bytes, edit: Callable[[object], None]) -> bytes:
    parsed = read_model(model)
    edit(parsed)
    return pack(parsed)


def _set_scale(tensor: int, scale: float) -> Callable[[object], None]:
    def edit(model: object) -> None:
        model.subgraphs[0].tensors[tensor].quantization.scale = [scale]  # type: ignore[attr-defined]
    return edit


def _fc_stack() -> bytes:
    b = ModelBuilder()
    x = b.add_tensor("x", (1, 4), "int8", quant=Q(0.05, -3))
    w = b.add_tensor("w", (4, 4), "int8", quant=Q(0.01), data=np.eye(4) * 50)
    h = b.add_tensor("h", (1, 4), "int8", quant=Q(0.1, 0))
    y = b.add_tensor("y", (1, 4), "int8", quant=Q(0.1, 0))
    b.add_op("FULLY_CONNECTED", [x, w, -1], [h], fc_options())
    b.add_op("FULLY_CONNECTED", [h, w, -1], [y], fc_options())
    b.set_io([x], [y])
    return b.build()


def _swap_operators(model: object) -> None:
    ops = model.subgraphs[0].operators  # type: ignore[attr-defined]
    ops[0], ops[1] = ops[1], ops[0]


def _output_twice(model: object) -> None:
    sg = model.subgraphs[0]  # type: ignore[attr-defined]
    sg.outputs = [int(sg.outputs[0])] * 2


_W = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
_FC = fc_model(_W, input_q=Q(0.05, -3), weight_q=Q(0.01), output_q=Q(0.1, 5),
               bias=np.array([1, 2, 3]))

def _scales(changes: dict[int, float]) -> Callable[[object], None]:
    def edit(model: object) -> None:
        for tensor, scale in changes.items():
            _set_scale(tensor, scale)(model)
    return edit


def _svdf() -> bytes:
    return svdf_models.single(svdf_models.CASES["rank1_memory10"])


# name: (model, fragments of the error line, or None if the model must generate)
REGRESSIONS: dict[str, tuple[Callable[[], bytes], tuple[str, ...] | None]] = {
    # CI mutation fuzzer, vww_96_int8 with an output scale of 0: ZeroDivisionError in the
    # convolutions' requantization (exit 2). Fix: scales checked in codegen/model/validate.py.
    "conv_output_scale_zero": (lambda: _edited(op_zoo.depthwise(), _set_scale(3, 0.0)),
                               ("tensor 'y0'", "scale 0.0")),
    # hypothesis, HARD_SWISH with a denormal output scale: numpy printed a float32
    # overflow RuntimeWarning on stderr before the error line (two lines, one a file path).
    # Fix: codegen/cli.py silences Python warnings unless CODEGEN_DEBUG is set.
    "hard_swish_overflow_warning": (lambda: op_zoo.unary("HARD_SWISH", Q(1e-44, 0)),
                                    ("operator 0 (HARD_SWISH)",)),
    # Schema mutation "operators swapped": accepted, and the C ran operator 1 before the
    # operator 0 that writes its input (the planner keeps file order), a silently wrong
    # answer. Fix: validate.py refuses operators stored out of run order.
    "operators_out_of_order": (lambda: _edited(_fc_stack(), _swap_operators),
                               ("operator 0", "reads tensor 'h' before operator 1")),
    # Schema mutation "graph outputs [34, 34]": accepted; the second output was never
    # written. Fix: validate.py refuses a tensor listed twice.
    "graph_output_twice": (lambda: _edited(_FC, _output_twice), ("'output'", "twice")),
    # Mutation fuzzer (scripts/fuzz.py, more_math seed 5813), RSQRT with an output scale of
    # 1e-45: sqrt(input scale) x output scale underflows to 0 in float32 (TFLM's Prepare
    # divides by it): ZeroDivisionError (exit 2). Fix: abs_rsqrt.py, an infinite multiplier
    # refused naming its tensors.
    "rsqrt_multiplier_underflow": (lambda: op_zoo.unary("RSQRT", Q(1e-45, 0)),
                                   ("operator 0 (RSQRT)", "sqrt('", "is inf")),
    # Hostile-input audit of the state features: a CALL_ONCE initializer with an input
    # reached the generation-time run, which had no value for it: KeyError (exit 2). With
    # an output it was accepted, where TFLM's CALL_ONCE refuses both. Fix: validate.py.
    "call_once_initializer_with_input": (state_hostile.initializer_with_input,
                                         ("subgraph 1", "1 graph input(s)")),
    "call_once_initializer_with_output": (state_hostile.initializer_with_output,
                                          ("subgraph 1", "1 graph output(s)")),
    # SVDF's input and feature-weight scales whose float32 product overflows: "operator 0
    # (SVDF): non-finite requantization multiplier inf", naming neither the tensors nor a
    # way out. Fix: quant.quantize_multiplier says where the multiplier comes from.
    "svdf_multiplier_overflows_float32": (
        lambda: _edited(_svdf(), _scales({0: 1e30, 1: 1e30})),
        ("operator 0 (SVDF)", "input 'x' scale x feature weights 'weights_feature' scale",
         "is inf", "re-quantize")),
    "svdf_multiplier_too_large": (
        lambda: _edited(_svdf(), _scales({5: 1e-38})),
        ("operator 0 (SVDF)", "/ output 'y' scale", "too large")),
    # The LSTM's input scale x weight scale, far beyond int32 steps of its gate scale.
    "lstm_multiplier_too_large": (
        lambda: _edited(lstm_models.lstm_model(lstm_models.SPECS["units1_sequence"]),
                        _scales({0: 1e38})),
        ("UNIDIRECTIONAL_SEQUENCE_LSTM", "('serving_default_input_1:0' scale x 'arith.",
         "scale / the gate scale 2^-12)", "too large")),
    # One 16M-value activation assigned to 200 resource variables: a 3.4 GB state block
    # accepted (NAME_STATE_SIZE 3355443208u; with more, beyond 32 bits). Fix: state.py
    # refuses a state block beyond a 32-bit address space.
    "state_block_beyond_32_bits": (lambda: state_hostile.many_resources(200),
                                   ("the state kept between invokes would take 3355443208",
                                    "32-bit")),
    # A variable tensor of a non-numeric type (string, float16, resource) was accepted.
    # Fix: validate.py refuses it.
    **{f"variable_tensor_of_type_{name.lower()}": (
        lambda code=code: state_hostile.variable_of_type(code),
        ("variable tensor 'var'", f"is {name.lower()}", "numeric"))
       for name, code in (("STRING", schema.TensorType.STRING),
                          ("FLOAT16", schema.TensorType.FLOAT16),
                          ("RESOURCE", schema.TensorType.RESOURCE))},
}


@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_regression(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODEGEN_DEBUG", raising=False)
    make, fragments = REGRESSIONS[case]
    for existing in (False, True):
        result = fuzzing.run_generate(make(), tmp_path / "work", existing_output=existing)
        assert result.problem is None, result.problem
        if fragments is None:
            assert result.status == 0
        else:
            assert result.status == 1
            for fragment in fragments:
                assert fragment in result.stderr, result.stderr
