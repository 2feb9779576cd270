"""Exp (algorithms.md 3.5): convex and increasing; chord above, tangent below.

The lower tangent point is capped at ``l + 0.99`` (the line stays positive on the box, which
softmax needs).  Overflow: where ``exp`` (or the chord slope) is not finite in the working
dtype the line becomes "no information" (slope 0, bias +inf), never NaN."""
from __future__ import annotations

import torch
from torch import Tensor

from bounds.lines import Curve, chord_slope
from bounds.ops._curve_rule import tangent_rule

_CAP = 0.99


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return (torch.log(a.clamp_min(1e-300)),)


EXP_CURVE = Curve(value=torch.exp, slope=torch.exp, stationary=_stationary)


def _lower_tangent_range(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    return lower, torch.minimum(upper, lower + _CAP)


def _slopes(curve: Curve, lower: Tensor, upper: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    tangent_at = torch.minimum((lower + upper) / 2, lower + _CAP)
    return torch.exp(tangent_at), chord_slope(curve, lower, upper)


EXP = tangent_rule("Exp", EXP_CURVE, torch.exp, lower_tangent_range=_lower_tangent_range,
                   slopes=_slopes)
