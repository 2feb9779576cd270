"""Closed-form relaxations of S-shaped functions (algorithms.md 3.2): increasing, convex below 0,
concave above, point-symmetric about ``(0, f(0))`` -- Sigmoid and Tanh.

Every line is "a slope plus its exact offset" (``bounds.lines``), computed in the working dtype
and moved outward by ``bounds.ops._closed_form.margin``:

* **tangent at t** (any t in ``[l, u]``): slope ``a = f'(t)``.  Because ``f'`` is even and
  strictly monotone on each side of 0, ``f(x) - a x`` is stationary exactly at ``±t``, so its
  extreme on ``[l, u]`` is among ``l, u, t, clamp(-t, l, u)`` -- four values, no root finding.
  Sound for every ``t``; the table below only makes the default tight.
* **chord**: slope ``k = (f(u) - f(l)) / (u - l)`` and offset ``min/max`` of ``f - k x`` at the
  two ends, used only where the chord is *certified* valid (3.0: lower iff ``k <= f'(l)``,
  upper iff ``k <= f'(u)``) with the rounding of ``k`` and ``f'`` accounted for.  With the
  offset taken at both ends, the error of ``k`` itself does not matter.
* **flat** lines at the interval bounds, where they are better at the midpoint.

Default (CROWN) relaxation: the chord where certified, else the tangent at
``min(mid, t_L(u))`` (lower) / ``max(mid, t_U(l))`` (upper) -- the anchored tangent of 3.0 with
the auto_LiRPA midpoint tweak -- and the flat line where that is better at the midpoint.
``t_L(u)`` comes from a table on a grid uniform in ``sqrt(u)`` (``u <= 16384``), built once
per function, dtype and device by float64 bisection and linearly interpolated; by symmetry
``t_U(l) = -t_L(-l)``.  Table errors only cost tightness, never soundness.

Parameters (alpha-CROWN): ``params[0]``/``params[1]`` are the tangent points of the lower /
upper line, clamped into ``[l, u]``; the line is the tangent-slope line with exact offset
(as before, any value is sound).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from genbab.bounds.ops._closed_form import (ULPS_D, ULPS_F, C_F, C_R, C_W, bounds_within,
                                            clamp_param, eps_of, chunked, floor_of,
                                            needs_bound_grad, ones_where_greater, with_fallback)
from genbab.bounds.relaxation import LinearRelaxation, OpRule

_LIMIT = 1e15                 # larger bounds take the flat-line fallback
_GRID_SCALE = 256.0           # table points per unit of sqrt(u)
_GRID_SIZE = 128 * 256 + 2    # sqrt(u) in [0, 128]


@dataclass(frozen=True, eq=False)
class SShape:
    """``value``: f.  ``tangent(t)``: (f(t), f(-t), f'(t)), accurate to a few ulps.
    ``root(a)``: the x >= 0 with f'(x) = a (for initial parameters only).  ``reference``: the
    float64 exact-offset rule (``bounds.ops._curve_rule``), used where the bounds themselves
    require gradients."""

    name: str
    value: Callable[[Tensor], Tensor]
    tangent: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]
    root: Callable[[Tensor], Tensor]
    slope: Callable[[Tensor], Tensor]
    curvature: Callable[[Tensor], Tensor]                       # f''
    slope_given_value: Callable[[Tensor, Tensor], Tensor]       # (x, f(x)) -> f'(x)
    reference: OpRule                                           # the exact construction


@functools.lru_cache(maxsize=16)
def _anchor_table(shape: SShape, dtype: torch.dtype, device: str) -> tuple[Tensor, Tensor]:
    """``t_L`` at ``u = (i / _GRID_SCALE)**2`` and the differences to the next entry."""
    s = torch.arange(_GRID_SIZE + 1, dtype=torch.float64) / _GRID_SCALE
    u = s * s
    f_u = shape.value(u)
    lo, hi = torch.full_like(u, -300.0), torch.zeros_like(u)
    for _ in range(80):   # h(t) = f(t) + f'(t)(u - t) - f(u) increases on t <= 0
        mid = (lo + hi) / 2
        above = shape.value(mid) + shape.slope(mid) * (u - mid) >= f_u
        lo, hi = torch.where(above, lo, mid), torch.where(above, mid, hi)
    table = lo.to(dtype=dtype, device=device)
    return table[:-1].contiguous(), (table[1:] - table[:-1]).contiguous()


def anchored_lower_point(shape: SShape, anchor: Tensor, negate: bool = False) -> Tensor:
    """Approximately ``t_L(max(x, 0))`` for ``x = anchor`` (or ``-anchor`` with ``negate``),
    clamped to the table's end beyond it."""
    table, step = _anchor_table(shape, anchor.dtype, str(anchor.device))
    end = float(_GRID_SIZE - 1) ** 2 / _GRID_SCALE ** 2
    s = torch.clamp(anchor, min=-end, max=0.0).neg_() if negate \
        else torch.clamp(anchor, min=0.0, max=end)
    s.sqrt_().mul_(_GRID_SCALE)
    index = s.floor()
    s.sub_(index)
    flat = index.reshape(-1).int()
    return step.index_select(0, flat).view_as(s).mul_(s).add_(
        table.index_select(0, flat).view_as(s))


def _flat_bounds(f_l: Tensor, f_u: Tensor, eps: float, floor: float) -> tuple[Tensor, Tensor]:
    """Sound ``f(l)`` rounded down and ``f(u)`` rounded up (errors <= ULPS_F ulps + floor)."""
    rel = (ULPS_F + 2) * eps
    return (f_l.abs().mul_(-rel).add_(f_l).sub_(floor),
            f_u.abs().mul_(rel).add_(f_u).add_(floor))


@dataclass
class _Box:
    """Per-call quantities shared by the lines (all in the working dtype).  The margin of a
    line with slope ``a >= 0`` is ``base + a * spread`` (``bounds.ops._closed_form.margin``
    with ``F = max |f|`` on the box; the chord, whose offsets do not depend on the slope's
    accuracy, uses ``base + a * reach_term``)."""

    lower: Tensor
    upper: Tensor
    f_l: Tensor
    f_u: Tensor
    scale: Tensor        # max |f| on the box
    width: Tensor        # u - l
    base: Tensor         # eps C_F scale + floor (2 + width)
    reach_term: Tensor   # eps C_R max(|l|, |u|)
    spread: Tensor       # reach_term + eps C_W width
    eps: float
    floor: float


def _box(shape: SShape, lower: Tensor, upper: Tensor) -> _Box:
    eps, floor = eps_of(lower), floor_of(lower)
    f_l, f_u = shape.value(lower), shape.value(upper)
    scale = torch.maximum(torch.neg(f_l), f_u)           # f increasing: max |f| on the box
    width = upper - lower
    base = torch.add(width, 2.0).mul_(floor).add_(scale, alpha=C_F * eps)   # no subnormals
    reach_term = torch.maximum(torch.neg(lower), upper).mul_(C_R * eps)
    spread = torch.add(reach_term, width, alpha=C_W * eps)
    return _Box(lower, upper, f_l, f_u, scale, width, base, reach_term, spread, eps, floor)


def _tangent_line(shape: SShape, box: _Box, t: Tensor, lowest: bool,
                  track: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
    """Slope ``f'(t)`` (t in [l, u]) and its exact offset on the box, rounded outward; with
    ``track``, also the point where the extreme is attained (for gradients).  The extreme of
    ``f - a x`` is among ``t``, ``clamp(-t)``, ``l``, ``u`` (``f'`` is even and monotone on
    each side of 0)."""
    best, f_mirror, slope = shape.tangent(t)
    mirror = torch.neg(t).clamp_(min=box.lower, max=box.upper)
    f_mirror.clamp_(min=box.f_l, max=box.f_u)            # f(clamp(-t)) as f is increasing
    best.addcmul_(slope, t, value=-1)
    touch = t.clone() if track else None
    pick = torch.minimum if lowest else torch.maximum
    candidate = f_mirror.addcmul_(slope, mirror, value=-1)
    for point, value in ((mirror, None), (box.lower, box.f_l), (box.upper, box.f_u)):
        if value is not None:
            candidate = torch.addcmul(value, slope, point, value=-1, out=mirror)
        if track:
            better = ones_where_greater(best, candidate) if lowest \
                else ones_where_greater(candidate, best)
            touch.lerp_(point, better)
        pick(best, candidate, out=best)
    if lowest:
        best.sub_(box.base).addcmul_(slope, box.spread, value=-1)
    else:
        best.add_(box.base).addcmul_(slope, box.spread)
    return slope, best, touch


def _chord(box: _Box) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Chord slope ``k``, its lower and upper offsets (the extremes of ``f - k x`` at the two
    ends, outward) and ``k + err`` with ``err`` bounding ``|k_computed - k_exact|``."""
    tiny = float(torch.finfo(box.lower.dtype).tiny)
    width = box.width.clamp(min=tiny)
    slope = torch.sub(box.f_u, box.f_l).div_(width)
    at_l = torch.addcmul(box.f_l, slope, box.lower, value=-1)
    at_u = torch.addcmul(box.f_u, slope, box.upper, value=-1)
    m = torch.addcmul(box.base, slope, box.reach_term)
    hi = torch.maximum(at_l, at_u).add_(m)
    lo = torch.minimum(at_l, at_u, out=at_u).sub_(m)
    with_err = m.copy_(box.scale).mul_(C_F * box.eps).add_(3 * box.floor).div_(width).add_(
        slope, alpha=1 + 4 * box.eps)
    return slope, lo, hi, with_err


def _certified(slope_with_err: Tensor, derivative: Tensor, eps: float, floor: float) -> Tensor:
    """1.0 where ``k + err < f'(x) (1 - (ULPS_D + 1) eps) - 2 floor`` (then exactly
    ``k <= f'(x)``: the chord is valid), else 0.0.  Overwrites ``derivative``."""
    bound = derivative.mul_(1 - (ULPS_D + 1) * eps).sub_(2 * floor)
    return bound.sub_(slope_with_err).sign_().clamp_(min=0.0)


def _fast_default(shape: SShape, lower: Tensor, upper: Tensor) -> LinearRelaxation:
    return LinearRelaxation(*chunked(functools.partial(_default_lines, shape), [lower, upper], 4))


def _default_lines(shape: SShape, lower: Tensor, upper: Tensor) -> list[Tensor]:
    box = _box(shape, lower, upper)
    mid = torch.add(lower, upper).mul_(0.5)
    k, k_lo, k_hi, k_err = _chord(box)
    lines = []
    for lowest in (True, False):
        if lowest:
            t = torch.minimum(mid, anchored_lower_point(shape, upper))
            flat = box.f_l.abs().mul_(-(ULPS_F + 2) * box.eps).add_(box.f_l).sub_(box.floor)
        else:
            t = torch.maximum(mid, anchored_lower_point(shape, lower, negate=True).neg_())
            flat = box.f_u.abs().mul_((ULPS_F + 2) * box.eps).add_(box.f_u).add_(box.floor)
        t.clamp_(min=lower, max=upper)
        slope, bias, _ = _tangent_line(shape, box, t, lowest)
        endpoint, value = (lower, box.f_l) if lowest else (upper, box.f_u)
        use_chord = _certified(k_err, shape.slope_given_value(endpoint, value), box.eps, box.floor)
        slope.lerp_(k, use_chord)
        bias.lerp_(k_lo if lowest else k_hi, use_chord)
        use_flat = torch.addcmul(bias, slope, mid).sub_(flat).sign_()   # line - flat at mid
        use_flat.neg_() if lowest else None
        use_flat.clamp_(min=0.0)
        lines += [slope.addcmul_(slope, use_flat, value=-1), bias.lerp_(flat, use_flat)]
    return lines


class _TangentLines(torch.autograd.Function):
    """Tangent-point lines with exact values and analytic gradients: ``d slope / dt = f''(t)``
    and, by the envelope theorem, ``d bias / dt = -f''(t) * touch`` (``touch``: where the
    extreme of ``f - a x`` is attained).  The bounds get no gradient here (rules route
    bounds that require grad to their reference construction)."""

    @staticmethod
    def forward(ctx, shape: SShape, lower: Tensor, upper: Tensor, t_lo: Tensor, t_up: Tensor):
        track = ctx.needs_input_grad[3] or ctx.needs_input_grad[4]

        def lines(lower: Tensor, upper: Tensor, t_lo: Tensor, t_up: Tensor) -> list[Tensor]:
            box = _box(shape, lower, upper)
            lo_slope, lo_bias, lo_touch = _tangent_line(shape, box, t_lo, True, track)
            up_slope, up_bias, up_touch = _tangent_line(shape, box, t_up, False, track)
            return [lo_slope, lo_bias, up_slope, up_bias] + ([lo_touch, up_touch] if track else [])
        out = chunked(lines, [lower, upper, t_lo, t_up], 6 if track else 4)
        if track:
            ctx.shape = shape
            ctx.save_for_backward(t_lo, t_up, out[4], out[5])
        return out[:4]

    @staticmethod
    def backward(ctx, g_lo_slope, g_lo_bias, g_up_slope, g_up_bias):
        if not (ctx.needs_input_grad[3] or ctx.needs_input_grad[4]):
            return None, None, None, None, None
        t_lo, t_up, lo_touch, up_touch = ctx.saved_tensors
        grads = []
        for t, touch, g_slope, g_bias in ((t_lo, lo_touch, g_lo_slope, g_lo_bias),
                                          (t_up, up_touch, g_up_slope, g_up_bias)):
            curvature = ctx.shape.curvature(t)
            grads.append(torch.nan_to_num(curvature * (g_slope - g_bias * touch)))
        return None, None, None, grads[0], grads[1]


def _fast_params(shape: SShape, lower: Tensor, upper: Tensor, points: Tensor) -> LinearRelaxation:
    return LinearRelaxation(*_TangentLines.apply(shape, lower, upper, points[0], points[1]))


def s_shaped_rule(op_type: str, shape: SShape) -> OpRule:

    def interval(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        return _flat_bounds(shape.value(lower), shape.value(upper), eps_of(lower),
                            floor_of(lower))

    def project(lower: Tensor, upper: Tensor, params: Tensor) -> Tensor:
        return torch.stack([clamp_param(params[0], lower, upper),
                            clamp_param(params[1], lower, upper)])

    def relax(lower: Tensor, upper: Tensor, params: Tensor | None) -> LinearRelaxation:
        if needs_bound_grad(lower, upper):
            return shape.reference.relax(lower, upper, params)
        if params is None:
            fast = functools.partial(_fast_default, shape)
        else:
            points = project(lower, upper, params.to(lower.dtype))

            def fast(lo: Tensor, up: Tensor) -> LinearRelaxation:
                return _fast_params(shape, lo, up, points)
        if bounds_within(_LIMIT, lower, upper):
            return fast(lower, upper)
        if params is not None:
            def fast(lo: Tensor, up: Tensor) -> LinearRelaxation:    # noqa: F811
                return _fast_params(shape, lo, up, points.clamp(min=lo, max=up))
        return with_fallback(fast, interval, lower, upper, _LIMIT)

    def init_params(lower: Tensor, upper: Tensor) -> Tensor:
        if needs_bound_grad(lower, upper):
            return shape.reference.init_params(lower, upper)
        safe_lo = torch.nan_to_num(lower, nan=0.0).clamp(-_LIMIT, _LIMIT)
        safe_up = torch.maximum(torch.nan_to_num(upper, nan=0.0).clamp(-_LIMIT, _LIMIT), safe_lo)
        box = _box(shape, safe_lo, safe_up)
        mid = (safe_lo + safe_up) / 2
        k, _, _, k_err = _chord(box)
        root = shape.root(k)
        t_lo = torch.minimum(mid, anchored_lower_point(shape, safe_up))
        t_up = torch.maximum(mid, anchored_lower_point(shape, safe_lo, negate=True).neg_())
        chord_lo = _certified(k_err, shape.slope(safe_lo), box.eps, box.floor) > 0
        chord_up = _certified(k_err, shape.slope(safe_up), box.eps, box.floor) > 0
        t_lo = torch.where(chord_lo, root, t_lo)
        t_up = torch.where(chord_up, -root, t_up)
        return project(lower, upper, torch.stack([t_lo, t_up]).to(lower.dtype))

    return OpRule(op_type=op_type, evaluate=shape.value, interval=interval, relax=relax,
                  init_params=init_params, project_params=project, num_params=2)
