"""What the 16x8 kernels with int8 weights share (FULLY_CONNECTED, CONV_2D,
DEPTHWISE_CONV_2D, TRANSPOSE_CONV in int16): the bias and the accumulator type it implies,
and the end of every output, as TFLM's int16 kernels compute it:

    acc = sum of w * x (+ bias)      in the accumulator type (int64, or int32 for an int32
                                      bias: TFLM instantiates its kernels on the bias type)
    out = clamp(MultiplyByQuantizedMultiplier(acc, m[c], shift[c]), act_min, act_max)

No zero points: the int16 kernels ignore them (they are 0, see codegen/model/validate.py).
The requantization, chosen once by the accumulator type, is `params["rq"]`
(codegen/ops/_requant.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.model.ir import DType, Graph, Operator
from codegen.ops._requant import Requantization
from codegen.ops._window import Window
from codegen.ops.base import CArray, Layer, unsupported

# The schema's TensorType number of INT32 (quantized_bias_type in the options).
TENSOR_TYPE_INT32 = 2
TENSOR_TYPE_INT64 = 4


def int16_bias(op: Operator, graph: Graph, position: int, channels: int,
               dtypes: tuple[DType, ...]) -> np.ndarray | None:
    """The bias as int64 values, or None when the optional input is omitted."""
    if len(op.inputs) <= position or op.inputs[position] < 0:
        return None
    b = graph.tensors[op.inputs[position]]
    if b.dtype not in dtypes:
        names = " or ".join(d.numpy_name for d in dtypes)
        raise unsupported(op, f"bias '{b.name}' is {b.dtype_name}; 16x8 kernels take an "
                              f"{names} bias")
    if b.data is None or b.size != channels:
        raise unsupported(op, f"bias must be a constant of {channels} values")
    return np.asarray(b.data, dtype=np.int64).ravel()


def int32_bias(bias: np.ndarray | None, accumulator: str, channels: int) -> np.ndarray | None:
    """An int32 accumulator gets a bias array even without a bias input (zeros): the kernels
    add it as TFLM's int32 addition does, wrapping (cg_add_wrap), which leaves the sum as it
    is when there is none."""
    if accumulator == "int32" and bias is None:
        return np.zeros(channels, dtype=np.int64)
    return bias


def accumulator_type(op: Operator, graph: Graph, position: int) -> str:
    """"int32" or "int64": TFLM accumulates in the bias type, and without a bias in int32
    only when the options ask for an int32 bias (quantized_bias_type)."""
    if len(op.inputs) > position and op.inputs[position] >= 0:
        bias_type = graph.tensors[op.inputs[position]].dtype
        return "int32" if bias_type is DType.INT32 else "int64"
    asked = int(op.options.get("quantized_bias_type", 0) or 0)
    return "int32" if asked == TENSOR_TYPE_INT32 else "int64"


@dataclass
class DotInt16(Layer):
    """params: weights_data (int64 values), bias_data (int64 values or None), rq,
    accumulator ("int32"/"int64"), activation, act_min, act_max."""

    @property
    def weights(self) -> np.ndarray:
        return np.asarray(self.params["weights_data"])

    @property
    def rq(self) -> Requantization:
        return self.params["rq"]  # type: ignore[return-value]

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.rq.runtime, "clamp")

    def with_bias(self, acc: np.ndarray) -> np.ndarray:
        """Accumulators (int64, channels last) plus the bias, if any."""
        bias = self.params["bias_data"]
        return acc if bias is None else acc + np.asarray(bias, dtype=np.int64)

    def finish(self, acc: np.ndarray) -> np.ndarray:
        """Accumulators (int64, channels last, bias not yet added) -> int16 outputs."""
        p = self.params
        out = self.rq.apply(self.with_bias(acc))
        return np.clip(out, int(p["act_min"]), int(p["act_max"])).astype(np.int16)

    def weight_bias_arrays(self) -> list[CArray]:
        """The int8 weights and the bias in the accumulator's type."""
        p = self.params
        arrays = [CArray("weights", self.weights.astype(np.int8).ravel())]
        if p["bias_data"] is not None:
            c_type = np.int32 if p["accumulator"] == "int32" else np.int64
            arrays.append(CArray("bias", np.asarray(p["bias_data"]).astype(c_type)))
        return arrays

    def constants(self) -> list[CArray]:
        arrays = self.weight_bias_arrays()
        if self.rq.per_channel:
            multiplier, shift = self.rq.arguments()
            arrays += [CArray("multiplier", multiplier), CArray("shift", shift)]
        return arrays

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        multiplier, shift = self.rq.arguments()
        rows = [("activation", f"{p['activation']} -> clamp [{p['act_min']}, {p['act_max']}]"),
                ("requantization", self.rq.name)]
        if self.rq.per_channel:
            rows.append(("multipliers", _preview(multiplier)))
            rows.append(("shifts", _preview(shift)))
        else:
            rows.append(("multiplier", f"{int(multiplier[0])} shift {int(shift[0])}"))
        return rows


