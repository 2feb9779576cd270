"""Clip(x, min, max): piecewise linear with kinks at ``min`` and ``max`` (a hard-tanh shape).

``make_rule("Clip", {"min": a, "max": b})``; the loader passes ONNX's constant ``min``/``max``
inputs as these attributes (defaults -inf/+inf).  Two parameters: the slopes of the lower and
upper lines, in [0, 1]."""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import slope_rule
from genbab.bounds.relaxation import OpRule


def _slope_range(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    return torch.zeros_like(lower), torch.ones_like(lower)


def make_clip(attrs: Mapping[str, Any]) -> OpRule:
    unknown = set(attrs) - {"min", "max"}
    if unknown:
        raise ValueError(f"Clip: unknown attributes {sorted(unknown)} (expected 'min', 'max')")
    low = float(attrs["min"]) if attrs.get("min") is not None else -math.inf
    high = float(attrs["max"]) if attrs.get("max") is not None else math.inf
    if math.isnan(low) or math.isnan(high) or low > high:
        raise ValueError(f"Clip: need min <= max, got min={low}, max={high}")

    def evaluate(x: Tensor) -> Tensor:
        return torch.clamp(x, low, high)

    def slope(x: Tensor) -> Tensor:
        return ((x > low) & (x < high)).to(x.dtype)

    def kinks(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
        return (torch.full_like(lower, low), torch.full_like(lower, high))

    curve = Curve(value=evaluate, slope=slope, stationary=kinks)
    return slope_rule("Clip", curve, evaluate, param_sides=("lower", "upper"),
                      slope_range=_slope_range, attrs={"min": low, "max": high},
                      binder=make_clip,
                      kinks=tuple(k for k in (low, high) if math.isfinite(k)))


CLIP = make_clip({})
