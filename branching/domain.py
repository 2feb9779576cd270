"""Sub-domains of one disjunct, batched along a leading axis, and the pool they wait in.

A sub-domain is an input box plus, for activation splits, tightened intervals of chosen
tensors.  Its *clause margins* are the best proved ``max_row(lower - threshold)`` per clause;
a clause with margin > 0 is refuted on the domain, and the domain is verified once every clause
is.  Margins only ever grow from parent to child: the parent's proof covers the child's box.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import torch
from torch import Tensor

Pair = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class Domains:
    """lower, upper: (B, n) input boxes; margins: (B, K) per clause; depth: (B,) splits so far;
    interm: tensor name -> (lower, upper) of shape (B, *shape), intervals narrowed by splits;
    sensitivity: (B, n) how strongly the last bound's open rows depend on each input
    (sum of |input coefficients|), which input splitting uses to pick a dimension;
    alpha: node -> ``(k, B, rows, *shape)`` and beta: tensor -> ``(B, rows, n)`` pairs, the
    bound parameters that gave the margins, which children start from (neuron splits);
    halfspaces: ``(coeffs (B, U, n), offset (B, U))``, linear lower bounds of the spec's
    distinct rows valid on the box (offset ``-inf``: none known), which input splitting uses
    to clip children before bounding them (``branching.clip``)."""

    lower: Tensor
    upper: Tensor
    margins: Tensor
    depth: Tensor
    interm: Mapping[str, Pair] = field(default_factory=dict)
    sensitivity: Tensor | None = None
    alpha: Mapping[str, Tensor] = field(default_factory=dict)
    beta: Mapping[str, Pair] = field(default_factory=dict)
    halfspaces: Pair | None = None

    def __len__(self) -> int:
        return self.lower.shape[0]

    @property
    def worst(self) -> Tensor:
        """(B,) the margin of the least-proved clause: the domain is verified iff > 0."""
        return self.margins.min(dim=1).values

    def select(self, index: Tensor) -> "Domains":
        return Domains(self.lower[index], self.upper[index], self.margins[index],
                       self.depth[index],
                       {k: (lo[index], up[index]) for k, (lo, up) in self.interm.items()},
                       None if self.sensitivity is None else self.sensitivity[index],
                       {k: a[:, index] for k, a in self.alpha.items()},
                       {k: (b_l[index], b_u[index]) for k, (b_l, b_u) in self.beta.items()},
                       None if self.halfspaces is None else (self.halfspaces[0][index],
                                                             self.halfspaces[1][index]))

    def with_margins(self, margins: Tensor, sensitivity: Tensor | None = None) -> "Domains":
        return replace(self, margins=margins, sensitivity=sensitivity)

    @staticmethod
    def cat(parts: list["Domains"]) -> "Domains":
        parts = [p for p in parts if len(p)]
        keys = set().union(*(p.interm.keys() for p in parts)) if parts else set()
        if any(set(p.interm) != keys for p in parts):
            raise ValueError("domains to concatenate must narrow the same tensors")
        sens = [p.sensitivity for p in parts]
        sensitivity = None if any(t is None for t in sens) else torch.cat(sens)
        return Domains(torch.cat([p.lower for p in parts]), torch.cat([p.upper for p in parts]),
                       torch.cat([p.margins for p in parts]), torch.cat([p.depth for p in parts]),
                       {k: (torch.cat([p.interm[k][0] for p in parts]),
                            torch.cat([p.interm[k][1] for p in parts])) for k in keys},
                       sensitivity, _cat_alpha(parts), _cat_beta(parts), _cat_halfspaces(parts))


def _common(parts: list[Domains], field_name: str) -> list[str]:
    """Keys every part has with the same trailing shape (warm starts are optional: a key
    some part lacks, or with another shape, is dropped)."""
    maps = [getattr(p, field_name) for p in parts]
    if not maps or not all(maps):
        return []
    return [k for k in maps[0] if all(k in m for m in maps)]


def _cat_halfspaces(parts: list[Domains]) -> Pair | None:
    """Halfspaces survive concatenation only if every part has them (a warm start too)."""
    if not parts or any(p.halfspaces is None for p in parts):
        return None
    return (torch.cat([p.halfspaces[0] for p in parts]),
            torch.cat([p.halfspaces[1] for p in parts]))


def _cat_alpha(parts: list[Domains]) -> dict[str, Tensor]:
    out = {}
    for k in _common(parts, "alpha"):
        ts = [p.alpha[k] for p in parts]
        if all(t.shape[0] == ts[0].shape[0] and t.shape[2:] == ts[0].shape[2:] for t in ts):
            out[k] = torch.cat(ts, dim=1)
    return out


def _cat_beta(parts: list[Domains]) -> dict[str, Pair]:
    out = {}
    for k in _common(parts, "beta"):
        pairs = [p.beta[k] for p in parts]
        if all(b[0].shape[1:] == pairs[0][0].shape[1:] for b in pairs):
            out[k] = (torch.cat([b[0] for b in pairs]), torch.cat([b[1] for b in pairs]))
    return out


class Pool:
    """Unverified domains; ``pop`` takes the ``count`` least-proved ones (best-first), which
    makes the reported worst margin the instance's true worst and finds counterexamples early."""

    def __init__(self, domains: Domains):
        self._domains = domains

    def __len__(self) -> int:
        return len(self._domains)

    def worst_margin(self) -> float:
        return float(self._domains.worst.min()) if len(self) else float("inf")

    def push(self, domains: Domains) -> None:
        if len(domains):
            self._domains = Domains.cat([self._domains, domains]) if len(self) else domains

    def pop(self, count: int) -> Domains:
        if count >= len(self):
            taken, self._domains = self._domains, self._domains.select(
                torch.zeros(0, dtype=torch.long, device=self._domains.lower.device))
            return taken
        order = torch.argsort(self._domains.worst)
        taken = self._domains.select(order[:count])
        self._domains = self._domains.select(order[count:])
        return taken

    def peek(self, count: int) -> Domains:
        order = torch.argsort(self._domains.worst)[:count]
        return self._domains.select(order)
