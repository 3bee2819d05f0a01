"""SPACE_TO_BATCH_ND -> CONV_2D / DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND runs as one dilated
convolution (codegen/fuse.py): every chain TF's atrous convolution writes (SAME and VALID,
4-D and the Conv1D form with EXPAND_DIMS and RESHAPE, zero points 0 and not, with and
without bias, fused activations) becomes a single layer; chains that are not exactly a
dilated convolution stay unfused and still run. That the fused layer's reference equals TFLM
running the three operators, and its C the reference on every target and under the
sanitizers, is checked with the `data` bundle of tests/test_ops_more.py.
"""

from __future__ import annotations

import pytest
from support import more_cases
from support import more_models as mm
from support.tflm import run_tflm_fresh
from support.verify import assert_same, inputs_with_edges

from codegen.execute import execute
from codegen.fuse import DilatedConvolution
from codegen.program import load_program

CHAINS = more_cases.DILATED_CHAINS


@pytest.mark.parametrize("name", list(CHAINS))
def test_chain_runs_as_one_layer(name: str) -> None:
    program = load_program(mm.dilated_model([CHAINS[name]]))
    assert [layer.opcode for layer in program.layers] == [
        "DEPTHWISE_CONV_2D" if CHAINS[name].depthwise else "CONV_2D"]
    assert not program.plan.buffers  # input and output are the caller's: no arena at all


def test_the_chains_are_in_a_bundle() -> None:
    """Their reference-vs-TFLM (fresh process) and C-vs-reference checks run with the other
    data-movement cases of tests/test_ops_more.py, in the `data` bundle."""
    bundled = more_cases.BUNDLES["data"]
    assert all(bundled[f"dilated_{name}"] is chain for name, chain in CHAINS.items())
    model = mm.bundle(list(bundled.values()))
    fused = [layer for layer in load_program(model).layers
             if isinstance(layer, DilatedConvolution)]
    assert len(fused) == len(CHAINS)


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
