"""Sin (algorithms.md 3.3): periodic and bounded.

``sin'(x) = a`` at ``x = +-arccos(a) + 2k pi``.  On each branch the residual
``sin(x) - a x`` changes by the constant ``-2 pi a`` from one solution to the next, so its
extreme over the solutions in ``[l, u]`` is at the first or the last one: four candidates
cover a box of any width (``periodic_points``).

Default slopes (``periodic_slopes``, shared with Cos through a phase) are those of
``bounds.anchors.default_slopes``, the best at the midpoint of a few candidates (chord,
midpoint tangent, flat line, anchored lines), computed without its generic extreme search:

* most boxes lie between two inflection points ``k pi`` (sin concave where ``sin >= 0``, else
  convex).  There the anchored lines are the chord and (in the limit of the search) the
  tangents at the ends, and ``f - a x`` has one known stationary point, so every candidate
  is scored in closed form;
* other boxes run the same fixed-point search as ``bounds.anchors.anchored_slope``, with the
  extreme of ``f - a x`` taken over the ends and the first and last solution of ``f' = a`` on
  the convex branch (lower lines) or concave branch (upper lines): four points, not six;
* where troughs and peaks both lie on both sides of the midpoint, the flat lines ``-1`` and
  ``+1`` are the best lines at the midpoint, and no search runs;
* non-finite or huge bounds take the generic search.

Selection uses arithmetic (``lerp`` with 0/1 weights), not ``torch.where`` or arg-reductions,
which are several times slower on CPU.  Slopes only choose lines: every bias still comes from
the exact construction of ``bounds.lines``, so none of this affects soundness.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from genbab.bounds.anchors import ANCHOR_STEPS, default_slopes_where, line_score
from genbab.bounds.lines import Curve
from genbab.bounds.ops._closed_form import (ULPS_F, chunked, eps_of, floor_of, ones_where_greater,
                                            pick)
from genbab.bounds.ops._curve_rule import Slopes, tangent_rule

TWO_PI = 2 * math.pi
HALF_PI = math.pi / 2
_TINY = 1e-300     # below any width of distinct float32 numbers
_LIMIT = 1e15      # fast slopes for |bounds| up to here (float64 still resolves a period)


def periodic_points(branches: tuple[Tensor, ...], lower: Tensor,
                    upper: Tensor) -> tuple[Tensor, ...]:
    """For each ``r`` in ``branches``: the first and last ``r + 2 k pi`` in ``[lower, upper]``
    (or points outside it when there is none; callers clamp)."""
    points = []
    for r in branches:
        first = torch.ceil((lower - r) / TWO_PI)
        last = torch.floor((upper - r) / TWO_PI)
        points += [r + TWO_PI * first, r + TWO_PI * last]
    return tuple(points)


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    r = torch.arccos(a.clamp(-1.0, 1.0))
    return periodic_points((r, -r), lower, upper)


def _contains(lower: Tensor, upper: Tensor, phase: float, tol: Tensor) -> Tensor:
    """1.0 where some ``phase + 2 k pi`` may lie in ``[lower, upper]`` (decided with the
    tolerance ``tol`` in units of periods, so a miss is never declared wrongly), else 0.0."""
    first = torch.sub(lower, phase).div_(TWO_PI).sub_(tol).ceil_()
    last = torch.sub(upper, phase).div_(TWO_PI).add_(tol).floor_()
    return last.sub_(first).add_(1.0).clamp_(0.0, 1.0)


def periodic_interval(value: Callable[[Tensor], Tensor], peak: float, trough: float,
                      lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """Closed-form ``[min, max]`` of sin/cos on the box: +-1 where a peak/trough may lie in
    it, else the values at the ends moved out by ``(ULPS_F + 2) eps`` and a subnormal floor.
    Infinite or NaN bounds give [-1, 1]."""
    eps, floor = eps_of(lower), floor_of(lower)
    tol = torch.maximum(lower.abs(), upper.abs()).mul_(8 * eps / TWO_PI).add_(8 * eps)
    v_l, v_u = value(lower), value(upper)
    pad = (ULPS_F + 2) * eps
    hi = torch.maximum(v_l, v_u)
    hi.add_(hi.abs(), alpha=pad).add_(floor)
    lo = torch.minimum(v_l, v_u, out=v_l)
    lo.sub_(lo.abs(), alpha=pad).sub_(floor)
    hi.lerp_(torch.ones_like(hi), _contains(lower, upper, peak, tol))
    lo.lerp_(torch.full_like(lo, -1.0), _contains(lower, upper, trough, tol))
    return (lo.nan_to_num_(nan=-1.0).clamp_(min=-1.0, max=1.0),
            hi.nan_to_num_(nan=1.0).clamp_(min=-1.0, max=1.0))


def sin_interval(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    return periodic_interval(torch.sin, math.pi / 2, 3 * math.pi / 2, lower, upper)


def _chord(lower: Tensor, upper: Tensor, f_lower: Tensor, f_upper: Tensor) -> Tensor:
    """``bounds.lines.chord_slope`` (0 on degenerate boxes) for finite float64 bounds."""
    return (f_upper - f_lower) / (upper - lower).clamp_min(_TINY)


def _best_of(curve: Curve, lower: Tensor, upper: Tensor, eps: float, slopes: Tensor,
             points: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """(lower, upper) slope, each the best of the candidate ``slopes`` (K, N) by the score of
    ``bounds.anchors.best_slope`` (first one on ties), with the biases taken over the ends and
    ``points``: pairs (x, f(x)) (each (K, N)) of the other points where ``f - slope x`` may be
    extreme (other points of the box are harmless).  Finite inputs."""
    values = [curve.value(lower) - slopes * lower, curve.value(upper) - slopes * upper]
    values += [f_x - slopes * x for x, f_x in points]
    picked = []
    for lowest, bias in ((True, functools.reduce(torch.minimum, values)),
                         (False, functools.reduce(torch.maximum, values))):
        score = line_score(lower, upper, slopes, bias, lowest, eps)
        best_score, best = score[0], slopes[0]
        for k in range(1, slopes.shape[0]):
            best = pick(best, slopes[k], ones_where_greater(score[k], best_score))
            best_score = torch.maximum(best_score, score[k])
        picked.append(best)
    return picked[0], picked[1]


def _one_curvature_slopes(curve: Curve, lower: Tensor, upper: Tensor, eps: float,
                          phase: float, piece: Tensor) -> tuple[Tensor, Tensor]:
    """Default slopes on boxes inside the ``piece``-th piece ``[n pi, (n + 1) pi] - phase``
    between inflection points (concave for even ``n``): the candidates of ``default_slopes``
    with the anchored lines in their limits (the chord, the tangents at the ends), each scored
    at its one stationary point (a tangent's own point).  Finite float64 bounds."""
    mid = (lower + upper) / 2
    chord = _chord(lower, upper, curve.value(lower), curve.value(upper))
    concave = 1 - piece + 2 * torch.floor(piece / 2)
    at_chord = _on_branch(chord, lower, upper, phase, concave)[0]
    at_extremum = piece * math.pi + (HALF_PI - phase)        # the piece's peak or trough
    at_extremum = torch.minimum(torch.maximum(at_extremum, lower), upper)
    f_mid = curve.value(mid)
    slopes = torch.stack([chord, curve.slope(mid), torch.zeros_like(mid), curve.slope(upper),
                          curve.slope(lower)])
    points = torch.stack([at_chord, mid, at_extremum, mid, mid])      # the ends come anyway
    values = torch.stack([curve.value(at_chord), f_mid, curve.value(at_extremum), f_mid, f_mid])
    return _best_of(curve, lower, upper, eps, slopes, [(points, values)])


def _on_branch(slope: Tensor, lower: Tensor, upper: Tensor, phase: float,
               concave: Tensor | float) -> tuple[Tensor, Tensor]:
    """The first and the last point of ``[lower, upper]`` where ``f' = slope`` with ``f`` concave
    (``concave`` 1.0; ``x + phase = arccos(slope) + 2 k pi``) or convex (0.0; ``-arccos``),
    clamped into the box (the ends where there is none).  Over the points of one branch
    ``f - slope x`` changes by a constant from one to the next (``periodic_points``), so its
    extreme over them is at the first or the last."""
    root = (2 * concave - 1) * torch.arccos(slope.clamp(-1.0, 1.0)) - phase
    first = root + TWO_PI * torch.ceil((lower - root) / TWO_PI)
    last = root + TWO_PI * torch.floor((upper - root) / TWO_PI)
    return (torch.minimum(torch.maximum(first, lower), upper),
            torch.minimum(torch.maximum(last, lower), upper))


def _anchored_slopes(curve: Curve, lower: Tensor, upper: Tensor, phase: float,
                     chord: Tensor) -> Tensor:
    """(4, N): the slopes of ``bounds.anchors.anchored_slope`` from the chord (lower line
    through the right end, through the left end, upper line through the right end, the left
    end).  A lower line touches ``f`` at an end or where ``f' = a`` and ``f'' >= 0`` (a minimum
    of ``f - a x``), so at an end or the first or last point on the convex branch; an upper
    line likewise on the concave branch.  Slopes are kept in [-1, 1] (where f' lies)."""
    sign = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=lower.dtype,
                        device=lower.device)[:, None]          # minimise sign (f - a x)
    anchor = torch.stack([upper, lower, upper, lower])
    f_anchor = curve.value(anchor)
    f_lower, f_upper = f_anchor[1], f_anchor[0]
    slope = chord.expand_as(anchor)
    for _ in range(ANCHOR_STEPS):
        touch, f_touch = lower.expand_as(anchor), f_lower.expand_as(anchor)
        least = sign * (f_touch - slope * touch)
        points = [(upper, f_upper)] + [(p, curve.value(p)) for p in
                                       _on_branch(slope, lower, upper, phase, (1 - sign) / 2)]
        for point, f_point in points:
            value = sign * (f_point - slope * point)
            take = ones_where_greater(least, value)          # first one on ties
            touch, f_touch = pick(touch, point, take), pick(f_touch, f_point, take)
            least = torch.minimum(least, value)
        run = anchor - touch
        moved = ones_where_greater(run.abs(), torch.zeros_like(run))
        new = ((f_anchor - f_touch) / (run + (1 - moved))).clamp(-1.0, 1.0)
        slope = pick(slope, new, moved)
    return slope


