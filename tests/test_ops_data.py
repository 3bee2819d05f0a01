"""Data-movement operators: PAD/PADV2, STRIDED_SLICE, SLICE, SPLIT/SPLIT_V, PACK/UNPACK,
SQUEEZE/EXPAND_DIMS, TRANSPOSE, RESIZE_NEAREST_NEIGHBOR, and QUANTIZE between uint8 and int8.

Every builder case runs alone against TFLM (reference == TFLM, full-range inputs plus the
all-min / all-max samples). For the C, the cases are bundled side by side into a few models
(each case keeps its own inputs and outputs), built for every target and under sanitizers,
with a chain model that feeds multi-output operators into others and has aliases inside the
graph, and the converter's models (TensorFlow functions and Keras layers, int8 and uint8 I/O).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from support import data_models as dm
from support.builder import Q
from support.op_tests import op_tests
from support.verify import (
    inputs_with_edges,
    reference_matches_tflm,
)

from codegen.errors import UnsupportedError
from codegen.model.tflite import load_model
from codegen.ops import prepare_layer
from codegen.program import load_program

TFLM_SAMPLES = 300

# -- builder cases -------------------------------------------------------------------------

WIDE = Q(0.0007, -128)  # tiny scale, zero point at the bottom
COARSE = Q(91.0, 127)  # huge scale, zero point at the top

PAD_CASES = {
    "pad_4d_image": dm.pad((1, 3, 17, 3), [[0, 0], [1, 2], [0, 3], [0, 0]], quant=WIDE),
    "pad_4d_all_axes": dm.pad((2, 3, 1, 3), [[1, 0], [0, 2], [3, 1], [2, 2]], quant=COARSE),
    "pad_5d": dm.pad((1, 2, 3, 1, 3), [[1, 1], [0, 1], [2, 0], [1, 3], [0, 1]]),
    "pad_1d": dm.pad((17,), [[3, 1]]),
    "pad_2d": dm.pad((3, 1), [[0, 0], [2, 2]]),
    "pad_3d_none": dm.pad((3, 17, 1), [[0, 0], [0, 0], [0, 0]]),
    "pad_3_inputs": dm.pad((1, 3, 3), [[0, 1], [1, 0], [0, 2]], value=-50),
    "padv2_min": dm.pad((2, 3, 17), [[0, 1], [2, 0], [1, 1]], value=-128, v2=True),
    "padv2_max": dm.pad((1, 3, 5, 3), [[0, 0], [1, 1], [2, 0], [0, 1]], value=127, v2=True,
                        quant=WIDE),
    "padv2_zero_point": dm.pad((17, 3), [[1, 0], [0, 2]], v2=True, quant=COARSE),
}

SS = dm.strided_slice
STRIDED_SLICE_CASES = {
    "ss_1d_negative_stride": SS((17,), [-1], [-18], [-2]),
    "ss_1d_clamped": SS((17,), [100], [-100], [-3]),
    "ss_1d_step_past_end": SS((3,), [0], [3], [5]),
    "ss_2d_copy": SS((3, 17), [0, 0], [3, 17], [1, 1]),
    "ss_2d_shrink_last": SS((3, 17), [0, -1], [3, 0], [1, 1], shrink_axis_mask=2),
    "ss_3d_masks": SS((3, 17, 5), [5, 3, 1], [0, -1, 0], [-1, 3, 1],
                      begin_mask=1, end_mask=4, quant=WIDE),
    "ss_4d_mixed": SS((2, 3, 17, 5), [0, -1, 1, 0], [2, 0, 17, 5], [1, -1, 7, 2],
                      shrink_axis_mask=4, begin_mask=1, end_mask=2, quant=COARSE),
    "ss_4d_shrink_two": SS((1, 3, 17, 3), [0, 2, 0, 0], [1, 3, 17, 3],
                           [1, 1, 1, 2], shrink_axis_mask=3),
    "ss_4d_all_masks": SS((2, 3, 5, 17), [9, 9, 9, 1], [-9, -9, -9, 0],
                          [1, -1, 1, 4], begin_mask=7, end_mask=15),
}

SLICE_CASES = {
    "slice_1d": dm.slice_((17,), [3], [-1]),
    "slice_2d_int64": dm.slice_((3, 17), [1, 16], [2, 1], dtype="int64"),
    "slice_4d": dm.slice_((1, 3, 17, 3), [0, 1, 2, 0], [-1, 2, -1, 1]),
    "slice_5d": dm.slice_((2, 1, 3, 5, 3), [1, 0, 1, 1, 0], [1, 1, 2, 3, -1]),
    "slice_copy": dm.slice_((3, 5), [0, 0], [3, -1]),
}

SPLIT_CASES = {
    "split_axis0": dm.split((3, 17), 0, 3),
    "split_axis_last": dm.split((1, 3, 5, 6), -1, 3),
    "split_axis1_neg": dm.split((2, 6, 5), -2, 2),
    "split_one": dm.split((3, 17), 1, 1),
    "split_axis_first_neg": dm.split((4, 3, 1, 3), -4, 4),
    "split_v_1d": dm.split_v((17,), 0, [1, -1, 2]),
    "split_v_4d_neg": dm.split_v((1, 3, 17, 3), -2, [5, 1, 11]),
    "split_v_axis2": dm.split_v((2, 3, 7), 2, [3, 4]),
}

PACK_CASES = {
    "pack_axis0": dm.pack((3, 17), 3, 0),
    "pack_axis1": dm.pack((3, 17), 2, 1),
    "pack_axis_last": dm.pack((3, 17), 3, -1),
    "pack_axis_neg3": dm.pack((3, 5), 2, -3),
    "pack_one": dm.pack((1, 3), 1, 1),
    "pack_4d_to_5d": dm.pack((1, 3, 5, 3), 2, 3),
    "unpack_axis0": dm.unpack((3, 17), 0),
    "unpack_axis_last": dm.unpack((3, 17), -1),
    "unpack_one": dm.unpack((2, 3, 1), 2),
    "unpack_4d_neg": dm.unpack((2, 3, 5, 3), -3),
}

SHAPE_CASES = {
    "transpose_2d": dm.transpose((3, 17), [1, 0]),
    "transpose_3d": dm.transpose((3, 17, 5), [2, 0, 1]),
    "transpose_3d_identity": dm.transpose((3, 1, 5), [0, 1, 2]),
    "transpose_nhwc_nchw": dm.transpose((1, 3, 17, 5), [0, 3, 1, 2]),
    "transpose_4d_reverse": dm.transpose((2, 3, 5, 3), [3, 2, 1, 0]),
    "transpose_5d": dm.transpose((2, 3, 1, 17, 2), [4, 2, 0, 3, 1]),
    "squeeze_all": dm.squeeze((1, 3, 1, 17), []),
    "squeeze_negative": dm.squeeze((1, 3, 1, 17), [-2]),
    "squeeze_two": dm.squeeze((1, 17, 1), [0, 2]),
    "expand_dims_0": dm.expand_dims((3, 17), 0),
    "expand_dims_last": dm.expand_dims((3, 17), -1),
    "expand_dims_middle": dm.expand_dims((3, 5, 17), 2),
    "expand_dims_neg3": dm.expand_dims((3, 17), -3),
}

RESIZE_SHAPES = {
    "up": ((2, 3, 5, 3), (7, 11)),
    "down": ((1, 17, 5, 1), (3, 2)),
    "one_pixel": ((1, 1, 1, 17), (3, 5)),
    "to_one": ((1, 3, 17, 3), (1, 1)),
    "mixed": ((1, 3, 17, 2), (17, 3)),
}
RESIZE_CASES = {
    f"resize_{shape}_{'ac' if ac else 'noac'}_{'hp' if hp else 'nohp'}":
        dm.resize(x, size, ac, hp)
    for shape, (x, size) in RESIZE_SHAPES.items()
    for ac in (False, True)
    for hp in (False, True)
}

QUANTIZE_CASES = {
    "quantize_uint8_to_int8": dm.quantize("uint8", "int8", Q(0.031, 131), Q(0.017, -7)),
    "quantize_uint8_to_int8_same_scale": dm.quantize("uint8", "int8", Q(0.05, 128),
                                                     Q(0.05, 0), shape=(17,)),
    "quantize_uint8_to_int8_extremes": dm.quantize("uint8", "int8", Q(3.0, 255),
                                                   Q(0.01, -128), shape=(1, 3)),
    "quantize_int8_to_uint8": dm.quantize("int8", "uint8", Q(0.2, -100), Q(0.9, 3),
                                          shape=(1, 3, 17)),
    "quantize_int8_to_uint8_amplify": dm.quantize("int8", "uint8", Q(0.5, 0), Q(0.0113, 128),
                                                  shape=(17, 1)),
    "quantize_int8_to_uint8_shift": dm.quantize("int8", "uint8", Q(0.007, 0), Q(0.007, 128)),
}

BUNDLES: dict[str, dict[str, dm.Case]] = {
    "pad": PAD_CASES,
    "slices": {**STRIDED_SLICE_CASES, **SLICE_CASES},
    "split_pack": {**SPLIT_CASES, **PACK_CASES},
    "shape": SHAPE_CASES,
    "resize": RESIZE_CASES,
    "quantize": QUANTIZE_CASES,
}
CASES = {name: case for cases in BUNDLES.values() for name, case in cases.items()}

# -- whole models --------------------------------------------------------------------------

MODELS: dict[str, Callable[[], bytes]] = {
    "quantize_uint8_to_int8": lambda: dm.requantize_model("uint8", "int8", Q(0.031, 131),
                                                          Q(0.017, -7)),
    "quantize_int8_to_uint8": lambda: dm.requantize_model("int8", "uint8", Q(0.2, -100),
                                                          Q(0.9, 3), shape=(1, 3, 17)),
    "quantize_uint8_to_int8_same_scale": lambda: dm.requantize_model(
        "uint8", "int8", Q(0.05, 128), Q(0.05, 0), shape=(17,)),
}
MODELS: dict[str, Callable[[], bytes]] = {
    **{f"bundle_{name}": (lambda c=cases: dm.bundle(list(c.values())))
       for name, cases in BUNDLES.items()},
    "chain": dm.chain_model,
    **{name: (lambda n=name: dm.converter_model(n)) for name in dm.CONVERTER_MODELS},
    "keras_resizing": dm.keras_resizing_model,
    "tf_uint8_io": dm.uint8_io_model,
}
TF_MODELS = {*dm.CONVERTER_MODELS, "keras_resizing", "tf_uint8_io"}


def _param(name: str) -> pytest.ParameterSet:
    return pytest.param(name, marks=[pytest.mark.tf] if name in TF_MODELS else [])


MODEL_PARAMS = [_param(name) for name in MODELS]


@pytest.mark.tflm
@pytest.mark.parametrize("name", list(CASES))
def test_case_reference_matches_tflm(name: str) -> None:
    model = dm.single(CASES[name])
    reference_matches_tflm(model, inputs_with_edges(model, TFLM_SAMPLES, seed=1))


# The reference against TFLM, the C against the reference on every target and under the
# sanitizers (support.op_tests).
(test_model_reference_matches_tflm, test_generated_c_matches_reference,
 test_generated_c_is_clean_under_sanitizers) = op_tests(
    MODELS, MODEL_PARAMS, tflm_samples=TFLM_SAMPLES, seeds=(2, 3, 4))


# -- refusals ------------------------------------------------------------------------------


def _with(case: dm.Case, **changes: object) -> dm.Case:
    return replace(case, **changes)


def _consts(case: dm.Case, **positions: tuple) -> dict[int, tuple]:
    consts = dict(case.consts)
    consts.update({int(k[1:]): v for k, v in positions.items()})
    return consts


_PAD = dm.pad((1, 3, 5, 3), [[0, 0], [1, 1], [2, 0], [0, 1]])
_PADV2 = dm.pad((3, 5), [[1, 0], [0, 2]], value=9, v2=True)
_SS = SS((2, 3, 5), [0, 0, 0], [2, 3, 5], [1, 1, 1])
_SLICE = dm.slice_((3, 5), [1, 0], [2, -1])
_SPLIT = dm.split((3, 6), 1, 2)
_PACK = dm.pack((3, 5), 2, 0)
_UNPACK = dm.unpack((2, 3), 0)
_TRANSPOSE = dm.transpose((3, 5, 2), [2, 0, 1])
_RESIZE = dm.resize((1, 3, 5, 2), (6, 10), False, False)
_OTHER_Q = Q(0.05, -2)

REFUSALS: dict[str, tuple[dm.Case, str]] = {
    "pad_requantize": (_with(_PAD, out_quant=_OTHER_Q), "quantized differently"),
    "pad_negative": (dm.pad((5,), [[-1, 2]]), "negative paddings"),
    "pad_int64_paddings": (_with(_PAD, consts=_consts(_PAD, p1=("int64", _PAD.consts[1][1]))),
                           "paddings 'c0_c1' is int64, expected int32"),
    "pad_dynamic_paddings": (
        _with(_PAD, consts=_consts(_PAD, p1=("int32", _PAD.consts[1][1], False))),
        "paddings must be constant"),
    "pad_6d": (dm.pad((1, 1, 2, 1, 1, 2), [[0, 0]] * 5 + [[1, 0]]), "up to 5 dimensions"),
    "pad_uint8": (_with(_PAD, dtype="uint8", quant=Q(0.05, 128)),
                  "uint8 activations are not supported"),
    "pad_empty_input": (dm.pad((0, 3), [[1, 0], [0, 0]]), "is empty"),
    "pad_shape": (_with(_PAD, outputs=((1, 5, 7, 3),)), "expected [1, 5, 7, 4]"),
    "padv2_value_quantization": (_with(_PADV2, const_quant=_OTHER_Q),
                                 "constant_values must be quantized like the output"),
    "padv2_value_vector": (_with(_PADV2, consts=_consts(_PADV2, p2=("int8", [1, 2]))),
                           "must be a scalar"),
    "padv2_value_dynamic": (_with(_PADV2, consts=_consts(_PADV2, p2=("int8", 3, False))),
                            "constant_values must be constant"),
    "ss_5d": (SS((1, 2, 1, 2, 3), [0] * 5, [1, 2, 1, 2, 3], [1] * 5), "1 to 4 dimensions"),
    "ss_ellipsis": (_with(_SS, options=dm.strided_slice_options(ellipsis_mask=2)),
                    "ellipsis_mask is not supported"),
    "ss_new_axis": (_with(_SS, options=dm.strided_slice_options(new_axis_mask=1)),
                    "new_axis_mask is not supported"),
    "ss_offset": (_with(_SS, options=dm.strided_slice_options(offset=True)),
                  "offset=true is not supported"),
    "ss_zero_stride": (_with(_SS, consts=_consts(_SS, p3=("int32", [1, 0, 1]))),
                       "contain 0"),
    "ss_shrink_negative_stride": (SS((3, 4), [1, 0], [0, 4], [-1, 1], shrink_axis_mask=1),
                                  "leave the output unwritten"),
    "ss_short_begin": (_with(_SS, consts=_consts(_SS, p1=("int32", [0, 0]))),
                       "begin has 2 values, expected 3"),
    "ss_shape": (_with(_SS, outputs=((2, 3, 4),)), "expected [2, 3, 5]"),
    "ss_requantize": (_with(_SS, out_quant=_OTHER_Q), "quantized differently"),
    "slice_negative_begin": (_with(_SLICE, consts=_consts(_SLICE, p1=("int32", [-1, 0]))),
                             "outside [0, 3]"),
    "slice_too_long": (_with(_SLICE, consts=_consts(_SLICE, p2=("int32", [3, -1]))),
                       "does not fit"),
    "slice_mixed_types": (_with(_SLICE, consts=_consts(_SLICE, p2=("int64", [2, -1]))),
                          "same type"),
    "split_num_splits": (_with(_SPLIT, options=dm.split_options(3)), "num_splits is 3"),
    "split_indivisible": (_with(_SPLIT, consts=_consts(_SPLIT, p0=("int32", [0])),
                                outputs=((1, 6), (1, 6))), "not divisible"),
    "split_axis": (_with(_SPLIT, consts=_consts(_SPLIT, p0=("int32", [2]))), "out of range"),
    "split_requantize": (_with(_SPLIT, out_quant=_OTHER_Q), "quantized differently"),
    "split_v_sizes": (_with(dm.split_v((3, 7), 1, [3, 4]), outputs=((3, 3), (3, 3))),
                      "do not add up"),
    "pack_values_count": (_with(_PACK, options=dm.pack_options(3, 0)), "values_count is 3"),
    "pack_axis": (_with(_PACK, options=dm.pack_options(2, 3)), "out of range"),
    "pack_requantize": (_with(_PACK, out_quant=_OTHER_Q), "quantized differently"),
    "unpack_num": (_with(_UNPACK, options=dm.unpack_options(3, 0)), "num is 3"),
    "transpose_duplicate": (_with(_TRANSPOSE, consts={1: ("int32", [2, 0, 0])},
                                  outputs=((2, 3, 3),)), "not a permutation"),
    "transpose_6d": (dm.transpose((1, 2, 1, 3, 1, 2), [5, 4, 3, 2, 1, 0]), "1 to 5"),
    "transpose_shape": (_with(_TRANSPOSE, outputs=((2, 5, 3),)), "expected [2, 3, 5]"),
    "resize_3d": (dm.Case("RESIZE_NEAREST_NEIGHBOR", ((3, 5, 2),), ((6, 10, 2),),
                          {1: ("int32", [6, 10])}, dm.resize_options(False, False)),
                  "must be 4-D"),
    "resize_size": (_with(_RESIZE, outputs=((1, 6, 9, 2),)), "expected [1, 6, 10, 2]"),
    "resize_requantize": (_with(_RESIZE, out_quant=_OTHER_Q), "quantized differently"),
    "resize_dynamic_size": (_with(_RESIZE, consts={1: ("int32", [6, 10], False)}),
                            "size must be constant"),
    "squeeze_not_one": (_with(dm.squeeze((1, 3, 1), [0]), options=dm.squeeze_options([1]),
                              outputs=((1, 3),)), "not of size 1"),
    "squeeze_shape": (_with(dm.squeeze((1, 3, 1), [0]), outputs=((1, 3),)),
                      "expected [3, 1]"),
    "expand_dims_dynamic_axis": (
        _with(dm.expand_dims((3, 5), 0), consts={1: ("int32", [0], False)}),
        "axis must be constant"),
    "expand_dims_shape": (_with(dm.expand_dims((3, 5), 0), outputs=((3, 1, 5),)),
                          "expected [1, 3, 5]"),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_unsupported_is_refused(name: str) -> None:
    """The operator's own checks (prepare without the graph validation, which already turns
    away non-constant parameters that nothing produces)."""
    case, message = REFUSALS[name]
    graph = load_model(dm.single(case))
    with pytest.raises(UnsupportedError) as error:
        prepare_layer(graph.operators[0], graph)
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith(f"operator 0 ({case.opcode}): "), text
    assert message in text, text


def test_squeeze_and_expand_dims_are_aliases_inside_the_chain() -> None:
    """Inside the graph, SQUEEZE and EXPAND_DIMS share their input's buffer and emit no
    code (the planner's alias path, which RESHAPE also takes)."""
    program = load_program(dm.chain_model())
    aliases = {op.index for op in program.graph.operators
               if op.opcode in ("SQUEEZE", "EXPAND_DIMS")}
    assert len(aliases) == 2
    assert aliases <= program.plan.elided


@pytest.mark.parametrize("bundle", list(BUNDLES))
def test_layers_describe_themselves(bundle: str) -> None:
    program = load_program(dm.bundle(list(BUNDLES[bundle].values())))
    for layer in program.layers:
        for label, value in layer.describe():
            assert isinstance(label, str) and isinstance(value, str) and value
