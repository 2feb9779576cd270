"""Abs (algorithms.md 3.15): exact when stable; otherwise the chord above and a line of slope
+-1 (the side of larger magnitude) below.  One parameter: the lower slope, in [-1, 1]."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve, chord_slope
from genbab.bounds.ops._curve_rule import slope_rule


def _kink(slope: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return (torch.zeros_like(lower),)


ABS_CURVE = Curve(value=torch.abs, slope=torch.sign, stationary=_kink)


def _slope_range(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    lo = torch.where(lower < 0, -1.0, 1.0).to(lower.dtype)
    return lo, torch.maximum(lo, torch.where(upper > 0, 1.0, -1.0).to(lower.dtype))


def _slopes(curve: Curve, lower: Tensor, upper: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    lo, hi = _slope_range(lower, upper)
    side = torch.where(upper >= -lower, 1.0, -1.0).to(lower.dtype)
    return torch.minimum(torch.maximum(side, lo), hi), chord_slope(curve, lower, upper)


ABS = slope_rule("Abs", ABS_CURVE, torch.abs, param_sides=("lower",),
                 slope_range=_slope_range, slopes=_slopes, kinks=(0.0,))
