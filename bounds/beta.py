"""Beta multipliers of split constraints (algorithms.md 4.2 step 3), shared by the beta-only
optimisation (``bounds.engine``, CROWN relaxations fixed) and the joint alpha-beta one
(``bounds.alpha.optimise`` with a ``BetaSetup``).

A split (or a recomputation after one) makes ``h_j >= l_j`` / ``h_j <= u_j`` constraints of a
sub-domain.  For any ``beta >= 0`` the term ``-beta_l (h - l) - beta_u (u - h)`` is <= 0 on the
domain, so adding it to the bounded function before relaxing keeps every bound sound; the
multipliers are clamped to ``>= 0`` where they are used, whatever the optimiser did.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from genbab.bounds.backward import BoundState

Pair = tuple[Tensor, Tensor]


@dataclass
class BetaSetup:
    """Active constraint masks per tensor (``(batch, *shape)`` bools, lower and upper), the
    multipliers ``(batch, rows, numel)`` being optimised and their learning rate."""

    masks: Mapping[str, Pair]
    betas: dict[str, Pair]
    lr: float


def active_masks(state: BoundState, masks: Mapping[str, Pair]) -> dict[str, Pair]:
    """The masks of tensors that the call bounds and that have at least one constraint."""
    return {k: v for k, v in masks.items() if k in state.bounds and bool(v[0].any() or v[1].any())}


def init_betas(masks: Mapping[str, Pair], like: Tensor, rows: int,
               warm: Mapping[str, Pair] | None) -> dict[str, Pair]:
    """Fresh leaf multipliers per masked tensor: the warm start where its shape fits (a child
    inherits its parent's multipliers; a new constraint starts at 0), else zeros."""
    betas = {}
    for name, (m_l, _) in masks.items():
        shape = (m_l.shape[0], rows, m_l[0].numel())
        start = warm.get(name) if warm else None
        pair = []
        for i in range(2):
            if start is not None and tuple(start[i].shape) == shape:
                value = start[i].detach().to(like).clamp(min=0)
            else:
                value = like.new_zeros(shape)
            pair.append(value.clone().requires_grad_(True))
        betas[name] = tuple(pair)
    return betas


def beta_terms(state: BoundState, masks: Mapping[str, Pair], betas: Mapping[str, Pair],
               rows: int) -> dict[str, Pair]:
    """``-beta_l (h - l) - beta_u (u - h)`` as coefficients on h and a constant, per row."""
    terms = {}
    for name, (beta_l, beta_u) in betas.items():
        lo, up = state.bounds[name]
        batch = lo.shape[0]
        m_l, m_u = (m.reshape(batch, 1, -1) for m in masks[name])
        lo, up = lo.reshape(batch, 1, -1), up.reshape(batch, 1, -1)
        b_l = torch.where(m_l, beta_l.clamp(min=0), 0.0)
        b_u = torch.where(m_u, beta_u.clamp(min=0), 0.0)
        coeffs = (b_u - b_l).reshape(batch, rows, *state.bounds[name][0].shape[1:])
        bias = (torch.where(m_l, b_l * lo, 0.0) - torch.where(m_u, b_u * up, 0.0)).sum(-1)
        terms[name] = (coeffs, bias)
    return terms


def clamp_betas(betas: Mapping[str, Pair]) -> None:
    """Project onto ``beta >= 0`` in place (after an optimiser step)."""
    with torch.no_grad():
        for pair in betas.values():
            for b in pair:
                b.clamp_(min=0)


def keep_best(best: dict[str, Pair], betas: Mapping[str, Pair], improved: Tensor) -> dict[str, Pair]:
    """Per (batch, row) where ``improved``, the current multipliers replace the kept ones."""
    mask = improved.unsqueeze(-1)
    return {k: tuple(torch.where(mask, b.detach().clamp(min=0), kept)
                     for b, kept in zip(betas[k], best[k])) for k in betas}
