"""The cases of tests/test_ops_more.py: one operator per `Case` (support.more_models), grouped
into the bundles that share one C build. tests/test_static_analysis.py compiles the bundles
with the warning flags and runs cppcheck on them.
"""

from __future__ import annotations

from support import more_models as mm
from support.more_models import COARSE, WIDE

Q = mm.Q
X8, X32, XB = mm.X, mm.x32, mm.xb

AM = mm.arg_min_max
INDEX_CASES = {
    "arg_max_4d_axis2": AM("ARG_MAX", (2, 3, 17, 5), 2),
    "arg_min_1d": AM("ARG_MIN", (17,), 0, quant=WIDE),
    "arg_max_last_negative": AM("ARG_MAX", (3, 17), -1, quant=COARSE),
    "arg_min_axis1_ones": AM("ARG_MIN", (1, 5, 1, 3), 1),
    "arg_max_axis0_5d": AM("ARG_MAX", (3, 1, 2, 1, 2), -5),
}

G, GND, EL, T = mm.gather, mm.gather_nd, mm.embedding_lookup, mm.table
GATHER_CASES = {
    "gather_axis0_table": G(T((17, 5), 1), X32((3, 4), low=0, high=16)),
    "gather_axis1": G(X8((3, 17, 2)), X32((5,), low=0, high=16), axis=1),
    "gather_last_negative": G(X8((2, 3, 5), quant=WIDE), X32((2, 2), low=0, high=4), axis=-1,
                              quant=WIDE),
    "gather_batch_dims": G(X8((2, 5, 3)), X32((2, 4), low=0, high=4), axis=1, batch_dims=1),
    "gather_batch_dims_negative": G(X8((3, 4, 6, 2)), X32((3, 4, 2), low=0, high=5), axis=2,
                                    batch_dims=-1),
    "gather_constant_indices": G(X8((4, 7)), mm.C([[3, 0], [6, 6]]), axis=1),
    "gather_scalar_index": G(X8((5, 3)), X32((), low=0, high=4)),
    "gather_nd_full": GND(X8((3, 4, 5)), X32((2, 3), low=0, high=2)),
    "gather_nd_rows": GND(T((6, 5, 2), 2, COARSE), X32((4, 1), low=0, high=5), quant=COARSE),
    "gather_nd_pairs": GND(X8((3, 4, 5)), X32((2, 2, 2), low=0, high=2)),
    "gather_nd_constant": GND(X8((3, 4)), mm.C([[2, 3], [0, 0], [1, 2]])),
    "embedding_table": EL(X32((5,), low=0, high=16), T((17, 8), 3)),
    "embedding_3d_table": EL(X32((3,), low=0, high=3), T((4, 2, 3), 4, WIDE), quant=WIDE),
    "embedding_activation_values": EL(mm.C([2, 0, 1, 2]), X8((3, 5))),
}

R = mm.reduce
REDUCE_CASES = {
    "sum_last": R("SUM", (3, 17), [-1], False, Q(0.05, -3), Q(0.4, 10)),
    "sum_spatial_keep": R("SUM", (1, 5, 3, 17), [1, 2], True, WIDE, Q(0.01, -128)),
    "sum_all_repeated": R("SUM", (2, 3, 5), [0, 2, -1, 1], False, COARSE, Q(1000.0, 0)),
    "sum_middle": R("SUM", (2, 17, 3), [1], True, Q(0.1, 0), Q(0.1, 0)),
    "reduce_max_last": R("REDUCE_MAX", (3, 17), [1], False),
    "reduce_max_spatial_keep": R("REDUCE_MAX", (1, 5, 3, 17), [1, 2], True, WIDE),
    "reduce_min_first_two": R("REDUCE_MIN", (2, 3, 5, 3), [0, -3], False, COARSE),
    "reduce_min_all_keep": R("REDUCE_MIN", (3, 1, 5), [0, 1, 2], True),
    "reduce_max_6d": R("REDUCE_MAX", (2, 1, 3, 1, 2, 3), [0, 3, 4], False),
}

