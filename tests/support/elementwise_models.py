"""Models for the elementwise operators (ADD, SUB, MUL, MAXIMUM, MINIMUM, MEAN,
CONCATENATION): builder models with exact control of every scale, zero point and shape, and
Keras models through the real converter.

A builder model here has several inputs and one output per operator, so that one build covers
many shape/scale/activation combinations while a mismatch still names the operator (its
output index). `Net` writes such graphs in a few lines.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from support.builder import ModelBuilder, Q, activation_code, fc_options
from support.models import cached, convert_int8

REPRESENTATIVE = 128


def f32(value: float) -> float:
    """The float32 a scale becomes in the flatbuffer."""
    return float(np.float32(value))


# -- options -------------------------------------------------------------------------------


def binary_options(opcode: str, activation: str = "NONE") -> object | None:
    """The options object of ADD/SUB/MUL (with a fused activation) or MAXIMUM/MINIMUM."""
    kind = {"ADD": schema.AddOptionsT, "SUB": schema.SubOptionsT,
            "MUL": schema.MulOptionsT}.get(opcode)
    if kind is None:
        return schema.MaximumMinimumOptionsT()
    options = kind()
    options.fusedActivationFunction = activation_code(activation)
    return options


def concat_options(axis: int, activation: str = "NONE") -> object:
    options = schema.ConcatenationOptionsT()
    options.axis = axis
    options.fusedActivationFunction = activation_code(activation)
    return options


def reducer_options(keep_dims: bool) -> object:
    options = schema.ReducerOptionsT()
    options.keepDims = keep_dims
    return options


def mean_shape(shape: Sequence[int], axes: Sequence[int], keep_dims: bool) -> tuple[int, ...]:
    resolved = {a % len(shape) for a in axes}
    return tuple(1 if d in resolved else n for d, n in enumerate(shape)
                 if keep_dims or d not in resolved)


# -- graphs --------------------------------------------------------------------------------


class Net:
    """A builder graph: `input`/`const` make tensors, operator methods add one operator and
    return its output tensor, `output` marks graph outputs, `build` writes the model."""

    def __init__(self, description: str, seed: int = 0) -> None:
        self.b = ModelBuilder(description)
        self.rng = np.random.default_rng(seed)
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.shapes: dict[int, tuple[int, ...]] = {}
        self.scales: dict[int, float] = {}
        self._count = 0

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}{self._count}"

    def input(self, shape: Sequence[int], q: Q) -> int:
        t = self.b.add_tensor(self._name("in"), shape, quant=q)
        self.inputs.append(t)
        self.shapes[t], self.scales[t] = tuple(shape), q.scales[0]
        return t

    def const(self, shape: Sequence[int], q: Q, values: np.ndarray | None = None) -> int:
        data = values if values is not None else self.rng.integers(-128, 128, size=shape)
        t = self.b.add_tensor(self._name("const"), shape, quant=q, data=data)
        self.shapes[t] = tuple(shape)
        return t

    def _out(self, shape: Sequence[int], q: Q) -> int:
        t = self.b.add_tensor(self._name("t"), shape, quant=q)
        self.shapes[t], self.scales[t] = tuple(shape), q.scales[0]
        return t

    def binary(self, opcode: str, a: int, b: int, q: Q, activation: str = "NONE") -> int:
        shape = tuple(int(d) for d in np.broadcast_shapes(self.shapes[a], self.shapes[b]))
        y = self._out(shape, q)
        self.b.add_op(opcode, [a, b], [y], binary_options(opcode, activation))
        return y

    def mean(self, x: int, axes: Sequence[int], keep_dims: bool, q: Q) -> int:
        axis = self.b.add_tensor(self._name("axes"), (len(axes),), "int32",
                                 data=np.array(axes, dtype=np.int32))
        y = self._out(mean_shape(self.shapes[x], axes, keep_dims), q)
        self.b.add_op("MEAN", [x, axis], [y], reducer_options(keep_dims))
        return y

    def concat(self, xs: Sequence[int], axis: int, q: Q, activation: str = "NONE") -> int:
        shapes = [self.shapes[x] for x in xs]
        ax = axis % len(shapes[0])
        shape = list(shapes[0])
        shape[ax] = sum(s[ax] for s in shapes)
        y = self._out(shape, q)
        self.b.add_op("CONCATENATION", list(xs), [y], concat_options(axis, activation))
        return y

    def fully_connected(self, x: int, units: int, q: Q, activation: str = "NONE") -> int:
        depth = self.shapes[x][-1]
        w_scale = 0.02
        w = self.b.add_tensor(self._name("w"), (units, depth), quant=Q(w_scale),
                              data=self.rng.integers(-127, 128, size=(units, depth)))
        bias = self.b.add_tensor(self._name("bias"), (units,), "int32",
                                 quant=Q(f32(self.scales[x]) * f32(w_scale)),
                                 data=self.rng.integers(-3000, 3000, size=units))
        y = self._out((*self.shapes[x][:-1], units), q)
        self.b.add_op("FULLY_CONNECTED", [x, w, bias], [y], fc_options(activation))
        return y

    def output(self, *tensors: int) -> None:
        self.outputs.extend(tensors)

    def build(self) -> bytes:
        self.b.set_io(self.inputs, self.outputs)
        return self.b.build()


# -- builder models ------------------------------------------------------------------------


def add_sub_model() -> bytes:
    """ADD and SUB: every fused activation, extreme scale ratios (0.001 against 10),
    broadcasts of 4-D, 5-D and 6-D shapes and of different ranks, a constant operand on
    either side (a bias-like (1,1,1,17) and a scalar) and the same tensor on both inputs."""
    n = Net("add/sub")
    a = n.input((1, 5, 3, 17), Q(f32(0.02), -3))
    b = n.input((1, 1, 1, 17), Q(f32(10.0), 5))
    c = n.input((1, 5, 1, 3), Q(f32(0.001), 127))
    d = n.input((1, 1, 4, 3), Q(f32(0.5), -128))
    e = n.input((2, 1, 3, 1, 5, 1), Q(f32(0.07), 0))
    f = n.input((4, 1, 2, 5, 3), Q(f32(0.03), 9))
    g = n.input((3, 1, 2), Q(f32(0.25), -1))
    h = n.input((2, 1), Q(f32(0.011), 40))
    n.output(
        n.binary("ADD", a, b, Q(f32(9.0), -7), "RELU"),
        n.binary("SUB", b, a, Q(f32(0.01), 2), "RELU_N1_TO_1"),
        n.binary("ADD", c, d, Q(f32(0.6), 3)),
        n.binary("SUB", d, c, Q(f32(0.3), -100), "RELU6"),
        n.binary("ADD", e, f, Q(f32(0.1), -2)),
        n.binary("SUB", a, n.const((1, 1, 1, 17), Q(f32(0.04), 2)), Q(f32(0.05), -10), "RELU"),
        n.binary("SUB", n.const((), Q(f32(0.1), 0)), a, Q(f32(0.07), 1)),
        n.binary("ADD", a, a, Q(f32(0.04), -3)),
        n.binary("SUB", g, h, Q(f32(0.2), 0), "RELU6"),
    )
    return n.build()


def mul_model() -> bytes:
    """MUL: every fused activation, multipliers above 1 (positive shift) and tiny ones,
    broadcasts up to 6-D, a constant operand and the square of a tensor."""
    n = Net("mul", seed=1)
    a = n.input((1, 5, 3, 17), Q(f32(0.02), -3))
    b = n.input((1, 1, 1, 17), Q(f32(10.0), 5))
    c = n.input((1, 5, 1, 3), Q(f32(0.5), 7))
    d = n.input((1, 1, 4, 3), Q(f32(0.25), -128))
    e = n.input((2, 1, 3, 1, 5, 1), Q(f32(0.07), 0))
    f = n.input((4, 1, 2, 5, 3), Q(f32(0.03), 9))
    n.output(
        n.binary("MUL", c, d, Q(f32(0.1), 4), "RELU"),  # 0.5 * 0.25 / 0.1 > 1
        n.binary("MUL", a, b, Q(f32(50.0), -1)),
        n.binary("MUL", a, a, Q(f32(0.003), -128), "RELU6"),
        n.binary("MUL", n.const((1, 1, 1, 17), Q(f32(0.01), -5)), a, Q(f32(0.0002), 3),
                 "RELU_N1_TO_1"),
        n.binary("MUL", e, f, Q(f32(0.01), 2)),
        n.binary("MUL", d, c, Q(f32(3.0), 0)),
    )
    return n.build()


def maximum_minimum_model() -> bytes:
    """MAXIMUM and MINIMUM: broadcasts up to 6-D, a constant operand, the same tensor."""
    n = Net("maximum/minimum", seed=2)
    qa, qc, qe = Q(f32(0.02), -3), Q(f32(0.5), 7), Q(f32(0.07), 0)
    a = n.input((1, 5, 3, 17), qa)
    b = n.input((1, 1, 1, 17), qa)
    c = n.input((1, 5, 1, 3), qc)
    d = n.input((1, 1, 4, 3), qc)
    e = n.input((2, 1, 3, 1, 5, 1), qe)
    f = n.input((4, 1, 2, 5, 3), qe)
    n.output(
        n.binary("MAXIMUM", a, b, qa),
        n.binary("MINIMUM", d, c, qc),
        n.binary("MAXIMUM", n.const((1, 1, 3, 1), qa), a, qa),
        n.binary("MINIMUM", a, a, qa),
        n.binary("MAXIMUM", e, f, qe),
        n.binary("MINIMUM", f, e, qe),
    )
    return n.build()


def mean_model() -> bytes:
    """MEAN: axes (1, 2) of NHWC with keep_dims true and false, with the output quantized
    like the input and not (the paths older TFLMs special-cased), negative, repeated and
    single axes, all axes, 5-D and 6-D inputs; one input read by several MEANs."""
    n = Net("mean", seed=3)
    q = Q(f32(0.05), 3)
    x = n.input((1, 5, 7, 17), q)
    z = n.input((2, 3, 4, 1, 5), Q(f32(0.9), -128))
    w = n.input((2, 1, 3, 2, 1, 3), Q(f32(0.04), 60))
    n.output(
        n.mean(x, (1, 2), True, q),
        n.mean(x, (2, 1), False, Q(f32(0.02), -5)),
        n.mean(x, (-3, -2), True, Q(f32(0.0731), 100)),
        n.mean(x, (1, 2), False, q),
        n.mean(x, (3,), False, Q(f32(0.003), -128)),
        n.mean(x, (1, 2, 2), True, Q(f32(0.5), 0)),
        n.mean(x, (0, 1, 2, 3), True, Q(f32(0.01), 127)),
        n.mean(z, (0, 3, 4), False, Q(f32(0.3), -100)),
        n.mean(z, (1,), True, Q(f32(0.9), -128)),
        n.mean(z, (4, 0), True, Q(f32(0.8), -128)),
        n.mean(w, (1, 3, -1), False, Q(f32(0.04), 60)),
        n.mean(w, (0, 2), True, Q(f32(0.01), -7)),
    )
    return n.build()


def concatenation_model() -> bytes:
    """CONCATENATION: axes 0 to 3 and negative ones, 2, 3 and 10 inputs, a constant input,
    the same tensor twice, 6-D tensors."""
    n = Net("concatenation", seed=4)
    q = Q(f32(0.05), 2)
    p = n.input((1, 2, 3, 5), q)
    r = n.input((1, 2, 1, 5), q)
    s = n.input((1, 2, 3, 5), q)
    u = n.input((2, 1, 3, 1, 2, 1), q)
    n.output(
        n.concat((p, r, s), 2, q),
        n.concat((p, s), -1, q),
        n.concat((p, n.const((1, 2, 3, 2), q), p), 3, q),
        n.concat((p,) * 10, 0, q),
        n.concat((s, p), -3, q),
        n.concat((u, u), 5, q),
        n.concat((u, u, u), -5, q),
    )
    return n.build()


def residual_model() -> bytes:
    """Branching: x -> FULLY_CONNECTED -> ADD with x (a residual block); x is also read by a
    MUL, a CONCATENATION and a SUB, and the block's output by two more operators."""
    n = Net("residual", seed=5)
    q = Q(f32(0.05), -2)
    x = n.input((1, 16), q)
    h = n.fully_connected(x, 16, Q(f32(0.2), 3))
    r = n.binary("ADD", x, h, q, "RELU")
    top = n.fully_connected(r, 8, Q(f32(0.3), -1), "RELU6")
    n.output(
        top,
        n.binary("MUL", r, x, Q(f32(0.01), 0)),
        n.concat((x, r), -1, q),
        n.binary("SUB", h, x, Q(f32(0.25), 0)),
        n.mean(r, (1,), True, Q(f32(0.02), -20)),
    )
    return n.build()


