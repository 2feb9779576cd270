"""Softsign ``x / (1 + |x|)``: odd and increasing, convex on x < 0, concave on x > 0, the one
inflection point at 0 (``f'' = -2 sign(x) / (1 + |x|)**3`` jumps there, but ``f`` is C1 with
``f'(0) = 1``, so no kink).  ``f' = (1 + |x|)**-2`` is strictly monotone on each half line, so
``f'(x) = a`` has exactly the roots ``x = +-(1 / sqrt(a) - 1)`` for 0 < a <= 1 and none
otherwise (NaN / infinite candidates are harmless): complete, in closed form."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import tangent_rule


def softsign(x: Tensor) -> Tensor:
    return x / (1 + x.abs())


def _slope(x: Tensor) -> Tensor:
    return (1 + x.abs()).square().reciprocal()


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    root = torch.rsqrt(a.clamp(1e-300, 1.0)) - 1
    return root, -root


SOFTSIGN_CURVE = Curve(value=softsign, slope=_slope, stationary=_stationary)
SOFTSIGN = tangent_rule("Softsign", SOFTSIGN_CURVE, softsign)
