"""Tanh (algorithms.md 3.2): S-shaped like sigmoid, implemented directly; closed-form lines
(``bounds.ops._s_shaped``).  ``tanh'(x) = cosh(x)**-2``; ``tanh'(x) = a`` at
``x = +-(log1p(y) - log(a)/2)`` with ``y = sqrt(1 - a)``.  ``TANH_CURVE`` feeds the float64
exact-offset reference rule (bounds that require gradients)."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import tangent_rule
from genbab.bounds.ops._s_shaped import SShape, s_shaped_rule


def _slope(x: Tensor) -> Tensor:
    return torch.cosh(x).square_().reciprocal_()


def _tangent(t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    value = torch.tanh(t)
    return value, torch.neg(value), _slope(t)


def _slope_given_value(x: Tensor, value: Tensor) -> Tensor:
    return _slope(x)


def _curvature(x: Tensor) -> Tensor:
    return -2 * torch.tanh(x) * _slope(x)


def _root(a: Tensor) -> Tensor:
    """The x >= 0 with tanh'(x) = a."""
    a = a.clamp(1e-300 if a.dtype == torch.float64 else 1e-30, 1.0)
    return torch.log1p(torch.sqrt(1 - a)) - 0.5 * torch.log(a)


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    x = _root(a)
    return x, -x


TANH_CURVE = Curve(value=torch.tanh, slope=lambda x: torch.cosh(x).pow(-2),
                   stationary=_stationary)
TANH_SHAPE = SShape("tanh", torch.tanh, _tangent, _root, _slope, _curvature,
                    _slope_given_value,
                    tangent_rule("Tanh", TANH_CURVE, torch.tanh))
TANH = s_shaped_rule("Tanh", TANH_SHAPE)