def single(opcode: str, shapes: Sequence[Sequence[int]], qs: Sequence[Q], out: Q, *,
           out_shape: Sequence[int] | None = None, activation: str = "NONE",
           options: object | None = None, const: Sequence[int] = ()) -> bytes:
    """One operator on inputs of `shapes` (positions in `const` become constants), for the
    refusal tests; nothing is checked, so the model may be wrong on purpose."""
    b = ModelBuilder(f"single {opcode}")
    rng = np.random.default_rng(0)
    tensors = []
    for i, (shape, q) in enumerate(zip(shapes, qs, strict=True)):
        data = rng.integers(-128, 128, size=shape) if i in const else None
        tensors.append(b.add_tensor(f"x{i}", shape, quant=q, data=data))
    if out_shape is None:
        out_shape = np.broadcast_shapes(*(tuple(s) for s in shapes))
    y = b.add_tensor("y", out_shape, quant=out)
    b.add_op(opcode, tensors, [y], options if options is not None
             else binary_options(opcode, activation))
    b.set_io([t for i, t in enumerate(tensors) if i not in const], [y])
    return b.build()


# -- Keras models through the converter ----------------------------------------------------


def _dense(units: int, seed: int, activation: str | None = None) -> Any:
    import keras

    return keras.layers.Dense(
        units, activation=activation,
        kernel_initializer=keras.initializers.GlorotUniform(seed),
        bias_initializer=keras.initializers.RandomUniform(-0.3, 0.3, seed + 100),
    )


