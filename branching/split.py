"""Making children: input bisection, and narrowing one neuron's interval at a split point."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genbab.branching.domain import Domains


@dataclass(frozen=True)
class SplitDecision:
    """Per domain: split ``tensor`` element ``index`` (flat) at ``split_at``; batched (B,)."""

    tensor: str
    index: Tensor
    split_at: Tensor


def split_inputs(domains: Domains, dims: Tensor) -> Domains:
    """Bisect each domain's box along ``dims`` (B,): children ``[left..., right...]``, which
    keep the parent's halfspaces (valid on any sub-box)."""
    rows = torch.arange(len(domains), device=dims.device)
    mid = (domains.lower[rows, dims] + domains.upper[rows, dims]) / 2
    left_upper = domains.upper.clone()
    left_upper[rows, dims] = mid
    right_lower = domains.lower.clone()
    right_lower[rows, dims] = mid
    left = Domains(domains.lower, left_upper, domains.margins, domains.depth + 1,
                   dict(domains.interm), domains.sensitivity, halfspaces=domains.halfspaces)
    right = Domains(right_lower, domains.upper, domains.margins, domains.depth + 1,
                    dict(domains.interm), domains.sensitivity, halfspaces=domains.halfspaces)
    return Domains.cat([left, right])


def split_input_dims(domains: Domains, dims: Tensor) -> Domains:
    """Bisect each domain along every column of ``dims`` (B, k): ``2**k`` children per domain,
    the k-fold product of ``split_inputs`` (several dims at once fill a large batch from a
    small pool in one round)."""
    children = domains
    for j in range(dims.shape[1]):
        copies = len(children) // len(domains)
        children = split_inputs(children, dims[:, j].repeat(copies))
    return children


def split_neurons(domains: Domains, decisions: list[SplitDecision],
                  bounds: dict[str, tuple[Tensor, Tensor]]) -> Domains:
    """Children ``[left..., right...]`` where the chosen neuron's interval becomes
    ``[l, p]`` (left) and ``[p, u]`` (right).  ``decisions`` partition the batch by tensor
    (entries for other domains carry index -1); ``bounds`` are the parents' intervals of every
    splittable tensor, which children inherit as their narrowed intervals."""
    left_interm, right_interm = {}, {}
    for name, (lo, up) in bounds.items():
        keep = torch.contiguous_format
        left_interm[name] = (lo.clone(memory_format=keep), up.clone(memory_format=keep))
        right_interm[name] = (lo.clone(memory_format=keep), up.clone(memory_format=keep))
    rows = torch.arange(len(domains), device=domains.lower.device)
    for d in decisions:
        chosen = d.index >= 0
        r, i, p = rows[chosen], d.index[chosen], d.split_at[chosen]
        batch = len(domains)
        left_interm[d.tensor][1].view(batch, -1)[r, i] = p
        right_interm[d.tensor][0].view(batch, -1)[r, i] = p
    left = Domains(domains.lower, domains.upper, domains.margins, domains.depth + 1, left_interm)
    right = Domains(domains.lower, domains.upper, domains.margins, domains.depth + 1,
                    right_interm)
    return Domains.cat([left, right])