def _searched_slopes(curve: Curve, lower: Tensor, upper: Tensor, eps: float,
                     phase: float) -> tuple[Tensor, Tensor]:
    """Default slopes on any finite boxes: the candidates of ``default_slopes`` (chord,
    midpoint tangent, flat, the four anchored lines), each scored on both sides, with
    ``f - a x`` extreme at the ends or the first or last point of a branch.  float64."""
    mid = (lower + upper) / 2
    chord = _chord(lower, upper, curve.value(lower), curve.value(upper))
    anchored = _anchored_slopes(curve, lower, upper, phase, chord)
    slopes = torch.cat([torch.stack([chord, curve.slope(mid), torch.zeros_like(mid)]),
                        anchored])
    points = [p for concave in (0.0, 1.0) for p in _on_branch(slopes, lower, upper, phase,
                                                               concave)]
    return _best_of(curve, lower, upper, eps, slopes, [(p, curve.value(p)) for p in points])


def _flanked(lower: Tensor, upper: Tensor, at: float) -> Tensor:
    """Where ``[lower, upper]`` holds points ``at + 2 k pi`` on both sides of its midpoint."""
    before = torch.floor(((lower + upper) / 2 - at) / TWO_PI) * TWO_PI + at
    return (before >= lower) & (before + TWO_PI <= upper)


