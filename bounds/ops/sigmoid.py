"""Sigmoid (algorithms.md 3.2): S-shaped, convex below 0, concave above.

Slopes come from ``bounds.anchors`` (chord, midpoint tangent, or the anchored tangent at
``t_L(u)``/``t_U(l)`` in the straddling case); biases are exact.  ``sigma'(x) = a`` has the
closed-form solutions ``x = +-logit(s)``, ``s = 2a / (1 + sqrt(1 - 4a))``."""
from __future__ import annotations

import torch
from torch import Tensor

from bounds.lines import Curve
from bounds.ops._curve_rule import tangent_rule


def _slope(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return s * (1 - s)


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    a = a.clamp(1e-300, 0.25)
    s = 2 * a / (1 + torch.sqrt((1 - 4 * a).clamp_min(0)))
    x = torch.log(s) - torch.log1p(-s)
    return x, -x


SIGMOID_CURVE = Curve(value=torch.sigmoid, slope=_slope, stationary=_stationary)
SIGMOID = tangent_rule("Sigmoid", SIGMOID_CURVE, torch.sigmoid)
