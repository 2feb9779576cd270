"""Relu (algorithms.md 3.1): identity or zero when stable; otherwise the chord above and
``alpha * x`` below, ``alpha`` in [0, 1] optimisable (one parameter, the lower slope)."""
from __future__ import annotations

import torch
from torch import Tensor

from bounds.lines import Curve, chord_slope
from bounds.ops._curve_rule import slope_rule


def _kink(slope: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return (torch.zeros_like(lower),)


RELU_CURVE = Curve(value=torch.relu, slope=lambda x: (x > 0).to(x.dtype), stationary=_kink)


def _slopes(curve: Curve, lower: Tensor, upper: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Adaptive lower slope (1 if u > -l else 0), chord above."""
    lower_slope = torch.where(lower >= 0, 1.0, torch.where(upper <= 0, 0.0,
                                                           (upper > -lower).to(lower.dtype)))
    return lower_slope, chord_slope(curve, lower, upper)


def _slope_range(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    return (lower > 0).to(lower.dtype), (upper > 0).to(lower.dtype)


RELU = slope_rule("Relu", RELU_CURVE, torch.relu, param_sides=("lower",),
                  slope_range=_slope_range, slopes=_slopes)