RB = mm.resize_bilinear
SPATIAL_CASES = {
    "bilinear_up_2x": RB((1, 3, 5, 3), (6, 10), False, False),
    "bilinear_up_odd_half_pixel": RB((2, 3, 5, 3), (7, 11), False, True, quant=WIDE),
    "bilinear_up_align": RB((1, 3, 5, 17), (7, 11), True, False),
    "bilinear_down": RB((1, 17, 5, 1), (3, 2), False, False, quant=COARSE),
    "bilinear_down_half_pixel": RB((1, 17, 9, 2), (5, 4), False, True),
    "bilinear_down_align": RB((1, 17, 9, 2), (5, 4), True, False),
    "bilinear_one_pixel": RB((1, 1, 1, 17), (3, 5), False, True),
    "bilinear_to_one_align": RB((1, 3, 17, 3), (1, 1), True, False),
    "bilinear_mixed": RB((1, 3, 17, 2), (17, 3), False, True),
}
S2B, B2S, DS = mm.space_to_batch, mm.batch_to_space, mm.depth_space
MOVE_CASES = {
    "s2b_4d_padded": S2B((1, 5, 4, 3), [2, 3], [[1, 2], [2, 0]], quant=Q(0.05, -3)),
    "s2b_4d_batches": S2B((2, 4, 6, 2), [2, 2], [[0, 0], [0, 0]], quant=WIDE),
    "s2b_3d": S2B((1, 17, 3), [4], [[1, 2]]),
    "s2b_block_one": S2B((2, 3, 5, 2), [1, 1], [[1, 0], [0, 1]], quant=COARSE),
    "b2s_4d_cropped": B2S((6, 3, 2, 3), [2, 3], [[1, 2], [2, 0]]),
    "b2s_4d_batches": B2S((8, 2, 3, 2), [2, 2], [[0, 0], [0, 0]], quant=WIDE),
    "b2s_3d": B2S((4, 5, 3), [4], [[1, 2]]),
    "b2s_block_one": B2S((2, 3, 5, 2), [1, 1], [[1, 0], [0, 1]]),
    "depth_to_space_2": DS("DEPTH_TO_SPACE", (1, 3, 5, 12), 2),
    "depth_to_space_3": DS("DEPTH_TO_SPACE", (2, 2, 1, 9), 3, quant=COARSE),
    "depth_to_space_1": DS("DEPTH_TO_SPACE", (1, 2, 3, 5), 1),
    "space_to_depth_2": DS("SPACE_TO_DEPTH", (1, 4, 6, 3), 2),
    "space_to_depth_3": DS("SPACE_TO_DEPTH", (2, 3, 9, 1), 3, quant=WIDE),
}
REV, MP, BT = mm.reverse, mm.mirror_pad, mm.broadcast_to
COPY_CASES = {
    "reverse_last": REV((3, 17), [-1]),
    "reverse_first": REV((3, 17), [0], quant=WIDE),
    "reverse_middle_two": REV((2, 3, 5, 4), [1, 2]),
    "reverse_all_int32": REV((2, 3, 4), [2, 0, 1], "int32", None),
    "reverse_bool": REV((3, 1, 5), [1, 2], "bool", None),
    "reverse_6d": REV((2, 1, 3, 1, 2, 3), [3, 4]),
    "mirror_reflect_2d": MP((3, 17), [[1, 2], [3, 0]], True),
    "mirror_symmetric_4d": MP((1, 3, 5, 2), [[0, 0], [3, 2], [1, 5], [0, 0]], False,
                              quant=COARSE),
    "mirror_reflect_max": MP((2, 3, 4), [[1, 1], [2, 2], [3, 3]], True, dtype="int64"),
    "mirror_symmetric_1d": MP((5,), [[5, 4]], False),
    "broadcast_to_rows": BT((1, 17), [3, 17]),
    "broadcast_to_new_dims": BT((3, 1), [2, 4, 3, 5], quant=WIDE),
    "broadcast_to_int32": BT((1, 2, 1), [3, 2, 4], "int32", None, "int64"),
    "broadcast_to_bool_same": BT((2, 3), [2, 3], "bool", None),
}
FILL_CASES = {
    "fill_int8_activation": mm.Case("FILL", (mm.C([3, 5]), X8(())), (mm.Y((3, 5)),)),
    "fill_int32_activation": mm.Case("FILL", (mm.C([2, 1, 3], "int64"), X32(())),
                                     (mm.Y((2, 1, 3), "int32"),)),
    "zeros_like_int8": mm.Case("ZEROS_LIKE", (X8((3, 5), quant=WIDE),),
                               (mm.Y((3, 5), quant=WIDE),)),
    "zeros_like_int32": mm.Case("ZEROS_LIKE", (X32((17,)),), (mm.Y((17,), "int32"),)),
    "shape_4d": mm.Case("SHAPE", (X8((1, 3, 5, 2)),), (mm.Y((4,), "int32"),),
                        mm.options("Shape", outType=mm.schema.TensorType.INT32)),
    "shape_of_bool": mm.Case("SHAPE", (XB((7,)),), (mm.Y((1,), "int32"),),
                             mm.options("Shape", outType=mm.schema.TensorType.INT32)),
}
DUS = mm.dynamic_update_slice
UPDATE_CASES = {
    "update_slice_2d": DUS(X8((5, 17)), X8((2, 3)), X32((2,), low=-3, high=18)),
    "update_slice_4d_constant_indices": DUS(X8((1, 4, 5, 3), quant=WIDE),
                                            X8((1, 2, 2, 3), quant=WIDE), mm.C([0, 3, 1, 0]),
                                            quant=WIDE),
    "update_slice_int64_indices": DUS(X8((3, 7)), X8((3, 2)), mm.C([-5, 2**40], "int64")),
    "update_slice_int32": DUS(X32((4, 6)), X32((1, 6)), X32((2,), low=-2, high=5), None),
    "update_slice_whole": DUS(X8((2, 3)), X8((2, 3)), X32((2,), low=-1, high=1)),
    "update_slice_constant_operand": DUS(mm.int8_constant((3, 4), mm.DEFAULT_Q, 9),
                                         X8((1, 2)), X32((2,), low=0, high=3)),
}

