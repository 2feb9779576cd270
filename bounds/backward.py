"""Backward linear bound propagation (CROWN, algorithms.md 1.3).

Coefficients are ``(batch, rows, *shape)``: one lower bound of ``coeffs . h`` per domain and row.
``backward`` walks the nodes in reverse topological order (a node's coefficients are complete
once every consumer, which comes later in the order, has pushed its share) and returns the
coefficients on the input with the accumulated constant; ``concretize`` turns them into a
number on the input box.  Upper bounds are lower bounds of the negated rows.

Relaxations are taken from ``state.relaxation(node)`` (CROWN defaults, computed once per call)
or, for alpha-CROWN, from ``params`` (node name -> ``(k, batch, rows, *shape)``).  A line with
"no information" (bias +-inf) meets a zero coefficient as ``0``, never ``0 * inf = NaN``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from genbab.bounds.cuts import stop_early
from genbab.bounds.interval import product_operands
from genbab.bounds.linear import linear_adjoint, unbroadcast
from genbab.bounds.plan import LINEAR, MATMUL, UNARY, Plan
from genbab.bounds.steps import bias_sum, linear_step
from genbab.verifier.graph import Node

Pair = tuple[Tensor, Tensor]


@dataclass
class BoundState:
    """Per-call working state (never shared between calls): intervals, softmax indices,
    cached relaxations and constant parts."""

    plan: Plan
    consts: dict[str, Tensor]
    bounds: dict[str, Pair] = field(default_factory=dict)   # tensor -> (batch, *shape) each
    aux: dict[str, Tensor] = field(default_factory=dict)    # ShiftByMax node -> index
    relaxations: dict[str, object] = field(default_factory=dict)
    offsets: dict[str, list] = field(default_factory=dict)
    chunk_s: float = 0.0   # seconds the latest intermediate CROWN chunk took: one more that
    # long must still end before the deadline (``bounds.engine._crown_rows``)
    scalar_cuts: bool = False   # ``BoundOptions.scalar_cuts``: passes that allow it may stop
    # at the plan's scalar cuts (``backward``)
    cut_bounds: dict[str, tuple] = field(default_factory=dict)   # scalar cut -> its input-
    # space linear bounds ``(lower_coeffs (batch, 1, n), lower_bias (batch, 1), upper_coeffs,
    # upper_bias)``, computed once per call (``bounds.cuts``)

    def relaxation(self, node: Node):
        rel = self.relaxations.get(node.name)
        if rel is None:
            rel = relax_node(self, node, None)
            self.relaxations[node.name] = rel
        return rel


def relax_node(state: BoundState, node: Node, params: Tensor | None, rows: int = 0):
    """The relaxation of a nonlinear node on its current input bounds.  With ``params``
    (``(k, batch, rows, *shape)``) the bounds are expanded over the row axis."""
    plan, rule = state.plan, state.plan.rules[node.name]
    kind = plan.kinds[node.name]
    if kind == UNARY:
        lo, up = state.bounds[node.inputs[0]]
        if params is not None:
            lo, up = _rows(lo, rows), _rows(up, rows)
        return rule.relax(lo, up, params)
    (xl, xu), (yl, yu) = product_operands(plan, node, state.bounds)
    if params is not None:
        xl, xu, yl, yu = (_rows(t, rows) for t in (xl, xu, yl, yu))
    return rule.relax((xl, yl), (xu, yu), params)


def param_shape_bounds(state: BoundState, node: Node) -> tuple:
    """The ``(lower, upper)`` arguments ``init_params`` of the node's rule takes."""
    if state.plan.kinds[node.name] == UNARY:
        return state.bounds[node.inputs[0]]
    (xl, xu), (yl, yu) = product_operands(state.plan, node, state.bounds)
    return (xl, yl), (xu, yu)


def _rows(t: Tensor, rows: int) -> Tensor:
    return t.unsqueeze(1).expand(t.shape[0], rows, *t.shape[1:])


def _per_row(t: Tensor, coeffs: Tensor) -> Tensor:
    """Relaxation tensors are ``(batch, *shape)`` (shared by rows) or ``(batch, rows, *shape)``."""
    return t.unsqueeze(1) if t.dim() < coeffs.dim() else t


