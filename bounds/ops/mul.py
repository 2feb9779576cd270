"""Mul of two perturbed inputs (algorithms.md 3.10): McCormick planes mixed by ``r_L, r_U``.

``params`` has shape ``(2, *shape)``: ``params[0] = r_L`` and ``params[1] = r_U``, clamped to
[0, 1]; the default ``r = 1`` gives CROWN's planes ``P1`` (below) and ``Q1`` (above).  The
coefficients follow 3.10; the biases are not taken from the formulas but computed exactly as
the min/max of the bilinear residual ``x*y - alpha*x - beta*y`` over the 4 corners (a bilinear
function is extreme at a corner), so any coefficients are sound.  Computed in the working
dtype: each corner's residual is moved outward by ``3 eps (|xy| + |alpha x| + |beta y|)``
bounded over the box (three products, two subtractions, the final shift) plus ``3 tiny``
(subnormal products); boxes with a bound beyond 1e15 (or infinite/NaN) get flat planes at the
interval.  Bounds are ``(x_lower, y_lower)``, ``(x_upper, y_upper)``, broadcastable.
``mul_relax_exact`` is the float64 construction, used where the bounds require gradients."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import outward_bias
from genbab.bounds.ops._closed_form import bounds_within, chunked, eps_of, needs_bound_grad
from genbab.bounds.relaxation import OpRule, PlaneRelaxation

Pair = tuple[Tensor, Tensor]
_LIMIT = 1e15


def _corners(lower: Pair, upper: Pair) -> tuple[Tensor, Tensor]:
    """All four corners as float64 stacks ``(4, *shape)`` for x and y."""
    xl, yl, xu, yu = torch.broadcast_tensors(lower[0], lower[1], upper[0], upper[1])
    xs = torch.stack([xl, xl, xu, xu]).double()
    ys = torch.stack([yl, yu, yl, yu]).double()
    return xs, ys


def mul_interval(lower: Pair, upper: Pair) -> tuple[Tensor, Tensor]:
    xl, yl, xu, yu = torch.broadcast_tensors(lower[0], lower[1], upper[0], upper[1])
    dtype = torch.result_type(lower[0], lower[1])
    eps, tiny = float(torch.finfo(dtype).eps), float(torch.finfo(dtype).tiny)
    products = [torch.nan_to_num(a * b, nan=0.0, posinf=float("inf"), neginf=float("-inf"))
                for a, b in ((xl, yl), (xl, yu), (xu, yl), (xu, yu))]   # 0 * inf is 0 there
    lo = torch.minimum(torch.minimum(products[0], products[1]),
                       torch.minimum(products[2], products[3]))
    hi = torch.maximum(torch.maximum(products[0], products[1]),
                       torch.maximum(products[2], products[3]))
    lo = lo.abs().mul_(-eps).add_(lo).sub_(tiny)       # products are correctly rounded
    hi = hi.abs().mul_(eps).add_(hi).add_(tiny)
    inf = float("inf")
    return (lo.nan_to_num_(nan=-inf, posinf=inf, neginf=-inf),
            hi.nan_to_num_(nan=inf, posinf=inf, neginf=-inf))


def mul_project(lower: Pair, upper: Pair, params: Tensor) -> Tensor:
    return torch.nan_to_num(params, nan=1.0).clamp(0.0, 1.0)


def _planes(xl: Tensor, yl: Tensor, xu: Tensor, yu: Tensor, r_lo: Tensor | None,
            r_up: Tensor | None, track: bool = False) -> list[Tensor]:
    """Coefficients, exact outward biases and (``track``) the extreme corners, in the
    working dtype.  ``r = None`` means 1 (CROWN's planes)."""
    eps, tiny = eps_of(xl), float(torch.finfo(xl.dtype).tiny)
    if r_lo is None:
        lx, ly, ux, uy = yl.clone(), xl.clone(), yu.clone(), xl.clone()
    else:
        lx, ly = torch.lerp(yu, yl, r_lo), torch.lerp(xu, xl, r_lo)
        ux, uy = torch.lerp(yl, yu, r_up), torch.lerp(xu, xl, r_up)
    reach_x = torch.maximum(xl.abs(), xu.abs())
    reach_y = torch.maximum(yl.abs(), yu.abs())
    scale = reach_x * reach_y
    out = []
    for cx, cy, lowest in ((lx, ly, True), (ux, uy, False)):
        best, scratch = None, None
        touch_x = touch_y = None
        for x, y in ((xl, yl), (xl, yu), (xu, yl), (xu, yu)):
            value = torch.mul(x, y, out=scratch) if scratch is not None else x * y
            value.addcmul_(cx, x, value=-1).addcmul_(cy, y, value=-1)
            if best is None:
                best, scratch = value, torch.empty_like(value)
                if track:
                    touch_x, touch_y = x.clone(), y.clone()
                continue
            if track:
                better = torch.sign(best - value if lowest else value - best).clamp_(min=0.0)
                touch_x.lerp_(x, better)
                touch_y.lerp_(y, better)
            (torch.minimum if lowest else torch.maximum)(best, value, out=best)
        m = torch.addcmul(scale, cx.abs(), reach_x).addcmul_(cy.abs(), reach_y)
        m.mul_(3 * eps).add_(3 * tiny)
        out += [cx, cy, best.sub_(m) if lowest else best.add_(m)]
        if track:
            out += [touch_x, touch_y]
    return out


class _McCormick(torch.autograd.Function):
    """Exact planes; gradients in ``r`` through the coefficients and, by the envelope
    theorem, through the residual at the extreme corner."""

    @staticmethod
    def forward(ctx, xl, yl, xu, yu, r_lo, r_up):
        track = ctx.needs_input_grad[4] or ctx.needs_input_grad[5]
        out = chunked(lambda *t: _planes(*t, track=track), [xl, yl, xu, yu, r_lo, r_up],
                      10 if track else 6)
        if track:
            ctx.save_for_backward(xl, yl, xu, yu, *out[3:5], *out[8:10])
            return out[0], out[1], out[2], out[5], out[6], out[7]
        return out

    @staticmethod
    def backward(ctx, g_lx, g_ly, g_lb, g_ux, g_uy, g_ub):
        xl, yl, xu, yu, lo_x, lo_y, up_x, up_y = ctx.saved_tensors
        d_lx, d_ly = yl - yu, xl - xu                # d alpha_L / dr, d beta_L / dr
        d_ux, d_uy = yu - yl, xl - xu
        grad_lo = g_lx * d_lx + g_ly * d_ly - g_lb * (d_lx * lo_x + d_ly * lo_y)
        grad_up = g_ux * d_ux + g_uy * d_uy - g_ub * (d_ux * up_x + d_uy * up_y)
        return None, None, None, None, grad_lo, grad_up


def _fallback(lower: Pair, upper: Pair, rel: PlaneRelaxation, bad: Tensor) -> PlaneRelaxation:
    lo, hi = mul_interval(lower, upper)
    zero = torch.zeros_like(lo)
    return PlaneRelaxation(
        lower_x=torch.where(bad, zero, rel.lower_x), lower_y=torch.where(bad, zero, rel.lower_y),
        lower_bias=torch.where(bad, lo, rel.lower_bias),
        upper_x=torch.where(bad, zero, rel.upper_x), upper_y=torch.where(bad, zero, rel.upper_y),
        upper_bias=torch.where(bad, hi, rel.upper_bias))


def mul_relax(lower: Pair, upper: Pair, params: Tensor | None) -> PlaneRelaxation:
    if needs_bound_grad(*lower, *upper):
        return mul_relax_exact(lower, upper, params)
    xl, yl, xu, yu = torch.broadcast_tensors(lower[0], lower[1], upper[0], upper[1])
    safe = bounds_within(_LIMIT, xl, yl, xu, yu)
    bad = None
    if not safe:
        bad = ~((xl.abs() <= _LIMIT) & (xu.abs() <= _LIMIT) & (yl.abs() <= _LIMIT)
                & (yu.abs() <= _LIMIT))
        xl, yl, xu, yu = (torch.where(bad, 0.0, t) for t in (xl, yl, xu, yu))
    if params is None:
        rel = PlaneRelaxation(*chunked(lambda *t: _planes(*t, None, None), [xl, yl, xu, yu], 6))
    else:
        r_lo, r_up = mul_project(lower, upper, params.to(xl.dtype))
        rel = PlaneRelaxation(*_McCormick.apply(xl, yl, xu, yu, r_lo, r_up))
    return rel if bad is None else _fallback(lower, upper, rel, bad)


def _plane_bias(xs: Tensor, ys: Tensor, cx: Tensor, cy: Tensor, lowest: bool,
                dtype: torch.dtype) -> Tensor:
    cx64, cy64 = cx.double(), cy.double()
    residual = xs * ys - cx64 * xs - cy64 * ys
    residual = torch.nan_to_num(residual, nan=float("-inf") if lowest else float("inf"))
    best = residual.amin(0) if lowest else residual.amax(0)
    reach = (cx64.abs() * xs.abs() + cy64.abs() * ys.abs()).amax(0)
    return outward_bias(best, reach, lowest, dtype)


def mul_relax_exact(lower: Pair, upper: Pair, params: Tensor | None) -> PlaneRelaxation:
    """The float64 construction (differentiable in the bounds)."""
    xl, yl, xu, yu = torch.broadcast_tensors(lower[0], lower[1], upper[0], upper[1])
    dtype = xl.dtype
    if params is None:
        r_lo = r_up = torch.ones_like(xl)
    else:
        r_lo, r_up = mul_project(lower, upper, params.to(dtype))
    lx, ly = r_lo * yl + (1 - r_lo) * yu, r_lo * xl + (1 - r_lo) * xu
    ux, uy = r_up * yu + (1 - r_up) * yl, r_up * xl + (1 - r_up) * xu
    xs, ys = _corners(lower, upper)
    lb = _plane_bias(xs, ys, lx, ly, True, dtype)
    ub = _plane_bias(xs, ys, ux, uy, False, dtype)
    good_lo = torch.isfinite(lx) & torch.isfinite(ly) & torch.isfinite(lb)
    good_up = torch.isfinite(ux) & torch.isfinite(uy) & torch.isfinite(ub)
    return PlaneRelaxation(
        lower_x=torch.where(good_lo, lx, 0.0), lower_y=torch.where(good_lo, ly, 0.0),
        lower_bias=torch.where(good_lo, lb, float("-inf")),
        upper_x=torch.where(good_up, ux, 0.0), upper_y=torch.where(good_up, uy, 0.0),
        upper_bias=torch.where(good_up, ub, float("inf")))


def mul_init(lower: Pair, upper: Pair) -> Tensor:
    xl = torch.broadcast_tensors(lower[0], lower[1], upper[0], upper[1])[0]
    return torch.ones((2, *xl.shape), dtype=xl.dtype, device=xl.device)


MUL = OpRule(op_type="Mul", evaluate=torch.mul, interval=mul_interval, relax=mul_relax,
             init_params=mul_init, project_params=mul_project, num_params=2, num_inputs=2)
