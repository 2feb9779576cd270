"""Interval bound propagation (IBP) of one node (algorithms.md 1.4, "IBP rules").

Linear ops: ``bounds.linear.linear_interval``.  Elementwise nonlinear ops: the rule's
``interval``.  Products of two perturbed tensors: the rule's corner interval (Mul) or the
centre/radius product ``|Ac||Br| + |Ar||Bc| + |Ar||Br|`` summed over ``k`` (MatMul).
Infinite or NaN ends are widened to +-inf, never dropped.
"""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.linear import linear_interval
from genbab.bounds.plan import LINEAR, MATMUL, MUL, Plan
from genbab.verifier.graph import Node

Pair = tuple[Tensor, Tensor]


def align(x: Tensor, rank: int) -> Tensor:
    """A batched ``(batch, *shape)`` tensor reshaped to ``(batch, 1.., *shape)`` of ONNX rank."""
    return x.reshape(x.shape[:1] + (1,) * (rank - x.dim() + 1) + x.shape[1:])


def product_operands(plan: Plan, node: Node, bounds: dict[str, Pair]) -> tuple[Pair, Pair]:
    """Bounds of the two factors aligned for an elementwise product.

    Mul: both ``(batch, *out_shape-broadcastable)``.  MatMul: ``(batch, ..., M, K, 1)`` and
    ``(batch, ..., 1, K, N)``, so that the product's planes are ``(batch, ..., M, K, N)``."""
    rank = len(plan.graph.shapes[node.output])
    x, y = bounds[node.inputs[0]], bounds[node.inputs[1]]
    if plan.kinds[node.name] == MUL:
        return (align(x[0], rank), align(x[1], rank)), (align(y[0], rank), align(y[1], rank))
    xs, ys = plan.graph.shapes[node.inputs[0]], plan.graph.shapes[node.inputs[1]]
    if len(xs) < 2 or len(ys) < 2:
        raise NotImplementedError(f"MatMul of two perturbed tensors needs rank >= 2 ({node.name})")
    return ((align(x[0], rank).unsqueeze(-1), align(x[1], rank).unsqueeze(-1)),
            (align(y[0], rank).unsqueeze(-3), align(y[1], rank).unsqueeze(-3)))


def node_interval(plan: Plan, node: Node, bounds: dict[str, Pair], consts: dict[str, Tensor],
                  aux: Tensor | None = None) -> list[Pair]:
    """Sound intervals of the outputs of ``node`` from those of its perturbed inputs."""
    kind = plan.kinds[node.name]
    if kind == LINEAR:
        return linear_interval(node, bounds, consts, aux)
    rule = plan.rules[node.name]
    if kind == MUL:
        (xl, xu), (yl, yu) = product_operands(plan, node, bounds)
        lo, up = rule.interval((xl, yl), (xu, yu))
        return [(lo, up)]
    if kind == MATMUL:
        return [_matmul_interval(plan, node, bounds)]
    lo, up = bounds[node.inputs[0]]
    return [rule.interval(lo, up)]


def _matmul_interval(plan: Plan, node: Node, bounds: dict[str, Pair]) -> Pair:
    (xl, xu), (yl, yu) = product_operands(plan, node, bounds)
    xl, xu, yl, yu = (t.squeeze(-1 if i < 2 else -3) for i, t in enumerate((xl, xu, yl, yu)))
    xc, xr = (xl + xu) / 2, (xu - xl) / 2
    yc, yr = (yl + yu) / 2, (yu - yl) / 2
    centre = torch.matmul(xc, yc)
    radius = torch.matmul(xc.abs(), yr) + torch.matmul(xr, yc.abs()) + torch.matmul(xr, yr)
    # float32 rounding of the matmuls: widen by a relative margin
    slack = 1e-6 * (torch.matmul(xc.abs(), yc.abs()) + radius)
    lower = torch.nan_to_num(centre - radius - slack, nan=float("-inf"))
    upper = torch.nan_to_num(centre + radius + slack, nan=float("inf"))
    return lower, upper


def intersect(a: Pair, b: Pair) -> Pair:
    """The tighter of two sound intervals (NaN-free: a NaN end is ignored)."""
    lo = torch.maximum(torch.nan_to_num(a[0], nan=float("-inf")),
                       torch.nan_to_num(b[0], nan=float("-inf")))
    up = torch.minimum(torch.nan_to_num(a[1], nan=float("inf")),
                       torch.nan_to_num(b[1], nan=float("inf")))
    return lo, up
