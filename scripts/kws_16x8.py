#!/usr/bin/env python3
"""The MLPerf Tiny keyword-spotting DS-CNN, quantized 16x8: BENCHMARKS.md's 16x8 model.

The network is the int8 reference model's (../shared/models/kws_ref_model.tflite): input
49x10x1, CONV_2D 10x4 stride 2 with 64 channels, 4 x (DEPTHWISE_CONV_2D 3x3 + CONV_2D 1x1 with
64 channels), each with ReLU, average pool, Dense 12, softmax. Its weights and biases are read
from that file (dequantized), put into the same Keras graph, and converted by TensorFlow's
16x8 converter (int16 activations, int8 weights, int64 biases, int16 I/O), calibrated on
random inputs over the int8 model's input range. The result computes what the int8 model
computes, with 16-bit activations: the same MACs, for comparing instructions.

    python scripts/kws_16x8.py -o kws_16x8.tflite [--int8 ../shared/models/kws_ref_model.tflite]

Needs TensorFlow (the test extras install it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from codegen.model.ir import Graph, Tensor  # noqa: E402
from codegen.model.tflite import load_model  # noqa: E402

INT8_MODEL = REPO.parent / "shared" / "models" / "kws_ref_model.tflite"
ARCHITECTURE = ["CONV_2D", *["DEPTHWISE_CONV_2D", "CONV_2D"] * 4, "AVERAGE_POOL_2D", "RESHAPE",
                "FULLY_CONNECTED", "SOFTMAX"]
CALIBRATION_SAMPLES = 256


def _real(t: Tensor) -> np.ndarray:
    """A constant's real values: scale * (q - zero point), per channel along its axis."""
    q = t.quant
    shape = [1] * len(t.shape)
    shape[q.axis] = -1 if q.per_channel else 1
    scales = np.asarray(q.scales, dtype=np.float64).reshape(shape)
    zero_points = np.asarray(q.zero_points, dtype=np.float64).reshape(shape)
    return ((np.asarray(t.data, dtype=np.float64) - zero_points) * scales).astype(np.float32)


def float_weights(graph: Graph) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, in Keras
    layout (conv HWIO, depthwise HWC1, dense IO)."""
    layers = []
    for op in graph.operators:
        if op.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        w = _real(graph.tensors[op.inputs[1]])
        b = _real(graph.tensors[op.inputs[2]]).ravel()
        if op.opcode == "CONV_2D":
            w = np.transpose(w, (1, 2, 3, 0))  # [out, h, w, in] -> [h, w, in, out]
        elif op.opcode == "DEPTHWISE_CONV_2D":
            w = np.transpose(w, (1, 2, 3, 0))  # [1, h, w, c] -> [h, w, c, 1]
        else:
            w = w.T  # [units, depth] -> [depth, units]
        layers.append((w, b))
    return layers


def keras_model(weights: list[tuple[np.ndarray, np.ndarray]]):
    import keras

    inp = keras.Input((49, 10, 1), batch_size=1)
    h = keras.layers.Conv2D(64, (10, 4), strides=2, padding="same", activation="relu")(inp)
    convs = [h]
    for _ in range(4):
        h = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(h)
        convs.append(h)
        h = keras.layers.Conv2D(64, 1, padding="same", activation="relu")(h)
        convs.append(h)
    h = keras.layers.AveragePooling2D((25, 5))(h)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Softmax()(keras.layers.Dense(12)(h))
    model = keras.Model(inp, out)
    weighted = [layer for layer in model.layers if layer.get_weights()]
    if len(weighted) != len(weights):
        raise SystemExit(f"the int8 model has {len(weights)} weighted layers, the DS-CNN "
                         f"{len(weighted)}")
    for layer, (w, b) in zip(weighted, weights, strict=True):
        layer.set_weights([w, b])
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--int8", type=Path, default=INT8_MODEL,
                        help="the int8 DS-CNN to take the network from")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    graph = load_model(args.int8)
    opcodes = [op.opcode for op in graph.operators]
    if opcodes != ARCHITECTURE:
        raise SystemExit(f"{args.int8} is not the MLPerf Tiny DS-CNN: {opcodes}")
    x = graph.tensors[graph.inputs[0]]
    low = x.quant.scale * (-128 - x.quant.zero_point)
    high = x.quant.scale * (127 - x.quant.zero_point)
    rng = np.random.default_rng(args.seed)
    calibration = rng.uniform(low, high, (CALIBRATION_SAMPLES, 49, 10, 1)).astype(np.float32)

    from support.int16_models import convert_16x8

    model = keras_model(float_weights(graph))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(convert_16x8(model, [calibration]))
    print(f"wrote {args.out}: the DS-CNN of {args.int8.name}, 16x8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
