"""Sin (algorithms.md 3.3): periodic and bounded.

``sin'(x) = a`` at ``x = +-arccos(a) + 2k pi``.  On each branch the residual
``sin(x) - a x`` changes by the constant ``-2 pi a`` from one solution to the next, so its
extreme over the solutions in ``[l, u]`` is at the first or the last one: four candidates
cover a box of any width (``periodic_points``).  The S-shaped sub-cases, chord tests and global
tangent lines of 3.3 all come out of ``bounds.anchors`` (anchored lines, flat lines, chords)."""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch
from torch import Tensor

from bounds.lines import Curve
from bounds.ops._closed_form import ULPS_F, eps_of, floor_of
from bounds.ops._curve_rule import tangent_rule

TWO_PI = 2 * math.pi


def periodic_points(branches: tuple[Tensor, ...], lower: Tensor,
                    upper: Tensor) -> tuple[Tensor, ...]:
    """For each ``r`` in ``branches``: the first and last ``r + 2 k pi`` in ``[lower, upper]``
    (or points outside it when there is none; callers clamp)."""
    points = []
    for r in branches:
        first = torch.ceil((lower - r) / TWO_PI)
        last = torch.floor((upper - r) / TWO_PI)
        points += [r + TWO_PI * first, r + TWO_PI * last]
    return tuple(points)


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    r = torch.arccos(a.clamp(-1.0, 1.0))
    return periodic_points((r, -r), lower, upper)


def _contains(lower: Tensor, upper: Tensor, phase: float, tol: Tensor) -> Tensor:
    """1.0 where some ``phase + 2 k pi`` may lie in ``[lower, upper]`` (decided with the
    tolerance ``tol`` in units of periods, so a miss is never declared wrongly), else 0.0."""
    first = torch.sub(lower, phase).div_(TWO_PI).sub_(tol).ceil_()
    last = torch.sub(upper, phase).div_(TWO_PI).add_(tol).floor_()
    return last.sub_(first).add_(1.0).clamp_(0.0, 1.0)


def periodic_interval(value: Callable[[Tensor], Tensor], peak: float, trough: float,
                      lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """Closed-form ``[min, max]`` of sin/cos on the box: +-1 where a peak/trough may lie in
    it, else the values at the ends moved out by ``(ULPS_F + 2) eps`` and a subnormal floor.
    Infinite or NaN bounds give [-1, 1]."""
    eps, floor = eps_of(lower), floor_of(lower)
    tol = torch.maximum(lower.abs(), upper.abs()).mul_(8 * eps / TWO_PI).add_(8 * eps)
    v_l, v_u = value(lower), value(upper)
    pad = (ULPS_F + 2) * eps
    hi = torch.maximum(v_l, v_u)
    hi.add_(hi.abs(), alpha=pad).add_(floor)
    lo = torch.minimum(v_l, v_u, out=v_l)
    lo.sub_(lo.abs(), alpha=pad).sub_(floor)
    hi.lerp_(torch.ones_like(hi), _contains(lower, upper, peak, tol))
    lo.lerp_(torch.full_like(lo, -1.0), _contains(lower, upper, trough, tol))
    return (lo.nan_to_num_(nan=-1.0).clamp_(min=-1.0, max=1.0),
            hi.nan_to_num_(nan=1.0).clamp_(min=-1.0, max=1.0))


def sin_interval(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    return periodic_interval(torch.sin, math.pi / 2, 3 * math.pi / 2, lower, upper)


SIN_CURVE = Curve(value=torch.sin, slope=torch.cos, stationary=_stationary)
SIN = dataclasses.replace(tangent_rule("Sin", SIN_CURVE, torch.sin), interval=sin_interval)
