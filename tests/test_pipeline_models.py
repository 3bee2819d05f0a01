"""The pipeline's models, end to end: the numpy reference against TFLM (1000 full-range
samples each), and the generated C against the reference on every target."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from support import models
from support.builder import Q, fc_model
from support.op_tests import op_tests
from support.policy import require_file

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"
DEMO = Path(__file__).resolve().parents[1] / "codegen" / "demo"
TFLM_SAMPLES = 1000

# Stacks covering every fused activation and the sizes 1, 3, 17 and 640.
FC_STACKS = {
    "stack_a": ((17, 640, 3), ("relu", "relu6")),
    "stack_b": ((640, 1, 17), ("none", "relu_n1_to_1")),
    "stack_c": ((3, 17, 1, 640), ("relu_n1_to_1", "relu", "none")),
    "stack_d": ((1, 3, 640, 17), ("relu6", "none", "relu")),
}


def _builder_fc(weight_zero_point: int, keep_num_dims: bool, bias: bool) -> bytes:
    rng = np.random.default_rng(7 + weight_zero_point)
    weights = rng.integers(-127, 128, size=(5, 17)).astype(np.int8)
    return fc_model(
        weights, input_q=Q(0.031, -7), weight_q=Q(0.0093, weight_zero_point),
        output_q=Q(0.27, 11), activation="RELU6" if bias else "NONE",
        bias=rng.integers(-5000, 5000, size=5) if bias else None,
        keep_num_dims=keep_num_dims, input_shape=(1, 2, 3, 17) if keep_num_dims else (3, 17),
    )


def _shared(name: str) -> Callable[[], bytes]:
    return lambda: require_file(SHARED / f"{name}.tflite").read_bytes()


MODELS: dict[str, Callable[[], bytes]] = {
    "hello_world": _shared("hello_world_int8"),
    "ad01": _shared("ad01_int8"),
    "demo_per_channel": lambda: (DEMO / "demo_mlp.tflite").read_bytes(),
    "demo_per_tensor": lambda: (DEMO / "demo_mlp_per_tensor.tflite").read_bytes(),
    "float_io": lambda: models.float_io_model(),
    "fc_no_bias_keep_dims": lambda: _builder_fc(0, True, False),
    "fc_weight_zero_point": lambda: _builder_fc(3, False, True),
    **{
        f"{name}_{kind}": (lambda s=sizes, a=acts, pc=(kind == "per_channel"):
                           models.fc_stack(s, a, per_channel=pc))
        for name, (sizes, acts) in FC_STACKS.items()
        for kind in ("per_channel", "per_tensor")
    },
}
TF_MODELS = {"float_io"} | {m for m in MODELS if m.startswith("stack_")}


def _marks(name: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.tf] if name in TF_MODELS else []


CASES = [pytest.param(name, marks=_marks(name)) for name in MODELS]


# The reference against TFLM, the C against the reference on every target and under the
# sanitizers (support.op_tests).
(test_reference_matches_tflm, test_generated_c_matches_reference,
 test_generated_c_is_clean_under_sanitizers) = op_tests(
    MODELS, CASES, tflm_samples=TFLM_SAMPLES)


