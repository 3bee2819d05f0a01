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
SAME_AS_TFLM: dict[str, frozenset[str]] = {
    "litert-ref": frozenset({
        "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D",
        "DEQUANTIZE", "EXPAND_DIMS", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "PACK",
        "PAD", "PADV2", "QUANTIZE", "RESHAPE", "RESIZE_NEAREST_NEIGHBOR", "SLICE", "SOFTMAX",
        "SPLIT", "SPLIT_V", "SQUEEZE", "STRIDED_SLICE", "SUB", "TRANSPOSE", "UNPACK",
    }),
    # LiteRT's optimized AVERAGE_POOL_2D (optimized_integer_ops::AveragePool) rounds as TFLM;
    # RESHAPE moves no value. XNNPACK takes neither in the models it was measured on.
    "litert": frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D", "PAD", "PADV2", "RESHAPE"}),
}


def reproduced(mode: str, opcode: str, adapted: bool) -> bool:
    """Whether numerics `mode` reproduces `opcode`: TFLM's arithmetic is the mode's, or the
    operator module adapts the layer to it (its NUMERICS entry)."""
    return mode == DEFAULT or adapted or opcode in SAME_AS_TFLM[mode]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise CodegenError(f"unknown numerics mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode
