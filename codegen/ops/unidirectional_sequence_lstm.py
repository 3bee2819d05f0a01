"""UNIDIRECTIONAL_SEQUENCE_LSTM: int8 in/out with int8 weights, int32 biases, an int8 hidden
and an int16 cell state (variable tensors kept between invokes), time-major or batch-major,
cell clip (any value, one quantized to 0 included), a TANH cell gate, any batch and sequence
length; the standard LSTM only (TFLM has no peephole, projection, layer normalization or
CIFG); 16x8: int16 in/out and hidden state, int8 weights, int64 biases

TFLM: UnidirectionalSequenceLstmPrepare/Eval (unidirectional_sequence_lstm.cc) over
lstm_eval.h/.cc and lstm_eval_common.cc, EvalLstm<int8_t, int8_t, int16_t, int32_t> and
<int16_t, int8_t, int16_t, int64_t>. Prepare derives (PrepareGateParametersInteger):
  - per gate (forget, input, cell, output), two fully connected layers into an int16
    result of scale 2^-12 and zero point 0, clamped to int16: input x input-to-gate
    weights + the gate's bias, and hidden state x recurrent weights (no bias); each with
    the multiplier QuantizeMultiplier(double(in scale) x double(weight scale) / 2^-12) of
    TFLM's per-tensor FullyConnected (int32 accumulator and double rounding for int8,
    int64 accumulator and the 16-bit multiplier for int16). Per-channel weights are
    refused: TFLM's per-tensor FullyConnectedParams would get no multiplier.
  - three elementwise products (MulElementwise, inputs symmetric, result clamped to its
    type): forget gate (2^-15) x cell -> cell scale; input gate x cell gate (2^-15 each)
    -> cell scale; tanh(cell) (2^-15) x output gate (2^-15) -> hidden scale, plus the hidden
    zero point.
  - the cell state's scale as a power of two, log2 rounded (CheckedLog2), which sets the
    input scaling of tanh(cell); the cell clip quantized as int16(clip / cell scale), in
    double, truncated.
Eval, per time step (time-major: all batch rows at once; batch-major: one row through all
its steps, then the next; the same sums either way, as rows never mix): each gate is the
saturating int16 sum of its two fully connected results, then TFLM's int16 sigmoid (the
interpolated table of LOGISTIC, input multiplier 3) or for the cell gate its fused
activation (tanh with multiplier 3, or sigmoid); cell = sat16(forget x cell + input x
cell gate), clipped to +-clip when the clip is positive; the output gate (from the old
hidden state) then hidden = tanh(cell) x output gate, copied to the output at that step.

The C (templates/kernels/unidirectional_sequence_lstm_fast.c.j2, codegen/ops/_rnn.py): per
step, the input row and the hidden state copied into an int16 scratch vector; per unit, its
four gates' products in one pass over each (SMLAD with the DSP extension, plain C elsewhere),
then the unit's gates, cell and hidden value at once (its hidden value goes to the state as
the other units still read the copy). The 16x8 sums are int32 where the generator proves them
within int32 (the weights' absolute row sums x 32768), else the plain kernel
(unidirectional_sequence_lstm.c.j2) sums in int64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen import quant
from codegen.model.ir import DType, Graph, Operator, Tensor
from codegen.ops import _rnn
from codegen.ops._requant import DoubleRounding, Requantization, SingleRounding64
from codegen.ops.base import CArray, Layer, require_dtype, unsupported
from codegen.ops.logistic_tanh_int16 import SIGMOID_Q16, checked_log2, interpolate

OPCODES = ("UNIDIRECTIONAL_SEQUENCE_LSTM",)

_INPUTS = 24
# lstm_shared.h's tensor numbers. Gates in TFLM's order of evaluation.
_GATES = ("forget", "input", "cell", "output")
_INPUT_WEIGHTS = {"input": 1, "forget": 2, "cell": 3, "output": 4}
_RECURRENT_WEIGHTS = {"input": 5, "forget": 6, "cell": 7, "output": 8}
_BIASES = {"input": 12, "forget": 13, "cell": 14, "output": 15}
_HIDDEN, _CELL = 18, 19
_VARIANTS = {"peephole": (9, 10, 11), "projection": (16, 17),
             "layer normalization": (20, 21, 22, 23)}
_GATE_SCALE = 2.0**-12  # the fully connected results, Q3.12
_NONLINEAR_SCALE = 2.0**-15  # the gates after sigmoid/tanh, Q0.15
_INT16 = (DType.INT16.qmin, DType.INT16.qmax)
_CELL_ACTIVATIONS = {"TANH": "TANH", "SIGMOID": "LOGISTIC"}
# int16 sigmoid/tanh of the gates: TFLM calls them with multiplier 0 and shift 0 (Q3.12
# input, a power of two), which its kernels turn into multiplier 3 and shift 0.
_GATE_SCALING = (3, 0)
# |a x b| for a gate in [0, 32767] (sigmoid) and an int16 value: the elementwise products'
# bound, which their short requantization needs
_PRODUCT_BOUND = 32767 * 32768
_UNIT_BLOCK = 8  # units per call of the gate products (a few calls a step, 256 B of sums)


@dataclass
class Lstm(Layer):
    @property
    def template(self) -> str:  # type: ignore[override]
        fast = "_fast" if self.params["fast"] else ""
        return f"kernels/unidirectional_sequence_lstm{fast}.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        p = self.params
        if not p["fast"]:
            return ("clamp", "requantize", *p["rq_runtime"])  # type: ignore[misc]
        shorts = self.short_requants()
        gates = [s for pair in shorts["gate_short"] for s in pair]
        snippets = ["clamp", "rnn_dot"]
        if p["int16"] or None in gates:
            snippets += p["rq_runtime"]  # type: ignore[arg-type]
        if None in shorts["cell_short"]:
            snippets.append("requantize")
        if any(s is not None for s in (*gates, *shorts["cell_short"])):
            snippets.append("requantize_fast")
        return tuple(dict.fromkeys(snippets))

    def short_requants(self) -> dict[str, list]:
        """cg_requantize_fast's constants where the generator proves it exact, else None:
        per gate its two fully connected sums (int8 only), and the three elementwise
        products."""
        p = self.params
        return {
            "gate_short": [_gate_short(p, k) for k in range(len(_GATES))],
            "cell_short": [_rnn.short_requant(*p[name], _PRODUCT_BOUND, zero_point)
                           for name, zero_point in (
                               ("forget_mul", 0), ("input_mul", 0),
                               ("output_mul", int(p["hidden_zero_point"])))],
        }

    def state_updates(self) -> tuple[int, ...]:
        return (1, 2)

    def scratch_bytes(self) -> int:
        p = self.params
        if p["fast"]:  # a block's gate sums; the input row and the hidden state as int16
            return (32 * _block(p)
                    + 2 * (_rnn.padded(int(p["depth"])) + _rnn.padded(int(p["units"]))))
        return 4 * int(p["units"]) * 2  # the four gates, int16

    def macs(self) -> int:
        p = self.params
        steps = int(p["batch"]) * int(p["steps"])
        return steps * 4 * int(p["units"]) * (int(p["depth"]) + int(p["units"]))

    # -- the reference: rows (samples x batch) at once, step after step ----------------

    def _fc(self, x: np.ndarray, weights: np.ndarray, bias: np.ndarray,
            rq: Requantization) -> np.ndarray:
        acc = x.astype(np.int64) @ weights.astype(np.int64).T + bias
        return np.clip(rq.apply(acc), *_INT16)

    def _gate(self, gate: str, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        p = self.params
        k = _GATES.index(gate)
        fx = self._fc(x, p["input_weights"][k], p["input_bias"][k], p["input_rq"][k])
        fh = self._fc(h, p["recurrent_weights"][k], p["recurrent_bias"][k],
                      p["recurrent_rq"][k])
        total = np.clip(fx + fh, *_INT16)
        function = str(p["cell_activation"]) if gate == "cell" else "LOGISTIC"
        return interpolate(total, function, *_GATE_SCALING)

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        p = self.params
        x, hidden, cell = inputs
        n = x.shape[0]
        batch, steps, depth, units = (int(p[k]) for k in ("batch", "steps", "depth", "units"))
        if p["time_major"]:
            seq = x.reshape(n, steps, batch, depth).transpose(0, 2, 1, 3)
        else:
            seq = x.reshape(n, batch, steps, depth)
        seq = seq.reshape(n * batch, steps, depth).astype(np.int64)
        h = hidden.reshape(n * batch, units).astype(np.int64)
        c = cell.reshape(n * batch, units).astype(np.int64)
        hidden_lo, hidden_hi = int(p["hidden_min"]), int(p["hidden_max"])
        outputs = []
        for t in range(steps):
            xt = seq[:, t]
            forget, input_gate, cell_gate = (self._gate(g, xt, h) for g in _GATES[:3])
            c = _mul(forget, c, p["forget_mul"], 0, *_INT16)
            c = np.clip(c + _mul(input_gate, cell_gate, p["input_mul"], 0, *_INT16), *_INT16)
            if p["clipped"]:
                c = np.clip(c, -int(p["clip"]), int(p["clip"]))
            output_gate = self._gate("output", xt, h)
            tanh_cell = interpolate(c, "TANH", int(p["tanh_multiplier"]),
                                    int(p["tanh_shift"]))
            h = _mul(tanh_cell, output_gate, p["output_mul"], int(p["hidden_zero_point"]),
                     hidden_lo, hidden_hi)
            outputs.append(h)
        act = np.dtype(str(p["act_dtype"]))
        out = np.stack(outputs, axis=1).reshape(n, batch, steps, units)
        if p["time_major"]:
            out = out.transpose(0, 2, 1, 3)
        return [out.astype(act).reshape(n, *self.out_tensor().shape),
                h.astype(act).reshape(hidden.shape), c.astype(np.int16).reshape(cell.shape)]

    # -- generation ---------------------------------------------------------------------

    def constants(self) -> list[CArray]:
        p = self.params
        bias_type = np.int64 if p["int16"] else np.int32
        biases = [CArray("bx", np.concatenate(p["input_bias"]).astype(bias_type)),
                  CArray("bh", np.concatenate(p["recurrent_bias"]).astype(bias_type))]
        if p["fast"]:
            return [CArray("wx", _rnn.pack_gates(p["input_weights"])),
                    CArray("wh", _rnn.pack_gates(p["recurrent_weights"])), *biases,
                    CArray("sigmoid", SIGMOID_Q16.astype(np.uint16))]
        return [
            CArray("wx", np.concatenate([w.ravel() for w in p["input_weights"]])),
            CArray("wh", np.concatenate([w.ravel() for w in p["recurrent_weights"]])),
            *biases,
            CArray("rq", np.array([v for k in range(4) for rq in (p["input_rq"][k],
                                                               p["recurrent_rq"][k])
                                   for v in (int(rq.arguments()[0][0]),
                                             int(rq.arguments()[1][0]))], dtype=np.int32)),
            CArray("sigmoid", SIGMOID_Q16.astype(np.uint16)),
        ]

    def kernel(self, symbol: str) -> str:
        from codegen.emit import render

        p = self.params
        context = dict(p)
        context.update(
            act=DType.INT16.c_type if p["int16"] else DType.INT8.c_type,
            acc="int64_t" if p["int16"] else "uint32_t",
            rq_function=p["rq_function"],
            gates=len(_GATES),
            gate_rq=[tuple(int(v[0]) for rq in (p["input_rq"][k], p["recurrent_rq"][k])
                           for v in rq.arguments()) for k in range(len(_GATES))],
            **self.short_requants(),
            # 16x8: bias + sum within int32, so the int64 requantization gets an int32
            gate_narrow=[tuple(int(p[f"{kind}_bound"][k]) < 1 << 31  # type: ignore[index]
                               for kind in ("input", "recurrent")) for k in range(len(_GATES))],
            block=_block(p),
            depth_groups=_rnn.padded(int(p["depth"])) // _rnn.GROUP,
            unit_groups=_rnn.padded(int(p["units"])) // _rnn.GROUP,
        )
        return render(self.template, fn=symbol, layer=self, **context)

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        layout = "time-major" if p["time_major"] else "batch-major"
        return [
            ("shape", f"{p['batch']} x {p['steps']} steps ({layout}), {p['depth']} -> "
                      f"{p['units']} units"),
            ("cell", f"int16, 2^{p['cell_power']}, clip {p['clip']}, gate "
                     f"{p['cell_activation']}"),
            ("requantization", str(p["rq_name"])),
            ("products", "four gates per pass, SMLAD pairs (plain C without the DSP "
                         "extension)" if p["fast"] else "plain C, int64 sums"),
        ]


def _block(p: dict[str, object]) -> int:
    """Units whose gate sums the kernel keeps at once (its scratch: 32 bytes a unit)."""
    return min(int(p["units"]), _UNIT_BLOCK)  # type: ignore[call-overload]


def _gate_short(p: dict[str, object], k: int) -> tuple[_rnn.ShortRequant | None, ...]:
    """Gate k's two fully connected requantizations as cg_requantize_fast, where exact
    (int8: int32 accumulators; None for each that is not)."""
    if p["int16"]:
        return (None, None)
    return tuple(
        _rnn.short_requant(int(rq.arguments()[0][0]), int(rq.arguments()[1][0]),
                           int(p[f"{kind}_bound"][k]))  # type: ignore[index]
        for kind, rq in (("input", p["input_rq"][k]),  # type: ignore[index]
                         ("recurrent", p["recurrent_rq"][k])))  # type: ignore[index]


def _mul(a: np.ndarray, b: np.ndarray, mul: tuple[int, int], zero_point: int, lo: int,
         hi: int) -> np.ndarray:
    """TFLM's MulElementwise of symmetric int16 inputs: MBQM(a * b) + zero point, clamped."""
    product = np.asarray(a, np.int64) * np.asarray(b, np.int64)
    return quant.requantize(product, mul[0], mul[1], zero_point, lo, hi)


