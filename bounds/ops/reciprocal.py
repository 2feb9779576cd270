"""Reciprocal 1/x (algorithms.md 3.7).

Convex for x > 0 (chord above, tangent below) and, by symmetry, concave for x < 0.  A box with
``l <= 0 <= u`` contains the pole: it cannot be bounded, and the relaxation is "no information"
(slopes 0, biases -inf/+inf) with interval (-inf, inf); the engine must detect it with
``bounds.relaxation.is_informative`` (never clamp silently: that would be unsound)."""
from __future__ import annotations

import torch
from torch import Tensor

from bounds.lines import Curve
from bounds.ops._curve_rule import tangent_rule


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    root = torch.sqrt(-1 / a.clamp_max(-1e-300))
    return root, -root


def _domain(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return lower, upper, (lower > 0) | (upper < 0)


RECIPROCAL_CURVE = Curve(value=torch.reciprocal, slope=lambda x: -torch.reciprocal(x * x),
                         stationary=_stationary)
RECIPROCAL = tangent_rule("Reciprocal", RECIPROCAL_CURVE, torch.reciprocal, domain=_domain)
