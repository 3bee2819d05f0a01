"""The RISC-V vector (RVV 1.0, VLEN >= 128) kernel of small FULLY_CONNECTED layers
(templates/kernels/_fully_connected_rvv.c.j2), compiled where `CG_FC_RVV` holds
(templates/runtime/fc_rvv.c.j2); other cores compile the layer's own kernel.

A layer of at most 16 units keeps its whole output in one vector of 32-bit accumulators
(16 lanes at LMUL 4), started at the folded biases (generation time:
bias + input_offset * sum_k (w + filter_offset)). Per input value x[k] (a scalar byte load)
one VWMACC.VX at SEW 16 adds x[k] * (w[:, k] + filter_offset) to every lane, modulo 2^32
like TFLM's int32 sums: the weights are stored as int16 with the filter offset added
(|w + filter_offset| <= 255), four depth indices of every unit together so that one
four-field segment load (VLSEG4E16) gives four weight vectors; the depth's last
depth % 4 indices take a segment load of that many fields.

The requantization is the exact gemmlowp arithmetic of TFLM's MultiplyByQuantizedMultiplier
on all lanes at once:
  - x << left: VSLL (wrapping, as the scalar C does);
  - SaturatingRoundingDoublingHighMul(x, m): VSMUL with the rounding mode round-to-nearest-up
    (VXRM = 0): (x * m + 2^30) >> 31, saturating only INT32_MIN * INT32_MIN to INT32_MAX.
    gemmlowp adds 2^30 (x * m >= 0) or 1 - 2^30 and truncates toward zero; for a negative
    product both are floor((x * m + 2^30) / 2^31), so the two agree everywhere;
  - RoundingDivideByPOT(x, e), half away from zero: VSSRA (round half up) of x - 1 where
    x < 0 and e > 0 (saturating: INT32_MIN stays, which gives the same quotient), i.e.
    floor((x - 1 + 2^(e-1)) / 2^e), which is x's quotient rounded half away from zero.
Then the output zero point (wrapping add), the clamp, two narrowing shifts and one store.
"""

from __future__ import annotations

import numpy as np

from codegen.ops.base import CArray

GUARD = "CG_FC_RVV"
MAX_UNITS = 16  # lanes of one e32 LMUL-4 register group at VLEN 128
FIELDS = 4  # depth indices per segment load


def plan(params: dict[str, object]) -> dict[str, object] | None:
    """The kernel's parameters for a prepared FULLY_CONNECTED layer, or None where it does
    not apply (more than MAX_UNITS units, or a shift out of 0..31 either way)."""
    units, depth = int(params["units"]), int(params["depth"])  # type: ignore[call-overload]
    if units > MAX_UNITS:
        return None
    shifts = np.broadcast_to(np.asarray(params["shifts"], np.int64), (units,))
    left, right = np.maximum(shifts, 0), np.maximum(-shifts, 0)
    if left.max() > 31 or right.max() > 31:
        return None
    per_channel = bool(params["per_channel"])
    return {
        "groups": depth // FIELDS,
        "rest": depth % FIELDS,
        "per_channel": per_channel,
        "any_left": bool(left.any()),
        "any_right": bool(right.any()),
        "left": int(left[0]),
        "right": int(right[0]),
        "weights": weights(np.asarray(params["weights_data"]), int(params["filter_offset"])),
        "table": table(params, left, right) if per_channel else None,
    }


def weights(w: np.ndarray, filter_offset: int) -> np.ndarray:
    """[units, depth] int8 as the kernel reads them: int16 w + filter_offset, per group of
    four depth indices every unit's four values, then every unit's last depth % 4."""
    units, depth = w.shape
    wide = w.astype(np.int16) + np.int16(filter_offset)
    cut = depth - depth % FIELDS
    head = wide[:, :cut].reshape(units, cut // FIELDS, FIELDS).transpose(1, 0, 2)
    return np.concatenate([head.ravel(), wide[:, cut:].ravel()]).astype(np.int16)


def table(params: dict[str, object], left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Per-channel constants, units words each: left shifts, multipliers, right shifts,
    and -1 where the right shift is not 0 (the half-away-from-zero adjustment's mask)."""
    mult = np.asarray(params["multipliers"], np.int64)
    rows = [left, mult, right, -(right > 0).astype(np.int64)]
    return np.concatenate(rows).astype(np.int32)


def constants(rvv: dict[str, object], folded_bias: np.ndarray) -> list[CArray]:
    """The kernel's arrays, compiled only where it runs."""
    arrays = [CArray("rvv_weights", np.asarray(rvv["weights"], np.int16), GUARD),
              CArray("rvv_bias", np.asarray(folded_bias, np.int32), GUARD)]
    if rvv["table"] is not None:
        arrays.append(CArray("rvv_rq", np.asarray(rvv["table"], np.int32), GUARD))
    return arrays


def elsewhere(arrays: list[CArray]) -> list[CArray]:
    """The layer's other arrays, compiled only where the RVV kernel is not."""
    return [CArray(a.name, a.values, f"!{GUARD} && ({a.guard})" if a.guard else f"!{GUARD}")
            for a in arrays]
