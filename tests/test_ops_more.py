"""The operators of issue 13 (ARG_MAX, GATHER, the comparisons, RESIZE_BILINEAR, ...) on
builder models: every case alone against TFLM (reference == TFLM, inputs across each
operand's range plus the all-low / all-high samples), then the cases bundled side by side
into a few models, each built once per target and under the sanitizers (generated C ==
reference, on the same in-range samples and on full-range ones, where indices out of range
meet the behaviour the generator defines for them), and what TFLM refuses refused in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import more_models as mm
from support.more_cases import (
    AM,
    BMM,
    BT,
    BUNDLES,
    CASES,
    CMP,
    LG,
    MP,
    RB,
    REV,
    S2B,
    SEL,
    WIDE,
    X8,
    X32,
    XB,
    G,
    Q,
    R,
)
from support.tflm import run_tflm, run_tflm_fresh
from support.verify import C_TARGETS, assert_same, c_matches_reference

from codegen.errors import UnsupportedError
from codegen.execute import execute
from codegen.model.tflite import load_model
from codegen.ops import prepare_layer
from codegen.program import load_program

TFLM_SAMPLES = 300
C_EXTRA_SAMPLES = 30


@pytest.mark.tflm
@pytest.mark.parametrize("name", list(CASES))
def test_case_reference_matches_tflm(name: str) -> None:
    case = CASES[name]
    model = mm.single(case)
    inputs = mm.case_inputs([case], TFLM_SAMPLES, seed=1)
    # TFLM reads memory it never writes for some kernels (SPACE_TO_BATCH_ND's padding
    # value): those cases run in a fresh process, where that memory is zero as in .bss.
    tflm = run_tflm_fresh if case.extra.get("fresh_tflm") else run_tflm
    assert_same(execute(load_program(model), "reference", inputs), tflm(model, inputs),
                f"{name}: reference vs TFLM")


def _extra(cases: list[mm.Case]) -> list[np.ndarray]:
    return mm.case_inputs(cases, C_EXTRA_SAMPLES, seed=5)


@pytest.mark.parametrize("target", C_TARGETS)
@pytest.mark.parametrize("bundle", list(BUNDLES))
def test_generated_c_matches_reference(bundle: str, target: str, tmp_path: Path) -> None:
    cases = list(BUNDLES[bundle].values())
    c_matches_reference(mm.bundle(cases), target, tmp_path, seed=3, extra=_extra(cases))


@pytest.mark.parametrize("bundle", list(BUNDLES))
def test_generated_c_is_clean_under_sanitizers(bundle: str, tmp_path: Path) -> None:
    cases = list(BUNDLES[bundle].values())
    c_matches_reference(mm.bundle(cases), "host", tmp_path, seed=4, sanitize=True,
                        extra=_extra(cases))


@pytest.mark.parametrize("bundle", list(BUNDLES))
def test_layers_describe_themselves(bundle: str) -> None:
    program = load_program(mm.bundle(list(BUNDLES[bundle].values())))
    for layer in program.layers:
        for label, value in layer.describe():
            assert isinstance(label, str) and isinstance(value, str) and value


# -- refusals ------------------------------------------------------------------------------

_AM = AM("ARG_MAX", (3, 5), 1)

REFUSALS: dict[str, tuple[mm.Case, str]] = {
    "arg_max_int64_output": (mm.Case("ARG_MAX", _AM.operands, (mm.Y((3,), "int64"),)),
                             "output_type=tf.int32"),
    "arg_max_axis_range": (mm.Case("ARG_MAX", (mm.X((3, 5)), mm.C([2])), _AM.outputs),
                           "out of range"),
    "arg_max_axis_dynamic": (mm.Case("ARG_MAX", (mm.X((3, 5)), mm.X((1,), "int32")),
                                     _AM.outputs), "must be constant"),
    "arg_max_shape": (mm.Case("ARG_MAX", _AM.operands, (mm.Y((5,), "int32"),)),
                      "expected [3]"),
    "arg_min_int32_input": (mm.Case("ARG_MIN", (mm.X((3, 5), "int32"), mm.C([1])),
                                    _AM.outputs), "expected int8"),
    "logical_and_int8": (mm.Case("LOGICAL_AND", (mm.X((3,)), mm.X((3,), "bool")),
                                 (mm.Y((3,), "bool"),)), "expected bool"),
    "logical_or_5d_broadcast": (LG("LOGICAL_OR", (2, 1, 3, 1, 2), (3, 5, 1)), "at most 4-D"),
    "logical_not_shape": (mm.Case("LOGICAL_NOT", (mm.X((3,), "bool"),), (mm.Y((1, 3), "bool"),)),
                          "differs from output shape"),
    "equal_scale_one": (CMP("EQUAL", X8((3,), quant=Q(1.0)), X8((3,))), "(0, 1)"),
    "less_scale_above_one": (CMP("LESS", X8((3,)), X8((3,), quant=Q(2.5))), "is 2.5"),
    "greater_bool": (CMP("GREATER", mm.X((3,), "bool"), mm.X((3,), "bool")),
                     "expected int8/int32"),
    "equal_mixed_types": (CMP("EQUAL", X8((3,)), X32((3,))), "input2"),
    "less_int8_output": (mm.Case("LESS", (X8((3,)), X8((3,))), (mm.Y((3,)),)), "expected bool"),
    "select_requantize": (SEL(XB((3,)), X8((3,)), X8((3,), quant=WIDE)),
                          "quantized differently"),
    "select_int8_condition": (SEL(X8((3,)), X8((3,)), X8((3,))), "expected bool"),
    "select_6d_broadcast": (SEL(XB((2, 1, 1, 1, 1, 1)), X8((1, 2, 1, 1, 1, 1)), X8((3,))),
                            "at most 5-D"),
    "reduce_max_requantize": (R("REDUCE_MAX", (3, 5), [1], False, Q(0.1), Q(0.2)),
                              "quantized differently"),
    "reduce_min_shape": (mm.Case("REDUCE_MIN", (X8((3, 5)), mm.C([1])), (mm.Y((5,)),),
                                 mm.options("Reducer", keepDims=False)), "does not match"),
    "reduce_max_axis_range": (R("REDUCE_MAX", (3, 5), [2], False), "out of range"),
    "bilinear_both_options": (RB((1, 3, 5, 3), (6, 10), True, True), "refuses the pair"),
    "bilinear_reads_outside": (RB((1, 2, 3, 1), (150, 3), False, False), "outside the input"),
    "bilinear_requantize": (mm.Case("RESIZE_BILINEAR", (X8((1, 2, 2, 1)), mm.C([3, 3])),
                                    (mm.Y((1, 3, 3, 1), quant=WIDE),)), "quantized differently"),
    "bilinear_3d": (mm.Case("RESIZE_BILINEAR", (X8((2, 2, 1)), mm.C([3, 3])),
                            (mm.Y((3, 3, 1)),)), "must be 4-D"),
    "bilinear_dynamic_size": (mm.Case("RESIZE_BILINEAR", (X8((1, 2, 2, 1)), X32((2,))),
                                      (mm.Y((1, 3, 3, 1)),)), "must be constant"),
    "s2b_indivisible": (mm.Case("SPACE_TO_BATCH_ND", (X8((1, 5, 4, 3)), mm.C([2, 2]),
                                                      mm.C([[0, 0], [0, 0]])),
                                (mm.Y((4, 2, 2, 3)),)), "not divisible"),
    "s2b_negative_padding": (S2B((1, 5, 4, 3), [2, 2], [[-1, 0], [0, 0]]), "negative"),
    "s2b_5d": (mm.Case("SPACE_TO_BATCH_ND", (X8((1, 2, 2, 2, 1)), mm.C([2, 2, 2]),
                                             mm.C([[0, 0]] * 3)), (mm.Y((8, 1, 1, 1, 1)),)),
               "3-D or 4-D"),
    "b2s_batch": (mm.Case("BATCH_TO_SPACE_ND", (X8((3, 2, 2, 1)), mm.C([2, 2]),
                                                mm.C([[0, 0], [0, 0]])), (mm.Y((1, 4, 4, 1)),)),
                  "not divisible"),
    "b2s_block_zero": (mm.Case("BATCH_TO_SPACE_ND", (X8((4, 2, 2, 1)), mm.C([2, 0]),
                                                     mm.C([[0, 0], [0, 0]])),
                               (mm.Y((2, 4, 2, 1)),)), "must be positive"),
    "depth_to_space_indivisible": (mm.Case("DEPTH_TO_SPACE", (X8((1, 2, 2, 6)),),
                                           (mm.Y((1, 4, 4, 1)),),
                                           mm.options("DepthToSpace", blockSize=2)),
                                   "not divisible"),
    "space_to_depth_zero": (mm.Case("SPACE_TO_DEPTH", (X8((1, 2, 2, 6)),),
                                    (mm.Y((1, 2, 2, 6)),),
                                    mm.options("SpaceToDepth", blockSize=0)),
                            "must be positive"),
    "bmm_depths": (BMM(X8((3, 4)), X8((5, 2))), "depths differ"),
    "bmm_batches": (mm.Case("BATCH_MATMUL", (X8((2, 3, 4)), X8((3, 4, 2))),
                            (mm.Y((2, 3, 2)),)), "do not broadcast"),
    "bmm_6d": (BMM(X8((1, 1, 1, 1, 3, 4)), X8((4, 2))), "TFLM takes 2-D to 5-D"),
    "bmm_shape": (mm.Case("BATCH_MATMUL", (X8((3, 4)), X8((4, 2))), (mm.Y((2, 3)),)),
                  "expected [3, 2]"),
    "bmm_int32": (mm.Case("BATCH_MATMUL", (X32((3, 4)), X32((4, 2))),
                          (mm.Y((3, 2), "int32"),)), "expected int8"),
    "reverse_gap": (REV((2, 3, 4), [0, 2]), "not contiguous"),
    "reverse_repeated": (REV((2, 3, 4), [1, 1]), "not contiguous"),
    "reverse_requantize": (mm.Case("REVERSE_V2", (X8((3,)), mm.C([0])), (mm.Y((3,), quant=WIDE),)),
                           "quantized differently"),
    "mirror_reflect_too_far": (MP((3, 4), [[3, 0], [0, 0]], True), "exceeds dimension - 1"),
    "mirror_symmetric_too_far": (MP((3, 4), [[0, 0], [0, 5]], False), "exceeds the dimension"),
    "mirror_negative": (MP((3, 4), [[-1, 0], [0, 0]], False), "negative"),
    "broadcast_to_mismatch": (BT((2, 3), [2, 4]), "does not broadcast"),
    "broadcast_to_6d": (BT((2, 3), [1, 1, 1, 1, 2, 3]), "up to 5-D"),
    "fill_vector_value": (mm.Case("FILL", (mm.C([3]), X8((1,))), (mm.Y((3,)),)),
                          "must be a scalar"),
    "fill_requantize": (mm.Case("FILL", (mm.C([3]), X8(())), (mm.Y((3,), quant=WIDE),)),
                        "quantized differently"),
    "shape_int64": (mm.Case("SHAPE", (X8((3, 2)),), (mm.Y((2,), "int64"),)), "int64"),
    "gather_constant_out_of_range": (G(X8((4, 7)), mm.C([7]), axis=1), "out of range"),
    "gather_requantize": (G(X8((4, 7)), X32((2,)), quant=WIDE), "quantized differently"),
    "gather_int64_indices": (mm.Case("GATHER", (X8((4, 7)), mm.X((2,), "int64", None)),
                                     (mm.Y((2, 7)),), mm.options("Gather", axis=0)),
                             "expected int32"),
    "gather_batch_dims_above_axis": (mm.Case("GATHER", (X8((2, 5, 3)), X32((2, 4))),
                                             (mm.Y((2, 4, 5, 3)),),
                                             mm.options("Gather", axis=0, batchDims=1)),
                                     "batch_dims"),
    "gather_nd_depth": (mm.Case("GATHER_ND", (X8((3, 4)), X32((2, 3))), (mm.Y((2,)),)),
                        "index depth 3"),
    "embedding_2d_lookup": (mm.Case("EMBEDDING_LOOKUP", (X32((2, 1)), X8((3, 4))),
                                    (mm.Y((2, 4)),)), "must be 1-D"),
    "cast_to_bool": (mm.Case("CAST", (X8((3,)),), (mm.Y((3,), "bool"),)), "bool output"),
    "cast_shape": (mm.Case("CAST", (X8((3,)),), (mm.Y((1, 3), "int32"),)), "expected [3]"),
    "div_int8_undefined_shifts": (mm.binary("DIV", X8((3,), quant=Q(0.05, 0)),
                                            X8((3,), quant=Q(0.05, 0)), Q(0.1, 0),
                                            options=mm.options("Div")), "shifts by"),
    "div_mixed_types": (mm.binary("DIV", X8((3,)), X32((3,)), options=mm.options("Div")),
                        "input2"),
    "l2_norm_output_quantization": (mm.unary("L2_NORMALIZATION", (3, 4), Q(0.1), Q(0.01)),
                                    "scale 1/128"),
    "l2_norm_relu": (mm.Case("L2_NORMALIZATION", (X8((3, 4)),), (mm.Y((3, 4), quant=Q(1 / 128)),),
                             mm.options("L2Norm", fusedActivationFunction=1)), "TFLM takes NONE"),
    "l2_norm_5d": (mm.unary("L2_NORMALIZATION", (1, 1, 1, 2, 3), Q(0.1), Q(1 / 128)),
                   "1-D to 4-D"),
    "update_slice_too_big": (mm.dynamic_update_slice(X8((2, 3)), X8((3, 3)), X32((2,))),
                             "does not fit"),
    "update_slice_indices": (mm.dynamic_update_slice(X8((2, 3)), X8((1, 3)), X32((3,))),
                             "expected [2]"),
    "update_slice_int64_activation": (mm.dynamic_update_slice(
        X8((2, 3)), X8((1, 3)), mm.X((2,), "int64", None)), "must be constant"),
    "log_softmax_output_quantization": (mm.unary("LOG_SOFTMAX", (3, 4), Q(0.1), Q(0.1, 127)),
                                        "scale 16/256"),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_unsupported_is_refused(name: str) -> None:
    case, message = REFUSALS[name]
    graph = load_model(mm.single(case))
    with pytest.raises(UnsupportedError) as error:
        prepare_layer(graph.operators[0], graph)
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith(f"operator 0 ({case.opcode}): "), text
    assert message in text, text
