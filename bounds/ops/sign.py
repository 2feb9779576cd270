"""Sign (ONNX: -1, 0, 1 with ``Sign(0) = 0``): a step function with a jump at 0.

Its extremes are not at stationary points, so the offset of a line with slope ``a`` is the
min/max of ``sign(x) - a x`` over the closures of the three pieces that meet the box (the
negative piece up to ``0-``, the point 0, the positive piece from ``0+``), which is exact.
Default slopes: the best (by area) of flat, the chord, and the lines through ``(0, -1)``,
``(u, 1)`` / ``(l, -1)``, ``(0, 1)``.  No parameters."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.anchors import best_slope
from genbab.bounds.lines import Curve, chord_slope, sound_interval, sound_lines
from genbab.bounds.relaxation import LinearRelaxation, OpRule


def _extreme(lower: Tensor, upper: Tensor, a: Tensor, lowest: bool) -> tuple[Tensor, Tensor]:
    none = float("inf") if lowest else float("-inf")
    zero = torch.zeros_like(lower)
    neg_end, pos_start = torch.minimum(upper, zero), torch.maximum(lower, zero)
    has_neg, has_zero, has_pos = lower < 0, (lower <= 0) & (upper >= 0), upper > 0
    points = torch.stack([lower, neg_end, zero, pos_start, upper])
    values = torch.stack([
        torch.where(has_neg, -1 - a * lower, none), torch.where(has_neg, -1 - a * neg_end, none),
        torch.where(has_zero, zero, none),
        torch.where(has_pos, 1 - a * pos_start, none), torch.where(has_pos, 1 - a * upper, none)])
    best, index = values.min(0) if lowest else values.max(0)
    return best, points.gather(0, index.unsqueeze(0)).squeeze(0)


def _kinks(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return ()


SIGN_CURVE = Curve(value=torch.sign, slope=torch.zeros_like, stationary=_kinks,
                   custom_extreme=_extreme)


def sign_interval(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    return sound_interval(SIGN_CURVE, lower, upper)


def sign_relax(lower: Tensor, upper: Tensor, params: Tensor | None = None) -> LinearRelaxation:
    l64, u64 = lower.double(), upper.double()
    eps = float(torch.finfo(lower.dtype).eps)
    flat, chord = torch.zeros_like(l64), chord_slope(SIGN_CURVE, l64, u64)
    rising_right = 2 / u64.clamp_min(1e-30)
    rising_left = 2 / (-l64).clamp_min(1e-30)
    candidates = [flat, chord, rising_right, rising_left]
    a_lo = best_slope(SIGN_CURVE, l64, u64, candidates, True, eps)
    a_up = best_slope(SIGN_CURVE, l64, u64, candidates, False, eps)
    return sound_lines(SIGN_CURVE, lower, upper, a_lo, a_up)


SIGN = OpRule(op_type="Sign", evaluate=torch.sign, interval=sign_interval, relax=sign_relax,
              kinks=(0.0,), piecewise_linear=True)
