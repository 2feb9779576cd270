"""Closed-form relaxations of convex, non-negative functions (Exp, the square, Reciprocal on
x > 0; Reciprocal on x < 0 by its odd symmetry): a tangent below, the chord above.

Lines are "a slope plus its exact offset" (``bounds.lines``) in the working dtype:

* **tangent at t** in ``[l, u]``: slope ``a = f'(t)``; ``f - a x`` is convex with its minimum
  at ``t``, so the offset is ``min`` over ``t, l, u`` (the ends only guard rounding);
* **chord**: slope ``k``; ``f - k x`` is convex, so its maximum is at an end: the offset is
  ``max`` over ``l, u`` (the error of ``k`` itself does not matter);
* the **flat** line at the interval bound, where it is better at the midpoint (default only).

Each candidate value ``f(c)`` is moved outward by ``C_F eps f(c)`` (``f >= 0``), and the offset
by ``eps |a| (C_R R + C_W W) + floor (W + 2)`` (``bounds.ops._closed_form``).  Parameters: the
tangent point of the lower line (``params[0]``, projected into ``tangent_range``); the upper
line is always the chord, which is below every other valid upper line of a convex function,
so ``params[1]`` is projected but unused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from genbab.bounds.ops._closed_form import (C_F, C_R, C_W, chunked, clamp_param, eps_of, floor_of,
                                            needs_bound_grad, with_fallback)
from genbab.bounds.relaxation import LinearRelaxation, OpRule

Range = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


@dataclass(frozen=True, eq=False)
class Convex:
    """``value``/``slope``/``curvature``: f, f', f'' (f >= 0 and convex on valid boxes).
    ``interval(l, u)``: sound (outward) ``[min f, max f]`` for any bounds, NaN-free.
    ``default_tangent(l, u)`` and ``tangent_range(l, u)``: the default lower tangent point and
    its feasible set.  ``fast_ok(l, u)``: a mask of boxes the fast path handles (finite,
    no overflow, inside the domain); others get the interval.  ``reference``: the float64
    exact-offset rule, used where the bounds require gradients."""

    value: Callable[[Tensor], Tensor]
    slope: Callable[[Tensor], Tensor]
    curvature: Callable[[Tensor], Tensor]
    interval: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
    default_tangent: Callable[[Tensor, Tensor], Tensor]
    tangent_range: Range
    fast_ok: Callable[[Tensor, Tensor], Tensor]
    all_fast: Callable[[Tensor, Tensor], bool]     # fast_ok everywhere (cheap, one sync)
    reference: OpRule
    mirrored: bool = False        # odd function, boxes with u < 0 relaxed through f(x) = -f(-x)


def _lines(shape: Convex, lower: Tensor, upper: Tensor, t: Tensor,
           default: bool) -> list[Tensor]:
    eps, floor = eps_of(lower), floor_of(lower)
    f_l, f_u = shape.value(lower), shape.value(upper)
    f_l_up, f_u_up = f_l * (1 + C_F * eps), f_u * (1 + C_F * eps)
    f_l.mul_(1 - C_F * eps)
    f_u.mul_(1 - C_F * eps)
    width = upper - lower
    reach = torch.maximum(lower.abs(), upper.abs())
    spread = torch.mul(reach, C_R * eps).add_(width, alpha=C_W * eps)
    pad = torch.add(width, 2.0).mul_(floor)
    # tangent below
    slope = shape.slope(t)
    bias = shape.value(t).mul_(1 - C_F * eps).addcmul_(slope, t, value=-1)
    scratch = torch.addcmul(f_l, slope, lower, value=-1)
    torch.minimum(bias, scratch, out=bias)
    torch.minimum(bias, torch.addcmul(f_u, slope, upper, value=-1, out=scratch), out=bias)
    bias.sub_(pad).addcmul_(slope.abs(), spread, value=-1)
    # chord above
    chord = torch.sub(f_u_up, f_l_up).div_(width.clamp(min=float(torch.finfo(lower.dtype).tiny)))
    chord_bias = torch.addcmul(f_l_up, chord, lower, value=-1)
    torch.maximum(chord_bias, torch.addcmul(f_u_up, chord, upper, value=-1, out=scratch),
                  out=chord_bias)
    chord_bias.add_(pad).addcmul_(chord.abs(), reach, value=C_R * eps)
    if not default:
        return [slope, bias, chord, chord_bias]
    lo, hi = shape.interval(lower, upper)
    mid = torch.add(lower, upper).mul_(0.5)
    for line_slope, line_bias, flat, sign in ((slope, bias, lo, -1.0), (chord, chord_bias, hi, 1.0)):
        use_flat = torch.addcmul(line_bias, line_slope, mid).sub_(flat).mul_(sign).sign_()
        use_flat.clamp_(min=0.0)
        line_slope.addcmul_(line_slope, use_flat, value=-1)
        line_bias.lerp_(flat, use_flat)
    return [slope, bias, chord, chord_bias]


def _mirror_lines(shape: Convex, lower: Tensor, upper: Tensor, t: Tensor, t_up: Tensor,
                  default: bool) -> list[Tensor]:
    """For odd ``f``: boxes with ``u < 0`` are relaxed as ``-f(-x)`` on ``[-u, -l]`` (there
    the tangent is the upper line, at ``t_up``)."""
    negative = torch.sign(upper).neg_().clamp_(min=0.0)              # 1.0 where u < 0
    lo = torch.lerp(lower, torch.neg(upper), negative)
    up = torch.lerp(upper, torch.neg(lower), negative)
    point = torch.lerp(t, torch.neg(t_up), negative)
    a_lo, b_lo, a_up, b_up = _lines(shape, lo, up, point, default)
    # f(x) = -f(-x): lower line (a_up, -b_up), upper line (a_lo, -b_lo)
    return [torch.lerp(a_lo, a_up, negative), torch.lerp(b_lo, torch.neg(b_up), negative),
            torch.lerp(a_up, a_lo, negative), torch.lerp(b_up, torch.neg(b_lo), negative)]


class _TangentBelow(torch.autograd.Function):
    """Exact values; ``d slope / dt = f''(t)``, ``d bias / dt = -f''(t) t`` (the offset of the
    tangent at ``t`` is ``f(t) - f'(t) t``)."""

    @staticmethod
    def forward(ctx, shape: Convex, lower: Tensor, upper: Tensor, t: Tensor, t_up: Tensor):
        if shape.mirrored:
            out = chunked(lambda lo, up, p, q: _mirror_lines(shape, lo, up, p, q, False),
                          [lower, upper, t, t_up], 4)
        else:
            out = chunked(lambda lo, up, p: _lines(shape, lo, up, p, False), [lower, upper, t], 4)
        ctx.shape = shape
        ctx.save_for_backward(t, t_up)
        return out

    @staticmethod
    def backward(ctx, g_lo_slope, g_lo_bias, g_up_slope, g_up_bias):
        t, t_up = ctx.saved_tensors
        grad = torch.nan_to_num(ctx.shape.curvature(t) * (g_lo_slope - g_lo_bias * t))
        if not ctx.shape.mirrored:
            return None, None, None, grad, None
        # t is in [l, u]: t < 0 exactly on the boxes relaxed through the mirror
        grad_up = torch.nan_to_num(ctx.shape.curvature(t_up) * (g_up_slope - g_up_bias * t_up))
        return (None, None, None, torch.where(t < 0, 0.0, grad),
                torch.where(t_up < 0, grad_up, 0.0))


def convex_rule(op_type: str, shape: Convex, **rule_fields) -> OpRule:

    def project(lower: Tensor, upper: Tensor, params: Tensor) -> Tensor:
        lo_min, lo_max = shape.tangent_range(lower, upper)
        return torch.stack([clamp_param(params[0], lo_min, lo_max),
                            clamp_param(params[1], lower, upper)])

    def relax(lower: Tensor, upper: Tensor, params: Tensor | None) -> LinearRelaxation:
        if needs_bound_grad(lower, upper):
            return shape.reference.relax(lower, upper, params)
        if params is None:
            def default(a: Tensor, b: Tensor) -> list[Tensor]:
                t = shape.default_tangent(a, b)
                if shape.mirrored:
                    return _mirror_lines(shape, a, b, t, t, True)
                return _lines(shape, a, b, t, True)

            def fast(lo: Tensor, up: Tensor) -> LinearRelaxation:
                return LinearRelaxation(*chunked(default, [lo, up], 4))
        else:
            points = project(lower, upper, params.to(lower.dtype))

            def fast(lo: Tensor, up: Tensor) -> LinearRelaxation:
                p = points if lo is lower else torch.minimum(torch.maximum(points, lo), up)
                return LinearRelaxation(*_TangentBelow.apply(shape, lo, up, p[0], p[1]))
        if shape.all_fast(lower, upper):
            return fast(lower, upper)
        return with_fallback(fast, shape.interval, lower, upper, shape.fast_ok)

    def init_params(lower: Tensor, upper: Tensor) -> Tensor:
        if needs_bound_grad(lower, upper):
            return shape.reference.init_params(lower, upper)
        t = shape.default_tangent(lower, upper)
        return project(lower, upper, torch.stack([t, (lower + upper) / 2]))

    return OpRule(op_type=op_type, evaluate=shape.value, interval=shape.interval, relax=relax,
                  init_params=init_params, project_params=project, num_params=2,
                  **rule_fields)

