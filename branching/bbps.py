"""Which neuron to split in activation-split BaB: BBPS and the BaBSR-like baseline
(algorithms.md 5).

Both score every candidate neuron ``h_j`` of every split tensor by how much the domain's bound
is estimated to improve if ``h_j`` were split at its point, from the coefficients ``Lambda_g``
(``SpecBounds.output_coeffs``) reaching the output of each consumer ``g`` of ``h`` in the last
final backward pass, and the consumer's default relaxation rebuilt on the children's intervals.
One step back through ``g`` gives, per neuron and row, ``A_j h_j + c_j`` (5.1 step 1):

* BaBSR-like (5.2): only the change of the constant ``c_j``;
* BBPS (5.1): the change of ``min_x`` of the layer's sum ``sum_j Phi_j(x)`` when neuron j's
  term is rebuilt, with ``h``'s input-space linear bounds from the root as the shortcut.  The
  coupled form costs ``(batch, rows, K, n_x)`` for K candidates, so it is computed for as many
  candidates per domain as ``COUPLED_BUDGET`` allows (at least ``refine``; on the zoo's MLPs
  and CNNs, all of them), pre-ranked by the BaBSR-like score.

Why that pre-ranking: on the zoo's sin, tanh and sigmoid networks the rank correlation with the
true improvement of the worst child (measured by bounding both children of every candidate of
the root) was +0.4 to +1.0 for the coupled form, +0.1 to +0.4 for BaBSR, and -0.1 to -0.8 for
the separable form (each term concretised on its own interval) that used to pre-rank the top 8:
BBPS then only ever compared the neurons least worth splitting, and proved less than BaBSR.
The coupled form still underrates neurons deep in the network (on a 6x100 sigmoid MLP, the last
hidden layer's mean estimated gain was -0.005 against a true +0.012), so branch-and-bound
settles disagreements with BaBSR's pick by bounding both (``neuron_bab._arbitrate``).

Per candidate: ``reduce_k`` (min over the two children) of the change, then min over the rows of
still-open clauses.  Non-candidates score ``-inf``.  Only unary consumers are scored; a tensor
read by a Mul or MatMul gets no contribution from that consumer (its score may then be 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from genbab.bounds.plan import UNARY, Plan
from genbab.lut.table import KINK_OPS, Consumer, signature_key
from genbab.verifier.graph import Node

Pair = tuple[Tensor, Tensor]
RELU_LIKE = frozenset({"Relu", "LeakyRelu"})
MIN_GAP = 0.01      # general neurons narrower than this are not split (algorithms.md 4.1)
COUPLED_BUDGET = 1 << 25    # batch * rows * candidates * n_x elements of coupled BBPS per round
_COUPLED_CHUNK = 1 << 22    # ... per batched concretisation (16 MiB in float32)


@dataclass(frozen=True)
class SplitNode:
    """A split tensor (plan graph name), its nonlinear consumers, whether it splits at 0
    (a ReLU-like consumer) and its branching-point table key (None: midpoint or 0).

    ``kinks``: the points where some unary consumer is not differentiable (``OpRule.kinks``:
    Clip's min and max, HardSwish's -3 and 3, Shrink's jumps); a neuron whose interval holds
    one is split there, where both children's relaxations become exact or much tighter.
    ``piecewise``: every consumer is piecewise linear, so a neuron with no kink inside its
    interval is already exact and is not a candidate (as a stable ReLU)."""

    tensor: str
    consumers: tuple[Node, ...]
    at_zero: bool
    key: str | None
    kinks: tuple[float, ...] = ()
    piecewise: bool = False


@dataclass(frozen=True)
class Shortcut:
    """Input-space linear bounds of every neuron of one split tensor (from the root; stale in
    subdomains, which is harmless for a heuristic).  ``known``: (n_h,) neurons that have them;
    the others fall back to their interval.  Coefficients (n_h, n_x), biases (n_h,)."""

    known: Tensor
    lower_coeffs: Tensor
    lower_bias: Tensor
    upper_coeffs: Tensor
    upper_bias: Tensor


def split_nodes(plan: Plan) -> list[SplitNode]:
    """Every tensor that feeds a relaxation, in topological order."""
    g = plan.graph
    consumers = g.consumers()
    order = [g.input_name] + [o for n in g.nodes for o in n.outputs]
    result = []
    for name in order:
        if name not in plan.needs_bounds:
            continue
        users = tuple(n for n in consumers.get(name, []) if n.name in plan.rules)
        at_zero = any(n.op_type in RELU_LIKE for n in users)
        key = None if at_zero else _table_key(plan, name, users)
        unary = [plan.rules[n.name] for n in users if plan.kinds[n.name] == UNARY]
        kinks = tuple(sorted({k for rule in unary for k in rule.kinks}))
        piecewise = bool(unary) and len(unary) == len(users) and all(
            rule.piecewise_linear for rule in unary)
        result.append(SplitNode(name, users, at_zero, key, kinks, piecewise and bool(kinks)))
    return result


def kink_inside(node: SplitNode, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """Per neuron (same shape as ``lower``): whether one of ``node.kinks`` lies strictly
    inside ``(lower, upper)``, and the one nearest the midpoint (0 where there is none)."""
    if not node.kinks:
        return torch.zeros_like(lower, dtype=torch.bool), torch.zeros_like(lower)
    kinks = torch.tensor(node.kinks, dtype=lower.dtype, device=lower.device)
    lo, up = lower.unsqueeze(-1), upper.unsqueeze(-1)
    inside = (lo < kinks) & (kinks < up)
    distance = torch.where(inside, (kinks - (lo + up) / 2).abs(), math.inf)
    nearest = distance.argmin(dim=-1, keepdim=True)
    point = kinks.expand_as(distance).gather(-1, nearest).squeeze(-1)
    has = inside.any(dim=-1)
    return has, torch.where(has, point, torch.zeros_like(point))


def _table_key(plan: Plan, name: str, users: tuple[Node, ...]) -> str | None:
    parts = []
    for node in users:
        rule = plan.rules[node.name]
        if plan.kinds[node.name] != UNARY:
            return None                  # Mul tables need the other factor: midpoint for now
        if node.op_type == "Celu" and float(node.attrs.get("alpha", 1.0)) != 1.0:
            return None                  # the Celu table is for alpha = 1: midpoint instead
        parts.append(Consumer(node.op_type, 1, 0, rule.input_range,
                              node.attrs.get("exponent") if node.op_type == "Pow" else None,
                              node.attrs.get("approximate")))
    if any(p.op_type in KINK_OPS for p in parts):
        return None
    return signature_key(parts)


def candidates(node: SplitNode, lower: Tensor, upper: Tensor) -> Tensor:
    """(B, n) which neurons may be split: ReLU-fed ones when unstable, piecewise-linear ones
    when a kink is inside, others when wide (or when a kink is inside)."""
    if node.at_zero:
        return (lower < 0) & (upper > 0)
    has_kink, _ = kink_inside(node, lower, upper)
    if node.piecewise:
        return has_kink
    return has_kink | ((upper - lower) >= MIN_GAP)


def shortcuts(plan: Plan, linear: dict, nodes: list[SplitNode]) -> dict[str, Shortcut]:
    """Per split tensor, the root's linear bounds (``SpecBounds.linear`` of batch 1)."""
    result = {}
    for node in nodes:
        lin = linear.get(node.tensor)
        if lin is None:
            continue
        n_h = _numel(plan.graph.shapes[node.tensor])
        n_x = lin.lower_coeffs.shape[-1]
        known = torch.zeros(n_h, dtype=torch.bool, device=lin.index.device)
        known[lin.index] = True
        parts = []
        for t in (lin.lower_coeffs, lin.lower_bias, lin.upper_coeffs, lin.upper_bias):
            full = t.new_zeros((n_h, n_x) if t.dim() == 3 else (n_h,))
            full[lin.index] = t[0]
            parts.append(full)
        result[node.tensor] = Shortcut(known, *parts)
    return result


def _numel(shape) -> int:
    return math.prod(shape)


@dataclass(frozen=True)
class _Step:
    """One relaxation step back to h: per (B, R, n) slope ``coeffs`` and constant ``bias``."""

    coeffs: Tensor
    bias: Tensor


def _step_back(plan: Plan, node: SplitNode, lam: dict[str, Tensor], lower: Tensor,
               upper: Tensor) -> _Step | None:
    """Sum over unary consumers g of ``[L]+ (a_lo h + b_lo) + [L]- (a_up h + b_up)``."""
    coeffs = bias = None
    for g in node.consumers:
        if plan.kinds[g.name] != UNARY or g.outputs[0] not in lam:
            continue
        L = lam[g.outputs[0]].flatten(2)                                   # (B, R, n)
        rel = plan.rules[g.name].relax(lower, upper, None)
        pos, neg = L.clamp(min=0), L.clamp(max=0)
        f = lambda t: t.reshape(L.shape[0], 1, -1)                         # noqa: E731
        a = pos * f(rel.lower_slope) + neg * f(rel.upper_slope)
        b = (torch.where(pos == 0, 0.0, pos * f(rel.lower_bias))
             + torch.where(neg == 0, 0.0, neg * f(rel.upper_bias)))
        coeffs = a if coeffs is None else coeffs + a
        bias = b if bias is None else bias + b
    return None if coeffs is None else _Step(coeffs, bias)


@dataclass(frozen=True)
class ScoreInput:
    """What scoring needs per batch of B parent domains.  intervals: tensor -> (B, n) flat;
    points: tensor -> (B, n) split points; coeffs: recorded ``output_coeffs``; open_rows:
    (B, R) rows of clauses not yet refuted; box: (B, n_x) input bounds."""

    intervals: dict[str, Pair]
    points: dict[str, Tensor]
    coeffs: dict[str, Tensor]
    open_rows: Tensor
    box: Pair


def _reduce_rows(delta: Tensor, open_rows: Tensor) -> Tensor:
    """(B, R, n) -> (B, n): min over open rows (all rows if none is open)."""
    mask = open_rows if bool(open_rows.any()) else torch.ones_like(open_rows)
    mask = mask | ~mask.any(dim=1, keepdim=True)
    return torch.where(mask.unsqueeze(-1), delta, math.inf).amin(dim=1)


def local_scores(plan: Plan, nodes: list[SplitNode], data: ScoreInput) -> dict[str, Tensor]:
    """(B, n) per split tensor: the BaBSR-like score, the change of the constant of the
    one-step-back bound (BBPS's pre-ranking too)."""
    result = {}
    for node in nodes:
        lower, upper = data.intervals[node.tensor]
        mask = candidates(node, lower, upper)
        point = data.points[node.tensor]
        parent = _step_back(plan, node, data.coeffs, lower, upper)
        if parent is None:
            result[node.tensor] = torch.where(mask, 0.0, -math.inf).to(lower)
            continue
        deltas = []
        for lo, up in ((lower, torch.where(mask, point, upper)),
                       (torch.where(mask, point, lower), upper)):
            deltas.append(_step_back(plan, node, data.coeffs, lo, up).bias - parent.bias)
        delta = torch.minimum(*deltas)
        score = _reduce_rows(torch.nan_to_num(delta, nan=-math.inf), data.open_rows)
        result[node.tensor] = torch.where(mask, score, -math.inf)
    return result


def coupled_scores(plan: Plan, node: SplitNode, data: ScoreInput, shortcut: Shortcut,
                   index: Tensor) -> Tensor:
    """BBPS proper (5.1 steps 2-4) for the neurons ``index`` (B, K) of one split tensor:
    (B, K) scores, in chunks of candidates that keep each concretisation near
    ``_COUPLED_CHUNK`` elements."""
    batch, rows = data.open_rows.shape
    per = max(1, batch * rows * data.box[0].shape[1])
    step = max(1, _COUPLED_CHUNK // per)
    parts = [_coupled_chunk(plan, node, data, shortcut, index[:, i:i + step])
             for i in range(0, index.shape[1], step)]
    return torch.cat(parts, dim=1) if parts else index.new_zeros(index.shape, dtype=data.box[0].dtype)


def _coupled_chunk(plan: Plan, node: SplitNode, data: ScoreInput, shortcut: Shortcut,
                   index: Tensor) -> Tensor:
    lower, upper = data.intervals[node.tensor]
    point = data.points[node.tensor]
    parent = _step_back(plan, node, data.coeffs, lower, upper)
    if parent is None:
        return torch.zeros(index.shape, dtype=lower.dtype, device=lower.device)
    known = shortcut.known.unsqueeze(0)
    w_lo = torch.where(known, shortcut.lower_bias.unsqueeze(0), lower)    # (B, n)
    w_up = torch.where(known, shortcut.upper_bias.unsqueeze(0), upper)
    W_lo, W_up = shortcut.lower_coeffs, shortcut.upper_coeffs                # (n, n_x)
    A = parent.coeffs
    S = A.clamp(min=0) @ W_lo + A.clamp(max=0) @ W_up                        # (B, R, n_x)
    const = (A.clamp(min=0) * w_lo.unsqueeze(1) + A.clamp(max=0) * w_up.unsqueeze(1)
             + parent.bias).sum(-1)                                          # (B, R)
    x_lo, x_up = data.box
    base = _concretise(S, const, x_lo, x_up)                                 # (B, R)
    gather = lambda t: torch.gather(t, -1, index.unsqueeze(1).expand(-1, t.shape[1], -1))  # noqa
    pick = lambda t: torch.gather(t, 1, index)                                # noqa: E731
    l_k, u_k, p_k = pick(lower), pick(upper), pick(point)
    a_par, b_par = gather(A), gather(parent.bias)                            # (B, R, K)
    wl_k, wu_k = pick(w_lo).unsqueeze(1), pick(w_up).unsqueeze(1)
    Wl_k, Wu_k = W_lo[index], W_up[index]                                    # (B, K, n_x)
    deltas = []
    for lo, up in ((l_k, p_k), (p_k, u_k)):
        full_lo, full_up = lower.clone(), upper.clone()
        full_lo.scatter_(1, index, lo)
        full_up.scatter_(1, index, up)
        child = _step_back(plan, node, data.coeffs, full_lo, full_up)
        a_ch, b_ch = gather(child.coeffs), gather(child.bias)
        dpos = a_ch.clamp(min=0) - a_par.clamp(min=0)
        dneg = a_ch.clamp(max=0) - a_par.clamp(max=0)
        dS = (dpos.unsqueeze(-1) * Wl_k.unsqueeze(1) + dneg.unsqueeze(-1) * Wu_k.unsqueeze(1))
        dc = dpos * wl_k + dneg * wu_k + b_ch - b_par                         # (B, R, K)
        value = _concretise(S.unsqueeze(2) + dS, const.unsqueeze(2) + dc,
                            x_lo.unsqueeze(1), x_up.unsqueeze(1))
        deltas.append(value - base.unsqueeze(-1))
    delta = torch.nan_to_num(torch.minimum(*deltas), nan=-math.inf)
    return _reduce_rows(delta, data.open_rows)


def _no_shortcut(n_h: int, like: Tensor) -> Shortcut:
    """Every neuron falls back to its interval (e.g. a first layer, whose bounds IBP gives)."""
    zeros = like.new_zeros((n_h, like.shape[1]))
    return Shortcut(torch.zeros(n_h, dtype=torch.bool, device=like.device), zeros,
                    like.new_zeros(n_h), zeros, like.new_zeros(n_h))


def _concretise(coeffs: Tensor, const: Tensor, x_lo: Tensor, x_up: Tensor) -> Tensor:
    """min over the box of ``coeffs . x + const``; coeffs (B, R, [K,] n_x), box (B, [1,] n_x)."""
    while x_lo.dim() < coeffs.dim():
        x_lo, x_up = x_lo.unsqueeze(1), x_up.unsqueeze(1)
    return (coeffs.clamp(min=0) * x_lo + coeffs.clamp(max=0) * x_up).sum(-1) + const


def choose_neurons(plan: Plan, nodes: list[SplitNode], data: ScoreInput, heuristic: str,
                   cuts: dict[str, Shortcut], refine: int = 8) -> tuple[Tensor, Tensor, Tensor]:
    """Per domain the best candidate: (B,) split-node position in ``nodes`` (-1: none),
    (B,) flat neuron index, (B,) its score."""
    local = local_scores(plan, nodes, data)
    flat = torch.cat([local[n.tensor] for n in nodes], dim=1)                # (B, N)
    offsets = [0]
    for n in nodes:
        offsets.append(offsets[-1] + local[n.tensor].shape[1])
    if heuristic == "bbps":
        flat = _refine(plan, nodes, data, cuts, flat, offsets, refine)
    score, pos = flat.max(dim=1)
    bounds = torch.tensor(offsets[1:], device=pos.device)
    which = torch.bucketize(pos, bounds, right=True)
    start = torch.tensor(offsets[:-1], device=pos.device)[which.clamp(max=len(nodes) - 1)]
    which = torch.where(torch.isfinite(score), which, -1)
    return which, pos - start, score


def coupled_count(batch: int, rows: int, n_x: int, refine: int, total: int) -> int:
    """How many candidates per domain get the coupled score: as many as ``COUPLED_BUDGET``
    allows, at least ``refine``, at most ``total``."""
    return min(total, max(refine, COUPLED_BUDGET // max(1, batch * rows * n_x)))


def _refine(plan, nodes, data, cuts, flat, offsets, refine: int) -> Tensor:
    """Replace the top pre-ranked scores of each domain by coupled BBPS scores (the others
    become -inf).  Each split tensor scores only the columns that fall in it, padded to the
    largest count over the batch."""
    batch, rows = data.open_rows.shape
    k = coupled_count(batch, rows, data.box[0].shape[1], max(refine, 1), flat.shape[1])
    top_score, top = flat.topk(k, dim=1)
    out = torch.full_like(flat, -math.inf)
    for i, node in enumerate(nodes):
        inside = (top >= offsets[i]) & (top < offsets[i + 1]) & torch.isfinite(top_score)
        width = int(inside.sum(dim=1).max())
        if width == 0:
            continue
        cols = torch.argsort((~inside).to(torch.int8), dim=1, stable=True)[:, :width]
        valid = inside.gather(1, cols)
        chosen = top.gather(1, cols)
        local = (chosen - offsets[i]).clamp(0, offsets[i + 1] - offsets[i] - 1)
        cut = cuts.get(node.tensor) or _no_shortcut(offsets[i + 1] - offsets[i], data.box[0])
        coupled = coupled_scores(plan, node, data, cut, local)
        current = out.gather(1, chosen)
        out.scatter_(1, chosen, torch.where(valid, coupled, current))
    return out
