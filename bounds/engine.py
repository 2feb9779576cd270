"""Public API of the bound engine: IBP, CROWN and alpha-CROWN over a batch of domains.

``spec_bounds`` is the work horse (GenBaB calls it once per batch of sub-domains); ``output_bounds``
bounds every output element; ``prove`` runs IBP -> CROWN -> alpha on a VNN-LIB property.

Intervals are keyed by tensor name (``node.output``; ``Graph.shapes`` keys).  A domain's
``interm`` entry ``{tensor: (lower, upper)}`` (``(batch, *shape)``) is a sound interval known
for that tensor on that domain (a split, or the parent's bounds); it is intersected with
whatever is computed, and with ``refresh=False`` such tensors are not recomputed by CROWN.
A domain whose intervals cross (lower > upper somewhere) is empty: its bounds are ``+inf``.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

import torch
from torch import Tensor

from genbab.bounds.alpha import optimise
from genbab.bounds.backward import BoundState, backward, concretize
from genbab.bounds.beta import BetaSetup, beta_terms, init_betas
from genbab.bounds.box import Box, input_box
from genbab.bounds.cuts import as_cut_bounds
from genbab.bounds.interval import intersect, node_interval
from genbab.bounds.linear import shift_index
from genbab.bounds.plan import LINEAR, Plan, make_plan
from genbab.bounds.planes import search_planes
from genbab.bounds.rewrite import SHIFT_BY_MAX
from genbab.verifier.forward import prepared_constants
from genbab.verifier.graph import Graph
from genbab.verifier.options import BoundOptions

logger = logging.getLogger(__name__)
Pair = tuple[Tensor, Tensor]
METHODS = ("ibp", "crown", "alpha")
_ROW_BUDGET = 1 << 24          # coefficient elements per intermediate CROWN chunk


@dataclass(frozen=True)
class LinearBounds:
    """Input-space linear bounds of the elements ``index`` (flat) of one tensor, per domain:
    ``lower_coeffs @ x + lower_bias <= h[index] <= upper_coeffs @ x + upper_bias``.
    Coefficients ``(batch, len(index), input_size)``, biases ``(batch, len(index))``."""

    index: Tensor
    lower_coeffs: Tensor
    lower_bias: Tensor
    upper_coeffs: Tensor
    upper_bias: Tensor


@dataclass(frozen=True)
class SpecBounds:
    """Result of ``spec_bounds``.

    lower: (batch, rows) certified lower bounds of ``coeffs @ y`` (``-inf`` when unknown,
    ``+inf`` for an empty domain; never NaN).  intermediate: the intervals used, per tensor.
    alpha: optimised parameters per nonlinear node, ``(k, batch, rows, *shape)``, to warm-start
    children.  linear: input-space linear bounds of the CROWN-bounded tensors (only with
    ``keep_linear=True``).  method: the strongest method that ran."""

    lower: Tensor
    intermediate: Mapping[str, Pair]
    alpha: Mapping[str, Tensor] = field(default_factory=dict)
    linear: Mapping[str, LinearBounds] = field(default_factory=dict)
    method: str = "ibp"
    input_coeffs: Tensor | None = None   # (batch, rows, input_size): CROWN's final linear bound
    output_coeffs: Mapping[str, Tensor] = field(default_factory=dict)
    # ^ with record_coeffs=True: nonlinear node output tensor -> (batch, rows, *shape), the
    #   coefficients of the final backward pass at that tensor (with alpha: the best parameters)
    beta: Mapping[str, Pair] = field(default_factory=dict)
    # ^ with split_constraints and alpha: the best multipliers, tensor -> (beta_l, beta_u) each
    #   (batch, rows, numel), to warm-start children
    input_offset: Tensor | None = None   # (batch, rows): the constant of that linear bound,
    # ``coeffs @ y >= input_coeffs . x + input_offset`` for every x in the box
    searched: Pair | None = None   # ``(coeffs (batch, rows, input_size), offset (batch,
    # rows))``: a second such linear bound, from the plane search (bounds/planes.py) where it
    # ran.  It has the higher minimum; CROWN's has the slopes that show which inputs matter.


@dataclass(frozen=True)
class SplitConstraints:
    """Constraints ``h_j >= lower_j`` / ``h_j <= upper_j`` (the domain's own intervals) that a
    split made binding, for beta (algorithms.md 4.2 step 3): ``masks`` tensor ->
    ``(lower_active, upper_active)`` bools ``(batch, *shape)``.  Each active constraint gets a
    multiplier ``beta >= 0`` per row, optimised by Adam for ``iterations`` steps after the
    CROWN / alpha bound (whose relaxation parameters stay fixed).  With method "alpha" the
    multipliers are optimised jointly with alpha instead, for ``max(alpha_iterations,
    iterations)`` steps, starting from ``warm`` (tensor -> (beta_l, beta_u), each
    ``(batch, rows, numel)``; a parent's multipliers) where given."""

    masks: Mapping[str, Pair]
    iterations: int = 10
    lr: float = 0.05
    warm: Mapping[str, Pair] | None = None


@dataclass(frozen=True)
class ProofOutcome:
    """Per disjunct and clause: refuted (some row's lower bound > threshold) and the margin
    ``max_row(lower - threshold)``.  ``verified``: every clause of every disjunct refuted."""

    verified: bool
    refuted: tuple[tuple[bool, ...], ...]
    margins: tuple[tuple[float, ...], ...]
    method: str
    timed_out: bool = False


# -- intermediate bounds --------------------------------------------------------------------
def _check_method(method: str) -> str:
    method = "alpha" if method == "alpha-crown" else method
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def _crown_rows(state: BoundState, tensor: str, ibp: Pair, box: Box,
                keep_linear: bool, deadline: float) -> tuple[Pair, LinearBounds | None]:
    """CROWN with C = I on the neurons of ``tensor`` that need it, intersected with ``ibp``.
    Rows are done in chunks; once the deadline passes the remaining rows keep their IBP."""
    plan = state.plan
    shape = plan.graph.shapes[tensor]
    batch = ibp[0].shape[0]
    lo, up = ibp[0].reshape(batch, -1), ibp[1].reshape(batch, -1)
    need = lo < up
    if tensor in plan.relu_only:
        need &= (lo < 0) & (up > 0)
    index = torch.nonzero(need.any(dim=0)).flatten()
    if index.numel() == 0:
        return ibp, None
    size = lo.shape[1]
    chunk = max(1, _ROW_BUDGET // (2 * batch * plan.max_numel))
    lows, ups, parts = [], [], []
    done = 0
    for start in range(0, index.numel(), chunk):
        begun = time.monotonic()
        if begun + state.chunk_s >= deadline:   # a chunk like the latest would end past it
            break
        sel = index[start:start + chunk]
        done = start + sel.numel()
        n = sel.numel()
        eye = lo.new_zeros((2 * n, size))
        rows = torch.arange(n, device=lo.device)
        eye[rows, sel] = 1.0
        eye[rows + n, sel] = -1.0
        coeffs = eye.reshape(1, 2 * n, *shape).expand(batch, 2 * n, *shape)
        x_coeffs, bias = backward(state, tensor, coeffs, cuts=True)
        value = concretize(x_coeffs, bias, box.lower, box.upper)
        if state.scalar_cuts and tensor in plan.scalar_cuts:   # for later passes to stop at
            state.cut_bounds[tensor] = as_cut_bounds(x_coeffs, bias)
        lows.append(value[:, :n])
        ups.append(-value[:, n:])
        if keep_linear:
            parts.append((x_coeffs[:, :n], bias[:, :n], -x_coeffs[:, n:], -bias[:, n:]))
        state.chunk_s = time.monotonic() - begun
    if done == 0:
        return ibp, None
    index = index[:done]
    new_lo, new_up = lo.clone(), up.clone()
    new_lo[:, index] = torch.maximum(lo[:, index], torch.cat(lows, dim=1))
    new_up[:, index] = torch.minimum(up[:, index], torch.cat(ups, dim=1))
    linear = None
    if keep_linear:
        linear = LinearBounds(index, *(torch.cat([p[i] for p in parts], dim=1) for i in range(4)))
    return (new_lo.reshape(batch, *shape), new_up.reshape(batch, *shape)), linear


def _override(interm: Mapping[str, Pair] | None, name: str, pair: Pair) -> tuple[Pair, Tensor | None]:
    """Intersect with a caller-supplied interval.  Returns the interval and, where an override
    was applied, which domains it proves empty (crossing by more than float rounding)."""
    if not interm or name not in interm:
        return pair, None
    o_lo, o_up = interm[name]
    o_lo, o_up = o_lo.to(pair[0]).reshape(pair[0].shape), o_up.to(pair[1]).reshape(pair[1].shape)
    lo, up = intersect(pair, (o_lo, o_up))
    slack = 1e-5 * (1 + lo.abs() + up.abs())
    empty = (lo > up + slack).flatten(1).any(dim=1)
    return (lo, up), empty


def _uncross(pair: Pair) -> Pair:
    """Rounding can leave CROWN's lower a hair above IBP's upper on degenerate boxes: keep both."""
    lo, up = pair
    return torch.minimum(lo, up), torch.maximum(lo, up)


@dataclass(frozen=True)
class _Request:
    method: str
    interm: Mapping[str, Pair] | None
    refresh: bool
    keep_linear: bool
    deadline: float
    fixed: frozenset[str] | None = None
    scalar_cuts: bool = False


def _intermediate(plan: Plan, box: Box, req: _Request) -> tuple[BoundState, dict[str, LinearBounds], Tensor]:
    """Intervals of every perturbed tensor, in topological order (algorithms.md 1.4)."""
    g = plan.graph
    consts = prepared_constants(g, box.lower.dtype, box.lower.device)
    state = BoundState(plan, consts, scalar_cuts=req.scalar_cuts)
    batch = box.lower.shape[0]
    x = (box.lower.reshape(batch, *g.input_shape), box.upper.reshape(batch, *g.input_shape))
    empty = torch.zeros(batch, dtype=torch.bool, device=box.lower.device)
    state.bounds[g.input_name], e = _override(req.interm, g.input_name, x)
    empty = empty if e is None else empty | e
    linear: dict[str, LinearBounds] = {}
    for node in g.nodes:
        aux = None
        if node.op_type == SHIFT_BY_MAX:
            aux = shift_index(*state.bounds[node.inputs[0]], node.attrs["axis"])
            state.aux[node.name] = aux
        outs = node_interval(plan, node, state.bounds, consts, aux)
        for name, pair in zip(node.outputs, outs):
            fixed = not req.refresh and req.interm is not None and name in req.interm
            if req.fixed is not None:
                fixed = req.interm is not None and name in req.interm and name in req.fixed
            if (req.method != "ibp" and name in plan.tight
                    and (name not in plan.ibp_exact or _shortcut_wanted(plan, node, name, req))
                    and not fixed and time.monotonic() < req.deadline):
                crown, lin = _crown_rows(state, name, pair, box, req.keep_linear, req.deadline)
                if name not in plan.ibp_exact:   # an exact interval stays bit for bit IBP's
                    pair = crown
                if lin is not None:
                    linear[name] = lin
            pair, e = _override(req.interm, name, pair)
            empty = empty if e is None else empty | e
            state.bounds[name] = _uncross(pair)
    return state, linear, empty


_EXACT_LINEAR_LIMIT = 1 << 22   # most elements * inputs of an exact tensor's linear bounds


def _shortcut_wanted(plan: Plan, node, name: str, req: _Request) -> bool:
    """An exact affine tensor (the first layer) needs no CROWN pass for its interval, but
    BBPS wants its input-space linear bounds (``keep_linear``) as the shortcut: without them
    its neurons are scored on their intervals alone.  Only for a split tensor computed by an
    affine op, and only while the bounds stay small."""
    if not req.keep_linear or name not in plan.needs_bounds or plan.kinds[node.name] != LINEAR:
        return False
    n_x = math.prod(plan.graph.input_shape)
    return math.prod(plan.graph.shapes[name]) * n_x <= _EXACT_LINEAR_LIMIT


def _interval_spec(coeffs: Tensor, lo: Tensor, up: Tensor) -> Tensor:
    """Lower bound of coeffs @ y over the box [lo, up] (0 * inf = 0); coeffs (B, R, m)."""
    lo, up = lo.reshape(lo.shape[0], 1, -1), up.reshape(up.shape[0], 1, -1)
    pos, neg = coeffs.clamp(min=0), coeffs.clamp(max=0)
    term = torch.where(pos == 0, 0.0, pos * lo) + torch.where(neg == 0, 0.0, neg * up)
    return torch.nan_to_num(term.sum(-1), nan=float("-inf"))


# -- public API -----------------------------------------------------------------------------
def spec_bounds(graph: Graph, lower: Tensor, upper: Tensor, coeffs: Tensor, *, method: str,
                options: BoundOptions | None = None, deadline: float | None = None,
                state: Mapping[str, Tensor] | None = None, interm: Mapping[str, Pair] | None = None,
                refresh: bool = True, thresholds: Tensor | None = None,
                groups: Tensor | None = None, keep_linear: bool = False,
                fixed: frozenset[str] | None = None, record_coeffs: bool = False,
                split_constraints: SplitConstraints | None = None) -> SpecBounds:
    """Certified lower bounds of ``coeffs @ y`` for every domain and row.

    lower, upper: (batch, *input_shape) or (batch, input_size).  coeffs: (batch, rows, m) or
    (rows, m), m = output size.  state: alpha parameters of an earlier call (warm start).
    thresholds ((batch, rows) or (rows,)) and groups ((rows,) clause ids, -1 = ignore) only
    let alpha stop early once every group of every domain has a row with lower > threshold,
    and spare the plane search (``options.plane_search``, bounds/planes.py) rows above it.
    fixed: if given, replaces ``refresh``: exactly the ``interm`` tensors named here are taken
    as given (not recomputed); the other ``interm`` tensors are recomputed and intersected.
    record_coeffs: also return ``output_coeffs`` (see ``SpecBounds``).
    split_constraints: optimise beta multipliers of these constraints (method != "ibp").
    """
    options = options or BoundOptions()
    method = _check_method(method)
    deadline = math.inf if deadline is None else deadline
    plan = make_plan(graph)
    box = input_box(plan.graph, lower, upper)
    batch = box.lower.shape[0]
    coeffs = coeffs.to(box.lower)
    if coeffs.dim() == 2:
        coeffs = coeffs.unsqueeze(0).expand(batch, *coeffs.shape)
    req = _Request(method, interm, refresh, keep_linear, deadline,
                   None if fixed is None else frozenset(fixed), options.scalar_cuts)
    recorded: dict[str, Tensor] | None = {} if record_coeffs else None
    x_coeffs = bias = searched = None
    with torch.no_grad():
        bstate, linear, empty = _intermediate(plan, box, req)
        out = bstate.bounds[plan.graph.output_name]
        best = _interval_spec(coeffs, *out)
        if method != "ibp":
            out_shape = plan.graph.shapes[plan.graph.output_name]
            full = coeffs.reshape(batch, coeffs.shape[1], *out_shape)
            search = (options.plane_search and bool(plan.terminal_products)
                      and time.monotonic() < deadline)
            reached = {} if search and recorded is None else recorded   # the search reads it
            x_coeffs, bias = backward(bstate, plan.graph.output_name, full, record=reached,
                                      cuts=not record_coeffs)   # (the search's record is
            # of terminal products, which no cut hides)
            best = torch.maximum(best, concretize(x_coeffs, bias, box.lower, box.upper))
            if search:
                s_coeffs, s_bias = search_planes(bstate, plan.graph.output_name, full, box.lower,
                                                 box.upper, reached, x_coeffs, bias,
                                                 thresholds)
                best = torch.maximum(best, concretize(s_coeffs, s_bias, box.lower, box.upper))
                searched = (s_coeffs, s_bias)
    params: dict[str, Tensor] = {}
    joint = _joint_beta(bstate, split_constraints, method, coeffs)
    betas: dict[str, Pair] = {}
    if joint is not None:
        iterations = max(options.alpha_iterations, split_constraints.iterations)
        best, params = optimise(bstate, coeffs, box, best,
                                replace(options, alpha_iterations=iterations),
                                _Targets(thresholds, groups, deadline, state), beta=joint)
        betas = joint.betas
    elif method == "alpha" and options.alpha_iterations > 0:
        best, params = optimise(bstate, coeffs, box, best, options,
                                _Targets(thresholds, groups, deadline, state))
    if recorded is not None and (params or betas):
        with torch.no_grad():
            recorded.clear()
            terms = beta_terms(bstate, joint.masks, betas, coeffs.shape[1]) if betas else None
            backward(bstate, plan.graph.output_name, full, params or None, record=recorded,
                     split_terms=terms)
    if (joint is None and split_constraints is not None and method != "ibp"
            and split_constraints.iterations > 0):
        best = _optimise_beta(bstate, coeffs, box, best, params, split_constraints,
                              _Targets(thresholds, groups, deadline, None))
    best = torch.where(empty.unsqueeze(1), float("inf"), best)
    return SpecBounds(best.detach(), dict(bstate.bounds), params, linear, method, x_coeffs,
                      recorded or {}, {k: (lo.detach(), up.detach()) for k, (lo, up) in betas.items()},
                      bias, searched)


def _joint_beta(state: BoundState, request: SplitConstraints | None, method: str,
                coeffs: Tensor) -> BetaSetup | None:
    """The joint alpha-beta setup (method "alpha" with split constraints), else None.  Every
    requested tensor gets multipliers (zeros where no constraint is active), so a child's
    warm start always finds its parent's."""
    if request is None or method != "alpha" or request.iterations <= 0:
        return None
    masks = {k: v for k, v in request.masks.items() if k in state.bounds}
    if not any(bool(m_l.any() or m_u.any()) for m_l, m_u in masks.values()):
        return None
    return BetaSetup(masks, init_betas(masks, coeffs, coeffs.shape[1], request.warm), request.lr)


@dataclass(frozen=True)
class _Targets:
    """What alpha optimises towards and when it may stop."""

    thresholds: Tensor | None
    groups: Tensor | None
    deadline: float
    warm: Mapping[str, Tensor] | None


def _optimise_beta(state: BoundState, coeffs: Tensor, box: Box, best: Tensor,
                   params: Mapping[str, Tensor], request: SplitConstraints,
                   targets: "_Targets") -> Tensor:
    """Improve ``best`` (batch, rows) by Lagrangian multipliers of the split constraints."""
    from genbab.bounds.alpha import refuted_rows

    g = state.plan.graph
    batch, rows = coeffs.shape[:2]
    full = coeffs.reshape(batch, rows, *g.shapes[g.output_name])
    masks = {k: v for k, v in request.masks.items() if k in state.bounds
             and bool(v[0].any() or v[1].any())}
    if not masks:
        return best
    betas = {k: tuple(coeffs.new_zeros((batch, rows, v[0][0].numel())).requires_grad_(True)
                      for _ in range(2)) for k, v in masks.items()}
    from genbab.bounds.adam import Adam

    optimiser = Adam([b for pair in betas.values() for b in pair], lr=request.lr)
    fixed_params = {k: v.detach() for k, v in params.items()} or None
    for step in range(request.iterations):
        refuted = refuted_rows(best, targets.thresholds, targets.groups)
        if (refuted is not None and bool(refuted.all())) or time.monotonic() >= targets.deadline:
            break
        with torch.enable_grad():
            terms = beta_terms(state, masks, betas, rows)
            x_coeffs, bias = backward(state, g.output_name, full, fixed_params, split_terms=terms)
            lower = concretize(x_coeffs, bias, box.lower, box.upper)
            best = torch.maximum(best, lower.detach())
            active = torch.isfinite(lower) if refuted is None else torch.isfinite(lower) & ~refuted
            loss = -torch.where(active, lower, 0.0).sum()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
        optimiser.step()
        with torch.no_grad():
            for pair in betas.values():
                for b in pair:
                    b.clamp_(min=0)
    return best


_TIGHTEN_ELEMENTS = 1 << 23   # parameter elements (rows x neurons x k) one tensor may use


def tighten_intermediate(graph: Graph, lower: Tensor, upper: Tensor, interm: Mapping[str, Pair],
                         options: BoundOptions, deadline: float) -> dict[str, Pair]:
    """alpha-CROWN on the intermediate tensors themselves (algorithms.md 2: optimised
    intermediate bounds): for every CROWN-bounded tensor in topological order, the rows
    ``+-h_j`` of its open neurons (unstable ones for ReLU inputs) get their own relaxation
    parameters, optimised for ``options.alpha_iterations`` steps, and the result is intersected
    with ``interm`` (every perturbed tensor's interval, e.g. ``SpecBounds.intermediate``) before
    the next tensor is bounded, so later tensors see the tighter relaxations.  Any parameters
    give sound bounds; tensors whose parameters would exceed ``_TIGHTEN_ELEMENTS``, and all
    tensors once ``deadline`` passes, keep their interval."""
    plan = make_plan(graph)
    box = input_box(plan.graph, lower, upper)
    current = dict(interm)
    order = [o for n in plan.graph.nodes for o in n.outputs
             if o in plan.tight and o not in plan.ibp_exact and o in current]
    per_row = sum(plan.rules[n.name].num_params * math.prod(plan.graph.shapes[n.inputs[0]])
                  for n in plan.graph.nodes if n.name in plan.rules
                  and plan.rules[n.name].num_params) or 1
    batch = lower.shape[0]
    for name in order:
        if time.monotonic() >= deadline:
            break
        if 2 * math.prod(plan.graph.shapes[name]) * batch * per_row > _TIGHTEN_ELEMENTS:
            continue                # too large even if every neuron were open
        req = _Request("crown", current, False, False, deadline, frozenset(current))
        with torch.no_grad():
            state, _, _ = _intermediate(plan, box, req)
        current = dict(state.bounds)
        lo, up = (t.reshape(t.shape[0], -1) for t in current[name])
        need = lo < up
        if name in plan.relu_only:
            need &= (lo < 0) & (up > 0)
        index = torch.nonzero(need.any(dim=0)).flatten()
        if index.numel() == 0:
            continue
        current[name] = _tighten_rows(state, name, index, box, options, deadline)
    return current


def _tighten_rows(state: BoundState, name: str, index: Tensor, box: Box,
                  options: BoundOptions, deadline: float) -> Pair:
    """The interval of ``name`` with the neurons ``index`` bounded by alpha-CROWN."""
    shape = state.plan.graph.shapes[name]
    lo, up = state.bounds[name]
    batch, n = lo.shape[0], index.numel()
    eye = lo.new_zeros((2 * n, math.prod(shape)))
    rows = torch.arange(n, device=lo.device)
    eye[rows, index] = 1.0
    eye[rows + n, index] = -1.0
    coeffs = eye.unsqueeze(0).expand(batch, 2 * n, -1)
    with torch.no_grad():
        x_coeffs, bias = backward(state, name, coeffs.reshape(batch, 2 * n, *shape))
        crown = concretize(x_coeffs, bias, box.lower, box.upper)
    best, _ = optimise(state, coeffs, box, crown, options,
                       _Targets(None, None, deadline, None), start=name)
    new_lo, new_up = lo.reshape(batch, -1).clone(), up.reshape(batch, -1).clone()
    new_lo[:, index] = torch.maximum(new_lo[:, index], best[:, :n])
    new_up[:, index] = torch.minimum(new_up[:, index], -best[:, n:])
    return _uncross((new_lo.reshape(lo.shape), new_up.reshape(up.shape)))


def output_bounds(graph: Graph, lower: Tensor, upper: Tensor, *, method: str,
                  options: BoundOptions | None = None,
                  deadline: float | None = None) -> tuple[Tensor, Tensor]:
    """Certified bounds of every output element: two ``(batch, *output_shape)`` tensors."""
    method = _check_method(method)
    m = graph.output_size
    eye = torch.eye(m, dtype=lower.dtype, device=lower.device)
    coeffs = torch.cat([eye, -eye], dim=0)
    result = spec_bounds(graph, lower, upper, coeffs, method=method, options=options,
                         deadline=deadline)
    batch = result.lower.shape[0]
    shape = (batch, *graph.output_shape)
    return result.lower[:, :m].reshape(shape), (-result.lower[:, m:]).reshape(shape)


# -- proving a property -----------------------------------------------------------------------
_DISJUNCT_CHUNK = 64


def _stack_disjuncts(disjuncts: list, dtype: torch.dtype, device: torch.device):
    """Input boxes (B, n), padded rows (B, R, m), thresholds (B, R) and clause ids (B, R)."""
    rows = max(sum(c.num_rows for c in d.clauses) for d in disjuncts)
    m = disjuncts[0].clauses[0].coeffs.shape[1]
    coeffs = torch.zeros((len(disjuncts), rows, m), dtype=torch.float64)
    thresholds = torch.full((len(disjuncts), rows), math.inf, dtype=torch.float64)
    groups = torch.full((len(disjuncts), rows), -1, dtype=torch.int64)
    for b, d in enumerate(disjuncts):
        r = 0
        for k, clause in enumerate(d.clauses):
            coeffs[b, r:r + clause.num_rows] = torch.from_numpy(np.array(clause.coeffs))
            thresholds[b, r:r + clause.num_rows] = torch.from_numpy(np.array(clause.thresholds))
            groups[b, r:r + clause.num_rows] = k
            r += clause.num_rows
    lower = torch.from_numpy(np.stack([d.lower for d in disjuncts]))
    upper = torch.from_numpy(np.stack([d.upper for d in disjuncts]))
    to = dict(dtype=dtype, device=device)
    return lower.to(**to), upper.to(**to), coeffs, thresholds, groups


def _clause_margins(lower: Tensor, thresholds: Tensor, groups: Tensor, num_clauses: list[int]):
    """Per disjunct, per clause: max over its rows of lower - threshold (float64, NaN -> -inf)."""
    margin = torch.nan_to_num(lower.double().cpu() - thresholds, nan=-math.inf)
    margin = torch.where(torch.isfinite(lower.double().cpu()), margin, -math.inf)
    result = []
    for b, count in enumerate(num_clauses):
        result.append([float(margin[b][groups[b] == k].max()) if bool((groups[b] == k).any())
                       else -math.inf for k in range(count)])
    return result


def _prove_chunk(graph: Graph, disjuncts: list, options: BoundOptions, strongest: str,
                 deadline: float, dtype: torch.dtype, device: torch.device):
    lower, upper, coeffs, thresholds, groups = _stack_disjuncts(disjuncts, dtype, device)
    counts = [len(d.clauses) for d in disjuncts]
    best = [[-math.inf] * c for c in counts]
    used = "ibp"
    alive = list(range(len(disjuncts)))
    # the alpha call runs CROWN first (and stops at once if CROWN already refutes everything)
    for method in dict.fromkeys(("ibp", strongest)):
        if not alive or time.monotonic() >= deadline:
            break
        idx = torch.tensor(alive)
        result = spec_bounds(graph, lower[idx], upper[idx], coeffs[idx].to(dtype=dtype, device=device),
                             method=method, options=options, deadline=deadline,
                             thresholds=thresholds[idx].to(dtype=dtype, device=device),
                             groups=groups[idx].to(device))
        used = method
        margins = _clause_margins(result.lower, thresholds[idx], groups[idx], [counts[i] for i in alive])
        for i, m in zip(alive, margins):
            best[i] = [max(a, b) for a, b in zip(best[i], m)]
        alive = [i for i in alive if not all(v > 0 for v in best[i])]
    return best, used


def prove(graph: Graph, prop: Any, options: Any = None, deadline: float | None = None) -> ProofOutcome:
    """Try to prove ``prop`` (a ``vnnlib.property.Property``) by IBP, then CROWN, then alpha
    (up to ``options.method``), all clauses of a disjunct stacked as rows and disjuncts batched.

    options: a ``BoundOptions`` or anything with a ``.bounds`` (``VerifyOptions``, whose
    ``device``/``dtype`` are then used).  NaN or infinite bounds never count as a proof."""
    bound_opts = getattr(options, "bounds", options) or BoundOptions()
    device = torch.device(getattr(options, "device", "cpu"))
    dtype = torch.float64 if getattr(options, "dtype", "float32") == "float64" else torch.float32
    strongest = _check_method(bound_opts.method)
    deadline = math.inf if deadline is None else deadline
    disjuncts = list(prop.disjuncts)
    margins: list[list[float]] = []
    used = "ibp"
    for start in range(0, len(disjuncts), _DISJUNCT_CHUNK):
        chunk = disjuncts[start:start + _DISJUNCT_CHUNK]
        best, method = _prove_chunk(graph, chunk, bound_opts, strongest, deadline, dtype, device)
        margins.extend(best)
        used = max(used, method, key=METHODS.index)
    refuted = tuple(tuple(m > 0 for m in row) for row in margins)
    verified = len(refuted) == len(disjuncts) and all(all(r) for r in refuted)
    timed_out = not verified and time.monotonic() >= deadline
    return ProofOutcome(verified, refuted, tuple(tuple(r) for r in margins), used, timed_out)
