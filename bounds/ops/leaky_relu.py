"""LeakyRelu with slope ``alpha`` for x < 0 (algorithms.md 3.1), any real ``alpha``.

``alpha <= 1``: convex, chord above, optimisable lower slope in [alpha, 1].
``alpha > 1``: concave, chord below, optimisable upper slope in [1, alpha].
One parameter: the slope of the non-chord line."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from bounds.lines import Curve, chord_slope
from bounds.ops._curve_rule import slope_rule
from bounds.relaxation import OpRule


def _kink(slope: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return (torch.zeros_like(lower),)


def make_leaky_relu(attrs: Mapping[str, Any]) -> OpRule:
    unknown = set(attrs) - {"alpha"}
    if unknown:
        raise ValueError(f"LeakyRelu: unknown attributes {sorted(unknown)}")
    alpha = float(attrs.get("alpha", 0.01))
    if not torch.isfinite(torch.tensor(alpha)):
        raise ValueError(f"LeakyRelu: alpha must be finite, got {alpha}")
    convex = alpha <= 1.0

    def evaluate(x: Tensor) -> Tensor:
        return torch.where(x >= 0, x, alpha * x)

    def slope(x: Tensor) -> Tensor:
        return torch.where(x > 0, 1.0, alpha).to(x.dtype)

    curve = Curve(value=evaluate, slope=slope, stationary=_kink)

    def slopes(curve: Curve, lower: Tensor, upper: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        adaptive = torch.where(lower >= 0, 1.0, torch.where(
            upper <= 0, alpha, torch.where(upper > -lower, 1.0, alpha))).to(lower.dtype)
        chord = chord_slope(curve, lower, upper)
        return (adaptive, chord) if convex else (chord, adaptive)

    def slope_range(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        at_l, at_u = slope(lower), slope(upper)
        return torch.minimum(at_l, at_u), torch.maximum(at_l, at_u)

    return slope_rule("LeakyRelu", curve, evaluate, param_sides=("lower",) if convex else ("upper",),
                      slope_range=slope_range, slopes=slopes, attrs={"alpha": alpha},
                      binder=make_leaky_relu)


LEAKY_RELU = make_leaky_relu({})