def keras_residual(seed: int = 0) -> Any:
    """Input (16,): Dense -> Add with the input -> relu -> Dense -> Subtract, Multiply,
    Maximum, Minimum, Concatenate between the branches -> two Dense heads."""
    import keras

    keras.utils.set_random_seed(seed)
    x = keras.Input((16,))
    h = _dense(16, seed)(x)
    r = keras.ops.relu(keras.layers.Add()([x, h]))
    d = _dense(16, seed + 1)(r)
    s = keras.layers.Subtract()([d, x])
    m = keras.layers.Multiply()([s, r])
    mx = keras.layers.Maximum()([m, d])
    mn = keras.layers.Minimum()([mx, h])
    c = keras.layers.Concatenate()([mn, x, r])
    return keras.Model(x, [_dense(8, seed + 2)(c), _dense(3, seed + 3, "relu")(s)])


def keras_spatial(seed: int = 0) -> Any:
    """Input (5, 7, 17) NHWC: GlobalAveragePooling2D (MEAN over axes 1, 2), reduce_mean with
    keepdims broadcast back onto the input by an add, a multiply by a constant (1,1,1,17)
    tensor, a mean over the channels and a concatenation along the channels."""
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = keras.Input((5, 7, 17), batch_size=1)  # static shapes: no SHAPE op for the Reshape
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    centred = keras.ops.subtract(x, keras.ops.mean(x, axis=(1, 2), keepdims=True))
    scaled = keras.ops.multiply(centred, rng.uniform(0.5, 2.0, (1, 1, 1, 17)).astype("float32"))
    joined = keras.layers.Concatenate(axis=-1)([scaled, x])
    channel_mean = keras.ops.mean(joined, axis=-1)
    head = _dense(6, seed)(keras.layers.Reshape((35,))(channel_mean))
    return keras.Model(x, [_dense(4, seed + 1)(pooled), head])


def _representative(shape: Sequence[int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (REPRESENTATIVE, *shape)).astype(np.float32)


def converted(name: str, seed: int = 0) -> bytes:
    """`keras_residual` or `keras_spatial`, converted to int8 and cached."""
    factories = {"keras_residual": (keras_residual, (16,)),
                 "keras_spatial": (keras_spatial, (5, 7, 17))}
    factory, shape = factories[name]

    def make() -> bytes:
        return convert_int8(factory(seed), _representative(shape, seed))

    # The factory's source is part of the cache key, so editing it rebuilds the model.
    source = hashlib.sha256(inspect.getsource(factory).encode()).hexdigest()[:16]
    return cached(f"elementwise_{name}", {"seed": seed, "source": source}, make)
