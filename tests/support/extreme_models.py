"""Models at the extremes of the integer types: every kernel with a bias or an accumulator
next to int32 biases at and near INT32_MAX/INT32_MIN and zero points at -128 and 127.

`extremes_model(zero_point)` has one input (1, 5, 6, 16) with that zero point and one branch
per kernel, each its own output: FULLY_CONNECTED (plain with a filter offset, per-channel
falling back from the engine, on the engine), CONV_2D (plain, engine), DEPTHWISE_CONV_2D
(plain, 3x3 line buffer at strides 1 and 2), ADD, SUB, MUL, MEAN, AVERAGE_POOL_2D, SOFTMAX,
PRELU and QUANTIZE. The input's all-zero-point sample (all -128, or all 127) makes the
accumulator of a biased layer exactly its bias.

The biased plain kernels have the multiplier 2^31 - 8 (input scale 1 + 2^-14 times weight
scale 1 - 2^-14, output scale 1), so a bias at INT32_MAX requantizes to 2^31 - 9 and adding
an output zero point of 127 wraps around in TFLM's int32 arithmetic, which the reference and
the C must reproduce. QUANTIZE, MUL and MEAN get output scales searched (in float32, as the
file stores them) so that the extreme input lands within 128 of the int32 limits after
requantization, where their zero point addition wraps too.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from support.builder import ModelBuilder, Q, bias_scales, fc_options
from support.conv_models import conv_options, depthwise_options, pool_options
from support.elementwise_models import binary_options, reducer_options

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
SHAPE = (1, 5, 6, 16)
# The input scale; times WEIGHT_NEAR_ONE it is 1 - 2^-28 (exactly, in double as TFLM
# multiplies), whose multiplier is 2^31 - 8 with shift 0.
INPUT_SCALE = float(np.float32(1 + 2**-14))
WEIGHT_NEAR_ONE = float(np.float32(1 - 2**-14))
EXTREME_BIASES = (INT32_MAX, INT32_MIN, INT32_MAX - 1, INT32_MIN + 1, INT32_MAX - 200,
                  INT32_MIN + 200, INT32_MAX - 70000, INT32_MIN + 70000)


def _biases(count: int) -> np.ndarray:
    return np.resize(np.array(EXTREME_BIASES, dtype=np.int64), count)


class _Net:
    def __init__(self, zero_point: int, seed: int) -> None:
        self.b = ModelBuilder(f"extremes, input zero point {zero_point}")
        self.rng = np.random.default_rng(seed)
        self.zp = zero_point
        self.x = self.b.add_tensor("input", SHAPE, "int8", quant=Q(INPUT_SCALE, zero_point))
        self.outputs: list[int] = []
        self.fills: list[int] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def weights(self, shape: tuple[int, ...], sparse: bool = False) -> np.ndarray:
        w = self.rng.integers(-128, 128, size=shape)
        if sparse:  # small sums: the bias dominates every accumulator
            w = np.where(self.rng.random(shape) < 0.7, 0, self.rng.integers(-3, 4, size=shape))
        return w

    def out(self, shape: tuple[int, ...], q: Q) -> int:
        y = self.b.add_tensor(self.name("out"), shape, "int8", quant=q)
        self.outputs.append(y)
        return y

    def const(self, shape: tuple[int, ...], dtype: str, q: Q, data: np.ndarray) -> int:
        return self.b.add_tensor(self.name("const"), shape, dtype, quant=q, data=data)

    def fully_connected(self, units: int, weight_q: Q, bias: np.ndarray, out_q: Q,
                        activation: str = "NONE", sparse: bool = False) -> None:
        depth = SHAPE[-1]
        w = self.const((units, depth), "int8", weight_q, self.weights((units, depth), sparse))
        scales = bias_scales(INPUT_SCALE, weight_q.scales)
        bq = Q(scales if len(scales) > 1 else scales[0], 0)
        bt = self.const((units,), "int32", bq, bias)
        rows = int(np.prod(SHAPE)) // depth
        y = self.out((rows, units), out_q)
        self.b.add_op("FULLY_CONNECTED", [self.x, w, bt], [y], fc_options(activation))

    def conv(self, out_c: int, scales: list[float], bias: np.ndarray, out_q: Q,
             sparse: bool = False) -> None:
        shape = (out_c, 3, 3, SHAPE[-1])
        w = self.const(shape, "int8", Q(scales, 0, axis=0), self.weights(shape, sparse))
        bt = self.const((out_c,), "int32", Q(bias_scales(INPUT_SCALE, scales), 0, axis=0), bias)
        y = self.out((*SHAPE[:3], out_c), out_q)
        self.b.add_op("CONV_2D", [self.x, w, bt], [y], conv_options("SAME"))

    def depthwise(self, scales: list[float], bias: np.ndarray, out_q: Q, stride: int = 1,
                  activation: str = "NONE", sparse: bool = False) -> None:
        c = SHAPE[-1]
        w = self.const((1, 3, 3, c), "int8", Q(scales, 0, axis=3),
                       self.weights((1, 3, 3, c), sparse))
        bt = self.const((c,), "int32", Q(bias_scales(INPUT_SCALE, scales), 0, axis=0), bias)
        oh, ow = -(-SHAPE[1] // stride), -(-SHAPE[2] // stride)
        y = self.out((1, oh, ow, c), out_q)
        self.b.add_op("DEPTHWISE_CONV_2D", [self.x, w, bt], [y],
                      depthwise_options("SAME", (stride, stride), activation=activation))

    def binary(self, opcode: str, const_q: Q, out_q: Q, const_first: bool = False) -> None:
        values = self.rng.integers(-128, 128, size=SHAPE[-1:])
        values[:2] = (-128, 127)
        c = self.const(SHAPE[-1:], "int8", const_q, values)
        y = self.out(SHAPE, out_q)
        operands = [c, self.x] if const_first else [self.x, c]
        self.b.add_op(opcode, operands, [y], binary_options(opcode))

    def mean(self, out_q: Q) -> None:
        axes = self.const((2,), "int32", None, np.array([1, 2]))
        y = self.out((1, 1, 1, SHAPE[-1]), out_q)
        self.b.add_op("MEAN", [self.x, axes], [y], reducer_options(True))

    def unary(self, opcode: str, out_q: Q, options: object | None = None) -> None:
        y = self.out(SHAPE, out_q)
        self.b.add_op(opcode, [self.x], [y], options)

    def prelu(self, alpha_q: Q, out_q: Q) -> None:
        alpha = self.rng.integers(-128, 128, size=SHAPE[-1:])
        alpha[:2] = (-128, 127)
        a = self.const(SHAPE[-1:], "int8", alpha_q, alpha)
        y = self.out(SHAPE, out_q)
        self.b.add_op("PRELU", [self.x, a], [y])

    def build(self) -> tuple[bytes, list[int]]:
        self.b.set_io([self.x], self.outputs)
        return self.b.build(), self.fills


def extremes_model(zero_point: int, seed: int = 0) -> tuple[bytes, list[int]]:
    """(the model, the fill values whose uniform inputs make MUL and PRELU wrap);
    see the module docstring. `zero_point` is the input's, -128 or 127."""
    net = _Net(zero_point, seed)
    far = 127 if zero_point == -128 else -128  # the other end, for the outputs
    near = WEIGHT_NEAR_ONE
    units = len(EXTREME_BIASES)
    # FULLY_CONNECTED: plain with a filter offset (per-tensor weights with a zero point)
    net.fully_connected(units, Q(near, 3), _biases(units), Q(1.0, 127), sparse=True)
    net.fully_connected(units, Q(near, -128), _biases(units), Q(1.0, -128), sparse=True)
    # per-channel: a depth the engine takes, but biases it cannot (the plain kernel)
    scales = [near] * (units // 2) + list(0.004 * net.rng.uniform(0.5, 2.0, units - units // 2))
    net.fully_connected(units, Q(scales, 0), _biases(units), Q(1.0, far), sparse=True)
    # on the engine: moderate biases, extreme zero points and clamp
    net.fully_connected(6, Q(list(0.004 * net.rng.uniform(0.5, 2.0, 6)), 0),
                        net.rng.integers(-5000, 5001, size=6), Q(0.6, far), activation="RELU6")
    # CONV_2D: the plain kernel (border and interior) with extreme biases, then the engine
    net.conv(units, [near] * units, _biases(units), Q(1.0, 127), sparse=True)
    net.conv(units, [near] * units, _biases(units), Q(1.0, -128), sparse=True)
    net.conv(5, list(0.002 * net.rng.uniform(0.5, 2.0, 5)), net.rng.integers(-9000, 9001, 5),
             Q(0.9, far))
    # DEPTHWISE_CONV_2D: plain with extreme biases, the 3x3 line buffer at strides 1 and 2
    c = SHAPE[-1]
    net.depthwise([near] * c, _biases(c), Q(1.0, 127), sparse=True)
    net.depthwise([near] * c, _biases(c), Q(1.0, -128), sparse=True)
    net.depthwise(list(0.01 * net.rng.uniform(0.5, 2.0, c)), net.rng.integers(-3000, 3001, c),
                  Q(0.4, far))
    net.depthwise(list(0.01 * net.rng.uniform(0.5, 2.0, c)), net.rng.integers(-3000, 3001, c),
                  Q(0.3, zero_point), stride=2, activation="RELU6")
    # elementwise: every zero point at an end
    net.binary("ADD", Q(0.7, far), Q(1.3, far))
    net.binary("ADD", Q(3.0, zero_point), Q(0.05, zero_point))
    net.binary("SUB", Q(0.9, far), Q(2.1, zero_point), const_first=True)
    net.binary("MUL", Q(0.8, far), Q(1.7, far))
    net.mean(Q(0.9, far))
    net.unary("AVERAGE_POOL_2D", Q(INPUT_SCALE, zero_point), pool_options("SAME", (1, 1), (3, 3)))
    softmax = schema.SoftmaxOptionsT()
    softmax.beta = 1.0
    net.unary("SOFTMAX", Q(1 / 256, -128), softmax)
    net.prelu(Q(0.01, far), Q(0.8, far))
    net.unary("QUANTIZE", Q(0.25, far))
    # MUL and PRELU with the multiplier (2^31 - 8) * 2^(17 - 31): a product of +-2^14, from
    # the input 128 away from its zero point (the fill value) times a constant -128, shifts
    # to INT32_MIN, requantizes to -(2^31 - 8), and the output zero point -128 wraps
    fill = (zero_point + 128 + 128) % 256 - 128
    net.fills.append(fill)
    net.binary("MUL", Q(WEIGHT_NEAR_ONE, 0), Q(2.0**-17, -128))
    net.prelu(Q(WEIGHT_NEAR_ONE, 0), Q(2.0**-17, -128))  # the alpha path: zero point 127
    return net.build()
