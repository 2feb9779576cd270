"""HardSigmoid ``max(0, min(1, alpha x + beta))`` (ONNX defaults alpha 0.2, beta 0.5).

Piecewise linear with kinks at ``-beta/alpha`` and ``(1-beta)/alpha``; any real ``alpha``
(``alpha = 0`` is a constant).  Two parameters: the slopes of the lower and upper lines, in
``[min(0, alpha), max(0, alpha)]``."""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import slope_rule
from genbab.bounds.relaxation import OpRule


def make_hard_sigmoid(attrs: Mapping[str, Any]) -> OpRule:
    unknown = set(attrs) - {"alpha", "beta"}
    if unknown:
        raise ValueError(f"HardSigmoid: unknown attributes {sorted(unknown)}")
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    if not (math.isfinite(alpha) and math.isfinite(beta)):
        raise ValueError(f"HardSigmoid: alpha and beta must be finite, got {alpha}, {beta}")
    kink_points = sorted([-beta / alpha, (1 - beta) / alpha]) if alpha != 0 else []

    def evaluate(x: Tensor) -> Tensor:
        return torch.clamp(alpha * x + beta, 0.0, 1.0)

    def slope(x: Tensor) -> Tensor:
        inner = alpha * x + beta
        return torch.where((inner > 0) & (inner < 1), alpha, 0.0).to(x.dtype)

    def kinks(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
        return tuple(torch.full_like(lower, k) for k in kink_points)

    def slope_range(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        return torch.full_like(lower, min(0.0, alpha)), torch.full_like(lower, max(0.0, alpha))

    curve = Curve(value=evaluate, slope=slope, stationary=kinks)
    return slope_rule("HardSigmoid", curve, evaluate, param_sides=("lower", "upper"),
                      slope_range=slope_range, attrs={"alpha": alpha, "beta": beta},
                      binder=make_hard_sigmoid, kinks=tuple(kink_points))


HARD_SIGMOID = make_hard_sigmoid({})