def _mul_params(scale1: float, scale2: float, out: Tensor) -> tuple[int, int]:
    """CreateInterGateMulParams: the product of the (float32) scales in double, divided."""
    real = (float(np.float32(scale1)) * float(np.float32(scale2))
            / float(np.float32(out.quant.scale)))
    return quant.quantize_multiplier(
        real, f"{scale1:g} x {scale2:g} / '{out.name}' scale {out.quant.scale:g}")


def _tanh_scaling(op: Operator, power: int) -> tuple[int, int]:
    """lstm_internal::Tanh: left shift (15 + power) - 3; a negative one becomes multiplier 3
    and that right shift, a positive one the power-of-two case, 3 << shift."""
    shift = 15 + power - 3
    if shift < 0:
        if -shift > 30:
            raise unsupported(op, f"cell state scale 2^{power} is too small for TFLM's tanh")
        return 3, -shift
    if shift > 14:  # x * (3 << shift) must stay in int32 for int16 x
        raise unsupported(op, f"cell state scale 2^{power} is too large for TFLM's tanh")
    return 3 << shift, 0


def _tensor(op: Operator, graph: Graph, position: int, role: str) -> Tensor:
    index = op.inputs[position]
    if index < 0:
        raise unsupported(op, f"missing {role} (input {position}); TFLM's LSTM needs it")
    return graph.tensors[index]


