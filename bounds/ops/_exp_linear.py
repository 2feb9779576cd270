"""The exponential-linear family shared by Elu, Celu and Selu (one helper, three op files).

    f(x) = scale * x                                  for x > 0
    f(x) = scale * coeff * expm1(x / rate)            for x <= 0

* Elu(alpha):          scale = 1,     coeff = alpha, rate = 1;
* Selu(alpha, gamma):  scale = gamma, coeff = alpha, rate = 1;
* Celu(alpha):         scale = 1,     coeff = alpha, rate = alpha (``rate != 0``).

Shape.  Linear on ``x > 0``; on ``x < 0`` ``f'' = scale coeff / rate**2 * exp(x / rate)`` has
the constant sign of ``scale * coeff``: convex for ``scale * coeff > 0`` (Elu/Selu with
alpha > 0, every Celu with scale 1), concave for ``< 0``, linear for ``= 0``.  No inflection
point inside either piece.  At 0 the one-sided slopes are ``scale * coeff / rate`` (left) and
``scale`` (right): a kink unless they are equal (Elu alpha = 1, Selu alpha = 1, every Celu).

Stationary points of ``f(x) - a x``: on ``x < 0`` ``f'`` is strictly monotone (an exponential),
so ``f'(x) = a`` has at most the one root ``x = rate * log(a rate / (scale coeff))`` (NaN or
infinite when there is none: harmless, candidates are clamped into the box); on ``x > 0``
``f - a x`` is linear, so its extremes are at the ends of the box or at 0.  The candidates
``{l, u, 0, root}`` are therefore complete, in closed form.

The exponential's argument is clamped to ``x <= 0`` (``x / rate <= 0`` for ``rate > 0``), so
no branch overflows for positive inputs (no ``inf * 0`` in values or gradients).  With
``rate < 0`` (Celu alpha < 0) the left branch grows like ``exp(|x / rate|)`` and overflows to
``-inf`` far out; such boxes get "no information" lines, never NaN.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import tangent_rule
from genbab.bounds.relaxation import OpRule


Function = Callable[[Tensor], Tensor]


def exp_linear_functions(scale: float, coeff: float, rate: float) -> tuple[Function, Function]:
    """(f, f') of the family for these constants; elementwise, any float dtype."""
    left_slope = scale * coeff / rate

    def value(x: Tensor) -> Tensor:
        negative = torch.clamp(x, max=0.0)
        left = (scale * coeff) * torch.expm1(negative / rate)
        return torch.where(x > 0, scale * x, left)

    def slope(x: Tensor) -> Tensor:
        negative = torch.clamp(x, max=0.0)
        left = left_slope * torch.exp(negative / rate)
        return torch.where(x > 0, torch.full_like(x, scale), left)

    return value, slope


def exp_linear_curve(scale: float, coeff: float, rate: float) -> Curve:
    value, slope = exp_linear_functions(scale, coeff, rate)
    left_slope = scale * coeff / rate

    def stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
        zero = torch.zeros_like(lower)
        if left_slope == 0.0:
            return (zero,)
        with torch.no_grad():           # a point, not a function of the bounds
            root = rate * torch.log(a / left_slope)
        return zero, root

    return Curve(value=value, slope=slope, stationary=stationary)


def exp_linear_kinks(scale: float, coeff: float, rate: float) -> tuple[float, ...]:
    """``(0.0,)`` where the one-sided slopes at 0 differ, else ``()``."""
    return () if scale * coeff / rate == scale else (0.0,)


def exp_linear_rule(op_type: str, scale: float, coeff: float, rate: float,
                    attrs: Mapping[str, Any],
                    binder: Callable[[Mapping[str, Any]], OpRule]) -> OpRule:
    curve = exp_linear_curve(scale, coeff, rate)
    return tangent_rule(op_type, curve, curve.value, attrs=attrs, binder=binder,
                        kinks=exp_linear_kinks(scale, coeff, rate))