def _picked_bias(coeffs: Tensor, positive: Tensor, lo_bias: Tensor, up_bias: Tensor) -> Tensor:
    """``_bias`` of the clamped parts of ``coeffs`` (``positive``: ``coeffs >= 0``) in fewer
    passes over the (batch, rows, ...) tensors: each coefficient picks its line's bias."""
    picked = torch.where(positive, lo_bias, up_bias)
    if not (bool(torch.isfinite(lo_bias).all()) and bool(torch.isfinite(up_bias).all())):
        picked = torch.where(coeffs == 0, 0.0, picked)     # 0 * inf = 0
    if coeffs.dim() == 2:
        return coeffs * picked
    return torch.einsum("brn,brn->br", coeffs.flatten(2), picked.flatten(2))


def _unary_step(coeffs: Tensor, rel) -> tuple[Tensor, Tensor]:
    positive = coeffs >= 0
    slope = torch.where(positive, _per_row(rel.lower_slope, coeffs),
                        _per_row(rel.upper_slope, coeffs))
    return coeffs * slope, _picked_bias(coeffs, positive, _per_row(rel.lower_bias, coeffs),
                                        _per_row(rel.upper_bias, coeffs))


def _product_step(plan: Plan, node: Node, coeffs: Tensor, rel) -> tuple[dict[str, Tensor], Tensor]:
    shapes = plan.graph.shapes
    x, y = node.inputs
    if plan.kinds[node.name] == MATMUL:
        cx, cy, bias = _matmul_planes(coeffs.clamp(min=0), coeffs.clamp(max=0), rel)
    else:
        positive = coeffs >= 0

        def plane(lower: Tensor, upper: Tensor) -> Tensor:
            return torch.where(positive, _per_row(lower, coeffs), _per_row(upper, coeffs))

        cx = coeffs * plane(rel.lower_x, rel.upper_x)
        cy = coeffs * plane(rel.lower_y, rel.upper_y)
        bias = _picked_bias(coeffs, positive, _per_row(rel.lower_bias, coeffs),
                            _per_row(rel.upper_bias, coeffs))
    result = {x: unbroadcast(cx, shapes[x])}
    part = unbroadcast(cy, shapes[y])
    result[y] = result[y] + part if y in result else part
    return result, bias


def _matmul_planes(pos: Tensor, neg: Tensor, rel) -> tuple[Tensor, Tensor, Tensor]:
    """Sum the planes of every product ``x_mk * y_kn`` (``(batch[, rows], ..., M, K, N)``)
    against ``(batch, rows, ..., M, N)`` coefficients without forming the 5-d products."""
    batch, rows = pos.shape[:2]
    m, n = pos.shape[-2:]
    k = rel.lower_x.shape[-2]
    lead = pos.shape[2:-2]
    per_row = rel.lower_x.dim() == pos.dim() + 1
    p, q = pos.reshape(batch, rows, -1, m, n), neg.reshape(batch, rows, -1, m, n)

    def flat(t: Tensor) -> Tensor:
        t = t.expand(*t.shape[:t.dim() - 3 - len(lead)], *lead, m, k, n)
        return t.reshape(batch, rows, -1, m, k, n) if per_row else t.reshape(batch, -1, m, k, n)

    plane = "brlmkn" if per_row else "blmkn"
    cx = (torch.einsum(f"brlmn,{plane}->brlmk", p, flat(rel.lower_x))
          + torch.einsum(f"brlmn,{plane}->brlmk", q, flat(rel.upper_x)))
    cy = (torch.einsum(f"brlmn,{plane}->brlkn", p, flat(rel.lower_y))
          + torch.einsum(f"brlmn,{plane}->brlkn", q, flat(rel.upper_y)))
    lo_b, up_b = flat(rel.lower_bias).sum(dim=-2), flat(rel.upper_bias).sum(dim=-2)
    if not per_row:
        lo_b, up_b = lo_b.unsqueeze(1), up_b.unsqueeze(1)
    bias = bias_sum(p, lo_b, q, up_b)
    return (cx.reshape(batch, rows, *lead, m, k), cy.reshape(batch, rows, *lead, k, n), bias)


