"""Numerics modes: which interpreter's arithmetic the generated C reproduces bit for bit.

  - `tflm` (the default): TensorFlow Lite Micro's reference kernels.
  - `litert-ref`: LiteRT's reference kernels (`OpResolverType.BUILTIN_REF` of the pinned
    `ai-edge-litert`). They differ from TFLM in FULLY_CONNECTED (int8), which requantizes
    in double precision: round(double(acc) * (double(s_in) * double(s_w) / double(s_out)))
    with round half away from zero, instead of the fixed-point multiplier; and in MUL,
    whose multiplier LiteRT's Prepare computes in float32.
  - `litert`: LiteRT's default interpreter (`Interpreter(model_path=...)`): the XNNPACK
    delegate for the operators it takes, with its own requantization (a float32 scale, round
    to nearest even), LiteRT's optimized builtin kernels for the rest.
An operator module whose arithmetic differs in a mode says how in its `NUMERICS` table
(codegen/ops/__init__.py); every other operator computes as in `tflm`.
"""

from __future__ import annotations

from codegen.errors import CodegenError

MODES = ("tflm", "litert-ref", "litert")
DEFAULT = "tflm"

# Operators (int8 activations) whose arithmetic in a mode is TFLM's, checked against the
# mode's oracle by tests/test_numerics.py. An operator of a mode is one of these or has a
# NUMERICS entry of its own; every other is refused in that mode (codegen.ops.prepare_layer),
# since its LiteRT kernel may compute something else (LiteRT's reference LEAKY_RELU,
# HARD_SWISH and LOGISTIC do; its PRELU takes fewer shapes).
# The operators that only move, compare or select values (no arithmetic on them): every
# interpreter computes the same.
_MOVES = frozenset({
    "CONCATENATION", "EXPAND_DIMS", "MAXIMUM", "MINIMUM", "PACK", "PAD", "PADV2",
    "RESHAPE", "RESIZE_NEAREST_NEIGHBOR", "SLICE", "SPLIT", "SPLIT_V", "SQUEEZE",
    "STRIDED_SLICE", "TRANSPOSE", "UNPACK", "MAX_POOL_2D",
})
SAME_AS_TFLM: dict[str, frozenset[str]] = {
    "litert-ref": _MOVES | frozenset({
        "ADD", "AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE",
        "HARD_SWISH", "MEAN", "QUANTIZE", "RELU", "SOFTMAX", "SUB",
    }),
    # LiteRT's optimized AVERAGE_POOL_2D (optimized_integer_ops::AveragePool) rounds as TFLM.
    # XNNPACK's HARD_SWISH and RELU tables, and its float-to-int8 QUANTIZE, give TFLM's values
    # on the operator test models (every int8 input value).
    "litert": _MOVES | frozenset({"AVERAGE_POOL_2D", "DEQUANTIZE", "HARD_SWISH", "RELU"}),
}
# Operators whose layers of other activation types than int8 a mode reproduces (uint8
# QUANTIZE at a model's edges); every other non-int8 layer is refused in the modes.
BEYOND_INT8: dict[str, frozenset[str]] = {
    "litert-ref": frozenset({"QUANTIZE"}),
    "litert": frozenset({"QUANTIZE"}),
}


def reproduced(mode: str, opcode: str, adapted: bool) -> bool:
    """Whether numerics `mode` reproduces `opcode`: TFLM's arithmetic is the mode's, or the
    operator module adapts the layer to it (its NUMERICS entry)."""
    return mode == DEFAULT or adapted or opcode in SAME_AS_TFLM[mode]


def reproduces_type(mode: str, opcode: str, int8: bool) -> bool:
    """Whether numerics `mode` reproduces a layer of `opcode` whose activations are int8 or,
    `int8` False, another type."""
    return mode == DEFAULT or int8 or opcode in BEYOND_INT8[mode]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise CodegenError(f"unknown numerics mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode
