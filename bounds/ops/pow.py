"""Pow with a constant exponent ``e`` (algorithms.md 3.9): ``make_rule("Pow", {"exponent": e})``.

* integer ``e >= 2``: even powers are convex with the minimum at 0 (``e = 2`` is Square: chord
  above, tangent below at any real point); odd powers are a flipped S around 0 (3.0, mirrored);
* ``e = 0`` is the constant 1 (ONNX: ``0 ** 0 = 1``), ``e = 1`` the identity;
* negative integers have a pole at 0: boxes containing 0 give "no information";
* non-integer ``e``: defined for ``x >= 0`` only; bounds are clamped to ``x >= 0`` (like Sqrt)
  for ``e > 0``, and boxes reaching ``x <= 0`` give "no information" for ``e < 0``.

The registered default (``RULES["Pow"]``) is the square, relaxed in closed form
(``bounds.ops._convex``: tangent below, chord above); other exponents use the float64
exact-offset construction.  The loader passes the constant second
input of ONNX Pow as the ``exponent`` attribute."""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._closed_form import bounds_within, floor_of
from genbab.bounds.ops._convex import Convex, convex_rule
from genbab.bounds.ops._curve_rule import tangent_rule, whole_line
from genbab.bounds.relaxation import OpRule


def _stationary_for(e: float, integer: bool):
    """Solutions of ``e x^(e-1) = a``."""
    m = e - 1

    def stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
        if e == 0 or m == 0:
            return ()
        c = a / e
        if not integer:
            return (torch.where(c > 0, c.clamp_min(1e-300).pow(1 / m), math.nan),)
        root = c.abs().clamp_min(1e-300).pow(1 / m)
        if int(m) % 2 == 1:
            return (torch.sign(c) * root,)
        return (torch.where(c > 0, root, math.nan), torch.where(c > 0, -root, math.nan))
    return stationary


def _domain_for(e: float, integer: bool):
    if integer and e >= 0:
        return whole_line
    if integer:
        return lambda lower, upper: (lower, upper, (lower > 0) | (upper < 0))
    if e > 0:
        return lambda lower, upper: (lower.clamp_min(0), upper.clamp_min(0),
                                     torch.ones_like(lower, dtype=torch.bool))
    return lambda lower, upper: (lower, upper, lower > 0)


def make_pow(attrs: Mapping[str, Any]) -> OpRule:
    unknown = set(attrs) - {"exponent"}
    if unknown:
        raise ValueError(f"Pow: unknown attributes {sorted(unknown)} (expected 'exponent')")
    e = float(attrs.get("exponent", 2.0))
    if not math.isfinite(e):
        raise ValueError(f"Pow: the exponent must be finite, got {e}")
    return SQUARE if e == 2 else _exact_pow(e)


def _exact_pow(e: float) -> OpRule:
    """The float64 exact-offset construction for ``x ** e``."""
    integer = e == round(e)
    power: float | int = int(e) if integer else e

    def value(x: Tensor) -> Tensor:
        return torch.pow(x, power)

    def slope(x: Tensor) -> Tensor:
        if e == 0:
            return torch.zeros_like(x)
        return e * torch.pow(x, power - 1)

    curve = Curve(value=value, slope=slope, stationary=_stationary_for(e, integer))
    input_range = (-math.inf, math.inf) if integer else (0.0, math.inf)
    return tangent_rule("Pow", curve, value, domain=_domain_for(e, integer),
                        input_range=input_range, attrs={"exponent": power}, binder=make_pow)


_LIMIT = 1e15        # the square is then <= 1e30, finite in float32


def square_interval(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """``[min x^2, max x^2]`` on the box, rounded outward (``x^2`` is correctly rounded)."""
    eps = float(torch.finfo(lower.dtype).eps)
    nearest = torch.minimum(torch.maximum(lower.new_zeros(()), lower), upper)
    lo = nearest.square_().mul_(1 - 2 * eps).sub_(floor_of(lower)).clamp_(min=0.0)
    hi = torch.maximum(lower.square(), upper.square()).mul_(1 + 2 * eps).add_(
        floor_of(lower))
    return lo.nan_to_num_(nan=0.0, posinf=torch.finfo(lo.dtype).max), \
        hi.nan_to_num_(nan=float("inf"), posinf=float("inf"))


SQUARE_SHAPE = Convex(
    value=torch.square, slope=lambda x: 2 * x, curvature=lambda x: torch.full_like(x, 2.0),
    interval=square_interval, default_tangent=lambda lo, up: torch.add(lo, up).mul_(0.5),
    tangent_range=lambda lo, up: (lo, up),
    fast_ok=lambda lo, up: (lo.abs() <= _LIMIT) & (up.abs() <= _LIMIT),
    all_fast=lambda lo, up: bounds_within(_LIMIT, lo, up), reference=_exact_pow(2.0))
SQUARE = convex_rule("Pow", SQUARE_SHAPE, attrs={"exponent": 2}, binder=make_pow)
POW = SQUARE
