"""Softplus ``log(1 + e^x)``: convex and increasing; tangent below, chord above.
``softplus'(x) = sigmoid(x) = a`` at ``x = logit(a)``.  Evaluated as ``logaddexp(x, 0)``,
accurate in both tails (torch's ``softplus`` switches to ``x`` above a threshold)."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import tangent_rule


def softplus(x: Tensor) -> Tensor:
    return torch.logaddexp(x, torch.zeros_like(x))


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return (torch.logit(a.clamp(1e-300, 1 - 1e-16)),)


SOFTPLUS_CURVE = Curve(value=softplus, slope=torch.sigmoid, stationary=_stationary)
SOFTPLUS = tangent_rule("Softplus", SOFTPLUS_CURVE, softplus)