def _weights(op: Operator, graph: Graph, position: int, role: str,
             shape: tuple[int, int]) -> Tensor:
    w = _tensor(op, graph, position, role)
    require_dtype(op, w, (DType.INT8,), role)
    if w.data is None or tuple(w.shape) != shape:
        raise unsupported(op, f"{role} '{w.name}' must be a constant of shape {list(shape)}, "
                              f"found {list(w.shape)}")
    if w.quant is None or w.quant.per_channel:
        raise unsupported(op, f"{role} '{w.name}' must be quantized per tensor (TFLM's LSTM "
                              "takes no per-channel weights)")
    if w.quant.zero_point != 0:
        raise unsupported(op, f"{role} '{w.name}' has zero point {w.quant.zero_point}; TFLM's "
                              "LSTM requires symmetric weights (zero point 0)")
    return w


def _requant(op: Operator, int16: bool, x: Tensor, w: Tensor, bound: int) -> Requantization:
    m, s = quant.quantize_multiplier(
        float(np.float32(x.quant.scale)) * float(np.float32(w.quant.scale)) / _GATE_SCALE,
        f"'{x.name}' scale x '{w.name}' scale / the gate scale 2^-12")
    rq_type = SingleRounding64 if int16 else DoubleRounding
    rq = rq_type(np.array([m], np.int64), np.array([s], np.int64))
    if int16:
        rq.check(f"operator {op.index} ({op.opcode})", np.array([bound]))
    return rq


