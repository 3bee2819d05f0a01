#!/usr/bin/env python3
"""The recurrent models of BENCHMARKS.md's recurrent section (issue 12), made once and cached.

- `lstm_kws`: a keyword-spotting-like LSTM classifier: 49 frames of 10 MFCC features, one
  Keras LSTM of 20 units (the last step), Dense 12; converted to int8 by TensorFlow's
  converter (tests/support/lstm_models.py: tf-keras, a representative dataset).
- `lstm_kws_16x8`: the same model in 16x8 form (int16 activations and hidden state, int8
  weights, int64 biases; the converter does not write 16x8 LSTMs, so the int8 model's
  activations are widened as tests/support/lstm_models.py's `to_16x8` does).
- `svdf_kws`: an SVDF keyword-spotting-like stack, one frame of 40 features per invoke:
  SVDF 64 filters (rank 1, memory 8) -> SVDF 32 filters (rank 1, memory 8), int8 states;
  written with the test suite's model builder (TensorFlow's converter writes SVDF from no
  Keras layer), random weights at scales that keep the states in range.
- `lstm_units20_steps16`, `lstm_units32_steps25_dense`, `svdf_kws_d40_u64_r1_m8_int16`: the models
  TFLM + CMSIS-NN was measured on (scripts/tflm_baselines.json, "recurrent"), made by the test
  suite's builders with the same arguments, so that both sides run the same file.

    python scripts/recurrent_models.py [-o DIR]    # prints the paths of the models

The LSTM models need TensorFlow (the test extras install it). Models already in DIR
(default: the test model cache's `recurrent` directory) are kept.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support import lstm_models, svdf_models  # noqa: E402
from support.models import cache_dir  # noqa: E402

MODELS_VERSION = 2
LSTM_KWS = lstm_models.LstmSpec(units=20, steps=49, depth=10, return_sequences=False,
                                dense=12, seed=12)
# (depth, filters, memory) per SVDF layer; rank 1
SVDF_LAYERS = ((40, 64, 8), (64, 32, 8))
# the anchor models (the keys of scripts/tflm_baselines.json's "recurrent" table)
ANCHOR_LSTMS = {
    "lstm_units20_steps16": lstm_models.LstmSpec(units=20, steps=16, depth=8,
                                                 return_sequences=False, seed=7),
    "lstm_units32_steps25_dense": lstm_models.LstmSpec(units=32, steps=25, depth=10,
                                                       return_sequences=False, dense=4, seed=8)}
ANCHOR_SVDF = ("svdf_kws_d40_u64_r1_m8_int16",
               svdf_models.SvdfCase(depth=40, units=64, rank=1, memory=8, state="int16"), 11)


def lstm_kws() -> bytes:
    return lstm_models.lstm_model(LSTM_KWS)


def lstm_kws_16x8() -> bytes:
    return lstm_models.to_16x8(lstm_kws())


def svdf_kws(seed: int = 12) -> bytes:
    from ai_edge_litert import schema_py_generated as schema
    from support.builder import ModelBuilder, Q

    rng = np.random.default_rng(seed)
    b = ModelBuilder("codegen recurrent benchmark: SVDF stack")
    x_q = Q(0.05, -3)
    x = first = b.add_tensor("frame", (1, SVDF_LAYERS[0][0]), "int8", quant=x_q)
    for k, (depth, filters, memory) in enumerate(SVDF_LAYERS):
        wf_scale, wt_scale = 0.02, 0.03
        # feature sums fill about a third of the state's range, time sums a third of the
        # output's (std of a full-range int8 value ~74)
        state_scale = float(np.asarray(x_q.scale)) * wf_scale * np.sqrt(depth) * 74 * 74 / 42
        y_scale = state_scale * wt_scale * np.sqrt(memory) * 63 * 42 / 42
        wf = b.add_tensor(f"svdf{k}_weights_feature", (filters, depth), "int8", quant=Q(wf_scale),
                          data=rng.integers(-127, 128, (filters, depth)))
        wt = b.add_tensor(f"svdf{k}_weights_time", (filters, memory), "int8", quant=Q(wt_scale),
                          data=rng.integers(-127, 128, (filters, memory)))
        bias_scale = float(np.float32(state_scale) * np.float32(wt_scale))
        limit = int(0.3 / bias_scale)
        bias = b.add_tensor(f"svdf{k}_bias", (filters,), "int32", quant=Q(bias_scale),
                            data=rng.integers(-limit, limit + 1, filters))
        state = b.add_tensor(f"svdf{k}_state", (1, memory * filters), "int8",
                             quant=Q(state_scale, 0), variable=True)
        y_q = Q(y_scale, 0)
        y = b.add_tensor(f"svdf{k}_output", (1, filters), "int8", quant=y_q)
        options = schema.SVDFOptionsT()
        options.rank = 1
        b.add_op("SVDF", [x, wf, wt, bias, state], [y], options)
        x, x_q = y, y_q
    b.set_io([first], [x])
    return b.build()


MODELS: dict[str, Callable[[], bytes]] = {
    "lstm_kws": lstm_kws, "lstm_kws_16x8": lstm_kws_16x8, "svdf_kws": svdf_kws,
    **{name: partial(lstm_models.lstm_model, spec) for name, spec in ANCHOR_LSTMS.items()},
    ANCHOR_SVDF[0]: partial(svdf_models.single, ANCHOR_SVDF[1], seed=ANCHOR_SVDF[2])}


def default_dir() -> Path:
    return cache_dir() / f"recurrent-v{MODELS_VERSION}"


def make(out_dir: Path, names: list[str] | None = None) -> list[Path]:
    """The models' files in `out_dir`, made where missing."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or list(MODELS):
        path = out_dir / f"{name}.tflite"
        if not path.is_file():
            data = MODELS[name]()
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out-dir", type=Path, default=None,
                        help="where the models go (default: the test model cache)")
    parser.add_argument("--models", help=f"comma-separated (default: {','.join(MODELS)})")
    args = parser.parse_args(argv)
    names = args.models.split(",") if args.models else None
    for path in make(args.out_dir or default_dir(), names):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
