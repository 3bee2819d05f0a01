"""The table path of ADD/SUB (codegen/ops/add_sub.py, AddSubTables) at its edges, against
TFLM: an output multiplier with no right shift (no sign correction in the rounding), a
very large right shift, one whose bounds fail (TFLM's per-element arithmetic instead), a
clamped activation next to a saturating one, broadcasting and a constant operand,
contiguous inputs (the runtime loop, assembly on the DSP cores, vectors of four on Helium)
of sizes 120, 105 and 7, and chains where the planner runs ADD/SUB in place. Checked as
usual: the reference against TFLM, the generated C against the reference on every target
and under the sanitizers.
"""

from __future__ import annotations

from support.builder import Q
from support.elementwise_models import Net, f32
from support.op_tests import op_tests

from codegen.ops.add_sub import AddSub, AddSubTables
from codegen.program import load_program

TFLM_SAMPLES = 1000


def _edges_model() -> bytes:
    n = Net("add/sub table edges", seed=3)
    a = n.input((1, 4, 5, 6), Q(f32(1.0), -3))
    b = n.input((1, 4, 5, 6), Q(f32(0.75), 20))
    c = n.input((1, 1, 5, 1), Q(f32(0.002), -128))
    d = n.input((1, 3, 5, 7), Q(f32(0.04), 11))
    e = n.input((1, 3, 5, 7), Q(f32(0.03), -50))
    f = n.input((1, 1, 1, 7), Q(f32(0.02), 127))
    g = n.input((1, 1, 1, 7), Q(f32(0.05), -128))
    n.output(
        # real output multiplier 2/3: right shift 0
        n.binary("ADD", a, b, Q(f32(3.0 / 2**20), 0)),
        n.binary("SUB", b, a, Q(f32(3.0 / 2**20), -100), "RELU"),
        # real output multiplier about 2^-26: a right shift of 26 that still fits
        n.binary("ADD", a, c, Q(f32(128.0), 0), "RELU6"),
        # the same with zero point 100: the rounding constant no longer fits in int32
        n.binary("SUB", a, c, Q(f32(128.0), 100)),
        # broadcast constant on the left, clamped activation
        n.binary("SUB", n.const((1, 1, 1, 6), Q(f32(0.3), 7)), b, Q(f32(0.05), -9),
                 "RELU_N1_TO_1"),
        n.binary("ADD", c, c, Q(f32(0.004), 1)),
        # contiguous inputs of an odd size: the runtime loop's pairs and its last element
        n.binary("SUB", d, e, Q(f32(0.05), 5)),
        n.binary("ADD", e, d, Q(f32(0.06), -128), "RELU"),
        # 7 elements: Helium's vectors of four and a predicated tail of three
        n.binary("SUB", f, g, Q(f32(0.07), 127)),
    )
    return n.build()


def _chain_model() -> bytes:
    """a + b -> (.) - c -> (.) + a: each intermediate dies at the next operator."""
    n = Net("add/sub chain", seed=4)
    a = n.input((1, 6, 6, 8), Q(f32(0.05), -128))
    b = n.input((1, 6, 6, 8), Q(f32(0.08), 4))
    c = n.input((1, 6, 6, 8), Q(f32(0.03), -17))
    t = n.binary("ADD", a, b, Q(f32(0.1), -128), "RELU")
    u = n.binary("SUB", t, c, Q(f32(0.12), 3))
    n.output(n.binary("ADD", u, a, Q(f32(0.15), -2), "RELU6"))
    return n.build()


MODELS = {"add_edges": _edges_model, "add_chain": _chain_model}


# The reference against TFLM, the C against the reference on every target and under the
# sanitizers (support.op_tests).
(test_reference_matches_tflm, test_generated_c_matches_reference,
 test_generated_c_is_clean_under_sanitizers) = op_tests(
    MODELS, list(MODELS), tflm_samples=TFLM_SAMPLES, c_edges=False)


def test_edges_reach_both_paths() -> None:
    layers = load_program(_edges_model()).layers
    kinds = [type(la) for la in layers]
    assert kinds == [AddSubTables, AddSubTables, AddSubTables, AddSub, AddSubTables,
                     AddSubTables, AddSubTables, AddSubTables, AddSubTables], kinds
    tables = [la.params for la in layers if isinstance(la, AddSubTables)]
    assert {p["table_sign"] for p in tables} == {0, 1}
    assert {p["full_range"] for p in tables} == {True, False}
    contiguous = [la for la in layers if la.params.get("contiguous")]
    assert {la.params["table_sign"] for la in contiguous} == {0, 1}
    assert any(la.out_tensor().size % 2 for la in contiguous)
    # Helium's vectors of four: no tail, a tail of one, a tail of three
    assert {la.out_tensor().size % 4 for la in contiguous} >= {0, 1, 3}
    assert max(p["output_right_shift"] for p in tables) >= 24


def test_chain_runs_in_place() -> None:
    program = load_program(_chain_model())
    plan = program.plan
    for layer in program.layers[1:]:
        assert plan.locations[layer.outputs[0]] in (
            plan.locations[layer.inputs[0]], plan.locations[layer.inputs[1]]), layer.index
