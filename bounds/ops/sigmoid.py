"""Sigmoid (algorithms.md 3.2): S-shaped, convex below 0, concave above; closed-form lines
(``bounds.ops._s_shaped``).  ``sigma'(x) = sigma(x) sigma(-x)`` (no cancellation in the tails);
``sigma'(x) = a`` at ``x = +-logit(s)``, ``s = 2a / (1 + sqrt(1 - 4a))``.  ``SIGMOID_CURVE``
feeds the float64 exact-offset reference rule (bounds that require gradients)."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import tangent_rule
from genbab.bounds.ops._s_shaped import SShape, s_shaped_rule


def _slope(x: Tensor) -> Tensor:
    return torch.sigmoid(x).mul_(torch.sigmoid(-x))


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    x = _root(a)
    return x, -x


def _tangent(t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    value, mirror = torch.sigmoid(t), torch.sigmoid(torch.neg(t))
    return value, mirror, value * mirror


def _slope_given_value(x: Tensor, value: Tensor) -> Tensor:
    return torch.neg(x).sigmoid_().mul_(value)


def _curvature(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return s * (1 - s) * (1 - 2 * s)


def _root(a: Tensor) -> Tensor:
    """The x >= 0 with sigma'(x) = a."""
    a = a.clamp(1e-300 if a.dtype == torch.float64 else 1e-30, 0.25)
    s = 2 * a / (1 + torch.sqrt((1 - 4 * a).clamp_min(0)))
    return torch.log1p(-s) - torch.log(s)


SIGMOID_CURVE = Curve(value=torch.sigmoid, slope=lambda x: torch.sigmoid(x) * torch.sigmoid(-x),
                      stationary=_stationary)
SIGMOID_SHAPE = SShape("sigmoid", torch.sigmoid, _tangent, _root, _slope, _curvature,
                       _slope_given_value,
                       tangent_rule("Sigmoid", SIGMOID_CURVE, torch.sigmoid))
SIGMOID = s_shaped_rule("Sigmoid", SIGMOID_SHAPE)
