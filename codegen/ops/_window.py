"""Sliding-window geometry shared by the 2-D convolutions and poolings: SAME/VALID padding.

TFLM's Prepare (ComputePaddingHeightWidth in tensorflow/lite/kernels/padding.h) computes the
output size from the padding mode alone, then the padding before the first row/column as
half the total padding, rounded down; any odd extra padding goes after the last row/column
and is never stored (the kernels simply find those taps outside the image):

    effective = (filter - 1) * dilation + 1
    out       = ceil(in / stride)                       SAME
              = (in + stride - effective) / stride      VALID (C division)
    pad_start = max(0, (out - 1) * stride + effective - in) // 2

Eval then reads input row `out_y * stride - pad_start + tap * dilation` and skips taps
outside [0, in).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from codegen.model.ir import Operator, Tensor
from codegen.ops.base import unsupported

PADDINGS = ("SAME", "VALID")


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a window: input size, taps, stride, dilation and the result."""

    size: int  # input extent
    taps: int  # filter extent
    stride: int
    dilation: int
    out: int  # output extent
    pad: int  # padding before the first element (TFLM's padding_values.height/width)

    @property
    def effective(self) -> int:
        return (self.taps - 1) * self.dilation + 1

    def origin(self, o: int) -> int:
        """Input coordinate of tap 0 for output coordinate `o`."""
        return o * self.stride - self.pad

    def inside(self, o: int) -> list[int]:
        """The taps of output `o` that fall inside the input."""
        start = self.origin(o)
        return [t for t in range(self.taps) if 0 <= start + t * self.dilation < self.size]

    def interior(self) -> tuple[int, int]:
        """[lo, hi): the outputs whose taps all fall inside the input (lo == hi: none).

        These outputs form one contiguous run because the window origin grows with `o`."""
        full = [o for o in range(self.out) if len(self.inside(o)) == self.taps]
        return (full[0], full[-1] + 1) if full else (0, 0)

    @property
    def pad_after(self) -> int:
        """Padding past the last input element that the last window reaches (not stored)."""
        return max(0, self.origin(self.out - 1) + self.effective - self.size)


