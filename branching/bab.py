"""Branch-and-bound over batches of sub-domains (algorithms.md 4).

One round: pop the least-proved domains, split each (input bisection here; neuron splits in
``branching.neuron_bab``), bound all children in one batched bound call, keep the best clause
margins (a parent's refutation covers its children), drop verified children, and look for
counterexamples at the children's centres, with a PGD attack inside the worst domains every few
rounds.  Every candidate goes through ``check`` (the onnxruntime re-check) before it counts.
"""
from __future__ import annotations

import enum
import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from bounds.engine import spec_bounds
from branching.domain import Domains, Pool
from branching.heuristics import choose_input_dims, input_sensitivity
from branching.split import split_inputs
from verifier.forward import evaluate
from verifier.graph import Graph
from verifier.options import AttackOptions, BoundOptions, BranchingOptions
from verifier.result import Stats
from vnnlib.property import Disjunct

logger = logging.getLogger(__name__)

Check = Callable[[np.ndarray], object]   # flat input -> confirmed counterexample or None


class BabStatus(enum.Enum):
    VERIFIED = "verified"
    FALSIFIED = "falsified"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class BabOutcome:
    status: BabStatus
    counterexample: object | None = None
    reason: str = ""


@dataclass(frozen=True)
class Spec:
    """One disjunct's clauses as stacked rows: coeffs (R, m), thresholds (R,), groups (R,)."""

    coeffs: Tensor
    thresholds: Tensor
    groups: Tensor
    num_clauses: int

    @classmethod
    def from_disjunct(cls, disjunct: Disjunct, dtype: torch.dtype,
                      device: torch.device) -> "Spec":
        coeffs = np.concatenate([c.coeffs for c in disjunct.clauses])
        thresholds = np.concatenate([c.thresholds for c in disjunct.clauses])
        groups = np.concatenate([np.full(c.num_rows, k) for k, c in enumerate(disjunct.clauses)])
        as_t = lambda a, t=dtype: torch.as_tensor(a, dtype=t, device=device)  # noqa: E731
        return cls(as_t(coeffs), as_t(thresholds, torch.float64), as_t(groups, torch.long),
                   len(disjunct.clauses))

    def clause_margins(self, row_lower: Tensor) -> Tensor:
        """(B, R) row lower bounds -> (B, K) clause margins ``max_row(lower - threshold)``;
        NaN or -inf rows prove nothing."""
        margin = torch.nan_to_num(row_lower.double() - self.thresholds, nan=-math.inf)
        out = margin.new_full((margin.shape[0], self.num_clauses), -math.inf)
        index = self.groups.unsqueeze(0).expand_as(margin)
        return out.scatter_reduce(1, index, margin, reduce="amax")

    def point_margins(self, y: Tensor) -> Tensor:
        """(B, m) outputs -> (B, K) clause margins at those points (<= 0: violated)."""
        return self.clause_margins(y @ self.coeffs.T)


@dataclass
class _Search:
    graph: Graph
    spec: Spec
    options: BranchingOptions
    bound_options: BoundOptions
    attack: AttackOptions
    disjunct: Disjunct
    check: Check
    deadline: float
    stats: Stats
    falsifier: object | None = None   # PGD over the whole disjunct, continued between rounds


def input_split_bab(graph: Graph, disjunct: Disjunct, check: Check, *, options: BranchingOptions,
                    bound_options: BoundOptions, attack: AttackOptions, deadline: float,
                    stats: Stats, dtype: torch.dtype = torch.float32,
                    device: str = "cpu") -> BabOutcome:
    """Prove or refute one disjunct by bisecting its input box."""
    dev = torch.device(device)
    spec = Spec.from_disjunct(disjunct, dtype, dev)
    search = _Search(graph, spec, options, bound_options, attack, disjunct, check, deadline, stats)
    lower = torch.tensor(np.array(disjunct.lower), dtype=dtype, device=dev).reshape(1, -1)
    upper = torch.tensor(np.array(disjunct.upper), dtype=dtype, device=dev).reshape(1, -1)
    root = Domains(lower, upper, torch.full((1, spec.num_clauses), -math.inf, dtype=torch.float64,
                                            device=dev), torch.zeros(1, dtype=torch.long,
                                                                     device=dev))
    root = _bound(search, root)
    if bool((root.worst > 0).all()):
        return BabOutcome(BabStatus.VERIFIED, reason="proved at the root")
    return _loop(search, Pool(root))


def limit_reached(pool: Pool, deadline: float, max_domains: int) -> BabOutcome | None:
    """The outcome when time or the domain cap runs out (checked before every round)."""
    if time.monotonic() >= deadline:
        return BabOutcome(BabStatus.TIMEOUT, reason=f"{len(pool)} domains left")
    if len(pool) > max_domains:
        return BabOutcome(BabStatus.UNKNOWN, reason=f"more than {max_domains} domains")
    return None


