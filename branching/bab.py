"""Branch-and-bound over batches of sub-domains (algorithms.md 4).

One round: pop the least-proved domains, split each (input bisection here; neuron splits in
``branching.neuron_bab``), bound all children in one batched bound call, keep the best clause
margins (a parent's refutation covers its children), drop verified children, and look for
counterexamples at the children's centres, with a PGD attack inside the worst domains every few
rounds.  Every candidate goes through ``check`` (the onnxruntime re-check) before it counts.

Input splitting also clips boxes (``branching.clip``): after each bound a box shrinks to the
part where its linear bounds still allow a violation, children are clipped by their parent's
linear bounds before they are bounded, and a box that clipping shrank a lot is bounded again
at once.  On lsnc quadrotor2d_state_6 this needs about 1.1 M boxes instead of several million.
"""
from __future__ import annotations

import enum
import functools
import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from genbab.bounds.engine import spec_bounds
from genbab.branching import memory
from genbab.branching.clip import clip_boxes
from genbab.branching.domain import Domains, Pool
from genbab.branching.heuristics import clause_sensitivity, rank_input_dims
from genbab.branching.split import split_input_dims
from genbab.verifier.forward import evaluate
from genbab.verifier.graph import Graph
from genbab.verifier.options import AttackOptions, BoundOptions, BranchingOptions
from genbab.verifier.result import Stats
from genbab.vnnlib.property import Disjunct

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

    @functools.cached_property
    def distinct(self) -> tuple[Tensor, Tensor]:
        """``(rows, members)``: one row index per distinct (coefficients, threshold) pair, (U,),
        and which clauses contain it, (U, K) bool.  Properties often repeat a row in every
        clause (a shared premise); bounding it once saves most of the backward pass."""
        table = torch.cat([self.coeffs.double(), self.thresholds.unsqueeze(1)], dim=1)
        _, inverse = torch.unique(table, dim=0, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), len(inverse), dtype=torch.long,
                           device=inverse.device)
        first = first.scatter_reduce(0, inverse, torch.arange(len(inverse),
                                                              device=inverse.device), "amin")
        members = torch.zeros(len(first), self.num_clauses, dtype=torch.bool,
                              device=inverse.device)
        members[inverse, self.groups] = True
        return first, members

    def margins_of(self, rows: Tensor, members: Tensor, row_lower: Tensor) -> Tensor:
        """(B, U') lower bounds of the distinct ``rows`` -> (B, K) clause margins (clauses
        with none of these rows: -inf)."""
        margin = torch.nan_to_num(row_lower.double() - self.thresholds[rows], nan=-math.inf)
        masked = torch.where(members.unsqueeze(0), margin.unsqueeze(-1), -math.inf)
        return masked.amax(dim=1) if len(rows) else margin.new_full(
            (row_lower.shape[0], self.num_clauses), -math.inf)


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
    chunk: int = 1 << 16              # most domains per bound call; halved on out-of-memory
    attack_s: float = 0.0             # seconds spent attacking inside BaB so far
    attacked: float = field(default_factory=time.monotonic)   # when the last attack was due
    clip: bool = True                 # shrink bounded boxes to their possibly violating part
    started: float = field(default_factory=time.monotonic)


def input_split_bab(graph: Graph, disjunct: Disjunct, check: Check, *, options: BranchingOptions,
                    bound_options: BoundOptions, attack: AttackOptions, deadline: float,
                    stats: Stats, dtype: torch.dtype = torch.float32,
                    device: str = "cpu") -> BabOutcome:
    """Prove or refute one disjunct by bisecting its input box.  ``options.clip``: after
    each bound, shrink every box to the part where its linear bounds allow a violation
    (``branching.clip``)."""
    dev = torch.device(device)
    spec = Spec.from_disjunct(disjunct, dtype, dev)
    search = _Search(graph, spec, options, bound_options, attack, disjunct, check, deadline, stats,
                     clip=options.clip)
    lower = torch.tensor(np.array(disjunct.lower), dtype=dtype, device=dev).reshape(1, -1)
    upper = torch.tensor(np.array(disjunct.upper), dtype=dtype, device=dev).reshape(1, -1)
    root = Domains(lower, upper, torch.full((1, spec.num_clauses), -math.inf, dtype=torch.float64,
                                            device=dev), torch.zeros(1, dtype=torch.long,
                                                                     device=dev))
    root = bound_domains(search, root)
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