LG = mm.logical
LOGIC_CASES = {
    "logical_and_same": LG("LOGICAL_AND", (3, 17), (3, 17)),
    "logical_or_broadcast": LG("LOGICAL_OR", (2, 1, 5, 3), (3, 1, 1)),
    "logical_and_constant": LG("LOGICAL_AND", (3, 4), const=[[True, False, True, True]]),
    "logical_or_5d_same": LG("LOGICAL_OR", (2, 1, 3, 1, 2), (2, 1, 3, 1, 2)),
    "logical_not": LG("LOGICAL_NOT", (1, 3, 17)),
    "logical_not_one": LG("LOGICAL_NOT", (1,)),
}

CMP = mm.compare
COMPARISON_CASES = {
    "equal_int8_scales": CMP("EQUAL", X8((3, 17), quant=Q(0.02, 5)),
                             X8((3, 17), quant=Q(0.05, -7))),
    "equal_int8_same_q_rounding": CMP("EQUAL", X8((17,), quant=Q(1e-6, 0)),
                                      X8((17,), quant=Q(1e-6, 0))),
    "not_equal_int8_broadcast": CMP("NOT_EQUAL", X8((2, 1, 5, 3), quant=WIDE),
                                    X8((3, 1, 1), quant=Q(0.3, 100))),
    "greater_int8_constant": CMP("GREATER", X8((3, 5), quant=Q(0.9, -128)),
                                 mm.C([[-128, -1, 0, 5, 127]], "int8", Q(0.5, 3))),
    "greater_equal_int8": CMP("GREATER_EQUAL", X8((1, 17), quant=Q(0.25, 0)),
                              X8((1, 17), quant=Q(0.125, 0))),
    "less_int8_5d_same": CMP("LESS", X8((2, 1, 3, 1, 2)),
                             X8((2, 1, 3, 1, 2), quant=Q(0.049, -2))),
    "less_equal_int8_scalar": CMP("LESS_EQUAL", X8((4, 3)), X8((1,), quant=Q(0.999, 12))),
    "equal_int32": CMP("EQUAL", X32((3, 17), low=-3, high=3), X32((3, 17), low=-3, high=3)),
    "greater_int32_full": CMP("GREATER", X32((5, 3)), X32((1, 3))),
    "less_int32_constant": CMP("LESS", X32((3, 4), low=-5, high=5),
                               mm.C([-(2**31), -1, 0, 2**31 - 1])),
    "greater_equal_int32_extremes": CMP("GREATER_EQUAL", X32((17,)), X32((17,))),
    "less_equal_int32_broadcast": CMP("LESS_EQUAL", X32((2, 3, 1), low=-4, high=4),
                                      X32((1, 5), low=-4, high=4)),
    "equal_bool": CMP("EQUAL", mm.X((3, 5), "bool"), mm.X((3, 5), "bool")),
    "not_equal_bool_broadcast": CMP("NOT_EQUAL", mm.X((3, 1), "bool"),
                                    mm.C([True, False], "bool")),
}

