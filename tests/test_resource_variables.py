"""Resource variables (issue 12): VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE and CALL_ONCE
with its initialization subgraph, on models TensorFlow's converter writes (a sliding window
over frames, a running average initialized to a nonzero value) and on builder models for
what the converter does not write (a variable shared by two handles, a float32 variable,
refusals). Reference == TFLM over streams of invokes and from fresh interpreters; generated
C == reference on host, cortex-m4 and under the sanitizers, as one stream and reset each.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from support import resource_models as rm
from support.builder import ModelBuilder, Q
from support.state_hostile import var_handle
from support.tflm import run_tflm, run_tflm_fresh_each, run_tflm_sequence
from support.verify import assert_same, c_matches_reference, inputs_with_edges, stream_matches_tflm

from codegen.errors import CodegenError
from codegen.execute import execute
from codegen.program import load_program

STREAM = 40
FRESH = 6

MODELS: dict[str, Callable[[], bytes]] = {
    "sliding_window": rm.sliding_window,
    "running_average": rm.running_average,
}


@pytest.mark.tflm
@pytest.mark.parametrize("name", list(MODELS))
def test_converted_model_matches_tflm(name: str) -> None:
    model = MODELS[name]()
    program = load_program(model)
    assert program.state is not None
    assert {layer.opcode for layer in program.layers} >= {
        "CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"}
    stream, each = stream_matches_tflm(model, name, stream=STREAM, fresh=FRESH, seed=1,
                                       program=program)
    assert not np.array_equal(stream[0][:FRESH], each[0])


def test_reset_runs_the_initializer() -> None:
    """The running average starts from a nonzero value that only the CALL_ONCE subgraph
    sets: NAME_reset gives a fresh interpreter's outputs, which TFLM's own reset() does
    not (it clears the variable without running CALL_ONCE again)."""
    model = rm.running_average()
    program = load_program(model)
    assert program.state is not None
    assert any(region.initial is not None for region in program.state.regions)
    few = [x[:FRESH] for x in inputs_with_edges(model, FRESH, seed=2)]
    each = execute(program, "reference", few, reset_each=True)
    assert not np.array_equal(each[0], run_tflm(model, few)[0])


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
@pytest.mark.parametrize("name", list(MODELS))
def test_converted_model_c_matches_reference(name: str, target: str, tmp_path: Path) -> None:
    c_matches_reference(MODELS[name](), target, tmp_path, seed=3)


@pytest.mark.parametrize("name", list(MODELS))
def test_converted_model_c_reset_each(name: str, tmp_path: Path) -> None:
    c_matches_reference(MODELS[name](), "host", tmp_path, seed=4, samples=100,
                        reset_each=True)


@pytest.mark.parametrize("name", list(MODELS))
def test_converted_model_c_under_sanitizers(name: str, tmp_path: Path) -> None:
    c_matches_reference(MODELS[name](), "host", tmp_path, seed=5, sanitize=True, samples=200)


# -- builder models -----------------------------------------------------------------------


def _counter_model(*, float_variable: bool = False, read_before_assign_size: int = 0,
                   shared_handles: bool = True) -> bytes:
    """state += x (int8, saturating ADD), output = the new state; an initializer sets the
    state to a constant. With `shared_handles` the main graph reads and writes through two
    VAR_HANDLEs of one name. `float_variable` keeps the variable in float32 between a
    DEQUANTIZE and a QUANTIZE (TFLM copies its bytes whatever the type)."""
    b = ModelBuilder()
    q = Q(0.05, 3)
    kind = "float32" if float_variable else "int8"
    vq = None if float_variable else q
    start = np.array([[0.5, -1.0, 2.0, 0.0]]) if float_variable else \
        np.array([[7, -50, 100, 3]])
    # the main graph
    b.add_op("CALL_ONCE", [], [], _call_once(1))
    h1 = var_handle(b, "h1", "counter")
    h2 = var_handle(b, "h2", "counter") if shared_handles else h1
    x = b.add_tensor("x", (1, 4), "int8", quant=q)
    old = b.add_tensor("old", (1, 4), kind, quant=vq)
    b.add_op("READ_VARIABLE", [h1], [old])
    if float_variable:
        old_q = b.add_tensor("old_q", (1, 4), "int8", quant=q)
        b.add_op("QUANTIZE", [old], [old_q])
    else:
        old_q = old
    y = b.add_tensor("y", (1, 4), "int8", quant=q)
    b.add_op("ADD", [old_q, x], [y], _add_options())
    if float_variable:
        new = b.add_tensor("new", (1, 4), "float32")
        b.add_op("DEQUANTIZE", [y], [new])
    else:
        new = y
    b.add_op("ASSIGN_VARIABLE", [h2, new], [])
    b.set_io([x], [y])
    # the initializer
    b.new_subgraph("init")
    h = var_handle(b, "h", "counter")
    value = b.add_tensor("start", (1, 4 + read_before_assign_size), kind, quant=vq,
                         data=np.resize(start, (1, 4 + read_before_assign_size)))
    b.add_op("ASSIGN_VARIABLE", [h, value], [])
    b.set_io([], [])
    return b.build()


def _call_once(index: int) -> object:
    options = schema.CallOnceOptionsT()
    options.initSubgraphIndex = index
    return options


def _add_options() -> object:
    options = schema.AddOptionsT()
    options.fusedActivationFunction = 0
    return options


@pytest.mark.tflm
@pytest.mark.parametrize("float_variable", [False, True])
def test_builder_counter_matches_tflm(float_variable: bool, tmp_path: Path) -> None:
    model = _counter_model(float_variable=float_variable)
    program = load_program(model)
    inputs = inputs_with_edges(model, 25, seed=6)
    assert_same(execute(program, "reference", inputs), run_tflm_sequence(model, inputs),
                "counter: stream vs TFLM")
    few = [x[:FRESH] for x in inputs]
    assert_same(execute(program, "reference", few, reset_each=True),
                run_tflm_fresh_each(model, few), "counter: reset each vs TFLM")
    c_matches_reference(model, "host", tmp_path, seed=7, samples=200)


def _control_flow_model(opcode: str) -> bytes:
    b = ModelBuilder()
    x = b.add_tensor("x", (1, 4), "int8", quant=Q(0.1))
    y = b.add_tensor("y", (1, 4), "int8", quant=Q(0.1))
    if opcode == "WHILE":
        options = schema.WhileOptionsT()
        options.condSubgraphIndex, options.bodySubgraphIndex = 1, 1
    else:
        options = schema.IfOptionsT()
        options.thenSubgraphIndex, options.elseSubgraphIndex = 1, 1
    b.add_op(opcode, [x], [y], options)
    b.set_io([x], [y])
    b.new_subgraph("body")
    u = b.add_tensor("u", (1, 4), "int8", quant=Q(0.1))
    v = b.add_tensor("v", (1, 4), "int8", quant=Q(0.1))
    b.add_op("RELU", [u], [v])
    b.set_io([u], [v])
    return b.build()


@pytest.mark.parametrize(("make", "message"), [
    (lambda: _control_flow_model("WHILE"), "control flow"),
    (lambda: _control_flow_model("IF"), "control flow"),
    (lambda: _counter_model(read_before_assign_size=2), "has 6 bytes but resource"),
])
def test_refusals_are_one_line(make: Callable[[], bytes], message: str) -> None:
    with pytest.raises(CodegenError, match=message) as info:
        load_program(make())
    assert "\n" not in str(info.value)


def test_inspect_lists_call_once_andvar_handle(tmp_path: Path) -> None:
    from codegen.inspect import inspect_model

    path = tmp_path / "counter.tflite"
    path.write_bytes(_counter_model())
    text = inspect_model(path)
    call_once = text.split("[0] CALL_ONCE\n")[1].split("\n\n")[0]
    assert "initializer subgraph 1: 2 operator(s), ASSIGN_VARIABLE, VAR_HANDLE" in call_once
    assert "run at generation time" in call_once
    handle = text.split("[1] VAR_HANDLE\n")[1].split("\n\n")[0]
    assert "variable    'counter'" in handle
    assert "region of the state block" in handle