def _out_size(padding: str, size: int, taps: int, stride: int, dilation: int) -> int:
    effective = (taps - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    numerator = size + stride - effective
    # C's truncating division; a non-positive result means the window does not fit.
    return numerator // stride if numerator >= 0 else -((-numerator) // stride)


def axis(padding: str, size: int, taps: int, stride: int, dilation: int) -> Axis:
    """TFLM's ComputeOutSize and ComputePaddingWithOffset for one axis."""
    out = _out_size(padding, size, taps, stride, dilation)
    effective = (taps - 1) * dilation + 1
    total = max(0, (out - 1) * stride + effective - size)
    return Axis(size, taps, stride, dilation, out, total // 2)


@dataclass(frozen=True)
class Window:
    padding: str
    rows: Axis
    cols: Axis

    @property
    def out_shape(self) -> tuple[int, int]:
        return self.rows.out, self.cols.out

    def describe(self) -> str:
        r, c = self.rows, self.cols
        text = (f"{r.taps}x{c.taps} stride {r.stride}x{c.stride} {self.padding} "
                f"pad top/left {r.pad}/{c.pad} bottom/right {r.pad_after}/{c.pad_after}")
        if r.dilation != 1 or c.dilation != 1:
            text += f" dilation {r.dilation}x{c.dilation}"
        return text

    def taps(self, xs: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """(fy, fx, view of xs (S, OH, OW, C) at that filter tap) for every tap, xs being the
        input zero-padded so that every window lies inside it."""
        r, c = self.rows, self.cols
        for fy in range(r.taps):
            y0 = fy * r.dilation
            for fx in range(c.taps):
                x0 = fx * c.dilation
                yield fy, fx, xs[:, y0:y0 + (r.out - 1) * r.stride + 1:r.stride,
                                 x0:x0 + (c.out - 1) * c.stride + 1:c.stride, :]

    def conv_sums(self, xs: np.ndarray, weights: np.ndarray, groups: int) -> np.ndarray:
        """sum over taps of w * x for every output of a (grouped) convolution: xs as for
        `taps`, weights OHWI. Computed in float64, exact while every partial sum stays
        below 2^53 (the callers' accumulation checks bound it far lower)."""
        out_c, group_c = weights.shape[0], weights.shape[3]
        per_group = out_c // groups
        w = weights.astype(np.float64)
        acc = np.zeros((xs.shape[0], self.rows.out, self.cols.out, out_c))
        for fy, fx, view in self.taps(xs):
            values = view.astype(np.float64)
            for g in range(groups):
                ins = slice(g * group_c, (g + 1) * group_c)
                outs = slice(g * per_group, (g + 1) * per_group)
                acc[..., outs] += values[..., ins] @ w[outs, fy, fx, :].T
        return acc.astype(np.int64)

    def depthwise_sums(self, xs: np.ndarray, weights: np.ndarray,
                       multiplier: int) -> np.ndarray:
        """sum over taps of w * x for every output of a depthwise convolution: xs as for
        `taps`, weights HWC' with output channel ic * multiplier + m."""
        acc = np.zeros((xs.shape[0], self.rows.out, self.cols.out, weights.shape[-1]),
                       dtype=np.int64)
        for fy, fx, view in self.taps(xs):
            acc += (np.repeat(view, multiplier, axis=-1) if multiplier > 1 else view) \
                * weights[fy, fx]
        return acc


def spatial_options(op: Operator, *, dilations: bool) -> tuple[str, int, int, int, int]:
    """(padding, stride_h, stride_w, dilation_h, dilation_w) from the options, checked."""
    o = op.options
    padding = str(o.get("padding", "SAME"))
    if padding not in PADDINGS:
        raise unsupported(op, f"padding {padding} is not supported (SAME or VALID)")
    stride_h, stride_w = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    if stride_h < 1 or stride_w < 1:
        raise unsupported(op, f"strides must be >= 1, found {stride_h}x{stride_w}")
    dil_h = int(o.get("dilation_h_factor", 1)) if dilations else 1
    dil_w = int(o.get("dilation_w_factor", 1)) if dilations else 1
    if dil_h < 1 or dil_w < 1:
        raise unsupported(op, f"dilation factors must be >= 1, found {dil_h}x{dil_w}")
    return padding, stride_h, stride_w, dil_h, dil_w


def window(op: Operator, x: Tensor, y: Tensor, taps_h: int, taps_w: int, *,
           dilations: bool = True) -> Window:
    """The window of a 2-D operator reading NHWC `x` into NHWC `y`; the output's height and
    width must be the ones TFLM computes from the options."""
    padding, sh, sw, dh, dw = spatial_options(op, dilations=dilations)
    if taps_h < 1 or taps_w < 1:
        raise unsupported(op, f"filter size must be >= 1, found {taps_h}x{taps_w}")
    rows = axis(padding, x.shape[1], taps_h, sh, dh)
    cols = axis(padding, x.shape[2], taps_w, sw, dw)
    if rows.out < 1 or cols.out < 1:
        raise unsupported(
            op, f"a {rows.effective}x{cols.effective} window does not fit a "
            f"{x.shape[1]}x{x.shape[2]} input with {padding} padding"
        )
    if (y.shape[1], y.shape[2]) != (rows.out, cols.out):
        raise unsupported(
            op, f"output is {y.shape[1]}x{y.shape[2]} but {padding} padding with these "
            f"strides gives {rows.out}x{cols.out}"
        )
    return Window(padding, rows, cols)


def require_nhwc(op: Operator, tensor: Tensor, role: str) -> None:
    if len(tensor.shape) != 4 or tensor.size == 0:
        raise unsupported(
            op, f"{role} '{tensor.name}' must be a non-empty 4-D NHWC tensor, "
            f"found shape {list(tensor.shape)}"
        )
