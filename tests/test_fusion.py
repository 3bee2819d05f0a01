"""SPACE_TO_BATCH_ND -> CONV_2D / DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND runs as one dilated
convolution (codegen/fuse.py): every chain TF's atrous convolution writes (SAME and VALID,
4-D and the Conv1D form with EXPAND_DIMS and RESHAPE, zero points 0 and not, with and
without bias, fused activations) becomes a single layer whose reference equals TFLM running
the three operators, and whose C equals the reference on every target and under the
sanitizers; chains that are not exactly a dilated convolution stay unfused and still run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import more_cases
from support import more_models as mm
from support.tflm import run_tflm_fresh
from support.verify import C_TARGETS, assert_same, c_matches_reference, inputs_with_edges

from codegen.execute import execute
from codegen.program import load_program

Q = mm.Q
TFLM_SAMPLES = 200

CHAINS = more_cases.DILATED_CHAINS


@pytest.mark.parametrize("name", list(CHAINS))
def test_chain_runs_as_one_layer(name: str) -> None:
    program = load_program(mm.dilated_model([CHAINS[name]]))
    assert [layer.opcode for layer in program.layers] == [
        "DEPTHWISE_CONV_2D" if CHAINS[name].depthwise else "CONV_2D"]
    assert not program.plan.buffers  # input and output are the caller's: no arena at all


@pytest.mark.tflm
@pytest.mark.parametrize("name", list(CHAINS))
def test_fused_reference_matches_tflm(name: str) -> None:
    # TFLM's SPACE_TO_BATCH_ND pads with memory it never writes: a fresh process (see
    # support.tflm.run_tflm_fresh).
    model = mm.dilated_model([CHAINS[name]])
    inputs = inputs_with_edges(model, TFLM_SAMPLES, seed=1)
    assert_same(execute(load_program(model), "reference", inputs), run_tflm_fresh(model, inputs),
                f"{name}: fused reference vs TFLM")


@pytest.mark.parametrize("target", C_TARGETS)
def test_fused_c_matches_reference(target: str, tmp_path: Path) -> None:
    model = mm.dilated_model(list(CHAINS.values()))
    assert len(load_program(model).layers) == len(CHAINS)
    c_matches_reference(model, target, tmp_path, seed=3,
                        extra=inputs_with_edges(model, 0, seed=0))


def test_fused_c_is_clean_under_sanitizers(tmp_path: Path) -> None:
    model = mm.dilated_model(list(CHAINS.values()))
    c_matches_reference(model, "host", tmp_path, seed=4, sanitize=True,
                        extra=inputs_with_edges(model, 0, seed=0))


def test_chain_with_a_visible_middle_stays_unfused() -> None:
    """The convolution's input is also a graph output: the three layers stay and agree with
    TFLM all the same."""
    d = CHAINS["conv_same"]
    b = mm.ModelBuilder()
    x, y = mm.add_dilated(b, d, "d")
    s2b_out = b.model.subgraphs[0].operators[0].outputs[0]
    b.set_io([x], [y, s2b_out])
    model = b.build()
    program = load_program(model)
    assert [layer.opcode for layer in program.layers] == [
        "SPACE_TO_BATCH_ND", "CONV_2D", "BATCH_TO_SPACE_ND"]
    inputs = inputs_with_edges(model, 20, seed=2)
    assert_same(execute(program, "reference", inputs), run_tflm_fresh(model, inputs),
                "unfused reference vs TFLM")


def test_fused_layer_describes_itself() -> None:
    program = load_program(mm.dilated_model([CHAINS["conv1d_same"]]))
    rows = dict(program.layers[0].describe())
    assert rows["fused"] == "operators 0, 1, 2, 3, 4 as one dilated convolution"
    assert "dilation 1x4" in rows["window"]