_FIRST_CHILDREN = 256  # children of the first round (a bound call on a few hundred boxes
# costs about what one on a dozen does)
_GROWTH = 4            # batch growth per round while it pays
_GAIN = 1.05           # a larger batch must bound this much faster per domain to be kept
_MAX_DEPTH = 2         # most dimensions bisected at once in one domain: deeper multi-splits
# fill a batch sooner but bound many children one split would have proved (gcas_5: 25x more)
_LOOKS = 3             # full rounds measured at each batch size


@dataclass
class BatchSize:
    """Children bounded per round, tuned while running: start small (an instance that a few
    splits settle costs little) and grow ``_GROWTH``-fold while the bounding rate (domains per
    second over ``_LOOKS`` full rounds together: rounds differ in cost, and the best single
    round flattered the smaller size, which could stop lsnc at 1024 children instead of
    131072) keeps improving.  Tiny models gain up to tens of thousands of domains per call;
    wider ones stop gaining (memory traffic) at a few hundred, and then go back a step."""

    cap: int
    size: int = _FIRST_CHILDREN
    settled: bool = False
    _rates: list[tuple[int, float]] = field(default_factory=list)   # (children, seconds) of
    # the rounds at the current size
    _best_rate: float = 0.0
    _best_size: int = 0

    def __post_init__(self) -> None:
        self.size = max(2, min(self.size, self.cap))

    def observe(self, children: int, seconds: float) -> None:
        """Record one round; only a round that (about) filled the batch says anything about
        it."""
        if self.settled or 2 * children < self.size:
            return
        self._rates.append((children, seconds))
        if len(self._rates) < _LOOKS:
            return
        rate = sum(c for c, _ in self._rates) / max(sum(t for _, t in self._rates), 1e-9)
        self._rates = []
        if rate > _GAIN * self._best_rate and self.size < self.cap:
            self._best_rate, self._best_size = rate, self.size
            self.size = min(self.cap, self.size * _GROWTH)
            return
        if rate < self._best_rate:
            self.size = self._best_size
        self.settled = True


_DEEP_BELOW = 2048      # parents below which a round may bisect two dimensions at once


def _split_depth(budget: int, parents: int, free_dims: int) -> int:
    """Dimensions to bisect per parent so that ``parents * 2**depth`` fills ``budget``, but
    only for rounds with few parents (the first ones): with thousands of parents a round is
    big enough, and a double split bounds children that one split would have proved."""
    if parents >= _DEEP_BELOW:
        return 1
    depth = int(math.floor(math.log2(max(1.0, budget / max(1, parents)))))
    return max(1, min(depth, free_dims, _MAX_DEPTH))


def _pool_capacity(search: _Search) -> int:
    """Waiting boxes the memory budget (free memory, or --max-memory) can hold: each keeps
    its input box, one margin per spec row and its halfspaces, plus some bookkeeping."""
    coeffs = search.spec.coeffs
    element = coeffs.element_size()
    halfspaces = len(search.spec.distinct[0]) * (search.graph.input_size + 1)
    per_domain = element * (2 * search.graph.input_size + coeffs.shape[0] + halfspaces) + 64
    budget = memory.budget_bytes(coeffs.device, search.options.max_memory_gb)
    return memory.pool_capacity(search.options.max_domains, per_domain, budget)