def gemm16_constants(layer: DotInt16) -> list[CArray]:
    """The 16x8 engine's constants: packed weights, then what its epilogue reads."""
    from codegen.ops import _gemm16

    p = layer.params
    out_c = layer.weights.shape[0]
    packed = _gemm16.pack_weights(layer.weights.reshape(out_c, -1)).astype(np.int64)
    words = np.where(packed >= 1 << 31, packed - (1 << 32), packed).astype(np.int32)
    arrays = _gemm16.epilogue_constants(p["epilogue"], layer.rq, p["bias_data"], out_c)
    return [CArray("weights", words), *(CArray(name, values) for name, values in arrays)]


def rq_params(rq: Requantization) -> dict[str, object]:
    """What the templates read about the requantization: the C helper, whether its
    arguments are per-channel arrays (`NAME_multiplier`, `NAME_shift`) or these scalars."""
    multiplier, shift = rq.arguments()
    return {"rq": rq, "rq_function": rq.function, "accumulator_c": rq.accumulator,
            "per_channel": rq.per_channel,
            "rq_multiplier": int(multiplier[0]), "rq_shift": int(shift[0])}


def _preview(values: object, count: int = 4) -> str:
    arr = np.asarray(values).ravel()
    head = ", ".join(str(int(v)) for v in arr[:count])
    return f"[{head}{', ...' if arr.size > count else ''}] ({arr.size})"


# -- the 2-D window kernels (CONV_2D, DEPTHWISE_CONV_2D) -----------------------------------

_REFERENCE_BYTES = 32 << 20  # working set of the numpy reference per chunk of samples


@dataclass
class WindowInt16(DotInt16):
    """A 16x8 convolution over a `params["window"]`; subclasses give `products`, the sum
    over taps of w * x for every output of a chunk of zero-padded samples (TFLM skips the
    taps outside the image, which is the same as adding w * 0 there: no zero point)."""

    @property
    def window(self) -> Window:
        return self.params["window"]  # type: ignore[return-value]

    def products(self, xs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x, y = self.in_tensor(), self.out_tensor()
        n = inputs[0].shape[0]
        _, h, w, c = x.shape
        samples = inputs[0].reshape(-1, h, w, c)
        r, cl = self.window.rows, self.window.cols
        pads = ((0, 0), (r.pad, r.pad_after), (cl.pad, cl.pad_after), (0, 0))
        per_sample = 8 * (2 * (h + r.pad + r.pad_after) * (w + cl.pad + cl.pad_after) * c
                          + 3 * int(np.prod(y.shape[1:])))
        chunk = max(1, _REFERENCE_BYTES // per_sample)
        results = [self.finish(self.products(np.pad(samples[s:s + chunk].astype(np.int64),
                                                    pads)))
                   for s in range(0, samples.shape[0], chunk)]
        return [np.concatenate(results).reshape(n, *y.shape)]

    def describe(self) -> list[tuple[str, str]]:
        return [("window", self.window.describe()), *super().describe()]


def window_params(win: Window, x_shape: tuple[int, ...],
                  y_shape: tuple[int, ...]) -> dict[str, object]:
    """The geometry the window templates read."""
    _, h, w, c = (int(d) for d in x_shape)
    return {
        "window": win, "batches": int(x_shape[0]),
        "in_h": h, "in_w": w, "in_c": c, "in_image": h * w * c, "in_row": w * c,
        "out_h": win.rows.out, "out_w": win.cols.out, "out_c": int(y_shape[3]),
        "out_image": int(np.prod(y_shape[1:])),
        "taps_h": win.rows.taps, "taps_w": win.cols.taps,
        "stride_h": win.rows.stride, "stride_w": win.cols.stride,
        "dil_h": win.rows.dilation, "dil_w": win.cols.dilation,
        "pad_h": win.rows.pad, "pad_w": win.cols.pad,
    }
