"""Default (non-optimised) slopes: chords, tangents and anchored tangents, computed on the fly.

algorithms.md section 3.0 tabulates the anchored tangent points ``t_L(u)`` / ``t_U(l)`` of
S-shaped and periodic functions.  Here they are computed at call time instead, for any
``Curve``, by a short vectorised fixed-point iteration (no tables, hence no table rounding and
no "past the end of the table" fallback):

    lower line anchored at the right end u:  a <- (f(u) - f(p)) / (u - p),
                                             p = argmin_{[l,u]} f(x) - a x   (exact, bounds.lines)

Starting from the chord slope the iterates increase monotonically to the smallest slope whose
line through ``(u, f(u))`` stays below ``f`` on ``[l, u]``: the tangent at ``t_L(u)`` when the
chord cuts the curve, the chord itself otherwise (it is Dinkelbach's method; it converges
superlinearly, ``ANCHOR_STEPS`` steps are plenty).  The mirrored iterations give the line
anchored at ``l`` and the upper lines.

``default_slopes`` then picks, per element and per side, the best of a few candidate slopes
(flat, chord, midpoint tangent, the two anchored lines), scoring a lower line by its value at
the midpoint (the area under it) and an upper line likewise.  This reproduces the case tables
of sections 3.2-3.4 and 3.9 (convex: midpoint tangent + chord; S-shaped straddling: anchored
tangent or chord; periodic: global tangents or flat lines) without per-op case code.

None of this affects soundness: every slope gets its exact offset in ``bounds.lines``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve, chord_slope, clamp_into, extreme, extreme_value

ANCHOR_STEPS = 3
_EPS32 = float(torch.finfo(torch.float32).eps)


def anchored_slope(curve: Curve, lower: Tensor, upper: Tensor, start: Tensor,
                   lowest: bool, anchor_right: bool, first_touch: Tensor | None = None) -> Tensor:
    """Slope of the tightest line through ``(anchor, f(anchor))`` on one side of ``f`` on the
    box (lower side if ``lowest``), found from ``start`` (usually the chord slope).  float64.
    ``first_touch`` is the extreme point for ``start`` when the caller already has it."""
    anchor = upper if anchor_right else lower
    f_anchor = curve.value(anchor)
    slope = start
    for step in range(ANCHOR_STEPS):
        if step == 0 and first_touch is not None:
            touch = first_touch
        else:
            _, touch = extreme(curve, lower, upper, slope, lowest)
        run = anchor - touch
        ok = run.abs() > 0
        new = (f_anchor - curve.value(touch)) / torch.where(ok, run, 1.0)
        slope = torch.where(ok & torch.isfinite(new), new, slope)
    return slope


def _score(curve: Curve, lower: Tensor, upper: Tensor, slope: Tensor, lowest: bool,
           eps: float) -> Tensor:
    """Value of the tightest line with this slope at the midpoint, less what rounding its bias
    to the working dtype (machine epsilon ``eps``) may cost; larger is better for lower lines,
    so upper lines are scored negated.  Non-finite scores lose."""
    bias = extreme_value(curve, lower, upper, slope, lowest)
    return line_score(lower, upper, slope, bias, lowest, eps)


def line_score(lower: Tensor, upper: Tensor, slope: Tensor, bias: Tensor, lowest: bool,
               eps: float) -> Tensor:
    """The score of ``_score`` for a line whose exact bias is already known."""
    mid = (lower + upper) / 2
    value = slope * mid + bias
    value = value if lowest else -value
    value = value - 2 * eps * (slope.abs() * torch.maximum(lower.abs(), upper.abs()) + bias.abs())
    return torch.nan_to_num(value, nan=float("-inf"), posinf=float("-inf"))


def best_slope(curve: Curve, lower: Tensor, upper: Tensor, candidates: list[Tensor],
               lowest: bool, eps: float = _EPS32) -> Tensor:
    """The candidate slope whose tightest line is best at the midpoint (first one on ties)."""
    slopes = torch.stack([torch.nan_to_num(c.expand_as(lower), nan=0.0, posinf=0.0, neginf=0.0)
                          for c in candidates])
    scores = torch.stack([_score(curve, lower, upper, s, lowest, eps) for s in slopes])
    index = scores.argmax(0, keepdim=True)
    return slopes.gather(0, index).squeeze(0)


def default_slopes(curve: Curve, lower: Tensor, upper: Tensor,
                   eps: float = _EPS32) -> tuple[Tensor, Tensor]:
    """(lower-line slope, upper-line slope) of the default relaxation; float64 in and out.
    ``eps``: machine epsilon of the working dtype (flat lines win where a slope gains less than
    the rounding of its bias)."""
    chord = chord_slope(curve, lower, upper)
    mid_tangent = curve.slope((lower + upper) / 2)
    flat = torch.zeros_like(lower)
    result = []
    for lowest in (True, False):
        _, touch = extreme(curve, lower, upper, chord, lowest)
        candidates = [chord, mid_tangent, flat]
        for right in (True, False):
            candidates.append(anchored_slope(curve, lower, upper, chord, lowest, right, touch))
        result.append(best_slope(curve, lower, upper, candidates, lowest, eps))
    return result[0], result[1]


def default_slopes_where(curve: Curve, lower: Tensor, upper: Tensor, eps: float, todo: Tensor,
                         lower_slope: Tensor, upper_slope: Tensor) -> tuple[Tensor, Tensor]:
    """``default_slopes`` on the elements where the bool mask ``todo`` holds, the given slopes
    elsewhere (fast paths hand over only the elements they have no closed form for).  float64;
    one host sync."""
    index = todo.reshape(-1).nonzero().squeeze(1)
    if index.numel() == 0:
        return lower_slope, upper_slope
    sub_lo, sub_up = default_slopes(curve, lower.reshape(-1)[index], upper.reshape(-1)[index],
                                    eps)
    return (lower_slope.reshape(-1).index_copy(0, index, sub_lo).view(lower.shape),
            upper_slope.reshape(-1).index_copy(0, index, sub_up).view(lower.shape))


def tangent_points(curve: Curve, lower: Tensor, upper: Tensor, slope: Tensor) -> Tensor:
    """A point ``t`` in ``[lower, upper]`` with ``f'(t)`` as close to ``slope`` as the stationary
    points allow (the midpoint if none is usable).  Turns default slopes into initial tangent
    parameters.  float64."""
    mid = (lower + upper) / 2
    points = [mid] + [clamp_into(torch.as_tensor(p, dtype=lower.dtype).expand_as(lower),
                                 lower, upper)
                      for p in curve.stationary(slope, lower, upper)]
    stacked = torch.stack(points)
    miss = torch.nan_to_num((curve.slope(stacked) - slope).abs(), nan=float("inf"))
    index = miss.argmin(0, keepdim=True)
    return stacked.gather(0, index).squeeze(0)