def _loop(search: _Search, pool: Pool) -> BabOutcome:
    stats, options = search.stats, search.options
    last_report = time.monotonic()
    free_dims = int((search.spec.coeffs.new_tensor(search.disjunct.upper)
                     > search.spec.coeffs.new_tensor(search.disjunct.lower)).sum())
    rounds = 0
    batch = BatchSize(options.input_batch_size)
    # the batch size is tuned on this process's CPU time where it can be: a shared machine
    # stalls single rounds at random, which wall time would blame on the batch size
    clock = time.process_time if search.spec.coeffs.device.type == "cpu" else time.perf_counter
    max_domains = _pool_capacity(search)
    while len(pool):
        stop = limit_reached(pool, search.deadline, max_domains)
        if stop is not None:
            return stop
        begun = clock()
        budget = batch.size
        parents = pool.pop(max(1, budget // 2))
        splittable = (parents.upper - parents.lower).amax(dim=1) > 0
        if not bool(splittable.all()):
            return BabOutcome(BabStatus.UNKNOWN, reason="a domain shrank to a point unproved")
        depth = _split_depth(budget, len(parents), free_dims)
        dims = rank_input_dims(search.graph, parents, search.spec.coeffs, search.spec.groups,
                               depth)
        children = split_input_dims(parents, dims)
        stats.add_splits("input", len(children) - len(parents))
        made = len(children)
        children = _clip_children(search, children)
        if len(children):
            found = _check_centres(search, children)
            if found is not None:
                return BabOutcome(BabStatus.FALSIFIED, found, "counterexample inside a sub-domain")
            children = _bound_and_clip(search, children)
            pool.push(children.select(torch.nonzero(children.worst <= 0).flatten()))
        batch.observe(made, clock() - begun)
        rounds += 1
        record_round(stats, rounds, len(children), len(pool), pool.worst_margin())
        due = rounds % options.attack_every == 0 or (
            time.monotonic() - search.attacked > _ATTACK_PERIOD_S)   # rounds can take seconds
        if search.attack.rounds and due and len(pool):
            search.attacked = time.monotonic()
            found = _time_share_attack(search, pool)
            if found is not None:
                return BabOutcome(BabStatus.FALSIFIED, found, "counterexample by PGD in BaB")
        if time.monotonic() - last_report >= options.progress_interval_s:
            last_report = time.monotonic()
            logger.info("bab round %d: %d domains (%d bounded, %d per round), worst margin "
                        "%.4g, %.1f s left", rounds, len(pool), stats.domains_visited,
                        batch.size, pool.worst_margin(), search.deadline - time.monotonic())
    return BabOutcome(BabStatus.VERIFIED, reason=f"all domains proved in {rounds} rounds")


def record_round(stats: Stats, rounds: int, visited: int, queue: int, worst: float) -> None:
    stats.bab_rounds += 1
    stats.domains_visited += visited
    stats.max_queue = max(stats.max_queue, queue)
    now = time.monotonic()
    if not stats.best_bound_history or now - stats.best_bound_history[-1][0] >= 0.5:
        stats.best_bound_history.append((now, worst))


_REBOUND_BELOW = 0.7   # a clipped box keeping less than this share of its volume is bounded
# again at once (its new linear bounds are tighter and clip further): on lsnc state_4 / state_6
# 20% fewer boxes than bounding it only as its children, 0.9 and 0.5 do a little worse
_REBOUNDS = 1          # at most this many times per round (3: 5-7% fewer boxes on lsnc, but
# with the plane search state_0 took 57-60 s in-process against 50-54 s with 1)
_REBOUND_MIN = 256     # fewer boxes than this are not worth a bound call of their own (on
# lsnc state_16 / output_9 the extra calls of small rounds made the search slower than before)


def _bound_and_clip(search: _Search, domains: Domains) -> Domains:
    """``bound_domains``, then again (up to ``_REBOUNDS`` times) for the open boxes that
    clipping shrank most."""
    bounded = bound_domains(search, domains)
    if not search.clip:
        return bounded
    done = []
    for _ in range(_REBOUNDS):
        width = domains.upper - domains.lower
        kept = torch.where(width > 0, (bounded.upper - bounded.lower) / width.clamp(min=1e-30),
                           1.0)
        again = (kept.prod(dim=1) < _REBOUND_BELOW) & (bounded.worst <= 0)
        if int(again.sum()) < _REBOUND_MIN:
            break
        done.append(bounded.select(torch.nonzero(~again).flatten()))
        domains = bounded.select(torch.nonzero(again).flatten())
        bounded = bound_domains(search, domains)
        search.stats.domains_visited += len(bounded)
    return Domains.cat(done + [bounded])


def bound_domains(search: _Search, domains: Domains) -> Domains:
    """Bound ``domains`` in calls of at most ``search.chunk`` domains (halved and remembered
    on out-of-memory, see ``memory.bound_in_chunks``)."""
    bounded, search.chunk = memory.bound_in_chunks(domains, search.chunk,
                                                   lambda part: _bound(search, part))
    return bounded


_RARE_ROWS = 0.25   # rows needed by fewer domains than this share get a call of their own


def _bound(search: _Search, domains: Domains) -> Domains:
    """Bound every domain and raise its clause margins (never below the parent's).  Only the
    distinct rows of clauses still open are bounded: late in a search most domains share one
    or two open rows, and a few domains that still need another row would make every domain
    pay for it, so those few are bounded in a second call."""
    rows, members = search.spec.distinct
    need = (domains.margins <= 0).to(torch.float32) @ members.T.to(torch.float32) > 0  # (B, U)
    common = need.float().mean(dim=0) >= _RARE_ROWS
    rare = (need & ~common).any(dim=1)
    share = float(rare.float().mean())
    if share == 0.0 or share > _RARE_ROWS:
        return _bound_rows(search, domains, need.any(dim=0))
    split = [torch.nonzero(~rare).flatten(), torch.nonzero(rare).flatten()]
    parts = [_bound_rows(search, domains.select(index), need[index].any(dim=0))
             for index in split]
    return Domains.cat(parts).select(torch.argsort(torch.cat(split)))


def _bound_rows(search: _Search, domains: Domains, needed: Tensor) -> Domains:
    """Bound the distinct rows ``needed`` (U,) bool of every domain."""
    spec = search.spec
    rows, members = spec.distinct
    rows, members = rows[needed], members[needed]
    if len(rows) == 0:
        return domains.with_margins(domains.margins, torch.zeros_like(domains.lower))
    method = search.options.method
    options = replace(search.bound_options, method=method,
                      alpha_iterations=search.options.alpha_iterations, scalar_cuts=True)
    result = spec_bounds(search.graph, domains.lower, domains.upper, spec.coeffs[rows],
                         method=method, options=options, deadline=search.deadline,
                         thresholds=spec.thresholds[rows].to(domains.lower.dtype),
                         interm=domains.interm or None)
    row_margins = torch.nan_to_num(result.lower.double() - spec.thresholds[rows],
                                   nan=-math.inf)
    margins = torch.maximum(domains.margins, spec.margins_of(rows, members, result.lower))
    if result.input_coeffs is None:
        return domains.with_margins(margins)
    input_coeffs = result.input_coeffs.reshape(len(domains), len(rows), -1)
    sensitivity = clause_sensitivity(input_coeffs, row_margins, members, margins <= 0)
    if result.input_offset is None or not search.clip:
        return domains.with_margins(margins, sensitivity)
    clip_coeffs, clip_offset, thresholds = input_coeffs, result.input_offset, spec.thresholds[rows]
    if result.searched is not None:   # both linear bounds of a row must allow a violation
        s_coeffs = result.searched[0].reshape(input_coeffs.shape)
        moved = torch.nonzero((s_coeffs != input_coeffs).flatten(2).any(dim=2).any(dim=0)).flatten()
        clip_coeffs = torch.cat([clip_coeffs, s_coeffs[:, moved]], 1)
        clip_offset = torch.cat([clip_offset, result.searched[1][:, moved]], 1)
        thresholds, members = torch.cat([thresholds, thresholds[moved]]), torch.cat(
            [members, members[moved]])
    lower, upper, proved = clip_boxes(domains.lower, domains.upper, clip_coeffs, clip_offset,
                                      thresholds, members, margins <= 0)
    margins = torch.where(proved.unsqueeze(1) & (margins <= 0), math.inf, margins)
    halfspaces = _halfspaces(search, domains, needed, input_coeffs, result.input_offset)
    return replace(domains.with_margins(margins, sensitivity), lower=lower, upper=upper,
                   halfspaces=halfspaces)


def _halfspaces(search: _Search, domains: Domains, needed: Tensor, coeffs: Tensor,
                offset: Tensor) -> tuple[Tensor, Tensor]:
    """The domains' halfspaces (see ``Domains``) with the rows ``needed`` (U,) replaced by
    this bound's ``coeffs`` (B, U', n) and ``offset`` (B, U')."""
    if domains.halfspaces is None:
        count = len(search.spec.distinct[0])
        old_coeffs = coeffs.new_zeros((len(domains), count, coeffs.shape[2]))
        old_offset = offset.new_full((len(domains), count), -math.inf)
    else:
        old_coeffs, old_offset = domains.halfspaces
    new_coeffs, new_offset = old_coeffs.clone(), old_offset.clone()
    new_coeffs[:, needed] = coeffs.to(new_coeffs)
    new_offset[:, needed] = offset.to(new_offset)
    return new_coeffs, new_offset


def _clip_children(search: _Search, children: Domains) -> Domains:
    """Clip freshly split children with their parent's halfspaces (valid on every sub-box)
    and drop the children that this proves."""
    if children.halfspaces is None or not search.clip:
        return children
    rows, members = search.spec.distinct
    lower, upper, proved = clip_boxes(children.lower, children.upper, *children.halfspaces,
                                      search.spec.thresholds[rows], members,
                                      children.margins <= 0)
    clipped = replace(children, lower=lower, upper=upper)
    return clipped.select(torch.nonzero(~proved).flatten())


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
_ATTACK_PERIOD_S = 2.0   # an attack is also due when this long has passed since the last
_ATTACK_SHARE = 0.25   # most of the BaB time that the attacks inside BaB may take, for the
_ATTACK_FULL_S = 5.0   # first this many seconds; after t seconds the share is scaled by
# sqrt(_ATTACK_FULL_S / t): the longer the bounds hold out, the less likely an attack is to
# find a point, and on lsnc quadrotor2d_state_0 (unsat) the attacks took 14% of the time


def _attack_allowance(search: _Search) -> float:
    """Seconds the attacks inside BaB may still take now."""
    elapsed = time.monotonic() - search.started
    share = _ATTACK_SHARE * math.sqrt(min(1.0, _ATTACK_FULL_S / max(elapsed, 1e-9)))
    return share * elapsed - search.attack_s


def _time_share_attack(search: _Search, pool: Pool):
    """PGD inside the worst domains and over the whole box, while the attacks have used less
    than their share of the time since BaB started (``_attack_allowance``): on an unsat
    instance every second spent attacking is lost, on a sat one the bounds alone rarely find
    the point."""
    begun = time.monotonic()
    if _attack_allowance(search) < 0:
        return None
    try:
        return _attack_worst(search, pool) or _explore(search)
    finally:
        search.attack_s += time.monotonic() - begun


def _explore(search: _Search):
    """Time-share with the attack over the whole box: a thin violation region that bounds
    cannot rule out is often found by refining the attack's near misses."""
    from genbab.branching.attack import Falsifier
    from genbab.vnnlib.property import Property

    if search.falsifier is None:
        prop = Property((search.disjunct,), search.graph.input_size, search.spec.coeffs.shape[1])
        search.falsifier = Falsifier(search.graph, prop, search.attack,
                                     search.spec.coeffs.device, search.spec.coeffs.dtype)
    budget = max(0.2, _attack_allowance(search))
    candidate = search.falsifier.run(min(search.deadline, time.monotonic() + budget), rounds=1)
    return None if candidate is None else search.check(candidate.x)


def _attack_worst(search: _Search, pool: Pool):
    """A short PGD inside the least-proved domains (their boxes are where a violation is most
    likely), with the same re-check as every other candidate."""
    from genbab.branching.attack import Falsifier
    from genbab.vnnlib.property import Disjunct, Property

    worst = pool.peek(_ATTACK_DOMAINS)
    boxes = [Disjunct(worst.lower[i].double().cpu().numpy(), worst.upper[i].double().cpu().numpy(),
                      search.disjunct.clauses) for i in range(len(worst))]
    prop = Property(tuple(boxes), search.graph.input_size, search.spec.coeffs.shape[1])
    falsifier = Falsifier(search.graph, prop, AttackOptions(samples=0, restarts=2, steps=20,
                                                            rounds=1, seed=search.stats.bab_rounds),
                          search.spec.coeffs.device, search.spec.coeffs.dtype)
    candidate = falsifier.run(search.deadline, rounds=1)
    return None if candidate is None else search.check(candidate.x)
