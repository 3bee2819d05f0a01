"""Numerics modes: which interpreter's arithmetic the generated C reproduces bit for bit.

  - `tflm` (the default): TensorFlow Lite Micro's reference kernels.
  - `litert-ref`: LiteRT's reference kernels (`OpResolverType.BUILTIN_REF` of the pinned
    `ai-edge-litert`). They differ from TFLM in FULLY_CONNECTED (int8), which requantizes
    in double precision: round(double(acc) * (double(s_in) * double(s_w) / double(s_out)))
    with round half away from zero, instead of the fixed-point multiplier.
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


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise CodegenError(f"unknown numerics mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode
