"""Erf: S-shaped like tanh (convex below 0, concave above).  ``erf'(x) = a`` at
``x = +-sqrt(log(2 / (sqrt(pi) a)))``."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import tangent_rule

_PEAK = 2 / math.sqrt(math.pi)


def _slope(x: Tensor) -> Tensor:
    return _PEAK * torch.exp(-x * x)


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    x = torch.sqrt(torch.log(_PEAK / a.clamp(1e-300, _PEAK)).clamp_min(0))
    return x, -x


ERF_CURVE = Curve(value=torch.erf, slope=_slope, stationary=_stationary)
ERF = tangent_rule("Erf", ERF_CURVE, torch.erf)