def _check_structure(op: Operator, graph: Graph) -> None:
    if len(op.inputs) != _INPUTS or len(op.outputs) != 1:
        raise unsupported(op, f"expected {_INPUTS} inputs and 1 output, found "
                              f"{len(op.inputs)} and {len(op.outputs)}")
    for variant, positions in _VARIANTS.items():
        if any(op.inputs[k] >= 0 for k in positions):
            raise unsupported(op, f"an LSTM with {variant} is not supported: TFLM's "
                                  "UNIDIRECTIONAL_SEQUENCE_LSTM takes the standard LSTM only")
    if op.inputs[1] < 0 or op.inputs[5] < 0:
        raise unsupported(op, "an LSTM without input gate (CIFG) is not supported: TFLM's "
                              "UNIDIRECTIONAL_SEQUENCE_LSTM takes the standard LSTM only")


def prepare(op: Operator, graph: Graph) -> Lstm:
    _check_structure(op, graph)
    x = _tensor(op, graph, 0, "input")
    hidden = _tensor(op, graph, _HIDDEN, "hidden state")
    cell = _tensor(op, graph, _CELL, "cell state")
    y = graph.tensors[op.outputs[0]]
    int16 = x.dtype is DType.INT16
    act_types = (DType.INT16,) if int16 else (DType.INT8,)
    for t, role in ((x, "input"), (y, "output"), (hidden, "hidden state")):
        require_dtype(op, t, act_types, role)
        if t.quant is None or t.quant.per_channel:
            raise unsupported(op, f"{role} '{t.name}' must be quantized per tensor")
    require_dtype(op, cell, (DType.INT16,), "cell state")
    if cell.quant is None or cell.quant.per_channel:
        raise unsupported(op, f"cell state '{cell.name}' must be quantized per tensor")
    for t, role in ((hidden, "hidden state"), (cell, "cell state")):
        if not t.is_variable:
            raise unsupported(op, f"{role} '{t.name}' is not a variable tensor (TFLM "
                                  "requires it)")
    if x.is_constant:
        raise unsupported(op, "a constant input is not supported")
    time_major = bool(op.options.get("time_major", False))
    if len(x.shape) != 3 or len(hidden.shape) < 2:
        raise unsupported(op, f"input {list(x.shape)} must be 3-D and the hidden state "
                              f"{list(hidden.shape)} at least 2-D")
    steps, batch = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    depth, units = x.shape[2], hidden.shape[1]
    if hidden.size != batch * units or cell.size != batch * units:
        raise unsupported(op, f"hidden state {list(hidden.shape)} and cell state "
                              f"{list(cell.shape)} must hold {batch} x {units} values")
    if len(y.shape) != 3 or tuple(y.shape) != (x.shape[0], x.shape[1], units):
        raise unsupported(op, f"output shape {list(y.shape)} must be "
                              f"{[x.shape[0], x.shape[1], units]}")
    activation = str(op.options.get("fused_activation_function", "NONE"))
    if activation not in _CELL_ACTIVATIONS:
        raise unsupported(op, f"cell gate activation {activation} is not supported (TFLM's "
                              "integer LSTM takes TANH or SIGMOID)")
    bias_type = DType.INT64 if int16 else DType.INT32
    params = _gate_params(op, graph, x, hidden, depth, units, int16, bias_type)
    cell_power, _ = checked_log2(cell.quant.scale)
    tanh_multiplier, tanh_shift = _tanh_scaling(op, cell_power)
    # TFLM clips when the float clip is positive, to the clip quantized (which may be 0).
    clip_option = float(op.options.get("cell_clip", 0.0) or 0.0)
    clip = 0
    if clip_option > 0:
        ratio = float(np.float32(clip_option)) / float(np.float32(cell.quant.scale))
        clip = int(np.trunc(min(max(ratio, -32768.0), 32767.0)))
    hidden_type = hidden.dtype
    rq_type = SingleRounding64 if int16 else DoubleRounding
    params.update({
        "int16": int16, "time_major": time_major, "batch": batch, "steps": steps,
        "depth": depth, "units": units, "cell_activation": _CELL_ACTIVATIONS[activation],
        "cell_power": cell_power, "tanh_multiplier": tanh_multiplier,
        "tanh_shift": tanh_shift, "clip": clip, "clipped": clip_option > 0,
        "forget_mul": _mul_params(_NONLINEAR_SCALE, cell.quant.scale, cell),
        "input_mul": _mul_params(_NONLINEAR_SCALE, _NONLINEAR_SCALE, cell),
        "output_mul": _mul_params(_NONLINEAR_SCALE, _NONLINEAR_SCALE, hidden),
        "hidden_zero_point": hidden.quant.zero_point,
        "hidden_min": hidden_type.qmin, "hidden_max": hidden_type.qmax,
        "act_dtype": hidden_type.numpy_name,
        "rq_function": rq_type.function, "rq_runtime": rq_type.runtime,
        "rq_name": rq_type.name,
        # int8: sums wrap as TFLM's int32 ones; 16x8: int32 sums only where proved exact
        "fast": not int16 or bool(params.pop("int32_sums")),
    })
    return Lstm(op, graph, inputs=(x.index, hidden.index, cell.index), outputs=(y.index,),
                params=params)


