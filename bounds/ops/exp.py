"""Exp (algorithms.md 3.5): convex and increasing; chord above, tangent below, in closed form
(``bounds.ops._convex``).  The lower tangent point is capped at ``l + 0.99`` (the line stays
positive on the box, which softmax needs).  Overflow: boxes with ``u`` beyond ``_U_MAX`` (or
any bound beyond 1e15 in magnitude, infinite or NaN) get flat lines at the interval, whose
upper end is ``+inf`` where ``exp`` overflows: "no information" (slope 0, bias +inf), never
NaN.  ``EXP_CURVE`` feeds the float64 exact-offset reference rule."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve, chord_slope
from genbab.bounds.ops._closed_form import ULPS_F, eps_of, floor_of
from genbab.bounds.ops._convex import Convex, convex_rule
from genbab.bounds.ops._curve_rule import tangent_rule

_CAP = 0.99
_LIMIT = 1e15
_U_MAX = {torch.float64: 700.0}          # float32 and narrower: 80 (e^80 ~ 5.5e34)


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return (torch.log(a.clamp_min(1e-300)),)


EXP_CURVE = Curve(value=torch.exp, slope=torch.exp, stationary=_stationary)


def _lower_tangent_range(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    return lower, torch.minimum(upper, lower + _CAP)


def _default_tangent(lower: Tensor, upper: Tensor) -> Tensor:
    return torch.minimum(torch.add(lower, upper).mul_(0.5), lower + _CAP)


def _slopes(curve: Curve, lower: Tensor, upper: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    return torch.exp(_default_tangent(lower, upper)), chord_slope(curve, lower, upper)


def exp_interval(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    rel = (ULPS_F + 2) * eps_of(lower)
    lo = torch.exp(lower).mul_(1 - rel).sub_(floor_of(lower)).clamp_(min=0.0)   # exp >= 0
    hi = torch.exp(upper).mul_(1 + rel).add_(floor_of(upper))
    big = torch.finfo(lo.dtype).max * (1 - 8 * eps_of(lo))             # overflowed: below max
    lo = torch.nan_to_num(lo, nan=0.0, posinf=big)
    hi = torch.nan_to_num(hi, nan=float("inf"), posinf=float("inf"))
    return lo, hi


def _u_max(like: Tensor) -> float:
    return _U_MAX.get(like.dtype, 80.0)


def _fast_ok(lower: Tensor, upper: Tensor) -> Tensor:
    return (lower.abs() <= _LIMIT) & (upper.abs() <= _LIMIT) & (upper <= _u_max(upper))


def _all_fast(lower: Tensor, upper: Tensor) -> bool:
    peaks = torch.stack([lower.abs().amax(), upper.abs().amax(), upper.amax() - _u_max(upper)])
    return bool(peaks[:2].max() <= _LIMIT) and bool(peaks[2] <= 0)


EXP_SHAPE = Convex(
    value=torch.exp, slope=torch.exp, curvature=torch.exp, interval=exp_interval,
    default_tangent=_default_tangent, tangent_range=_lower_tangent_range, fast_ok=_fast_ok,
    all_fast=_all_fast,
    reference=tangent_rule("Exp", EXP_CURVE, torch.exp, lower_tangent_range=_lower_tangent_range,
                           slopes=_slopes))
EXP = convex_rule("Exp", EXP_SHAPE)
