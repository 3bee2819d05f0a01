"""Numerics modes: which interpreter's arithmetic the generated C reproduces bit for bit.

  - `tflm` (the default): TensorFlow Lite Micro's reference kernels.
  - `litert-ref`: LiteRT's reference kernels (`OpResolverType.BUILTIN_REF` of the pinned
    `ai-edge-litert`). They differ from TFLM in FULLY_CONNECTED (int8), which requantizes
    in double precision: round(double(acc) * (double(s_in) * double(s_w) / double(s_out)))
    with round half away from zero, instead of the fixed-point multiplier; in MUL,
    LEAKY_RELU, RELU and PRELU, whose multipliers LiteRT's Prepare computes in float32; in
    RELU6, which LiteRT requantizes to its output scale.
  - `litert`: LiteRT's default interpreter (`Interpreter(model_path=...)`): the XNNPACK
    delegate for the operators it takes, with its own requantization (a float32 scale, round
    to nearest even; tables of its float formulas for the unary operators), LiteRT's
    optimized builtin kernels for the rest (RELU, RELU6, PRELU as LiteRT's, int8 <-> uint8
    QUANTIZE with its vector loop's rounding, SOFTMAX with its float table).
  16x8 layers: XNNPACK takes none; both modes run LiteRT's builtin kernels (see OTHER_TYPES
  and the int16 modules' NUMERICS: LiteRT's double FULLY_CONNECTED and SOFTMAX tables, and
  in `litert` its optimized kernels' ruy FULLY_CONNECTED, gemmlowp LOGISTIC / TANH and
  float -> int16 QUANTIZE).
An operator module whose arithmetic differs in a mode says how in its `NUMERICS` table
(codegen/ops/__init__.py); an operator in `SAME_AS_TFLM` computes as in `tflm`; every
other is refused in the mode.
"""

from __future__ import annotations

from codegen.errors import CodegenError
from codegen.model.ir import DType

MODES = ("tflm", "litert-ref", "litert")
DEFAULT = "tflm"

# Operators (int8 activations) whose arithmetic in a mode is TFLM's, checked against the
# mode's oracle by tests/test_numerics.py. An operator of a mode is one of these or has a
# NUMERICS entry of its own (in the module whose Prepare made the layer); every other is
# refused in that mode (codegen.ops.prepare_layer), since its LiteRT kernel may compute
# something else. The operators that only move, compare or select values (no arithmetic on
# them) compute the same in every interpreter.
_MOVES = frozenset({
    "CONCATENATION", "EXPAND_DIMS", "MAXIMUM", "MINIMUM", "PACK", "PAD", "PADV2",
    "RESHAPE", "RESIZE_NEAREST_NEIGHBOR", "SLICE", "SPLIT", "SPLIT_V", "SQUEEZE",
    "STRIDED_SLICE", "TRANSPOSE", "UNPACK", "MAX_POOL_2D",
})
SAME_AS_TFLM: dict[str, frozenset[str]] = {
    "litert-ref": _MOVES | frozenset({
        "ADD", "AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE",
        "HARD_SWISH", "MEAN", "QUANTIZE", "SOFTMAX", "SUB", "TRANSPOSE_CONV",
    }),
    # LiteRT's optimized AVERAGE_POOL_2D (optimized_integer_ops::AveragePool) rounds as TFLM;
    # its optimized HARD_SWISH (XNNPACK takes it in float only) gives TFLM's values on every
    # int8 input of the operator test models.
    "litert": _MOVES | frozenset({"AVERAGE_POOL_2D", "DEQUANTIZE", "HARD_SWISH"}),
}
# The activation types other than int8 whose layers of an operator a mode reproduces (the
# oracle checked on the operator test models: uint8 QUANTIZE at a model's edges, the 16x8
# operators below, XNNPACK taking none; the operators that only move, compare or select
# values in int16 as in int8); every other non-int8 layer is refused.
_INT16 = frozenset({DType.INT16})
# 16x8 layers: the convolutions (TFLM's arithmetic in LiteRT), RELU, RELU6 and LEAKY_RELU
# (LiteRT's float32 multipliers, RELU6 requantized: relu.py), TRANSPOSE_CONV (LiteRT's
# reference kernel with an int64 scratch is TFLM's), SOFTMAX (LiteRT's double tables:
# softmax_int16.py), LOGISTIC and TANH (TFLM's reference kernels; litert refuses a
# power-of-two input scale: logistic_tanh_int16.py), FULLY_CONNECTED (LiteRT's double
# requantization: fully_connected_int16.py), DEQUANTIZE (TFLM's float(double scale * (x - zp))),
# MUL and PRELU (LiteRT's float32 multipliers), ADD and SUB (TFLM's general path; LiteRT's
# power-of-two path refused: add_sub.py), MEAN and AVERAGE_POOL_2D (TFLM's arithmetic).
_16X8 = {opcode: _INT16 for opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "RELU", "RELU6",
                                       "LEAKY_RELU", "TRANSPOSE_CONV", "SOFTMAX", "LOGISTIC",
                                       "TANH", "FULLY_CONNECTED", "DEQUANTIZE", "MUL",
                                       "ADD", "SUB", "MEAN", "AVERAGE_POOL_2D", "PRELU")}
OTHER_TYPES: dict[str, dict[str, frozenset[DType]]] = {
    "litert-ref": {**_16X8, "QUANTIZE": frozenset({DType.UINT8, DType.INT16})},
    "litert": {**_16X8, "QUANTIZE": frozenset({DType.UINT8, DType.INT16})},
}


def reproduced(mode: str, opcode: str, adapted: bool) -> bool:
    """Whether numerics `mode` reproduces `opcode`: TFLM's arithmetic is the mode's, or the
    operator module adapts the layer to it (its NUMERICS entry)."""
    return mode == DEFAULT or adapted or opcode in SAME_AS_TFLM[mode]


def reproduces_type(mode: str, opcode: str, dtype: DType) -> bool:
    """Whether numerics `mode` reproduces a layer of `opcode` whose activations are `dtype`."""
    return (mode == DEFAULT or dtype is DType.INT8
            or (dtype is DType.INT16 and opcode in _MOVES)
            or dtype in OTHER_TYPES[mode].get(opcode, frozenset()))


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise CodegenError(f"unknown numerics mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode
