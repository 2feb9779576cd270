"""Falsification: random sampling plus PGD with restarts inside each disjunct's box.

Every (disjunct, clause) pair of the property is a *target*: a box and the rows that must all
hold for a violation.  Points are assigned to targets and pushed, by sign-gradient steps
projected onto their box, to make every row ``c_i.y - d_i + tolerance <= 0`` (loss: the sum of
the rows' positive parts, each divided by its coefficient norm).  The attack runs on our torch
graph (batched); whatever it finds is only a *candidate* until ``witness.confirm`` re-runs it
through onnxruntime on the original model.

Why sign-gradient steps: they are scale-free per input dimension (a step is a fraction of each
dimension's box width) and need no tuning per benchmark.  Why APGD's step control (momentum,
per-point halving on stagnation) instead of one fixed schedule: some violations need many
large steps (a flow residual far below its limit), others a fine search of a thin region.
Why half of the restarts on box faces: PGD from interior points tends to end in interior
local optima while counterexamples often lie on faces of the box.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from genbab.verifier.forward import evaluate
from genbab.verifier.graph import Graph
from genbab.verifier.options import AttackOptions
from genbab.vnnlib.property import Property

logger = logging.getLogger(__name__)

_PAD_THRESHOLD = 1e30     # padded rows: 0.y <= 1e30, always satisfied
_MAX_POINT_ELEMENTS = 2_000_000   # cap on batch * input_size per forward pass
_WORK_PER_FORWARD = 3e7           # about batch * (parameters + input size) per forward pass
_FIRST_STEP = 0.25                # first PGD step as a share of each dimension's box width
_REFINE_SCALES = (1e-3, 0.2)      # near-miss restarts: range of the box share of their noise
                                  # and first step
_MOMENTUM = 0.75                  # APGD's weight of the new step against the last one


@dataclass(frozen=True)
class Targets:
    """All (disjunct, clause) pairs as padded tensors.

    lower, upper: (T, n); coeffs: (T, R, m); thresholds: (T, R); disjunct, clause: (T,) ints."""

    lower: torch.Tensor
    upper: torch.Tensor
    coeffs: torch.Tensor
    thresholds: torch.Tensor
    disjunct: np.ndarray
    clause: np.ndarray

    @property
    def count(self) -> int:
        return self.lower.shape[0]

    def subset(self, index: torch.Tensor) -> "Targets":
        idx = index.cpu().numpy()
        return Targets(self.lower[index], self.upper[index], self.coeffs[index],
                       self.thresholds[index], self.disjunct[idx], self.clause[idx])


@dataclass(frozen=True)
class Candidate:
    """A point our evaluation says violates target ``(disjunct, clause)``; x is flat float64."""

    x: np.ndarray
    disjunct: int
    clause: int
    margin: float   # max_i (c_i.y - d_i) on our graph; <= 0 means violated


@dataclass
class _Descent:
    """One chunk of PGD points in flight.  Kept between ``Falsifier.run`` calls so that an
    attack sliced into short turns (time-sharing with branch-and-bound) continues its descent
    instead of restarting it, and so still reaches the small steps of its end."""

    x: torch.Tensor           # (B, n) current points
    previous: torch.Tensor    # (B, n) points before the last step (momentum)
    size: torch.Tensor        # (B, 1) step as a share of the box width
    best_x: torch.Tensor      # (B, n) lowest-loss point so far, its loss and gradient
    best_loss: torch.Tensor
    best_grad: torch.Tensor
    period_start_loss: torch.Tensor   # best loss when the current period began
    improved: torch.Tensor    # (B,) steps of this period that lowered the loss
    last_loss: torch.Tensor
    targets: Targets
    owners: torch.Tensor      # (B,) target index of every point
    row_scale: torch.Tensor   # (B, R)
    step: int = 0

    @classmethod
    def start(cls, x: torch.Tensor, targets: Targets, owners: torch.Tensor,
              scale: torch.Tensor) -> "_Descent":
        size = (_FIRST_STEP * scale).unsqueeze(1)
        inf = torch.full_like(scale, math.inf)
        return cls(x, x, size, x.clone(), inf, torch.zeros_like(x), inf.clone(),
                   torch.zeros_like(scale), inf.clone(), targets, owners,
                   _row_scale(targets.coeffs))


def build_targets(prop: Property, dtype: torch.dtype, device: torch.device) -> Targets:
    pairs = [(i, j, d, c) for i, d in enumerate(prop.disjuncts) for j, c in enumerate(d.clauses)]
    rows = max(c.num_rows for _, _, _, c in pairs)
    n_targets, m = len(pairs), prop.num_outputs
    coeffs = np.zeros((n_targets, rows, m))
    thresholds = np.full((n_targets, rows), _PAD_THRESHOLD)
    for t, (_, _, _, c) in enumerate(pairs):
        coeffs[t, :c.num_rows] = c.coeffs
        thresholds[t, :c.num_rows] = c.thresholds
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype, device=device)  # noqa: E731
    return Targets(lower=as_t([d.lower for _, _, d, _ in pairs]),
                   upper=as_t([d.upper for _, _, d, _ in pairs]),
                   coeffs=as_t(coeffs), thresholds=as_t(thresholds),
                   disjunct=np.array([p[0] for p in pairs]), clause=np.array([p[1] for p in pairs]))


def row_values(graph: Graph, x: torch.Tensor, coeffs: torch.Tensor,
               thresholds: torch.Tensor) -> torch.Tensor:
    """Per point and row ``c_i.y - d_i``; x: (B, n), coeffs: (B, R, m) -> (B, R)."""
    y = evaluate(graph, x.reshape(x.shape[0], *graph.input_shape),
                 surrogate_gradients=x.requires_grad).reshape(x.shape[0], -1)
    return torch.einsum("brm,bm->br", coeffs, y) - thresholds


def margins(graph: Graph, x: torch.Tensor, coeffs: torch.Tensor,
            thresholds: torch.Tensor) -> torch.Tensor:
    """Per point the clause margin ``max_i (c_i.y - d_i)``; x: (B, n), coeffs: (B, R, m) -> (B,)."""
    return row_values(graph, x, coeffs, thresholds).max(dim=1).values


def _row_scale(coeffs: torch.Tensor) -> torch.Tensor:
    """(B, R) 1-norm of each row's coefficients (1 for padded rows): rows in different units
    (a voltage and a squared flow, say) then weigh alike in the loss."""
    norm = coeffs.abs().sum(dim=2)
    return torch.where(norm > 0, norm, torch.ones_like(norm))


def _hinge_loss(rows: torch.Tensor, scale: torch.Tensor, tolerance: float) -> torch.Tensor:
    """(B,) sum over rows of ``max(0, c_i.y - d_i + tolerance) / |c_i|``: every row still
    unsatisfied pulls at once (the max of the rows would zig-zag between them near a thin
    violation region); NaN counts as no pull."""
    return (torch.nan_to_num(rows + tolerance, nan=0.0).clamp(min=0) / scale).sum(dim=1)


def _points_per_forward(graph: Graph) -> int:
    """How many points one forward pass should carry: thousands for ACAS-sized networks, tens
    for large image models, so that one PGD step costs about the same on every model."""
    params = sum(t.numel() for t in graph.constants.values())
    by_work = int(_WORK_PER_FORWARD // max(1, params + graph.input_size))
    by_memory = _MAX_POINT_ELEMENTS // max(1, graph.input_size)
    return max(8, min(4096, by_work, by_memory))


def _chunks(count: int, size: int) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, min(count, start + size))


class Falsifier:
    """Searches for candidate counterexamples until one is found, the rounds are used up or the
    deadline passes.  Construct once per (graph, property); ``run`` may be called repeatedly
    (e.g. interleaved with branch-and-bound): it first finishes a PGD round an earlier
    deadline cut short, then starts fresh restarts."""

    def __init__(self, graph: Graph, prop: Property, options: AttackOptions,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        self.graph = graph
        self.options = options
        self.device = torch.device(device)
        self.targets = build_targets(prop, dtype, self.device)
        self.generator = torch.Generator(device="cpu").manual_seed(options.seed)
        self.restarts_done = 0
        self.steps_done = 0
        self.best_margin = math.inf
        self._elite: torch.Tensor | None = None   # (T, n) best point found so far per target
        self._elite_margin: torch.Tensor | None = None
        self._queue: list = []   # chunks of the current PGD round: planned or _Descent

    # -- public ---------------------------------------------------------------------------
    def run(self, deadline: float, rounds: int | None = None) -> Candidate | None:
        """Centres, then random samples, then ``rounds`` PGD rounds (default from options)."""
        found = self._try_points(self._centres(), self.targets) if self.restarts_done == 0 else None
        if found is None and self.restarts_done == 0 and self.options.samples > 0:
            found = self._sample(deadline)
        rounds = self.options.rounds if rounds is None else rounds
        for _ in range(rounds):
            if found is not None or time.monotonic() >= deadline:
                break
            found = self._pgd_round(deadline)
        return found

    # -- stages ---------------------------------------------------------------------------
    def _centres(self) -> torch.Tensor:
        return (self.targets.lower + self.targets.upper) / 2

    def _restart_points(self, targets: Targets) -> torch.Tensor:
        """(T, n) PGD starting points, one per target row: even rows uniform in the box, odd
        rows with each coordinate on its lower face, its upper face or uniform (a third each).
        Counterexamples often lie on faces of the box, and PGD from interior points
        converges to interior local optima."""
        u = torch.rand(targets.lower.shape, generator=self.generator,
                       dtype=targets.lower.dtype).to(self.device)
        faces = torch.arange(u.shape[0], device=self.device) % 2 == 1
        u[faces] = ((u[faces] - 0.5) * 3 + 0.5).clamp(0, 1)
        return targets.lower + u * (targets.upper - targets.lower)

    def _sample(self, deadline: float) -> Candidate | None:
        per_target = max(1, self.options.samples // max(1, self.targets.count))
        owners = torch.arange(self.targets.count, device=self.device).repeat_interleave(per_target)
        targets = self.targets.subset(owners)
        return self._try_points(self._restart_points(targets), targets, deadline)

    def _try_points(self, x: torch.Tensor, targets: Targets,
                    deadline: float = math.inf) -> Candidate | None:
        """Evaluate points (one per target row) and return the first violating one."""
        with torch.no_grad():
            for part in _chunks(x.shape[0], _points_per_forward(self.graph)):
                m = margins(self.graph, x[part], targets.coeffs[part], targets.thresholds[part])
                found = self._first_violation(x[part], m, targets, part.start)
                if found is not None or time.monotonic() >= deadline:
                    return found
        return None

    def _first_violation(self, x: torch.Tensor, m: torch.Tensor, targets: Targets,
                         offset: int) -> Candidate | None:
        finite = torch.nan_to_num(m, nan=math.inf)
        self.best_margin = min(self.best_margin, float(finite.min()))
        hits = torch.nonzero(finite <= 0).flatten()
        if hits.numel() == 0:
            return None
        k = int(hits[torch.argmin(finite[hits])])
        t = offset + k
        return Candidate(x[k].detach().double().cpu().numpy(), int(targets.disjunct[t]),
                         int(targets.clause[t]), float(finite[k]))

    def _pgd_round(self, deadline: float) -> Candidate | None:
        """One round of PGD from fresh random restarts (plus the centres in the first round);
        a round cut short by the deadline is resumed by the next call."""
        if not self._queue:
            self._queue = self._plan_round()
        while self._queue:
            if not isinstance(self._queue[0], _Descent):
                self._queue[0] = self._start_chunk(*self._queue[0])
            descent = self._queue[0]
            found = self._descend(descent, deadline)
            if found is not None or descent.step >= max(1, self.options.steps):
                self._queue.pop(0)
            if found is not None or time.monotonic() >= deadline:
                return found
        return None

    def _plan_round(self) -> list:
        """(owners, per_target, first) per chunk of one round: per_target restarts for every
        target, as many points per chunk as one forward pass should carry."""
        budget = _points_per_forward(self.graph)
        per_target = max(1, self.options.restarts, budget // self.targets.count)
        if self.targets.count * per_target > budget:
            per_target = max(1, budget // self.targets.count)
        owners = torch.arange(self.targets.count, device=self.device).repeat_interleave(per_target)
        first = self.restarts_done == 0
        return [(owners[part], per_target, first and part.start == 0)
                for part in _chunks(owners.numel(), budget)]

    def _start_chunk(self, owners: torch.Tensor, per_target: int, centres: bool) -> _Descent:
        targets = self.targets.subset(owners)
        x = self._restart_points(targets)
        if centres:
            x[::per_target] = ((targets.lower + targets.upper) / 2)[::per_target]
        scale = self._near_elite(x, owners, targets, per_target)
        self.restarts_done += x.shape[0]
        return _Descent.start(x, targets, owners, scale)

    def _near_elite(self, x: torch.Tensor, owners: torch.Tensor, targets: Targets,
                    per_target: int) -> torch.Tensor:
        """Restart half of the points close to the best point of their target so far
        (exploitation: thin violation regions are found by refining near-misses).  Each such
        point draws its own neighbourhood, a share of the box between ``_REFINE_SCALES``
        (log-uniform), since how far the violation region lies from a near miss is unknown.
        Returns the (B,) scale of every point's first step (1 for fresh restarts)."""
        scale = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
        if self._elite is None or per_target < 4:
            return scale
        refine = torch.arange(x.shape[0], device=x.device) % per_target < per_target // 2
        low, high = (math.log(s) for s in _REFINE_SCALES)
        u = torch.rand(x.shape[0], generator=self.generator, dtype=x.dtype).to(x.device)
        scale[refine] = torch.exp(low + u * (high - low))[refine]
        width = targets.upper - targets.lower
        noise = (torch.rand(x.shape, generator=self.generator, dtype=x.dtype).to(x.device) - 0.5)
        near = self._elite[owners] + noise * width * scale.unsqueeze(1)
        near = torch.minimum(torch.maximum(near, targets.lower), targets.upper)
        x[refine] = near[refine]
        return scale

    def _keep_elite(self, x: torch.Tensor, m: torch.Tensor, owners: torch.Tensor) -> None:
        if self._elite is None:
            self._elite = (self.targets.lower + self.targets.upper) / 2
            self._elite_margin = torch.full((self.targets.count,), math.inf, dtype=m.dtype,
                                            device=m.device)
        finite = torch.nan_to_num(m.detach(), nan=math.inf)
        best = torch.full_like(self._elite_margin, math.inf).scatter_reduce(
            0, owners, finite, reduce="amin")
        better = best < self._elite_margin
        for t in torch.nonzero(better).flatten().tolist():
            k = int(torch.nonzero((owners == t) & (finite == best[t])).flatten()[0])
            self._elite[t] = x[k].detach()
        self._elite_margin = torch.minimum(self._elite_margin, best)

    def _descend(self, d: _Descent, deadline: float) -> Candidate | None:
        """Sign-gradient PGD with momentum and a per-point step size (APGD-like, Croce & Hein
        2020): every ``period`` steps a point that improved its loss in fewer than 3/4 of
        the steps halves its step and restarts from its best point.  One fixed schedule is
        too fast for landscapes that need many large steps (a residual far from its limit)
        and too coarse for thin violation regions; halving on stagnation adapts to both."""
        width = d.targets.upper - d.targets.lower
        steps = max(1, self.options.steps)
        period = max(2, steps // 4)
        while d.step < steps:
            x = d.x.detach().requires_grad_(True)
            rows = row_values(self.graph, x, d.targets.coeffs, d.targets.thresholds)
            m = rows.max(dim=1).values
            found = self._first_violation(x, m.detach(), d.targets, 0)
            if found is not None:
                return found
            if d.step % 10 == 0:
                self._keep_elite(x, m, d.owners)
            loss = _hinge_loss(rows, d.row_scale, self.options.tolerance)
            (grad,) = torch.autograd.grad(loss.sum(), x)
            with torch.no_grad():
                self._update(d, x.detach(), loss.detach(), rows, grad, width,
                             (d.step + 1) % period == 0, period)
            d.step += 1
            self.steps_done += 1
            if time.monotonic() >= deadline:
                return None
        found = None
        for point in (d.x, d.best_x):   # the last step's point, then each point's best one
            with torch.no_grad():
                m = margins(self.graph, point, d.targets.coeffs, d.targets.thresholds)
            self._keep_elite(point, m, d.owners)
            found = found or self._first_violation(point, m, d.targets, 0)
        return found

    def _update(self, d: _Descent, x: torch.Tensor, loss: torch.Tensor, rows: torch.Tensor,
                grad: torch.Tensor, width: torch.Tensor, check: bool, period: int) -> None:
        """Record best points, halve the step of stagnating points (``check``: end of a
        period) and take the momentum step."""
        grad = torch.nan_to_num(grad, nan=0.0)
        # a point whose output is NaN has no pull, but it is no best point either
        loss = torch.where(torch.isnan(rows).any(dim=1), math.inf, loss)
        d.improved += (loss < d.last_loss).to(loss.dtype)
        d.last_loss = loss
        better = loss < d.best_loss
        d.best_x[better], d.best_loss[better] = x[better], loss[better]
        d.best_grad[better] = grad[better]
        previous = d.previous
        if check:
            stuck = ((d.improved < 0.75 * period) | (d.best_loss >= d.period_start_loss))
            d.size[stuck] = d.size[stuck] / 2
            stuck = stuck.unsqueeze(1)
            x, grad = torch.where(stuck, d.best_x, x), torch.where(stuck, d.best_grad, grad)
            previous = torch.where(stuck, d.best_x, previous)
            d.period_start_loss, d.improved = d.best_loss.clone(), torch.zeros_like(d.improved)
        d.x, d.previous = self._momentum_step(x, previous, grad, d.size * width, d.targets), x

    @staticmethod
    def _momentum_step(x: torch.Tensor, previous: torch.Tensor, grad: torch.Tensor,
                       step: torch.Tensor, targets: Targets) -> torch.Tensor:
        """z = P(x - step * sign(grad)); x' = P(x + a (z - x) + (1 - a)(x - previous))."""
        clip = lambda v: torch.minimum(torch.maximum(v, targets.lower), targets.upper)  # noqa: E731
        z = clip(x - step * grad.sign())
        return clip(x + _MOMENTUM * (z - x) + (1 - _MOMENTUM) * (x - previous))
