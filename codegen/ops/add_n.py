"""ADD_N: 2 or more int8 inputs of one shape and one quantization (constant ones included,
the same tensor several times too), any output quantization, no activation.

TFLM: add_n.cc CalculateOpData (equal shapes, types, scales and zero points; left shift 20;
input multiplier s / 2s = 0.5 and output multiplier 2s / (2^20 s_out) through
QuantizeMultiplierSmallerThanOneExp, which aborts unless below 1: refused here) and
reference_ops::AddN, per element:
    acc = MBQMSmallerThanOneExp(-zp << 20, m_in, e_in)      (TFLM's quirk: it starts from
                                                             the scaled -zp, not 0)
    acc += MBQMSmallerThanOneExp((x_j - zp) << 20, m_in, e_in)   for every input j
    out = clamp(MBQMSmallerThanOneExp(acc, m_out, e_out) + zp_out)
The int32 sum can overflow past 15 inputs at the extremes; it wraps (as TFLM's does on
two's-complement hardware): the C adds in uint32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.emit import render
from codegen.model.ir import Graph, Operator, Tensor
from codegen.ops import _scaling, _typed
from codegen.ops.base import CArray, Layer, unsupported

OPCODES = ("ADD_N",)
_TYPES = _typed.INT8
LEFT_SHIFT = 20


def scaled_start(zero_point: int, multiplier: int, shift: int) -> int:
    """TFLM's starting value: the scaled -zero_point."""
    return int(_scaling.scaled(np.array(0), -zero_point, LEFT_SHIFT, multiplier, shift))


@dataclass
class AddN(Layer):
    runtime: ClassVar[tuple[str, ...]] = ("requantize", "clamp")
    template: ClassVar[str] = "kernels/add_n.c.j2"

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        given = dict(zip(self.inputs, inputs, strict=True))
        n = inputs[0].shape[0]
        acc = np.full((n, *self.out_tensor().shape), int(p["start"]), dtype=np.int64)
        for t in p["operands"]:  # type: ignore[attr-defined]
            values = np.broadcast_to(t.data, (n, *t.shape)) if t.is_constant else given[t.index]
            acc = acc + _scaling.scaled(values, int(p["input_offset"]), LEFT_SHIFT,
                                        int(p["input_multiplier"]), int(p["input_shift"]))
        out = quant.requantize(quant.wrap_int32(acc), int(p["output_multiplier"]),
                               int(p["output_shift"]), int(p["output_zero_point"]), -128, 127)
        return [out.astype(np.int8)]

    def constants(self) -> list[CArray]:
        return [CArray(f"input{k}", np.asarray(t.data, dtype=np.int8).ravel())
                for k, t in enumerate(self.params["operands"]) if t.is_constant]  # type: ignore[call-overload]

    def macs(self) -> int:
        return self.out_tensor().size * len(self.params["operands"])  # type: ignore[arg-type]

    def kernel(self, symbol: str) -> str:
        operands: list[Tensor] = self.params["operands"]  # type: ignore[assignment]
        names = {t.index: f"input{k}" for k, t in reversed(list(enumerate(operands)))
                 if not t.is_constant}
        sources = [f"{symbol}_input{k}" if t.is_constant else names[t.index]
                   for k, t in enumerate(operands)]
        params = [f"const int8_t *{names[index]}" for index in self.inputs]
        return render(self.template, fn=symbol, layer=self, sources=sources,
                      signature=", ".join([*params, "int8_t *output"]),
                      count=self.out_tensor().size, **self.params)

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [("inputs", str(len(p["operands"]))),  # type: ignore[arg-type]
                ("scaling", f"<< {LEFT_SHIFT}, multiplier {p['input_multiplier']} shift "
                            f"{p['input_shift']}; start {p['start']}"),
                ("output multiplier", f"{p['output_multiplier']} shift {p['output_shift']}")]


def prepare(op: Operator, graph: Graph) -> AddN:
    if len(op.inputs) < 2:
        raise unsupported(op, f"expected 2 or more inputs, found {len(op.inputs)}")
    operands = [_typed.input_tensor(op, graph, k, f"input{k}", _TYPES, constant=None)
                for k in range(len(op.inputs))]
    if all(t.is_constant for t in operands):
        raise unsupported(op, "every input is constant (the converter folds such operators)")
    y = _typed.output_tensor(op, graph, _TYPES)
    first = operands[0]
    for t in operands:
        _typed.require_shape(op, t, first.shape, f"input '{t.name}'")
    _typed.require_shape(op, y, first.shape)
    _typed.same_quantization(op, operands, "TFLM requires one scale and zero point for all "
                             "inputs")
    _typed.quantized(op, y, "output")
    scale = float(np.float32(first.quant.scale))
    twice = 2.0 * scale
    m_in, e_in = _scaling.multiplier_below_one(op, scale / twice, "input multiplier")
    m_out, e_out = _scaling.multiplier_below_one(
        op, twice / ((1 << LEFT_SHIFT) * float(np.float32(y.quant.scale))), "output multiplier")
    zp = int(first.quant.zero_point)
    params: dict[str, object] = {
        "operands": operands, "input_offset": -zp, "input_multiplier": m_in,
        "input_shift": e_in, "output_multiplier": m_out, "output_shift": e_out,
        "output_zero_point": y.quant.zero_point,
        "start": scaled_start(zp, m_in, e_in), "left_shift": LEFT_SHIFT,
    }
    inputs: list[int] = []
    for t in operands:
        if not t.is_constant and t.index not in inputs:
            inputs.append(t.index)
    return AddN(op, graph, inputs=tuple(inputs), outputs=(y.index,), params=params)
