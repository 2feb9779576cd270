"""HardSwish ``x * max(0, min(1, x / 6 + 1/2))`` (ONNX HardSwish: alpha 1/6, beta 1/2 fixed).

Three pieces: 0 for x <= -3; the convex parabola ``x**2 / 6 + x / 2`` on [-3, 3] (minimum
-3/8 at -3/2); ``x`` for x >= 3.  ``f`` is continuous but not differentiable at -3 (slopes 0
and -1/2) and 3 (slopes 3/2 and 1), the kinks.  Stationary points of ``f(x) - a x``: on each
outer piece ``f - a x`` is linear (extremes at the ends of the box or at -3, 3); on the middle
piece ``f' = x / 3 + 1/2`` is strictly increasing, so its only root is ``x = 3 a - 3/2``.  The
candidates ``{l, u, -3, 3, 3 a - 3/2}`` are complete, in closed form."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import tangent_rule

KINKS = (-3.0, 3.0)


def hard_swish(x: Tensor) -> Tensor:
    return x * torch.clamp(x / 6 + 0.5, 0.0, 1.0)


def _slope(x: Tensor) -> Tensor:
    middle = x / 3 + 0.5
    return torch.where(x < -3, torch.zeros_like(x), torch.where(x > 3, torch.ones_like(x), middle))


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return (torch.full_like(lower, KINKS[0]), torch.full_like(lower, KINKS[1]), 3 * a - 1.5)


HARD_SWISH_CURVE = Curve(value=hard_swish, slope=_slope, stationary=_stationary)
HARD_SWISH = tangent_rule("HardSwish", HARD_SWISH_CURVE, hard_swish, kinks=KINKS)
