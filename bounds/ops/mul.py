"""Mul of two perturbed inputs (algorithms.md 3.10): McCormick planes mixed by ``r_L, r_U``.

``params`` has shape ``(2, *shape)``: ``params[0] = r_L`` and ``params[1] = r_U``, clamped to
[0, 1]; the default ``r = 1`` gives CROWN's planes ``P1`` (below) and ``Q1`` (above).  The
coefficients follow 3.10; the biases are not taken from the formulas but computed exactly as
the min/max of the bilinear residual ``x*y - alpha*x - beta*y`` over the 4 corners (a bilinear
function is extreme at a corner), in float64 and rounded outward, so any coefficients are
sound.  Bounds are ``(x_lower, y_lower)``, ``(x_upper, y_upper)``, broadcastable."""
from __future__ import annotations

import torch
from torch import Tensor

from bounds.lines import outward_bias
from bounds.relaxation import OpRule, PlaneRelaxation

Pair = tuple[Tensor, Tensor]


def _corners(lower: Pair, upper: Pair) -> tuple[Tensor, Tensor]:
    """All four corners as float64 stacks ``(4, *shape)`` for x and y."""
    xl, yl, xu, yu = torch.broadcast_tensors(lower[0], lower[1], upper[0], upper[1])
    xs = torch.stack([xl, xl, xu, xu]).double()
    ys = torch.stack([yl, yu, yl, yu]).double()
    return xs, ys


def mul_interval(lower: Pair, upper: Pair) -> tuple[Tensor, Tensor]:
    xs, ys = _corners(lower, upper)
    products = torch.nan_to_num(xs * ys, nan=0.0)   # 0 * inf: the product is 0 there
    dtype = torch.result_type(lower[0], lower[1])
    lo = outward_bias(products.amin(0), torch.zeros_like(products[0]), True, dtype)
    hi = outward_bias(products.amax(0), torch.zeros_like(products[0]), False, dtype)
    return lo, hi


def _plane_bias(xs: Tensor, ys: Tensor, cx: Tensor, cy: Tensor, lowest: bool,
                dtype: torch.dtype) -> Tensor:
    cx64, cy64 = cx.double(), cy.double()
    residual = xs * ys - cx64 * xs - cy64 * ys
    residual = torch.nan_to_num(residual, nan=float("-inf") if lowest else float("inf"))
    best = residual.amin(0) if lowest else residual.amax(0)
    reach = (cx64.abs() * xs.abs() + cy64.abs() * ys.abs()).amax(0)
    return outward_bias(best, reach, lowest, dtype)


def mul_project(lower: Pair, upper: Pair, params: Tensor) -> Tensor:
    return torch.nan_to_num(params, nan=1.0).clamp(0.0, 1.0)


def mul_relax(lower: Pair, upper: Pair, params: Tensor | None) -> PlaneRelaxation:
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

