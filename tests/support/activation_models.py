"""Activation models for tests/test_ops_activations.py: one-operator flatbuffers from the
builder (exact scales, zero points and options) and Keras layers through the converter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from support.builder import ModelBuilder, Q
from support.models import cached, convert_int8

FACTORY_VERSION = 2


def _options(opcode: str, **values: float) -> object | None:
    if opcode == "SOFTMAX":
        options = schema.SoftmaxOptionsT()
        options.beta = values.get("beta", 1.0)
        return options
    if opcode == "LEAKY_RELU":
        options = schema.LeakyReluOptionsT()
        options.alpha = values.get("alpha", 0.2)
        return options
    return None


def unary_model(opcode: str, shape: Sequence[int], input_q: Q, output_q: Q,
                **options: float) -> bytes:
    """One int8 operator of one input: input -> OPCODE -> output (same shape)."""
    b = ModelBuilder(f"{opcode.lower()} test model")
    x = b.add_tensor("input", shape, "int8", quant=input_q)
    y = b.add_tensor("output", shape, "int8", quant=output_q)
    b.add_op(opcode, [x], [y], _options(opcode, **options))
    b.set_io([x], [y])
    return b.build()


def chain_model(opcodes: Sequence[str], shape: Sequence[int], quants: Sequence[Q],
                options: Sequence[dict[str, float]] | None = None) -> bytes:
    """Several activations in a row; quants[i] is the quantization of tensor i (quants[0]
    the input, quants[-1] the output). A PRELU gets a random constant alpha per channel
    (the last dimension), quantized with scale 0.01 and zero point 3."""
    if len(quants) != len(opcodes) + 1:
        raise ValueError("one quantization per tensor")
    options = options or [{} for _ in opcodes]
    rng = np.random.default_rng(len(opcodes))
    b = ModelBuilder("activation chain")
    tensors = [b.add_tensor(f"t{i}", shape, "int8", quant=q) for i, q in enumerate(quants)]
    for i, opcode in enumerate(opcodes):
        if opcode == "PRELU":
            alpha = rng.integers(-128, 128, size=shape[-1:]).astype(np.int8)
            a = b.add_tensor(f"alpha{i}", alpha.shape, "int8", quant=Q(0.01, 3), data=alpha)
            b.add_op(opcode, [tensors[i], a], [tensors[i + 1]])
            continue
        b.add_op(opcode, [tensors[i]], [tensors[i + 1]], _options(opcode, **options[i]))
    b.set_io([tensors[0]], [tensors[-1]])
    return b.build()


@dataclass(frozen=True)
class Unary:
    """One operator of a fan-out model: its own input and output of `shape`."""

    opcode: str
    input_q: Q
    output_q: Q
    shape: tuple[int, ...] = (1, 256)
    options: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Prelu:
    """A PRELU of a fan-out model: input of `shape`, constant `alpha` (int8)."""

    shape: tuple[int, ...]
    alpha: np.ndarray
    input_q: Q
    alpha_q: Q
    output_q: Q


def fanout_model(specs: Sequence[Unary | Prelu], description: str = "fan-out") -> bytes:
    """Independent operators side by side: spec i reads graph input i and writes graph
    output i, so that each sees its own full-range input while one build covers them all."""
    b = ModelBuilder(description)
    inputs, outputs = [], []
    for i, spec in enumerate(specs):
        x = b.add_tensor(f"input{i}", spec.shape, "int8", quant=spec.input_q)
        if isinstance(spec, Prelu):
            a = b.add_tensor(f"alpha{i}", spec.alpha.shape, "int8", quant=spec.alpha_q,
                             data=spec.alpha)
            out_shape = np.broadcast_shapes(tuple(spec.shape), spec.alpha.shape)
            y = b.add_tensor(f"output{i}", out_shape, "int8", quant=spec.output_q)
            b.add_op("PRELU", [x, a], [y])
        else:
            y = b.add_tensor(f"output{i}", spec.shape, "int8", quant=spec.output_q)
            b.add_op(spec.opcode, [x], [y], _options(spec.opcode, **dict(spec.options)))
        inputs.append(x)
        outputs.append(y)
    b.set_io(inputs, outputs)
    return b.build()


def prelu_model(input_shape: Sequence[int], alpha: np.ndarray, *, input_q: Q, alpha_q: Q,
                output_q: Q, output_shape: Sequence[int] | None = None) -> bytes:
    """input -> PRELU(constant int8 alpha) -> output."""
    out_shape = (tuple(output_shape) if output_shape is not None
                 else np.broadcast_shapes(tuple(input_shape), alpha.shape))
    b = ModelBuilder("prelu test model")
    x = b.add_tensor("input", input_shape, "int8", quant=input_q)
    a = b.add_tensor("alpha", alpha.shape, "int8", quant=alpha_q, data=alpha)
    y = b.add_tensor("output", out_shape, "int8", quant=output_q)
    b.add_op("PRELU", [x, a], [y])
    b.set_io([x], [y])
    return b.build()


# -- Keras layers through the converter --------------------------------------------------


def keras_activations(shape: Sequence[int] = (4, 5, 17), *, seed: int = 0,
                      cache: Path | None = None) -> bytes:
    """One input of `shape` (no batch) feeding every activation layer but PReLU side by
    side, one output each: Softmax, sigmoid, tanh, hard_swish, relu, relu6, LeakyReLU(0.3).
    (With several outputs the converter lowers PReLU to float arithmetic instead of PRELU.)
    Representative inputs are uniform in [-4, 4]."""
    params = {"shape": [int(d) for d in shape], "seed": seed, "version": FACTORY_VERSION}

    def make() -> bytes:
        import keras

        keras.utils.set_random_seed(seed)
        x = keras.Input(tuple(shape))
        outputs = [
            keras.layers.Softmax()(x),
            *(keras.layers.Activation(kind)(x)
              for kind in ("sigmoid", "tanh", "hard_swish", "relu", "relu6")),
            keras.layers.LeakyReLU(negative_slope=0.3)(x),
        ]
        model = keras.Model(x, outputs)
        rng = np.random.default_rng(seed)
        return convert_int8(model, rng.uniform(-4, 4, (128, *shape)).astype(np.float32))

    return cached("keras_activations", params, make, cache)


def keras_prelu(shared_axes: Sequence[int] = (), shape: Sequence[int] = (4, 5, 17), *,
                seed: int = 0, cache: Path | None = None) -> bytes:
    """A Keras PReLU on inputs of `shape` (alpha uniform in [-0.6, 0.6], shared over
    `shared_axes`), converted to one PRELU with a constant alpha."""
    params = {"shape": [int(d) for d in shape], "shared_axes": [int(a) for a in shared_axes],
              "seed": seed, "version": FACTORY_VERSION}

    def make() -> bytes:
        import keras

        keras.utils.set_random_seed(seed)
        x = keras.Input(tuple(shape))
        y = keras.layers.PReLU(
            alpha_initializer=keras.initializers.RandomUniform(-0.6, 0.6, seed=seed),
            shared_axes=list(shared_axes) or None)(x)
        rng = np.random.default_rng(seed)
        return convert_int8(keras.Model(x, y),
                            rng.uniform(-4, 4, (128, *shape)).astype(np.float32))

    return cached("keras_prelu", params, make, cache)


def keras_mlp(*, seed: int = 0, cache: Path | None = None) -> bytes:
    """A classifier with activations between Dense layers, as a model would use them:
    16 -> Dense 32, tanh -> Dense 17, LeakyReLU(0.1) -> Dense 17, hard_swish -> Dense 12,
    sigmoid -> Dense 10, softmax."""
    params = {"seed": seed, "version": FACTORY_VERSION}

    def make() -> bytes:
        import keras

        keras.utils.set_random_seed(seed)
        x = keras.Input((16,))
        h = keras.layers.Dense(32, activation="tanh")(x)
        h = keras.layers.LeakyReLU(negative_slope=0.1)(keras.layers.Dense(17)(h))
        h = keras.layers.Dense(17, activation="hard_swish")(h)
        h = keras.layers.Dense(12, activation="sigmoid")(h)
        y = keras.layers.Dense(10, activation="softmax")(h)
        model = keras.Model(x, y)
        rng = np.random.default_rng(seed)
        return convert_int8(model, rng.uniform(-2, 2, (128, 16)).astype(np.float32))

    return cached("keras_activation_mlp", params, make, cache)
