"""Which input dimension to bisect (input splitting) and which neuron to split (GenBaB).

Input splitting uses the gradient-times-width score: for each domain, the dimension along
which the property's worst rows change most over the box, ``|d margin / d x_i| * width_i``.
It costs one forward and backward pass at the box centres, and favours dimensions that the
bound is most sensitive to, which is what a split can tighten.
"""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.branching.domain import Domains
from genbab.verifier.forward import evaluate
from genbab.verifier.graph import Graph

_FLOOR = 1e-3   # relative share of the mean score every dimension keeps, so none starves
_SENSITIVITY_FLOOR = 0.2   # share of the mean |coefficient| added to each dimension's (like
# the reference's ``sb_coeff_thresh``): a dimension the linear bound barely depends on can
# still loosen the relaxations inside.  On lsnc quadrotor2d_state_0 (60 s, with the plane
# search) 0.1-0.25 left 0.013-0.015% of the volume open, 0.5 0.08%, 1.0 0.13%, 0 1.4%


def choose_input_dims(graph: Graph, domains: Domains, coeffs: Tensor, groups: Tensor) -> Tensor:
    """(B,) the dimension to bisect in each domain (see ``rank_input_dims``)."""
    return rank_input_dims(graph, domains, coeffs, groups, 1)[:, 0]


def rank_input_dims(graph: Graph, domains: Domains, coeffs: Tensor, groups: Tensor,
                    count: int) -> Tensor:
    """(B, count) the ``count`` best dimensions to bisect in each domain, best first.

    With the last bound's input coefficients (``domains.sensitivity``) the score is
    ``sensitivity_i * width_i``: halving dimension i removes about half of its share of the gap
    between the linear bound and its minimum.  Without them, the network's gradient at the box
    centre stands in.  coeffs: (R, m) spec rows; groups: (R,) clause id of each row."""
    width = domains.upper - domains.lower
    if domains.sensitivity is not None:
        sens = domains.sensitivity
        sens = sens + _SENSITIVITY_FLOOR * sens.mean(dim=1, keepdim=True)
        return _best(sens * width, width, count)
    centre = ((domains.lower + domains.upper) / 2).detach().requires_grad_(True)
    with torch.enable_grad():
        y = evaluate(graph, centre.reshape(len(domains), *graph.input_shape))
        rows = y.reshape(len(domains), -1) @ coeffs.T                          # (B, R)
        open_clause = domains.margins <= 0                                      # (B, K)
        active = torch.zeros_like(rows, dtype=torch.bool)
        valid = groups >= 0
        active[:, valid] = open_clause[:, groups[valid]]
        (grad,) = torch.autograd.grad(torch.where(active, rows, 0.0).sum(), centre)
    return _best(grad.abs() * width, width, count)


def _best(score: Tensor, width: Tensor, count: int) -> Tensor:
    score = score + _FLOOR * score.mean(dim=1, keepdim=True) * (width > 0)
    score = torch.where(width > 0, score, -1.0)
    if count == 1:
        return score.argmax(dim=1, keepdim=True)
    return score.topk(count, dim=1).indices


def input_sensitivity(input_coeffs: Tensor, margins: Tensor, groups: Tensor) -> Tensor:
    """(B, n): sum over the rows of still-open clauses of |input coefficient|."""
    open_clause = margins <= 0
    active = torch.zeros(input_coeffs.shape[:2], dtype=torch.bool, device=input_coeffs.device)
    valid = groups >= 0
    active[:, valid] = open_clause[:, groups[valid]]
    return (input_coeffs.abs() * active.unsqueeze(-1)).sum(dim=1)


def clause_sensitivity(input_coeffs: Tensor, row_margins: Tensor, members: Tensor,
                       open_clause: Tensor) -> Tensor:
    """(B, n): sum over the open clauses of |input coefficients| of the clause's most nearly
    proved row.  A clause is refuted as soon as any one of its rows is, so the split should
    help the row that is closest, not all rows equally.

    input_coeffs: (B, U, n) of the bounded rows; row_margins: (B, U) their lower bound minus
    threshold; members: (U, K) row u belongs to clause k; open_clause: (B, K)."""
    margins = row_margins.nan_to_num(nan=-torch.inf).to(input_coeffs.dtype).unsqueeze(1)
    best = torch.where(members.T.unsqueeze(0), margins, -torch.inf).max(dim=2).indices  # (B,K)
    weight = torch.zeros_like(input_coeffs[..., 0])                                    # (B, U)
    weight.scatter_add_(1, best, open_clause.to(weight.dtype))
    return torch.bmm(weight.unsqueeze(1), input_coeffs.abs()).squeeze(1)