def _loop(search: _Search, pool: Pool) -> BabOutcome:
    stats, options = search.stats, search.options
    last_report = last_explore = time.monotonic()
    rounds = 0
    while len(pool):
        stop = limit_reached(pool, search.deadline, options.max_domains)
        if stop is not None:
            return stop
        parents = pool.pop(options.batch_size)
        splittable = (parents.upper - parents.lower).amax(dim=1) > 0
        if not bool(splittable.all()):
            return BabOutcome(BabStatus.UNKNOWN, reason="a domain shrank to a point unproved")
        dims = choose_input_dims(search.graph, parents, search.spec.coeffs, search.spec.groups)
        children = split_inputs(parents, dims)
        found = _check_centres(search, children)
        if found is not None:
            return BabOutcome(BabStatus.FALSIFIED, found, "counterexample inside a sub-domain")
        children = _bound(search, children)
        alive = children.select(torch.nonzero(children.worst <= 0).flatten())
        pool.push(alive)
        rounds += 1
        _record(stats, rounds, len(children), len(pool), pool.worst_margin())
        if search.attack.rounds and rounds % options.attack_every == 0 and len(pool):
            found = _attack_worst(search, pool) or _explore(search, last_explore)
            last_explore = time.monotonic()
            if found is not None:
                return BabOutcome(BabStatus.FALSIFIED, found, "counterexample by PGD in BaB")
        if time.monotonic() - last_report >= options.progress_interval_s:
            last_report = time.monotonic()
            logger.info("bab round %d: %d domains, worst margin %.4g, %.1f s left", rounds,
                        len(pool), pool.worst_margin(), search.deadline - time.monotonic())
    return BabOutcome(BabStatus.VERIFIED, reason=f"all domains proved in {rounds} rounds")


def _record(stats: Stats, rounds: int, visited: int, queue: int, worst: float) -> None:
    stats.bab_rounds += 1
    stats.domains_visited += visited
    stats.max_queue = max(stats.max_queue, queue)
    now = time.monotonic()
    if not stats.best_bound_history or now - stats.best_bound_history[-1][0] >= 0.5:
        stats.best_bound_history.append((now, worst))


def _bound(search: _Search, domains: Domains) -> Domains:
    """Bound every domain and raise its clause margins (never below the parent's)."""
    method = search.options.method
    options = BoundOptions(method=method, alpha_iterations=search.options.alpha_iterations,
                           alpha_lr=search.bound_options.alpha_lr)
    result = spec_bounds(search.graph, domains.lower, domains.upper, search.spec.coeffs,
                         method=method, options=options, deadline=search.deadline,
                         thresholds=search.spec.thresholds.to(domains.lower.dtype),
                         groups=search.spec.groups, interm=domains.interm or None)
    margins = torch.maximum(domains.margins, search.spec.clause_margins(result.lower))
    sensitivity = None
    if result.input_coeffs is not None:
        sensitivity = input_sensitivity(result.input_coeffs, margins, search.spec.groups)
    return domains.with_margins(margins, sensitivity)


def _check_centres(search: _Search, domains: Domains):
    """Evaluate the network at the domains' centres; re-check any violation found."""
    centre = (domains.lower + domains.upper) / 2
    with torch.no_grad():
        y = evaluate(search.graph, centre.reshape(len(domains), *search.graph.input_shape))
    margins = search.spec.point_margins(y.reshape(len(domains), -1).to(search.spec.coeffs))
    hits = torch.nonzero(margins.min(dim=1).values <= 0).flatten()
    for k in hits[:4].tolist():
        found = search.check(centre[k].double().cpu().numpy())
        if found is not None:
            return found
    return None


_ATTACK_DOMAINS = 8
_EXPLORE_SHARE = 0.3   # attack time per unit of branch-and-bound time since the last attack


def _explore(search: _Search, since: float):
    """Time-share with the attack over the whole box: a thin violation region that bounds
    cannot rule out is often found by refining the attack's near misses."""
    from verifier.attack import Falsifier
    from vnnlib.property import Property

    if search.falsifier is None:
        prop = Property((search.disjunct,), search.graph.input_size, search.spec.coeffs.shape[1])
        search.falsifier = Falsifier(search.graph, prop, search.attack,
                                     search.spec.coeffs.device, search.spec.coeffs.dtype)
    budget = max(0.2, _EXPLORE_SHARE * (time.monotonic() - since))
    candidate = search.falsifier.run(min(search.deadline, time.monotonic() + budget), rounds=1)
    return None if candidate is None else search.check(candidate.x)


def _attack_worst(search: _Search, pool: Pool):
    """A short PGD inside the least-proved domains (their boxes are where a violation is most
    likely), with the same re-check as every other candidate."""
    from verifier.attack import Falsifier
    from vnnlib.property import Disjunct, Property

    worst = pool.peek(_ATTACK_DOMAINS)
    boxes = [Disjunct(worst.lower[i].double().cpu().numpy(), worst.upper[i].double().cpu().numpy(),
                      search.disjunct.clauses) for i in range(len(worst))]
    prop = Property(tuple(boxes), search.graph.input_size, search.spec.coeffs.shape[1])
    falsifier = Falsifier(search.graph, prop, AttackOptions(samples=0, restarts=2, steps=20,
                                                            rounds=1, seed=search.stats.bab_rounds),
                          search.spec.coeffs.device, search.spec.coeffs.dtype)
    candidate = falsifier.run(search.deadline, rounds=1)
    return None if candidate is None else search.check(candidate.x)
