"""SVDF test models written with the builder (the converter writes SVDF from no Keras
layer): one operator per case, its state a variable tensor, and all cases side by side in
one bundle model for the C builds.

The scales are chosen from the operand ranges so that the state and the output use their
range without saturating on every step (`spread` > 1 saturates on purpose)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from support.builder import ModelBuilder, Q, activation_code

# std of a full-range uniform int8 value minus a zero point, roughly
_INT8_SPREAD = 74.0


@dataclass(frozen=True)
class SvdfCase:
    depth: int
    units: int
    rank: int
    memory: int
    batch: int = 1
    state: str = "int8"  # the state's and the time weights' type
    state_zero_point: int = 0
    input_zero_point: int = -3
    output_zero_point: int = 2
    activation: str = "NONE"  # TFLM's integer kernel ignores it
    spread: float = 1.0  # >1: the state and the output saturate more often

    @property
    def filters(self) -> int:
        return self.units * self.rank


CASES: dict[str, SvdfCase] = {
    "rank1_memory1": SvdfCase(depth=7, units=4, rank=1, memory=1, state_zero_point=-5),
    "rank1_memory10": SvdfCase(depth=13, units=3, rank=1, memory=10, state_zero_point=4),
    "rank2_memory4_batch2_relu": SvdfCase(depth=6, units=5, rank=2, memory=4, batch=2,
                                          state_zero_point=7, activation="RELU"),
    "rank3_memory7": SvdfCase(depth=20, units=2, rank=3, memory=7, input_zero_point=0,
                              output_zero_point=-128),
    "int16_rank1_memory8": SvdfCase(depth=9, units=6, rank=1, memory=8, state="int16"),
    "int16_rank2_memory5_batch3": SvdfCase(depth=11, units=3, rank=2, memory=5, batch=3,
                                           state="int16"),
    "int8_saturating": SvdfCase(depth=5, units=3, rank=2, memory=3, state_zero_point=-128,
                                input_zero_point=127, output_zero_point=127, spread=40.0),
    # a zero point on an int16 state (TFLM adds it as for int8): products beyond int32
    "int16_zero_point_saturating": SvdfCase(depth=4, units=2, rank=2, memory=6,
                                            state="int16", state_zero_point=-30000,
                                            spread=300.0),
}


def _scales(case: SvdfCase) -> dict[str, float]:
    """Scales such that the feature sums fill about a third of the state's range and the
    time sums a third of the output's."""
    state_max = 127.0 if case.state == "int8" else 32767.0
    x_scale, wf_scale, wt_scale = 0.05, 0.02, 0.03 if case.state == "int8" else 0.0005
    feature_sum = np.sqrt(case.depth) * _INT8_SPREAD * _INT8_SPREAD
    scale_1 = state_max / 3 / feature_sum * case.spread
    state_scale = x_scale * wf_scale / scale_1
    state_spread = state_max / 3
    time_sum = np.sqrt(case.rank * case.memory) * state_max / 2 * state_spread
    scale_2 = 127 / 3 / time_sum * case.spread
    return {"x": x_scale, "wf": wf_scale, "wt": wt_scale, "state": state_scale,
            "y": state_scale * wt_scale / scale_2}


def _add_svdf(b: ModelBuilder, case: SvdfCase, tag: str, seed: int) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    s = _scales(case)
    limit = 127 if case.state == "int8" else 32767
    x = b.add_tensor(f"{tag}x", (case.batch, case.depth), "int8",
                     quant=Q(s["x"], case.input_zero_point))
    wf = b.add_tensor(f"{tag}weights_feature", (case.filters, case.depth), "int8",
                      quant=Q(s["wf"]), data=rng.integers(-127, 128, (case.filters, case.depth)))
    wt = b.add_tensor(f"{tag}weights_time", (case.filters, case.memory), case.state,
                      quant=Q(s["wt"]),
                      data=rng.integers(-limit, limit + 1, (case.filters, case.memory)))
    bias_scale = float(np.float32(s["state"]) * np.float32(s["wt"]))
    bias_limit = int(0.3 / bias_scale) if case.spread == 1.0 else 1 << 30
    bias = b.add_tensor(f"{tag}bias", (case.units,), "int32", quant=Q(bias_scale),
                        data=rng.integers(-bias_limit, bias_limit + 1, case.units))
    state = b.add_tensor(f"{tag}state", (case.batch, case.memory * case.filters), case.state,
                         quant=Q(s["state"], case.state_zero_point), variable=True)
    y = b.add_tensor(f"{tag}y", (case.batch, case.units), "int8",
                     quant=Q(s["y"], case.output_zero_point))
    options = schema.SVDFOptionsT()
    options.rank = case.rank
    options.fusedActivationFunction = activation_code(case.activation)
    b.add_op("SVDF", [x, wf, wt, bias, state], [y], options)
    return x, y


def single(case: SvdfCase, seed: int = 0) -> bytes:
    b = ModelBuilder()
    x, y = _add_svdf(b, case, "", seed)
    b.set_io([x], [y])
    return b.build()


def bundle(cases: list[SvdfCase], seed: int = 0) -> bytes:
    """Every case as its own branch: inputs and outputs in case order."""
    b = ModelBuilder()
    ios = [_add_svdf(b, case, f"c{k}_", seed + k) for k, case in enumerate(cases)]
    b.set_io([x for x, _ in ios], [y for _, y in ios])
    return b.build()