SEL = mm.select_v2
SELECT_CASES = {
    "select_same_shapes": SEL(XB((3, 17)), X8((3, 17)), X8((3, 17))),
    "select_broadcast_3": SEL(XB((2, 1, 5, 1)), X8((3, 1, 1)), X8((1, 5, 3))),
    "select_5d_broadcast": SEL(XB((2, 1, 3, 1, 1)), X8((1, 2, 1, 2, 3)), X8((3, 1, 3))),
    "select_constant_y": SEL(XB((3, 4)), X8((3, 4), quant=WIDE),
                             mm.C([5, -128, 127, 0], "int8", WIDE), quant=WIDE),
    "select_constant_condition": SEL(mm.C([[True], [False], [True]], "bool"), X8((3, 5)),
                                     X8((5,))),
    "select_scalar_condition": SEL(XB((1,)), X8((2, 3), quant=COARSE),
                                   X8((2, 3), quant=COARSE), quant=COARSE),
}

U = mm.unary
UNARY_CASES = {
    "abs_same_scale": U("ABS", (3, 17), Q(0.05, -3), Q(0.05, 7)),
    "abs_rescale_up": U("ABS", (17,), Q(0.1, 100), Q(0.02, -128)),
    "abs_rescale_down": U("ABS", (1, 3, 5), WIDE, Q(0.5, -20)),
    "abs_coarse": U("ABS", (2, 3), COARSE, Q(3.0, 0)),
    "rsqrt_layer_norm": U("RSQRT", (1, 17), Q(0.003, -128), Q(0.2, -128), low=-128),
    "rsqrt_mid_zero_point": U("RSQRT", (3, 5), Q(0.5, -10), Q(0.01, -100), low=-10),
    "rsqrt_fine": U("RSQRT", (17,), Q(1e-4, -128), Q(1.5, 0), low=-128),
    "rsqrt_coarse": U("RSQRT", (4,), Q(30.0, 27), Q(0.004, 3), low=27),
    "elu_typical": U("ELU", (3, 17), Q(0.05, 10), Q(0.04, -60)),
    "elu_wide_input": U("ELU", (17,), Q(0.2, 0), Q(0.1, -118)),
    "elu_fine": U("ELU", (2, 5), WIDE, WIDE),
    "elu_coarse_output": U("ELU", (5,), Q(0.01, -128), COARSE),
}

B = mm.binary
ARITHMETIC_CASES = {
    "sqdiff_layer_norm": B("SQUARED_DIFFERENCE", X8((1, 5, 17), quant=Q(0.04, 3)),
                           X8((1, 5, 1), quant=Q(0.02, -1)), Q(0.08, -128)),
    "sqdiff_same_scales": B("SQUARED_DIFFERENCE", X8((3, 17)), X8((3, 17)), Q(0.05, -128)),
    "sqdiff_broadcast_4d": B("SQUARED_DIFFERENCE", X8((2, 1, 5, 3), quant=WIDE),
                             X8((3, 1, 1), quant=COARSE), Q(200.0, 10)),
    "sqdiff_constant": B("SQUARED_DIFFERENCE", X8((3, 4)),
                         mm.C([[1, -128, 127, 0]], "int8", Q(0.1, 0)), Q(0.01, -100)),
    "sqdiff_int32": B("SQUARED_DIFFERENCE", X32((3, 17)), X32((3, 17))),
    "sqdiff_int32_small": B("SQUARED_DIFFERENCE", X32((2, 3, 1), low=-40000, high=40000),
                            X32((1, 5), low=-40000, high=40000)),
}

