"""Which input dimension to bisect (input splitting) and which neuron to split (GenBaB).

Input splitting uses the gradient-times-width score: for each domain, the dimension along
which the property's worst rows change most over the box, ``|d margin / d x_i| * width_i``.
It costs one forward and backward pass at the box centres, and favours dimensions that the
bound is most sensitive to, which is what a split can tighten.
"""
from __future__ import annotations

import torch
from torch import Tensor

from branching.domain import Domains
from verifier.forward import evaluate
from verifier.graph import Graph

_FLOOR = 1e-3   # relative share of the mean score every dimension keeps, so none starves


def choose_input_dims(graph: Graph, domains: Domains, coeffs: Tensor, groups: Tensor) -> Tensor:
    """(B,) the dimension to bisect in each domain.

    coeffs: (R, m) spec rows; groups: (R,) clause id of each row (-1: padding).  Only rows of
    clauses not yet refuted in a domain contribute to its objective."""
    centre = ((domains.lower + domains.upper) / 2).detach().requires_grad_(True)
    with torch.enable_grad():
        y = evaluate(graph, centre.reshape(len(domains), *graph.input_shape))
        rows = y.reshape(len(domains), -1) @ coeffs.T                          # (B, R)
        open_clause = domains.margins <= 0                                      # (B, K)
        active = torch.zeros_like(rows, dtype=torch.bool)
        valid = groups >= 0
        active[:, valid] = open_clause[:, groups[valid]]
        (grad,) = torch.autograd.grad(torch.where(active, rows, 0.0).sum(), centre)
    width = domains.upper - domains.lower
    score = grad.abs() * width
    score = score + _FLOOR * score.mean(dim=1, keepdim=True) * (width > 0)
    score = torch.where(width > 0, score, -1.0)
    return score.argmax(dim=1)