def _gate_params(op: Operator, graph: Graph, x: Tensor, hidden: Tensor, depth: int,
                 units: int, int16: bool, bias_type: DType) -> dict[str, object]:
    """Per gate, in _GATES order: weights, folded biases (bias + input offset x row sums of
    the weights, which the C adds instead of the offsets) and requantizations."""
    input_offset, hidden_offset = -x.quant.zero_point, -hidden.quant.zero_point
    found: dict[str, list[object]] = {k: [] for k in (
        "input_weights", "recurrent_weights", "input_bias", "recurrent_bias", "input_rq",
        "recurrent_rq", "input_bound", "recurrent_bound")}
    int32_sums = True
    for gate in _GATES:
        wx = _weights(op, graph, _INPUT_WEIGHTS[gate], f"input-to-{gate} weights",
                      (units, depth))
        wh = _weights(op, graph, _RECURRENT_WEIGHTS[gate], f"recurrent-to-{gate} weights",
                      (units, units))
        b = _tensor(op, graph, _BIASES[gate], f"{gate} gate bias")
        require_dtype(op, b, (bias_type,), f"{gate} gate bias")
        if b.data is None or b.size != units:
            raise unsupported(op, f"{gate} gate bias '{b.name}' must be a constant of {units} "
                                  f"{bias_type.numpy_name} values")
        wx_data, wh_data = wx.data.astype(np.int8), wh.data.astype(np.int8)
        bias_x = b.data.astype(np.int64).ravel() + input_offset * wx_data.astype(
            np.int64).sum(axis=1)
        bias_h = hidden_offset * wh_data.astype(np.int64).sum(axis=1)
        act_max = 32768 if int16 else 128
        bound_x = np.abs(wx_data.astype(np.int64)).sum(axis=1) * act_max + np.abs(bias_x)
        bound_h = np.abs(wh_data.astype(np.int64)).sum(axis=1) * act_max + np.abs(bias_h)
        int32_sums &= max(int(np.abs(w.astype(np.int64)).sum(axis=1).max(initial=0))
                          for w in (wx_data, wh_data)) * 32768 < 1 << 31
        found["input_bound"].append(int(bound_x.max(initial=0)))
        found["recurrent_bound"].append(int(bound_h.max(initial=0)))
        found["input_weights"].append(wx_data)
        found["recurrent_weights"].append(wh_data)
        found["input_bias"].append(bias_x if int16 else quant.wrap_int32(bias_x))
        found["recurrent_bias"].append(bias_h if int16 else quant.wrap_int32(bias_h))
        found["input_rq"].append(_requant(op, int16, x, wx, int(bound_x.max())))
        found["recurrent_rq"].append(_requant(op, int16, hidden, wh, int(bound_h.max())))
    return {**found, "int32_sums": int32_sums}


KERNELS = {DType.INT8: prepare, DType.INT16: prepare}
