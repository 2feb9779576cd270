"""Piecewise-linear functions with jumps (Shrink, ThresholdedRelu): one helper, two op files.

A ``Pieces`` lists sorted breakpoints ``b_1 < ... < b_k``, the line ``m_i x + c_i`` on each of
the ``k + 1`` open pieces between them, and the value ``f(b_j)`` at each breakpoint (which need
not equal either one-sided limit).

Offsets (``Curve.custom_extreme``).  On the box ``[l, u]`` the min / max of ``f(x) - a x`` is
taken over the *closures* of the open pieces that meet the box (a linear function on
``[max(l, b_i), min(u, b_{i+1})]`` is extreme at its ends) and over the breakpoints inside the
box (their own values).  On a closure end at a jump the piece's one-sided limit is used, which
``f`` approaches but may not attain: the result is the exact infimum / supremum, hence sound
(as in ``bounds/ops/sign.py``).  No stationary points are needed.

Default slopes: the best (by the value of the tightest line at the midpoint, as in
``bounds.anchors``) of flat, the chord, each piece's slope and, for each breakpoint strictly
inside the box, the four lines from a box end to a one-sided limit at the breakpoint (they
cross the jump).  Parameters: the lower and upper slopes, clamped into the range spanned by
those same candidates, so the default relaxation is a feasible starting point.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genbab.bounds.anchors import best_slope
from genbab.bounds.lines import Curve, chord_slope
from genbab.bounds.ops._curve_rule import slope_rule
from genbab.bounds.relaxation import OpRule


@dataclass(frozen=True)
class Pieces:
    breaks: tuple[float, ...]                   # sorted, distinct
    lines: tuple[tuple[float, float], ...]      # (slope, intercept) per open piece, k + 1
    at_breaks: tuple[float, ...]                # f(b_j)

    def __post_init__(self) -> None:
        assert list(self.breaks) == sorted(set(self.breaks))
        assert len(self.lines) == len(self.breaks) + 1 == len(self.at_breaks) + 1

    def kinks(self) -> tuple[float, ...]:
        """Breakpoints where ``f`` is not locally linear (the lines differ or ``f(b)`` is off)."""
        out = []
        for j, b in enumerate(self.breaks):
            (m0, c0), (m1, c1) = self.lines[j], self.lines[j + 1]
            if (m0, c0) != (m1, c1) or m0 * b + c0 != self.at_breaks[j]:
                out.append(b)
        return tuple(out)

    def evaluate(self, x: Tensor) -> Tensor:
        y = _line(*self.lines[0], x)
        for j, b in enumerate(self.breaks):
            y = torch.where(x > b, _line(*self.lines[j + 1], x),
                            torch.where(x == b, self.at_breaks[j], y))
        return y

    def slope(self, x: Tensor) -> Tensor:
        y = torch.full_like(x, self.lines[0][0])
        for j, b in enumerate(self.breaks):
            y = torch.where(x > b, self.lines[j + 1][0], y)
        return y

    def extreme(self, lower: Tensor, upper: Tensor, a: Tensor,
                lowest: bool) -> tuple[Tensor, Tensor]:
        """(min or max of ``f(x) - a x`` over the closures, a point attaining it); float64."""
        none = float("inf") if lowest else float("-inf")
        ends = (float("-inf"), *self.breaks, float("inf"))
        points, values = [], []
        for i, (m, c) in enumerate(self.lines):
            meets = (lower < ends[i + 1]) & (upper > ends[i])
            for p in (torch.clamp(lower, min=ends[i]), torch.clamp(upper, max=ends[i + 1])):
                points.append(p)
                values.append(torch.where(meets, _line_minus(m, c, a, p), none))
        for j, b in enumerate(self.breaks):
            points.append(torch.full_like(lower, b))
            values.append(torch.where((lower <= b) & (upper >= b), self.at_breaks[j] - a * b,
                                      none))
        points_t = torch.stack(points)
        values_t = torch.nan_to_num(torch.stack(values), nan=none)
        best, index = values_t.min(0) if lowest else values_t.max(0)
        return best, points_t.gather(0, index.unsqueeze(0)).squeeze(0)

    def candidate_slopes(self, curve: Curve, lower: Tensor, upper: Tensor) -> list[Tensor]:
        """float64 slopes of the module doc (finite; 0 where a candidate does not apply)."""
        f_l, f_u = curve.value(lower), curve.value(upper)
        zero = torch.zeros_like(lower)
        out = [zero, chord_slope(curve, lower, upper)]
        out += [torch.full_like(lower, m) for m in sorted({m for m, _ in self.lines})]
        for j, b in enumerate(self.breaks):
            inside = (lower < b) & (upper > b)
            to_right = torch.where(inside, upper - b, 1.0)
            from_left = torch.where(inside, b - lower, 1.0)
            for m, c in (self.lines[j], self.lines[j + 1]):
                limit = m * b + c
                out.append(torch.where(inside, (f_u - limit) / to_right, zero))
                out.append(torch.where(inside, (limit - f_l) / from_left, zero))
        return [torch.nan_to_num(s, nan=0.0, posinf=0.0, neginf=0.0) for s in out]


def _line(m: float, c: float, x: Tensor) -> Tensor:
    """``m x + c`` with ``0 * inf`` read as 0 (a flat piece is flat out to infinity)."""
    if m == 0.0:
        return torch.full_like(x, c)
    return x + c if m == 1.0 else m * x + c


def _line_minus(m: float, c: float, a: Tensor, p: Tensor) -> Tensor:
    """``(m p + c) - a p`` as the sum of the rounded terms (the error that
    ``bounds.lines.outward_bias`` covers); at an infinite end ``(m - a) p`` (``c`` if
    ``m == a``) instead of ``inf - inf``."""
    finite = _line(m, c, p) - torch.where(a == 0, 0.0, a * p)
    rate = m - a
    infinite = torch.where(rate == 0, c, rate * p)
    return torch.where(torch.isinf(p), infinite, finite)


def jump_rule(op_type: str, pieces: Pieces, attrs: dict, binder) -> OpRule:
    """A ``slope_rule`` for ``pieces`` (see the module doc); ``kinks`` from ``Pieces.kinks``."""
    curve = Curve(value=pieces.evaluate, slope=pieces.slope, stationary=_no_points,
                  custom_extreme=pieces.extreme)

    def slopes(curve_: Curve, lower: Tensor, upper: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        candidates = pieces.candidate_slopes(curve, lower, upper)
        return (best_slope(curve, lower, upper, candidates, True, eps),
                best_slope(curve, lower, upper, candidates, False, eps))

    def slope_range(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        stacked = torch.stack(pieces.candidate_slopes(curve, lower.double(), upper.double()))
        return stacked.amin(0).to(lower.dtype), stacked.amax(0).to(lower.dtype)

    return slope_rule(op_type, curve, pieces.evaluate, param_sides=("lower", "upper"),
                      slope_range=slope_range, slopes=slopes, attrs=attrs, binder=binder,
                      kinks=pieces.kinks())


def _no_points(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return ()

