"""Tanh (algorithms.md 3.2): S-shaped like sigmoid, implemented directly.

``tanh'(x) = a`` at ``x = +-(log1p(y) - log(a)/2)`` with ``y = sqrt(1 - a)``."""
from __future__ import annotations

import torch
from torch import Tensor

from bounds.lines import Curve
from bounds.ops._curve_rule import tangent_rule


def _slope(x: Tensor) -> Tensor:
    return torch.cosh(x).pow(-2)


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    a = a.clamp(1e-300, 1.0)
    x = torch.log1p(torch.sqrt(1 - a)) - 0.5 * torch.log(a)
    return x, -x


TANH_CURVE = Curve(value=torch.tanh, slope=_slope, stationary=_stationary)
TANH = tangent_rule("Tanh", TANH_CURVE, torch.tanh)