BMM, K8 = mm.batch_matmul, mm.int8_constant
MATMUL_CASES = {
    "bmm_2d": BMM(X8((3, 17), quant=Q(0.02, 3)), X8((17, 5), quant=Q(0.03, -7))),
    "bmm_adj_y_attention": BMM(X8((1, 2, 5, 16), quant=Q(0.05, -1)),
                               X8((1, 2, 7, 16), quant=Q(0.04, 2)), adj_y=True,
                               out_q=Q(0.9, 10)),
    "bmm_adj_x": BMM(X8((2, 9, 3)), X8((2, 9, 4), quant=WIDE), adj_x=True, out_q=Q(0.01, 0)),
    "bmm_both_adjoints_broadcast": BMM(X8((3, 1, 6, 2)), X8((4, 5, 6)), adj_x=True,
                                       adj_y=True),
    "bmm_5d_broadcast": BMM(X8((2, 1, 3, 2, 4)), X8((1, 3, 1, 4, 3)), out_q=Q(0.3, 0)),
    "bmm_constant_rhs_engine": BMM(X8((1, 6, 16), quant=Q(0.05, -2)),
                                   K8((16, 12), Q(0.01, 0), 1), out_q=Q(0.2, 3)),
    "bmm_constant_rhs_adj_y_engine": BMM(X8((2, 3, 24), quant=Q(0.05, 5)),
                                         K8((8, 24), Q(0.01, 0), 2), adj_y=True),
    "bmm_constant_rhs_zero_point": BMM(X8((4, 17)), K8((17, 3), Q(0.02, 9), 3)),
    "bmm_constant_rhs_batched": BMM(X8((2, 3, 5)), K8((2, 5, 4), Q(0.01, 0), 4)),
    "bmm_constant_lhs": BMM(K8((3, 5), Q(0.1, -3), 5), X8((2, 5, 4), quant=COARSE),
                            out_q=Q(2000.0, 1)),
    "bmm_constant_rhs_adj_x": BMM(X8((8, 3)), K8((8, 5), Q(0.01, 0), 6), adj_x=True),
}

CAST_CASES = {
    "cast_int8_int32": mm.Case("CAST", (X8((3, 17)),), (mm.Y((3, 17), "int32"),)),
    "cast_int32_int8": mm.Case("CAST", (X32((17,)),), (mm.Y((17,), quant=WIDE),)),
    "cast_bool_int8": mm.Case("CAST", (XB((2, 3)),), (mm.Y((2, 3)),)),
    "cast_bool_int32": mm.Case("CAST", (XB((4,)),), (mm.Y((4,), "int32"),)),
    "cast_int8_int8": mm.Case("CAST", (X8((5,)),), (mm.Y((5,), quant=COARSE),)),
    "cast_int32_int32": mm.Case("CAST", (X32((1, 3)),), (mm.Y((1, 3), "int32"),)),
}

SUM_Q = Q(0.05, -3)
ACCUMULATE_CASES = {
    "add_n_two": mm.add_n([X8((3, 17)), X8((3, 17))], Q(0.1, 2)),
    "add_n_three_with_constant": mm.add_n([X8((2, 5), quant=WIDE),
                                           mm.int8_constant((2, 5), WIDE, 7),
                                           X8((2, 5), quant=WIDE)], Q(0.002, -1)),
    "add_n_twenty_wraps": mm.add_n([X8((17,), quant=Q(0.1, 100))] * 20, Q(0.5, -40)),
    "add_n_coarse": mm.add_n([X8((4,), quant=COARSE)] * 4, Q(400.0, 0)),
    "cumsum_last": mm.cumsum((3, 17), -1, False, False, SUM_Q, Q(0.3, 5)),
    "cumsum_exclusive": mm.cumsum((3, 17), 1, True, False, WIDE, Q(0.01, -128)),
    "cumsum_reverse": mm.cumsum((5, 4, 3), 0, False, True, Q(0.02, 10), Q(0.05, 0)),
    "cumsum_exclusive_reverse": mm.cumsum((2, 6, 3), -2, True, True),
    "cumsum_long_wraps": mm.cumsum((40,), 0, False, False, Q(0.1, -128), Q(0.2, 0)),
}

