"""Atan: odd and increasing, S-shaped like tanh: convex on x < 0, concave on x > 0, the one
inflection point at 0 (``f'' = -2x / (1 + x**2)**2``).  ``f' = 1 / (1 + x**2)`` is strictly
monotone on each half line, so ``f'(x) = a`` has exactly the roots
``x = +-sqrt((1 - a) / a)`` for 0 < a <= 1 and none otherwise: complete, in closed form."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import tangent_rule


def _slope(x: Tensor) -> Tensor:
    return (1 + x * x).reciprocal()


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    a = a.clamp(1e-300, 1.0)
    root = torch.sqrt((1 - a) / a)
    return root, -root


ATAN_CURVE = Curve(value=torch.atan, slope=_slope, stationary=_stationary)
ATAN = tangent_rule("Atan", ATAN_CURVE, torch.atan)
