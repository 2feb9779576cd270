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

    With the last bound's input coefficients (``domains.sensitivity``) the score is
    ``sensitivity_i * width_i``: halving dimension i removes about half of its share of the gap
    between the linear bound and its minimum.  Without them, the network's gradient at the box
    centre stands in.  coeffs: (R, m) spec rows; groups: (R,) clause id of each row."""
    width = domains.upper - domains.lower
    if domains.sensitivity is not None:
        return _best(domains.sensitivity * width, width)
    centre = ((domains.lower + domains.upper) / 2).detach().requires_grad_(True)
    with torch.enable_grad():
        y = evaluate(graph, centre.reshape(len(domains), *graph.input_shape))
        rows = y.reshape(len(domains), -1) @ coeffs.T                          # (B, R)
        open_clause = domains.margins <= 0                                      # (B, K)
        active = torch.zeros_like(rows, dtype=torch.bool)
        valid = groups >= 0
        active[:, valid] = open_clause[:, groups[valid]]
        (grad,) = torch.autograd.grad(torch.where(active, rows, 0.0).sum(), centre)
    return _best(grad.abs() * width, width)


def _best(score: Tensor, width: Tensor) -> Tensor:
    score = score + _FLOOR * score.mean(dim=1, keepdim=True) * (width > 0)
    return torch.where(width > 0, score, -1.0).argmax(dim=1)


def input_sensitivity(input_coeffs: Tensor, margins: Tensor, groups: Tensor) -> Tensor:
    """(B, n): sum over the rows of still-open clauses of |input coefficient|."""
    open_clause = margins <= 0
    active = torch.zeros(input_coeffs.shape[:2], dtype=torch.bool, device=input_coeffs.device)
    valid = groups >= 0
    active[:, valid] = open_clause[:, groups[valid]]
    return (input_coeffs.abs() * active.unsqueeze(-1)).sum(dim=1)
