"""ADD, SUB: int8 or int16 in/out, numpy-style broadcasting up to 6-D (a constant operand and the
same tensor on both inputs included), any input scales, fused NONE/RELU/RELU6/RELU_N1_TO_1.

TFLM: CalculateOpDataAdd / CalculateOpDataSub (add_common.cc, sub_common.cc) and
reference_integer_ops::AddFunc / reference_ops::SubElementwise. Prepare, in double from the
float32 scales:
    twice_max = 2 * max(s1, s2)
    input i:  QuantizeMultiplierSmallerThanOneExp(s_i / twice_max)
    output:   QuantizeMultiplierSmallerThanOneExp(twice_max / (2^20 * s_out))
and per element
    v_i = MultiplyByQuantizedMultiplierSmallerThanOneExp((x_i - zp_i) * 2^20, m_i, shift_i)
    out = clamp(MultiplyByQuantizedMultiplierSmallerThanOneExp(v1 +- v2, m_o, shift_o) + zp_o).

int16 (16x8) runs the same arithmetic (reference_ops::AddElementwise / BroadcastAdd6DSlow,
SubElementwise / BroadcastQuantSubSlow) with a left shift of 15, in int32; TFLM's int16 SUB
requires zero points of 0 (as validation does for every int16 tensor).

Quirks reproduced: the fixed left shift of 20 for int8 (15 for int16) that lifts both
inputs before scaling, and the per-input MultiplyByQuantizedMultiplierSmallerThanOneExp,
which rounds the doubling high multiply and then divides by 2^-shift (no left-shift branch).
QuantizeMultiplierSmallerThanOneExp CHECK-fails on a multiplier >= 1 (an output scale below
2 * max input scale / 2^20), which is refused. (The sub_common.cc of some TFLM versions
computes these ratios in float32; the TFLM this project matches uses double for both, which
the tests confirm on scales where the two differ.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from codegen import quant
from codegen.emit import render
from codegen.errors import UnsupportedError
from codegen.model.ir import DType, Graph, Operator
from codegen.ops._binary import (
    BinaryLayer,
    activation_bounds,
    activation_inputs,
    describe_levels,
    multiplier,
    prepare_binary,
)
from codegen.ops._broadcast import kernel_parameters
from codegen.ops._gemm import needs_sign_fixup
from codegen.ops.base import CArray, require_zero_point_zero, unsupported

OPCODES = ("ADD", "SUB")
LEFT_SHIFTS = {DType.INT8: 20, DType.INT16: 15}  # TFLM's data->left_shift per output type
_INT31 = 1 << 31
# int8 input values in the order of their uint8 bit patterns (the C indexes by those)
_BYTES = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int64)


def scale_down(x: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """MultiplyByQuantizedMultiplierSmallerThanOneExp: RoundingDivideByPOT(SRDHM(x, m), -shift)."""
    high = quant.saturating_rounding_doubling_high_mul(x, mult)
    return quant.rounding_divide_by_pot(high, -shift)


@dataclass
class AddSub(BinaryLayer):
    runtime: ClassVar[tuple[str, ...]] = ("scale_down", "clamp")
    template: ClassVar[str] = "kernels/add_sub.c.j2"

    def combine(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        p = self.params
        v1 = self.scaled_input(0, a)
        v2 = self.scaled_input(1, b)
        raw = v1 - v2 if p["subtract"] else v1 + v2
        out = scale_down(raw, int(p["output_multiplier"]), int(p["output_shift"]))
        return np.clip(out + int(p["output_offset"]), int(p["act_min"]), int(p["act_max"]))

    def scaled_input(self, position: int, values: np.ndarray) -> np.ndarray:
        """TFLM's per-input step: v_i = MultiplyByQuantizedMultiplierSmallerThanOneExp(
        (x_i - zp_i) * 2^20, m_i, shift_i)."""
        p = self.params
        name = f"input{position + 1}"
        return scale_down((values + int(p[f"{name}_offset"])) * int(p["left_shift_factor"]),
                          int(p[f"{name}_multiplier"]), int(p[f"{name}_shift"]))

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [
            ("activation", f"{p['activation']} -> clamp [{p['act_min']}, {p['act_max']}]"),
            ("input multipliers", f"{p['input1_multiplier']} shift {p['input1_shift']}, "
                                  f"{p['input2_multiplier']} shift {p['input2_shift']}"),
            ("output multiplier", f"{p['output_multiplier']} shift {p['output_shift']}"),
            ("broadcast", describe_levels(p["levels"])),  # type: ignore[arg-type]
            ("kernel", "two 256-entry tables of the scaled inputs" if p["tables"]
             else "TFLM's arithmetic per element"),
        ]


@dataclass
class AddSubTables(AddSub):
    """Each input's scaled value v_i depends on its int8 value alone: two tables of 256
    int32 (2 v_i, negated for SUB's second input) replace TFLM's per-input arithmetic, and
    the output step is cg_requantize_fast on the doubled sum (exact: the generator checks
    the bounds it needs)."""

    template: ClassVar[str] = "kernels/add_sub_tables.c.j2"

    @property
    def runtime(self) -> tuple[str, ...]:  # type: ignore[override]
        if self.params["contiguous"]:
            return (f"add_tables.{'fix' if self.params['table_sign'] else 'floor'}",)
        return ("requantize_fast", "saturate_int8" if self.params["full_range"] else "clamp")

    def kernel(self, symbol: str) -> str:
        if not self.params["contiguous"]:
            return super().kernel(symbol)
        sources = [f"(const uint8_t *){o.source(symbol)}" for o in self.operands]
        return render(self.template, fn=symbol, layer=self, sources=sources,
                      signature=kernel_parameters(self.operands), **self.params)

    def element(self, pointer: str, index: str) -> str:
        # the tables are indexed by the byte: read it unsigned
        return f"((const uint8_t *){pointer})[{index}]"

    def constants(self) -> list[CArray]:
        p = self.params
        return [*super().constants(),
                CArray("input1_table", np.asarray(p["input1_table"], np.int32)),
                CArray("input2_table", np.asarray(p["input2_table"], np.int32))]


@lru_cache(maxsize=1024)
def _doubled_table(offset: int, mult: int, shift: int, factor: int,
                   negate: bool) -> tuple[np.ndarray, int]:
    """(2 v (or -2 v) for the 256 byte values as int32, read-only; max |v|), v being TFLM's
    per-input step (AddSub.scaled_input, `factor` = 2^20): computed once per set of
    parameters, which many layers of a model share. |v| <= 255 * 2^20, so 2 v fits in int32."""
    v = scale_down((_BYTES + offset) * factor, mult, shift)
    table = (-2 * v if negate else 2 * v).astype(np.int32)
    table.setflags(write=False)
    return table, int(np.abs(v).max())


def _tables(layer: AddSub) -> dict[str, object] | None:
    """The tables and output constants of AddSubTables, or None where its bounds fail."""
    p = layer.params
    factor = int(p["left_shift_factor"])
    t1, largest1 = _doubled_table(int(p["input1_offset"]), int(p["input1_multiplier"]),
                                  int(p["input1_shift"]), factor, False)
    t2, largest2 = _doubled_table(int(p["input2_offset"]), int(p["input2_multiplier"]),
                                  int(p["input2_shift"]), factor, bool(p["subtract"]))
    right = -int(p["output_shift"])  # QuantizeMultiplierSmallerThanOneExp: shift <= 0
    rounding = (1 << (right - 1)) if right > 0 else 0
    add = rounding + int(p["output_offset"]) * (1 << right)
    largest = largest1 + largest2
    # 2 * (v1 + v2) fits in int32, and so does high word + add (|high word| <= |v1 + v2|)
    if 2 * largest >= _INT31 or largest + 2 + abs(add) >= _INT31:
        return None
    full_range = (p["act_min"], p["act_max"]) == (-128, 127)
    levels = p["levels"]
    return {
        "tables": True,
        "input1_table": t1,
        "input2_table": t2,
        "table_add": add,
        # no tie fixup without a right shift, or where the activation clamps negative
        # results away (codegen/ops/_gemm.py, needs_sign_fixup)
        "table_sign": int(right > 0 and needs_sign_fixup(int(p["output_offset"]),
                                                         int(p["act_min"]))),
        "full_range": full_range,
        # no broadcast: both inputs contiguous, one runtime loop (assembly on the DSP cores)
        "contiguous": full_range and len(levels) == 1 and levels[0].strides == (1, 1),
    }


def _smaller_than_one(op: Operator, real: float, what: str) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: CHECKs 0 < real < 1 and a shift <= 0."""
    if not 0.0 < real < 1.0:
        raise unsupported(op, f"{what} multiplier {real:g} is outside (0, 1), which TFLM "
                          "rejects; check the model's scales")
    mult, shift = multiplier(op, real, f"{what} multiplier")
    if shift > 0:
        raise unsupported(op, f"{what} multiplier {real:g} rounds up to 1, which TFLM rejects")
    return mult, shift


def _prepare(op: Operator, graph: Graph, dtype: DType) -> AddSub:
    x1, x2, y, params = prepare_binary(op, graph, dtype)
    s1, s2, so = x1.quant.scale, x2.quant.scale, y.quant.scale
    left_shift = LEFT_SHIFTS[dtype]
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = _smaller_than_one(op, s1 / twice_max, "input1")
    m2, sh2 = _smaller_than_one(op, s2 / twice_max, "input2")
    mo, sho = _smaller_than_one(op, twice_max / ((1 << left_shift) * so), "output")
    activation, act_min, act_max = activation_bounds(op, y)
    params.update({
        "subtract": op.opcode == "SUB",
        "left_shift": left_shift,
        "left_shift_factor": 1 << left_shift,
        "input1_offset": -x1.quant.zero_point,
        "input2_offset": -x2.quant.zero_point,
        "output_offset": y.quant.zero_point,
        "input1_multiplier": m1, "input1_shift": sh1, "input1_right_shift": -sh1,
        "input2_multiplier": m2, "input2_shift": sh2, "input2_right_shift": -sh2,
        "output_multiplier": mo, "output_shift": sho, "output_right_shift": -sho,
        "activation": activation, "act_min": act_min, "act_max": act_max,
    })
    params["tables"] = False
    return AddSub(op, graph, inputs=activation_inputs(params["operands"]),  # type: ignore[arg-type]
                  outputs=(y.index,), params=params)


def prepare_int8(op: Operator, graph: Graph) -> AddSub:
    """int8: where its bounds hold, each input's scaled value comes from a 256-entry table."""
    layer = _prepare(op, graph, DType.INT8)
    tables = _tables(layer)
    if tables is None:
        return layer
    layer.params.update(tables)
    return AddSubTables(layer.op, graph, inputs=layer.inputs, outputs=layer.outputs,
                        params=layer.params)


def prepare_int16(op: Operator, graph: Graph) -> AddSub:
    """int16: TFLM's arithmetic per element (a table of every int16 value would not fit).
    TFLM's int16 SUB takes inputs with zero point 0 only (its ADD takes any)."""
    layer = _prepare(op, graph, DType.INT16)
    if op.opcode == "SUB":
        for role, operand in zip(("input1", "input2"), layer.operands, strict=True):
            require_zero_point_zero(op, operand.tensor, role)
    return layer


@dataclass
class AddLiteRT(BinaryLayer):
    """Numerics mode litert: XNNPACK's qs8 addition (xnn_init_qs8_add_minmax_scalar_params
    and its vadd microkernels). Each input's scale over the output's, in float32, becomes a
    multiplier of 21 bits at most: shift = 20 - exponent of the larger ratio, multiplier =
    lrintf(ratio * 2^shift). Then per element
        acc = bias + a * a_multiplier + b * b_multiplier   (int32, no overflow)
        out = clamp((acc >> shift) + output_zero_point, lo, hi)   (arithmetic shift)
    where bias = 2^(shift-1) - a_multiplier * a_zp - b_multiplier * b_zp and [lo, hi] are
    XNNPACK's bounds of the fused activation. SUB is this addition with b_multiplier negated
    (XNNPACK negates b's scale)."""

    runtime: ClassVar[tuple[str, ...]] = ("clamp",)
    template: ClassVar[str] = "kernels/add_xnnpack.c.j2"

    def combine(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        p = self.params
        acc = int(p["xnn_bias"]) + a * int(p["a_multiplier"]) + b * int(p["b_multiplier"])
        out = (acc >> int(p["xnn_shift"])) + int(p["output_offset"])
        return np.clip(out, int(p["act_min"]), int(p["act_max"]))

    def describe(self) -> list[tuple[str, str]]:
        p = self.params
        return [
            ("activation", f"{p['activation']} -> clamp [{p['act_min']}, {p['act_max']}] "
                           "(XNNPACK's bounds)"),
            ("multipliers", f"{p['a_multiplier']}, {p['b_multiplier']} >> {p['xnn_shift']}, "
                            "XNNPACK"),
            ("broadcast", describe_levels(p["levels"])),  # type: ignore[arg-type]
        ]


def _xnnpack_multipliers(op: Operator, s_a: float, s_b: float, s_out: float
                         ) -> tuple[int, int, int]:
    ratios = [np.float32(s_a) / np.float32(s_out), np.float32(s_b) / np.float32(s_out)]
    for r in ratios:
        if not (np.float32(2.0 ** -10) <= abs(r) < np.float32(256.0)):
            raise unsupported(op, f"--numerics litert: an input-to-output scale ratio of "
                                  f"{float(r):g} is outside XNNPACK's [2^-10, 2^8); use "
                                  "--numerics tflm")
    largest = max(abs(r) for r in ratios)
    exponent = int((np.array(largest, np.float32).view(np.uint32) >> 23) & 0xFF) - 127
    shift = 20 - exponent
    mults = [int(np.rint(np.float32(abs(r)) * np.float32(2.0 ** shift))) for r in ratios]
    return mults[0], mults[1], shift


def int16_litert(layer: AddSub, mode: str) -> AddSub:
    """A 16x8 ADD or SUB as LiteRT computes it in both modes (XNNPACK takes no int16): its
    general path (left shift 15, the same double multipliers, reference_ops::Add / Sub and
    their broadcasts, the optimized kernels the same arithmetic) is TFLM's. LiteRT's Prepare
    refuses zero points other than 0, and takes another path, a saturating shift of
    power-of-two scales, when the options' pot_scale_int16 (true by default) holds and every
    scale is a power of two: such a layer is refused."""
    from codegen.ops import _litert
    from codegen.ops.logistic_tanh_int16 import checked_log2

    tensors = [*(o.tensor for o in layer.operands), layer.out_tensor()]
    if any(t.quant.zero_point for t in tensors):
        raise _litert.refuse(layer, mode, f"LiteRT fails to prepare an int16 {layer.opcode} "
                             "whose zero points are not 0")
    if layer.op.options.get("pot_scale_int16", True) and all(
            checked_log2(t.quant.scale)[1] for t in tensors):
        raise _litert.refuse(layer, mode, f"LiteRT's int16 {layer.opcode} of power-of-two "
                             "scales takes its pot_scale_int16 path")
    return layer


def litert_ref(layer: AddSub) -> AddSub:
    """Numerics litert-ref: int8 as TFLM (reference_integer_ops), int16 as above."""
    return int16_litert(layer, "litert-ref") if layer.dtype is DType.INT16 else layer


def litert(layer: AddSub) -> BinaryLayer:
    """The layer as LiteRT's default interpreter computes it: XNNPACK (numerics litert)."""
    from codegen.ops import _litert, _requant

    p = layer.params
    if layer.dtype is DType.INT16:
        return int16_litert(layer, "litert")
    if layer.dtype is not DType.INT8:
        raise _litert.refuse(layer, "litert", "only int8 and int16 ADD and SUB are reproduced")
    a, b = (o.tensor for o in layer.operands)
    y = layer.out_tensor()
    try:
        am, bm, shift = _xnnpack_multipliers(layer.op, a.quant.scale, b.quant.scale,
                                             y.quant.scale)
    except UnsupportedError:
        # XNNPACK refuses the layer; LiteRT's builtin ADD and SUB compute TFLM's arithmetic.
        return layer
    if p["subtract"]:  # XNNPACK subtracts as it adds, with b's scale negated
        bm = -bm
    lo, hi = _requant.xnnpack_activation_bounds(str(p["activation"]), y.quant.scale,
                                                y.quant.zero_point)
    params = {k: v for k, v in p.items() if k not in ("tables",)}
    params.update({
        "a_multiplier": am, "b_multiplier": bm, "xnn_shift": shift,
        "xnn_bias": (1 << (shift - 1)) - am * a.quant.zero_point - bm * b.quant.zero_point,
        "act_min": lo, "act_max": hi,
    })
    return AddLiteRT(layer.op, layer.graph, inputs=layer.inputs, outputs=layer.outputs,
                     params=params)


KERNELS = {DType.INT8: prepare_int8, DType.INT16: prepare_int16}
NUMERICS = {"litert-ref": litert_ref, "litert": litert}
