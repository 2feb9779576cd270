"""Log (algorithms.md 3.6): concave and increasing on x > 0; chord below, tangent above.

A box with ``l <= 0`` reaches the pole (or leaves the domain): "no information" lines and
the interval (-inf, inf).  The engine clamps the input bounds beforehand where it knows the
input is positive (1.4, "domain constraints")."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import tangent_rule


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return (1 / a.clamp_min(1e-300),)


def _domain(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return lower, upper, lower > 0


LOG_CURVE = Curve(value=torch.log, slope=torch.reciprocal, stationary=_stationary)
LOG = tangent_rule("Log", LOG_CURVE, torch.log, domain=_domain, input_range=(0.0, float("inf")))
