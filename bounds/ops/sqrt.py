"""Sqrt (algorithms.md 3.8): concave on x >= 0; chord below, tangent above.

Bounds are clamped to ``x >= 0`` (ONNX Sqrt is NaN below 0, so a sound engine never feeds it
negative values); the derivative uses a tiny floor at 0 so slopes stay finite."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import tangent_rule

_FLOOR = 1e-20


def _slope(x: Tensor) -> Tensor:
    return 0.5 / torch.sqrt(x.clamp_min(_FLOOR))


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return (0.25 / a.clamp_min(1e-150).square(),)


def _domain(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return lower.clamp_min(0), upper.clamp_min(0), torch.ones_like(lower, dtype=torch.bool)


SQRT_CURVE = Curve(value=torch.sqrt, slope=_slope, stationary=_stationary)
SQRT = tangent_rule("Sqrt", SQRT_CURVE, torch.sqrt, domain=_domain,
                    input_range=(0.0, float("inf")))