DIVIDEND = Q(0.05, 3)
DIV_CASES = {
    "div_int8_positive_divisor": mm.binary("DIV", X8((3, 17), quant=DIVIDEND),
                                           mm.X((3, 17), quant=Q(0.05, -128), low=-127),
                                           Q(0.0005, 2), options=mm.options("Div")),
    "div_int8_negative_divisor_broadcast": mm.binary(
        "DIV", X8((2, 3, 5), quant=Q(0.2, -1)), mm.X((3, 1), quant=Q(0.01, 127), high=126),
        Q(0.1, -5), options=mm.options("Div")),
    "div_int8_relu": mm.binary("DIV", X8((17,), quant=Q(0.1, 0)),
                               mm.X((17,), quant=Q(0.1, -128), low=-127), Q(0.001, -128),
                               options=mm.options("Div", fusedActivationFunction=1)),
    "div_int32": mm.binary("DIV", X32((3, 17)), X32((3, 17), low=1, high=2**31 - 1),
                           None, options=mm.options("Div")),
    "div_int32_negative_relu6": mm.binary("DIV", X32((2, 5), low=-100, high=100),
                                          X32((5,), low=-9, high=-1), None,
                                          options=mm.options("Div", fusedActivationFunction=3)),
}

L2_Q = Q(1 / 128, 0)
NORM_CASES = {
    "l2_norm_rows": mm.unary("L2_NORMALIZATION", (3, 17), Q(0.05, -3), L2_Q),
    "l2_norm_4d": mm.unary("L2_NORMALIZATION", (1, 2, 3, 5), WIDE, L2_Q),
    "l2_norm_1d_coarse": mm.unary("L2_NORMALIZATION", (7,), COARSE, L2_Q),
    "l2_norm_single": mm.unary("L2_NORMALIZATION", (4, 1), Q(0.1, 5), L2_Q),
}

LOG_Q = Q(16 / 256, 127)
LOG_SOFTMAX_CASES = {
    "log_softmax_rows": mm.unary("LOG_SOFTMAX", (3, 17), Q(0.1, -3), LOG_Q),
    "log_softmax_wide_input": mm.unary("LOG_SOFTMAX", (2, 1, 5), Q(0.9, 100), LOG_Q),
    "log_softmax_fine_input": mm.unary("LOG_SOFTMAX", (64,), Q(0.002, -128), LOG_Q),
    "log_softmax_single": mm.unary("LOG_SOFTMAX", (4, 1), Q(0.05, 0), LOG_Q),
}


# Dilated convolutions written as SPACE_TO_BATCH_ND -> convolution -> BATCH_TO_SPACE_ND
# (tests/test_fusion.py).
DILATED_CHAINS = {
    "conv_same": mm.Dilated((1, 9, 11, 3), (2, 2), (3, 3)),
    "conv_valid_zero_point_0": mm.Dilated((1, 9, 11, 3), (2, 3), (3, 3), padding="VALID",
                                          in_q=Q(0.05, 0), seed=1),
    "conv_same_relu_no_bias": mm.Dilated((1, 6, 7, 8), (3, 2), (3, 2), out_c=5, bias=False,
                                         in_q=Q(0.03, -128), activation="RELU", seed=2),
    "depthwise_same_batches": mm.Dilated((2, 7, 5, 4), (2, 2), (3, 2), depthwise=True,
                                         in_q=Q(0.02, -128), activation="RELU6", seed=3),
    "depthwise_valid": mm.Dilated((1, 11, 9, 3), (3, 3), (2, 2), depthwise=True,
                                  padding="VALID", in_q=Q(0.1, 37), seed=4),
    "conv1d_same": mm.Dilated((1, 17, 3), (4,), (1, 3), seed=5),
    "conv1d_valid_no_bias": mm.Dilated((1, 17, 5), (2,), (1, 3), padding="VALID", bias=False,
                                       in_q=Q(0.01, 90), seed=6),
}


# Three bundles: each is one C build per target (tests/test_ops_more.py) and one model for the
# warning flags and cppcheck (tests/test_static_analysis.py).
BUNDLES: dict[str, dict[str, mm.Case | mm.Dilated]] = {
    "indices_logic": {**INDEX_CASES, **REDUCE_CASES, **GATHER_CASES, **LOGIC_CASES,
                      **COMPARISON_CASES, **SELECT_CASES, **CAST_CASES},
    "arithmetic": {**UNARY_CASES, **ARITHMETIC_CASES, **ACCUMULATE_CASES, **DIV_CASES,
                   **NORM_CASES, **LOG_SOFTMAX_CASES, **MATMUL_CASES},
    "data": {**SPATIAL_CASES, **MOVE_CASES, **COPY_CASES, **FILL_CASES, **UPDATE_CASES,
             **{f"dilated_{name}": d for name, d in DILATED_CHAINS.items()}},
}
CASES = {name: case for cases in BUNDLES.values() for name, case in cases.items()}