def _periodic_slopes(curve: Curve, lower: Tensor, upper: Tensor, eps: float,
                     phase: float) -> tuple[Tensor, Tensor]:
    """``periodic_slopes`` on flat float64 tensors."""
    inside = (lower.abs() <= _LIMIT) & (upper.abs() <= _LIMIT)      # False for NaN
    lo = torch.nan_to_num(lower, nan=0.0).clamp(-_LIMIT, _LIMIT)
    up = torch.nan_to_num(upper, nan=0.0).clamp(-_LIMIT, _LIMIT)
    piece = torch.floor((lo + phase) / math.pi)
    single = (torch.ceil((up + phase) / math.pi) - piece <= 1) & inside   # no k pi inside
    a_lo, a_up = _one_curvature_slopes(curve, lo, up, eps, phase, piece)
    a_lo, a_up = torch.where(single, a_lo, 0.0), torch.where(single, a_up, 0.0)
    search = ~single & inside
    if bool(search.any()):
        search &= ~(_flanked(lo, up, 3 * HALF_PI - phase) & _flanked(lo, up, HALF_PI - phase))
        index = search.nonzero().squeeze(1)
        if index.numel():
            sub_lo, sub_up = _searched_slopes(curve, lo[index], up[index], eps, phase)
            a_lo, a_up = a_lo.index_copy(0, index, sub_lo), a_up.index_copy(0, index, sub_up)
    return default_slopes_where(curve, lower, upper, eps, ~inside, a_lo, a_up)


def periodic_slopes(phase: float) -> Slopes:
    """The default slopes of ``bounds.anchors.default_slopes`` for ``f(x) = sin(x + phase)``
    (a ``Slopes`` for ``tangent_rule``), computed as the module doc says.  float64; on CPU in
    chunks (``bounds.ops._closed_form.chunked``)."""

    def slopes(curve: Curve, lower: Tensor, upper: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        on_flat = functools.partial(_periodic_slopes, curve, eps=eps, phase=phase)
        a_lo, a_up = chunked(lambda lo, up: on_flat(lo.reshape(-1), up.reshape(-1)),
                             [lower, upper], 2)
        shape = np.broadcast_shapes(lower.shape, upper.shape)   # torch's: ~1 s first call
        return a_lo.reshape(shape), a_up.reshape(shape)

    return slopes


SIN_CURVE = Curve(value=torch.sin, slope=torch.cos, stationary=_stationary)
SIN = dataclasses.replace(tangent_rule("Sin", SIN_CURVE, torch.sin, slopes=periodic_slopes(0.0)),
                          interval=sin_interval)
