"""Reciprocal 1/x (algorithms.md 3.7), closed form (``bounds.ops._convex``).
Convex for x > 0 (chord above, tangent below) and, by the odd symmetry, concave for x < 0
(chord below, tangent above, at ``params[1]``).  A box with ``l <= 0 <= u`` contains the pole:
it cannot be bounded, and the relaxation is "no information" (slopes 0, biases -inf/+inf)
with interval (-inf, inf); the engine must detect it with
``bounds.relaxation.is_informative`` (never clamp silently: that would be unsound).  Boxes
reaching within 1e-15 of the pole (or beyond 1e15) get flat lines at the interval.
``RECIPROCAL_CURVE`` feeds the float64 exact-offset reference rule."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._closed_form import ULPS_F, eps_of, floor_of
from genbab.bounds.ops._convex import Convex, convex_rule
from genbab.bounds.ops._curve_rule import tangent_rule

_NEAR, _FAR = 1e-15, 1e15


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    root = torch.sqrt(-1 / a.clamp_max(-1e-300))
    return root, -root


def _domain(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return lower, upper, (lower > 0) | (upper < 0)


RECIPROCAL_CURVE = Curve(value=torch.reciprocal, slope=lambda x: -torch.reciprocal(x * x),
                         stationary=_stationary)


def reciprocal_interval(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    rel, floor = (ULPS_F + 2) * eps_of(lower), floor_of(lower)
    lo, hi = torch.reciprocal(upper), torch.reciprocal(lower)
    lo = lo.abs().mul_(-rel).add_(lo).sub_(floor)
    hi = hi.abs().mul_(rel).add_(hi).add_(floor)
    valid = (lower > 0) | (upper < 0)
    lo = torch.where(valid, lo, float("-inf")).nan_to_num_(
        nan=float("-inf"), posinf=float("inf"), neginf=float("-inf"))
    hi = torch.where(valid, hi, float("inf")).nan_to_num_(
        nan=float("inf"), posinf=float("inf"), neginf=float("-inf"))
    return lo, hi


def _fast_ok(lower: Tensor, upper: Tensor) -> Tensor:
    near = torch.minimum(lower.abs(), upper.abs())
    far = torch.maximum(lower.abs(), upper.abs())
    return ((lower > 0) | (upper < 0)) & (near >= _NEAR) & (far <= _FAR)


def _all_fast(lower: Tensor, upper: Tensor) -> bool:
    return bool(_fast_ok(lower, upper).all())


def _slope(x: Tensor) -> Tensor:
    return torch.reciprocal(x * x).neg_()


RECIPROCAL_SHAPE = Convex(
    value=torch.reciprocal, slope=_slope, curvature=lambda x: 2 * torch.reciprocal(x) ** 3,
    interval=reciprocal_interval, default_tangent=lambda lo, up: torch.add(lo, up).mul_(0.5),
    tangent_range=lambda lo, up: (lo, up), fast_ok=_fast_ok, all_fast=_all_fast,
    reference=tangent_rule("Reciprocal", RECIPROCAL_CURVE, torch.reciprocal, domain=_domain),
    mirrored=True)
RECIPROCAL = convex_rule("Reciprocal", RECIPROCAL_SHAPE)
