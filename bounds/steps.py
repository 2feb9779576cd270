"""Pieces of a backward pass that both ``bounds.backward`` and ``bounds.cuts`` take: the
constant of a linear-bound step, and the step through an op that is linear in its perturbed
inputs.  A module of their own so that ``cuts`` (which the pass calls into, and which calls
a pass back for a scalar cut's own bounds, handed to it as an argument) needs nothing from
``backward``.  ``state`` is a ``bounds.backward.BoundState``."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.linear import constant_part, linear_adjoint
from genbab.verifier.graph import Node


def bias_sum(pos: Tensor, lo_bias: Tensor, neg: Tensor, up_bias: Tensor) -> Tensor:
    """Sum of ``pos * lo_bias + neg * up_bias`` over all but (batch, rows), 0 * inf = 0."""
    dims = tuple(range(2, pos.dim()))
    finite = bool(torch.isfinite(lo_bias).all()) and bool(torch.isfinite(up_bias).all())
    if finite:
        term = pos * lo_bias + neg * up_bias
    else:
        term = (torch.where(pos == 0, 0.0, pos * lo_bias)
                + torch.where(neg == 0, 0.0, neg * up_bias))
    return term.sum(dim=dims) if dims else term


def _offsets(state, node: Node, like: Tensor) -> list:
    cached = state.offsets.get(node.name)
    if cached is None:
        plan = state.plan
        cached = constant_part(node, plan.graph.shapes, plan.perturbed, state.consts, like)
        state.offsets[node.name] = cached
    return cached


def linear_step(state, node: Node, outs: list) -> tuple[dict[str, Tensor], Tensor | None]:
    plan = state.plan
    aux = state.aux.get(node.name)
    result = linear_adjoint(node, outs, plan.graph.shapes, plan.perturbed, state.consts, aux)
    bias = None
    for c, offset in zip(outs, _offsets(state, node, next(o for o in outs if o is not None))):
        if c is not None and offset is not None:
            term = (c * offset).flatten(2).sum(-1)
            bias = term if bias is None else bias + term
    return result, bias
