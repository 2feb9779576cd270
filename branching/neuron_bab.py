"""Activation-split branch-and-bound (GenBaB, algorithms.md 4) on ReLU and general neurons.

Root: CROWN on the disjunct (keeping every split tensor's input-space linear bounds for the BBPS
shortcuts), then alpha-CROWN on the intermediate tensors themselves
(``bounds.engine.tighten_intermediate``, at most 30% of the time left) and alpha-CROWN on the
spec with those intervals (at most 25%).  Every child inherits the root's intervals, so this is
where deep sigmoid nets are won: on eran ffnnSIGMOID 6x200 idx 3991 and 7107 it proves the
root outright.
One round: pop the least-proved domains, re-run the final backward pass on them with their
intervals fixed (cheap; it gives each domain's own coefficients ``Lambda``), score every
candidate of every split tensor in one ranking (``branching.bbps``), split the best one per
domain (ReLU-fed tensors at 0, others at the branching-point table's point or the midpoint),
bound all children in one batched ``spec_bounds`` call (``_bound``: halves the batch on
out-of-memory) with the parents' intervals as ``interm``, keep the best clause margins and
drop verified children.  Children start from their parent's alpha and beta (stored per domain
in ``Domains``) and only the spec rows of clauses still open in some child are bounded.

Beta (algorithms.md 4.2 step 3): every child bound optimises Lagrangian multipliers of the
constraints ``h_j >= l_j`` / ``h_j <= u_j`` of the neurons whose interval is narrower than at
the root (``bounds.engine.SplitConstraints``), jointly with alpha (one backward pass per step),
which is how a split reaches the final bound beyond its consumers' relaxations (and what lets a
fully split ReLU domain be proved).

Refresh policy (``BranchingOptions.neuron_refresh``): ``"after"`` (default) keeps the parents'
intervals of every tensor up to the earliest split tensor of the batch and recomputes the
later ones by CROWN (intersected with the parents'), so a split reaches every later layer's
relaxation; ``"fixed"`` recomputes nothing (only the final pass; without beta the split then
acts only through its consumers' relaxations); ``"all"`` recomputes every tensor.

Statistics: splits by kind of the split neuron's consumers (``split_kind``), rounds, domains,
queue and the worst margin over time (``branching.bab.record_round``); a progress line at most every
``progress_interval_s``.  All children share the parent's input box, so there are no centre
checks; counterexamples come from the attacks around this search (``genbab.api``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from genbab.bounds.engine import SplitConstraints, spec_bounds, tighten_intermediate
from genbab.bounds.plan import Plan, make_plan
from genbab.branching.bab import BabOutcome, BabStatus, Check, Spec, record_round, limit_reached
from genbab.branching import memory
from genbab.branching.bbps import (ScoreInput, Shortcut, SplitNode, choose_neurons, kink_inside,
                                   shortcuts, split_nodes)
from genbab.branching.domain import Domains, Pool
from genbab.branching.split import SplitDecision, split_inputs, split_neurons
from genbab.verifier.graph import Graph
from genbab.verifier.options import AttackOptions, BoundOptions, BranchingOptions
from genbab.verifier.result import Stats
from genbab.vnnlib.property import Disjunct

logger = logging.getLogger(__name__)

Falsify = Callable[[float], object]   # attack until time.monotonic() reaches the argument;
# returns a confirmed counterexample or None
_POINTS = None      # one BranchPoints per process (lut/table.py)


def _branch_points():
    global _POINTS
    if _POINTS is None:
        from genbab.lut.build import relaxation_fingerprint
        from genbab.lut.table import BranchPoints
        _POINTS = BranchPoints(fingerprint=relaxation_fingerprint, on_stale="warn")
    return _POINTS


@dataclass
class _Search:
    graph: Graph
    plan: Plan
    spec: Spec
    nodes: list[SplitNode]
    cuts: dict[str, Shortcut]
    root: dict[str, tuple[Tensor, Tensor]]      # the root's interval of every split tensor
    options: BranchingOptions
    bound_options: BoundOptions
    deadline: float
    stats: Stats
    falsify: Falsify | None = None   # an attack turn until the given time (genbab.api)
    attack_s: float = 0.0            # seconds the attack turns have taken so far
    started: float = field(default_factory=time.monotonic)
    round_s: float = 0.0             # the last round's duration (before the first: the root's)
    root_others: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    # ^ the root's intervals of the other tight tensors (e.g. MaxPool inputs): valid in every
    #   sub-domain, so the decision pass of a round need not recompute them by CROWN
    child_batch: int = 1 << 30     # children bounded per call; halved on out-of-memory
    max_domains: int = 500_000     # pool size at which the search gives up (memory)


def neuron_split_bab(graph: Graph, disjunct: Disjunct, check: Check, *,
                     options: BranchingOptions, bound_options: BoundOptions,
                     attack: AttackOptions, deadline: float, stats: Stats,
                     dtype: torch.dtype = torch.float32, device: str = "cpu",
                     falsify: Falsify | None = None) -> BabOutcome:
    """Prove one disjunct by splitting neurons.  ``falsify`` (optional) is given turns
    between rounds, up to ``_ATTACK_SHARE`` of the time since the search began (``check`` and
    ``attack`` are accepted for the same call shape as ``input_split_bab``)."""
    dev = torch.device(device)
    spec = Spec.from_disjunct(disjunct, dtype, dev)
    plan = make_plan(graph)
    nodes = split_nodes(plan)
    lower = torch.tensor(np.array(disjunct.lower), dtype=dtype, device=dev).reshape(1, -1)
    upper = torch.tensor(np.array(disjunct.upper), dtype=dtype, device=dev).reshape(1, -1)
    tighten = options.neuron_tighten_iterations > 0
    iterations = max(bound_options.alpha_iterations, options.neuron_root_iterations)
    root_begun = time.monotonic()
    root = spec_bounds(graph, lower, upper, spec.coeffs, method="crown" if tighten else "alpha",
                       options=replace(bound_options, alpha_iterations=iterations),
                       deadline=_share(deadline, _ROOT_SHARE),
                       thresholds=spec.thresholds.to(dtype), groups=spec.groups,
                       keep_linear=True)
    root_s = time.monotonic() - root_begun
    margins = spec.clause_margins(root.lower)
    if bool((margins > 0).all()):
        return BabOutcome(BabStatus.VERIFIED, reason="proved at the root")
    cuts = shortcuts(plan, root.linear, nodes)
    if tighten and root_s > _TIGHTEN_MAX_ROOT * (deadline - time.monotonic()):
        tighten = False     # a CROWN pass this slow leaves no time for many more (23k-wide
        # sign layers of traffic_signs took 7 s; tightening them never finished)
        logger.info("root CROWN took %.1f s: no alpha-optimised intervals", root_s)
    if tighten:
        root, margins = _tightened_root(graph, spec, root, margins, lower, upper, options,
                                        bound_options, deadline)
        if bool((margins > 0).all()):
            return BabOutcome(BabStatus.VERIFIED, reason="proved at the root (optimised intervals)")
    if not nodes:
        return BabOutcome(BabStatus.UNKNOWN, reason="no neuron to split")
    interm = {n.tensor: root.intermediate[n.tensor] for n in nodes}
    others = {t: pair for t, pair in root.intermediate.items()
              if t in plan.tight and t not in interm}
    search = _Search(graph, plan, spec, nodes, cuts, interm,
                     options, bound_options, deadline, stats, falsify, round_s=root_s,
                     root_others=others)
    found = _attack_turn(search, _share(deadline, _FIRST_TURN_SHARE))
    if found is not None:
        return BabOutcome(BabStatus.FALSIFIED, found, "counterexample by PGD before branching")
    _size_for_memory(search, dtype, dev)
    depth = torch.zeros(1, dtype=torch.long, device=dev)
    start = Domains(lower, upper, margins, depth, interm, alpha=dict(root.alpha))
    return _loop(search, Pool(start))


_TIGHTEN_MAX_ROOT = 0.05  # tighten the root's intervals only if its CROWN pass took less
# than this share of the time left (tightening costs several CROWN passes per tensor)
_TIGHTEN_SHARE = 0.3     # of the time left, for optimising the root's intermediate bounds
_ROOT_SHARE = 0.25       # of the time left, for the root's alpha steps (the rest: branching)


def _share(deadline: float, share: float) -> float:
    """The deadline for a stage that may use ``share`` of the time left."""
    now = time.monotonic()
    return min(deadline, now + share * max(0.0, deadline - now))


def _tightened_root(graph: Graph, spec: Spec, root, margins: Tensor, lower: Tensor,
                    upper: Tensor, options: BranchingOptions, bound_options: BoundOptions,
                    deadline: float):
    """The root's alpha bound on intervals optimised by alpha-CROWN (``tighten_intermediate``,
    from ``root``'s CROWN intervals): CROWN's intermediate bounds of deep non-ReLU nets are
    loose, and every child inherits the root's intervals (measured on eran sigmoid 6x200 idx
    3991: worst margin -1.55 -> +2.9).  Returns the alpha result and its clause margins."""
    interm = tighten_intermediate(
        graph, lower, upper, root.intermediate,
        replace(bound_options, alpha_iterations=options.neuron_tighten_iterations),
        _share(deadline, _TIGHTEN_SHARE))
    iterations = max(bound_options.alpha_iterations, options.neuron_root_iterations)
    again = spec_bounds(graph, lower, upper, spec.coeffs, method="alpha",
                        options=replace(bound_options, alpha_iterations=iterations),
                        deadline=_share(deadline, _ROOT_SHARE), interm=interm,
                        fixed=frozenset(interm), thresholds=spec.thresholds.to(lower.dtype),
                        groups=spec.groups)
    better = torch.maximum(margins, spec.clause_margins(again.lower))
    return again, better


def _size_for_memory(search: _Search, dtype: torch.dtype, device: torch.device) -> None:
    """Children per bounding call and pool capacity from the free memory (or --max-memory);
    the out-of-memory back-off in ``_bound`` corrects an estimate that was too optimistic."""
    budget = memory.budget_bytes(device, search.options.max_memory_gb)
    element = torch.finfo(dtype).bits // 8
    per_child = memory.domain_bytes(search.graph, search.spec.coeffs.shape[0], element)
    search.child_batch = memory.batch_size(2 * search.options.batch_size, per_child, budget)
    search.max_domains = memory.pool_capacity(
        search.options.max_domains, memory.stored_domain_bytes(search.graph, element), budget)
    logger.debug("memory budget %.1f GB: %d children per call, pool of at most %d domains",
                 budget / 2 ** 30, search.child_batch, search.max_domains)


def _parents_that_fit(search: _Search, per_child_s: float) -> int:
    """Parents to split this round: the batch size, fewer if the last round's time per child
    says the round would overrun the deadline (one round on the 118-bus ACOPF model, with
    every intermediate bound of 256 children recomputed, took minutes)."""
    parents = max(1, min(search.options.batch_size, search.child_batch // 2))
    if per_child_s > 0:
        left = search.deadline - time.monotonic()
        parents = max(1, min(parents, int(0.9 * left / per_child_s) // 2))
    return parents


def _loop(search: _Search, pool: Pool) -> BabOutcome:
    options = search.options
    last_report = time.monotonic()
    rounds = 0
    per_child_s = 0.0
    while len(pool):
        stop = limit_reached(pool, search.deadline, search.max_domains)
        if stop is not None:
            return stop
        if search.deadline - time.monotonic() < search.round_s:
            return _last_turn(search, len(pool))
        found = _attack_turn(search, _turn_end(search))
        if found is not None:
            return BabOutcome(BabStatus.FALSIFIED, found, "counterexample by PGD during BaB")
        parents = pool.pop(_parents_that_fit(search, per_child_s))
        begun = time.monotonic()
        try:
            children = _branch(search, parents)
        except _Exhausted:
            return BabOutcome(BabStatus.UNKNOWN, reason="a domain has nothing left to split")
        search.round_s = time.monotonic() - begun
        per_child_s = search.round_s / max(1, len(children))
        alive = children.select(torch.nonzero(children.worst <= 0).flatten())
        pool.push(_within_warm_budget(alive, len(pool)))
        rounds += 1
        record_round(search.stats, rounds, len(children), len(pool), pool.worst_margin())
        if time.monotonic() - last_report >= options.progress_interval_s:
            last_report = time.monotonic()
            logger.info("neuron bab round %d: %d domains, worst margin %.4g, %.1f s left",
                        rounds, len(pool), pool.worst_margin(),
                        search.deadline - time.monotonic())
    return BabOutcome(BabStatus.VERIFIED, reason=f"all domains proved in {rounds} rounds")


_ATTACK_SHARE = 0.25      # most of the search's time that attack turns may take ...
_FIRST_TURN_SHARE = 0.15  # ... besides one turn of this share of the time left when the
# root is not proved (before the first round: rounds on large nets take many seconds)


def _last_turn(search: _Search, queued: int) -> BabOutcome:
    """No round fits in the time left (one round of a large conv net takes as long as the
    root's CROWN pass): the attack gets the rest instead of a round that would overrun."""
    found = _attack_turn(search, search.deadline)
    if found is not None:
        return BabOutcome(BabStatus.FALSIFIED, found, "counterexample by PGD during BaB")
    return BabOutcome(BabStatus.TIMEOUT, reason=f"{queued} domains left; no round fits in "
                                                "the time left")


def _turn_end(search: _Search) -> float:
    """When a turn started now must end: while the turns have used less than
    ``_ATTACK_SHARE`` of the time since the search began (``now`` if they have not)."""
    now = time.monotonic()
    return now + _ATTACK_SHARE * (now - search.started) - search.attack_s


def _attack_turn(search: _Search, until: float):
    """Attack until ``until`` (if that is at least ``_MIN_TURN_S`` away): all domains share
    the input box, so bounds alone never find a counterexample; on an unsat instance every
    second spent here is lost, hence the shares."""
    begun = time.monotonic()
    until = min(until, search.deadline)
    if search.falsify is None or until - begun < _MIN_TURN_S:
        return None
    try:
        return search.falsify(until)
    finally:
        search.attack_s += time.monotonic() - begun


_MIN_TURN_S = 0.2
_WARM_BYTES = 2 << 30    # warm starts kept in the pool at most (alpha and beta of every domain)


def _within_warm_budget(alive: Domains, queued: int) -> Domains:
    """``alive`` without its alpha and beta when keeping them for the whole pool would pass
    ``_WARM_BYTES`` (pushing domains without them drops them pool-wide: children then start
    from the default relaxation, which is only slower)."""
    if not len(alive) or not (alive.alpha or alive.beta):
        return alive
    size = sum(a.numel() * a.element_size() for a in alive.alpha.values())
    size += sum(b.numel() * b.element_size() for pair in alive.beta.values() for b in pair)
    if size / len(alive) * (queued + len(alive)) <= _WARM_BYTES:
        return alive
    logger.info("warm starts of %d domains would pass %d MiB: dropped", queued + len(alive),
                _WARM_BYTES >> 20)
    return replace(alive, alpha={}, beta={})


def _branch(search: _Search, parents: Domains) -> Domains:
    """Split every parent on its best neuron; parents with no neuron left to split (a fully
    split ReLU domain, or only general neurons narrower than the minimum gap) bisect their
    widest input dimension instead, keeping their narrowed intervals, and recompute every
    interval (which also finds activation patterns the smaller box cannot reach)."""
    decisions, first, exhausted = _decide(search, parents)
    parts = []
    splittable = torch.nonzero(~exhausted).flatten()
    if len(splittable):
        chosen = parents.select(splittable)
        mine = [SplitDecision(d.tensor, d.index[splittable], d.split_at[splittable])
                for d in decisions]
        mine = [d for d in mine if bool((d.index >= 0).any())]
        _count_splits(search, mine)
        children = _inherit(split_neurons(chosen, mine, dict(chosen.interm)), chosen)
        parts.append(_bound(search, children, _fixed(search, first)))
    rest = torch.nonzero(exhausted).flatten()
    if len(rest):
        chosen = parents.select(rest)
        width = chosen.upper - chosen.lower
        if bool((width.amax(dim=1) <= 0).any()):
            raise _Exhausted()
        search.stats.add_splits("input", len(rest))
        children = _inherit(split_inputs(chosen, width.argmax(dim=1)), chosen)
        parts.append(_bound(search, children, frozenset()))
    return Domains.cat(parts)


def _inherit(children: Domains, parents: Domains) -> Domains:
    """Children ``[left..., right...]`` start their optimisation from their parent's alpha and
    beta (algorithms.md 4.2: warm start), which keeps a child's bound near its parent's after a
    few steps instead of starting from CROWN again."""
    alpha = {k: torch.cat([a, a], dim=1) for k, a in parents.alpha.items()}
    beta = {k: (torch.cat([b_l, b_l]), torch.cat([b_u, b_u]))
            for k, (b_l, b_u) in parents.beta.items()}
    return replace(children, alpha=alpha, beta=beta)


def split_kind(node: SplitNode) -> str:
    """The statistics name of a split neuron: its consumers' lower-cased op types
    ("relu", "sigmoid", "mul"; "sin/cos" for a neuron feeding both)."""
    ops = sorted({n.op_type.lower() for n in node.consumers}, reverse=True)
    return "/".join(ops) or "other"


def _count_splits(search: _Search, decisions: list[SplitDecision]) -> None:
    kinds = {n.tensor: split_kind(n) for n in search.nodes}
    for d in decisions:
        search.stats.add_splits(kinds[d.tensor], int((d.index >= 0).sum()))


class _Exhausted(Exception):
    """A domain with no neuron and no input dimension left to split is still unproved."""


def _points(search: _Search, node: SplitNode, lower: Tensor, upper: Tensor) -> Tensor:
    """Split points: 0 for ReLU-fed neurons, a kink of a consumer where one lies inside the
    interval, else the branching-point table's point or the midpoint."""
    if node.at_zero:
        return torch.zeros_like(lower)
    if search.options.branch_points == "lut" and node.key is not None:
        points = _branch_points().lookup(node.key, lower, upper)
    else:
        from genbab.lut.table import midpoint, strictly_inside
        points = strictly_inside(midpoint(lower, upper), lower, upper)
    has_kink, kink = kink_inside(node, lower, upper)
    return torch.where(has_kink, kink, points)


def _decide(search: _Search, parents: Domains) -> tuple[list[SplitDecision], int, Tensor]:
    """One decision per split tensor (index -1 for domains split elsewhere), the position
    of the earliest split tensor used and (B,) which domains have no candidate."""
    _, spec = _open_rows(search.spec, parents.margins)
    batch = len(parents)
    others = {t: (lo.expand(batch, *lo.shape[1:]), up.expand(batch, *up.shape[1:]))
              for t, (lo, up) in search.root_others.items()}
    current = spec_bounds(search.graph, parents.lower, parents.upper, spec.coeffs,
                          method="crown", deadline=search.deadline,
                          interm={**others, **parents.interm}, refresh=False,
                          record_coeffs=True)
    intervals = {t: (lo.reshape(batch, -1), up.reshape(batch, -1))
                 for t, (lo, up) in parents.interm.items()}
    points = {n.tensor: _points(search, n, *intervals[n.tensor]) for n in search.nodes}
    open_rows = (parents.margins <= 0)[:, spec.groups.clamp(min=0)] & (spec.groups >= 0)
    data = ScoreInput(intervals, points, dict(current.output_coeffs), open_rows,
                      (parents.lower, parents.upper))
    nodes = splittable_nodes(search.nodes, search.options.split)
    if not nodes:
        return [], 0, torch.ones(batch, dtype=torch.bool, device=parents.lower.device)
    which, index, _ = choose_neurons(search.plan, nodes, data, search.options.heuristic,
                                     search.cuts, search.options.bbps_refine)
    if search.options.heuristic == "bbps" and search.options.bbps_arbitrate:
        which, index = _arbitrate(search, nodes, parents, data, spec,
                                  {**others, **parents.interm}, which, index)
    decisions = []
    for i, node in enumerate(nodes):
        chosen = which == i
        if not bool(chosen.any()):
            continue
        idx = torch.where(chosen, index, -1)
        split_at = points[node.tensor].gather(1, idx.clamp(min=0).unsqueeze(1)).squeeze(1)
        decisions.append(SplitDecision(node.tensor, idx, split_at))
    used = which[which >= 0]
    first = search.nodes.index(nodes[int(used.min())]) if len(used) else 0
    return decisions, first, which < 0


def splittable_nodes(nodes: list[SplitNode], split: str) -> list[SplitNode]:
    """The split tensors a round may choose from: with ``split="relu-only"`` only ReLU-fed
    ones (general neurons keep their relaxation; a domain with no unstable ReLU left bisects
    its input box instead)."""
    return [n for n in nodes if n.at_zero] if split == "relu-only" else list(nodes)


def _fixed(search: _Search, first: int) -> frozenset[str] | None:
    policy = search.options.neuron_refresh
    names = [n.tensor for n in search.nodes]
    if policy == "fixed":
        return frozenset(names)
    if policy == "all":
        return frozenset()
    return frozenset(names[:first + 1])


def _bound(search: _Search, children: Domains, fixed: frozenset[str]) -> Domains:
    """Bound all children (in one call when memory allows) and raise their margins (never
    below the parent's).  Out of memory halves the number of children per call, for this
    batch and the rest of the search (``search.child_batch``), and retries."""
    bounded, search.child_batch = memory.bound_in_chunks(
        children, search.child_batch, lambda part: _bound_batch(search, part, fixed))
    return bounded


def _bound_batch(search: _Search, children: Domains, fixed: frozenset[str]) -> Domains:
    """One ``spec_bounds`` call on a batch of children, warm-started from their parents, on
    the spec rows of clauses some child has not refuted yet (the others cost as much as open
    ones and cannot change a margin that is already positive)."""
    opts = search.options
    rows, spec = _open_rows(search.spec, children.margins)
    options = BoundOptions(method=opts.neuron_method, alpha_iterations=opts.alpha_iterations,
                           alpha_lr=search.bound_options.alpha_lr)
    warm_alpha = {k: a[:, :, rows] for k, a in children.alpha.items()}
    result = spec_bounds(search.graph, children.lower, children.upper, spec.coeffs,
                         method=opts.neuron_method, options=options, deadline=search.deadline,
                         state=warm_alpha or None,
                         thresholds=spec.thresholds.to(children.lower.dtype),
                         groups=spec.groups, interm=children.interm,
                         fixed=fixed,
                         split_constraints=_constraints(search, children, rows))
    margins = torch.maximum(children.margins, spec.clause_margins(result.lower))
    interm = {t: _narrowed(result.intermediate[t], children.interm[t])
              for t in children.interm}
    total = len(search.spec.groups)
    alpha = {k: _put_rows(children.alpha.get(k), a, rows, 2, total)
             for k, a in result.alpha.items()}
    beta = {k: tuple(_put_rows(old, new, rows, 1, total)
                     for old, new in zip(children.beta.get(k, (None, None)), pair))
            for k, pair in result.beta.items()}
    return Domains(children.lower, children.upper, margins, children.depth, interm,
                   alpha=alpha, beta=beta)


_ARBITRATE_MIN_S = 0.5    # no arbitration this close to the deadline


def _arbitrate(search: _Search, nodes: list[SplitNode], parents: Domains, data: ScoreInput,
               spec: Spec, interm: dict[str, tuple[Tensor, Tensor]], which: Tensor,
               index: Tensor) -> tuple[Tensor, Tensor]:
    """BBPS's pick, or BaBSR's where that differs and its children's CROWN bound is better.

    Why: BBPS (the coupled form through the root's linear shortcuts) ranks candidates better
    than BaBSR overall, but underrates neurons deep in the network.  On the zoo's sigmoid
    6x100 MLP (sample 1, radius 0.0302), the mean estimated gain of a random candidate of the
    last hidden layer was -0.005 against a true +0.012 (BaBSR: +0.002), and BBPS never split
    the neuron whose children gained most (+0.089; BaBSR's first pick): 868 domains open at
    30 s, where BaBSR proved the instance in 11 s with at most 6.  Bounding both candidates'
    children (one CROWN pass over four children per disagreeing domain, the parents'
    intervals fixed, as in filtered smart branching) settles it with the real bound."""
    alt_which, alt_index, _ = choose_neurons(search.plan, nodes, data, "babsr", search.cuts)
    differ = torch.nonzero(((alt_which != which) | (alt_index != index))
                           & (alt_which >= 0) & (which >= 0)).flatten()
    if not len(differ) or search.deadline - time.monotonic() < _ARBITRATE_MIN_S:
        return which, index
    chunk = max(1, search.child_batch // 2)
    switch = []
    for start in range(0, len(differ), chunk):
        rows = differ[start:start + chunk]
        mine = _children_worst(search, nodes, parents, data, spec, interm, rows,
                               which[rows], index[rows])
        theirs = _children_worst(search, nodes, parents, data, spec, interm, rows,
                                 alt_which[rows], alt_index[rows])
        switch.append(rows[theirs > mine])
    switch = torch.cat(switch)
    search.stats.extra["arbitrated"] = int(search.stats.extra.get("arbitrated", 0)) + len(differ)
    search.stats.extra["babsr_kept"] = int(search.stats.extra.get("babsr_kept", 0)) + len(switch)
    which, index = which.clone(), index.clone()
    which[switch], index[switch] = alt_which[switch], alt_index[switch]
    return which, index


def _children_worst(search: _Search, nodes: list[SplitNode], parents: Domains,
                    data: ScoreInput, spec: Spec, interm: dict[str, tuple[Tensor, Tensor]],
                    rows: Tensor, which: Tensor, index: Tensor) -> Tensor:
    """(n,) the worse child's worst open clause margin when parent ``rows[i]`` splits neuron
    ``index[i]`` of ``nodes[which[i]]`` at its point: CROWN, every interval fixed."""
    n = len(rows)
    children = {}
    for tensor, (lo, up) in interm.items():
        lo2, up2 = torch.cat([lo[rows], lo[rows]]), torch.cat([up[rows], up[rows]])
        children[tensor] = (lo2, up2)
    for i, node in enumerate(nodes):
        mine = torch.nonzero(which == i).flatten()
        if not len(mine):
            continue
        lo2, up2 = children[node.tensor]
        flat_lo, flat_up = lo2.reshape(2 * n, -1).clone(), up2.reshape(2 * n, -1).clone()
        j = index[mine]
        point = data.points[node.tensor][rows[mine], j].to(flat_lo.dtype)
        flat_up[mine, j] = point            # left child: up to the point
        flat_lo[n + mine, j] = point        # right child: from the point
        children[node.tensor] = (flat_lo.reshape(lo2.shape), flat_up.reshape(up2.shape))
    box_lo, box_up = parents.lower[rows], parents.upper[rows]
    result = spec_bounds(search.graph, torch.cat([box_lo, box_lo]), torch.cat([box_up, box_up]),
                         spec.coeffs, method="crown", deadline=search.deadline,
                         interm=children, refresh=False)
    margins = spec.clause_margins(result.lower)
    open_clause = (parents.margins[rows] <= 0).repeat(2, 1)
    worst = torch.where(open_clause, margins, torch.inf).amin(dim=1)
    return torch.minimum(worst[:n], worst[n:])


def _open_rows(spec: Spec, margins: Tensor) -> tuple[Tensor, Spec]:
    """The rows of clauses open in some domain (``margins`` (B, K) <= 0), and the spec of
    just those rows (same clause ids, so its ``clause_margins`` fill the others with -inf)."""
    open_clause = (margins <= 0).any(dim=0)
    rows = torch.nonzero(open_clause[spec.groups.clamp(min=0)] & (spec.groups >= 0)).flatten()
    if len(rows) == len(spec.groups):
        return rows, spec
    return rows, Spec(spec.coeffs[rows], spec.thresholds[rows], spec.groups[rows],
                      spec.num_clauses)


def _put_rows(full: Tensor | None, part: Tensor, rows: Tensor, axis: int, total: int) -> Tensor:
    """``part`` (rows ``rows`` along ``axis``) written into a copy of ``full`` (``total``
    rows); without a fitting ``full`` the other rows are zeros (only ever a warm start, and
    alpha starts are projected onto the feasible set before use)."""
    part = part.detach()
    if len(rows) == total and full is None:
        return part
    shape = list(part.shape)
    shape[axis] = total
    if full is None or list(full.shape) != shape:
        full = part.new_zeros(shape)
    out = full.clone()
    out.index_copy_(axis, rows, part)
    return out


def _constraints(search: _Search, children: Domains, rows: Tensor) -> SplitConstraints | None:
    """Beta on every neuron whose interval a split (or a recomputation after one) narrowed
    below the root's: those bounds are valid constraints of the child's domain."""
    if search.options.beta_iterations <= 0:
        return None
    masks = {}
    for name, (lo, up) in children.interm.items():
        r_lo, r_up = search.root[name]
        masks[name] = (lo > r_lo, up < r_up)
    warm = {k: (b_l[:, rows], b_u[:, rows]) for k, (b_l, b_u) in children.beta.items()}
    return SplitConstraints(masks, search.options.beta_iterations, search.options.beta_lr,
                            warm=warm or None)


def _narrowed(computed, given) -> tuple[Tensor, Tensor]:
    """The recomputed interval (already intersected with ``given``), in ``given``'s shape."""
    lo, up = computed
    return lo.reshape(given[0].shape), up.reshape(given[1].shape)