def backward(state: BoundState, start: str, coeffs: Tensor,
             params: dict[str, Tensor] | None = None,
             record: dict[str, Tensor] | None = None,
             split_terms: dict[str, Pair] | None = None,
             relaxed: dict[str, object] | None = None,
             cuts: bool = False) -> tuple[Tensor, Tensor]:
    """Lower bounds of ``coeffs . start`` as a linear function of the input.

    coeffs: (batch, rows, *shape(start)).  Returns ``(input_coeffs, bias)``:
    ``(batch, rows, input_size)`` and ``(batch, rows)``.  ``record``: if given, filled with
    the coefficients reaching the output of every nonlinear node, keyed by that output tensor
    (``(batch, rows, *shape)``; the ``lA`` branching heuristics read).  ``split_terms``:
    tensor -> ``(coeffs (batch, rows, *shape), bias (batch, rows))`` added to the bound once
    that tensor's coefficients are complete (Lagrangian terms of split constraints, beta).
    ``relaxed``: node name -> a relaxation to use as it is (tensors ``(batch[, rows], *shape)``)
    instead of the default or ``params`` one.  ``cuts``: if ``state.scalar_cuts`` is on, this
    pass may stop early at the plan's scalar cuts and cut-affine tensors (``bounds.cuts``);
    only for passes whose relaxations behind the cuts are the defaults (no alpha parameters
    or split terms there) and that need no ``record`` of nodes behind them."""
    plan = state.plan
    g = plan.graph
    batch, rows = coeffs.shape[:2]
    pending: dict[str, Tensor] = {start: coeffs}
    bias = coeffs.new_zeros((batch, rows))
    order = [n for n in g.nodes]
    last = max((i for i, n in enumerate(order) if start in n.outputs), default=-1)
    for node in reversed(order[:last + 1]):
        outs = [pending.pop(o, None) for o in node.outputs]
        if cuts and state.scalar_cuts and outs[0] is not None:
            outs, bias = stop_early(state, node.outputs[0], start, outs, bias, pending,
                                    backward)
        if split_terms:
            outs, bias = _add_split_terms(node, outs, bias, split_terms)
        if all(o is None for o in outs):
            continue
        kind = plan.kinds[node.name]
        if kind == LINEAR:
            pushed, extra = linear_step(state, node, outs)
        else:
            if record is not None and outs[0] is not None:
                record[node.outputs[0]] = outs[0].detach()
            p = None if params is None else params.get(node.name)
            if relaxed is not None and node.name in relaxed:
                rel = relaxed[node.name]
            else:
                rel = state.relaxation(node) if p is None else relax_node(state, node, p, rows)
            if kind == UNARY:
                new, extra = _unary_step(outs[0], rel)
                pushed = {node.inputs[0]: new}
            else:
                pushed, extra = _product_step(plan, node, outs[0], rel)
        if extra is not None:
            bias = bias + extra
        for name, c in pushed.items():
            if name in plan.perturbed:
                pending[name] = pending[name] + c if name in pending else c
    x = pending.pop(g.input_name, None)
    if x is None:
        x = coeffs.new_zeros((batch, rows, g.input_size))
    return x.reshape(batch, rows, -1), bias


def _add_split_terms(node: Node, outs: list, bias: Tensor, terms: dict[str, Pair]):
    outs = list(outs)
    for i, name in enumerate(node.outputs):
        if name in terms:
            extra, extra_bias = terms[name]
            outs[i] = extra if outs[i] is None else outs[i] + extra
            bias = bias + extra_bias
    return outs, bias


def concretize(input_coeffs: Tensor, bias: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """``min over the box`` of ``input_coeffs . x + bias``; lower/upper: (batch, input_size)."""
    centre, radius = (lower + upper) / 2, (upper - lower) / 2
    value = (torch.einsum("brn,bn->br", input_coeffs, centre)
             - torch.einsum("brn,bn->br", input_coeffs.abs(), radius) + bias)
    return torch.nan_to_num(value, nan=float("-inf"))
