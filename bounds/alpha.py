"""alpha-CROWN (algorithms.md 2): optimise the relaxation parameters of the final backward pass.

Parameters exist per nonlinear node, per domain, per spec row and per neuron:
``(k, batch, rows, *shape)``, initialised by the rule's ``init_params`` (or a warm start of the
same shape).  Intermediate bounds stay fixed (they were computed by CROWN).  Each iteration is
one differentiable backward pass; Adam ascends the sum of the lower bounds of the rows not yet
decided, the rule's ``project_params`` keeps the iterate feasible, and the best bound (and its
parameters) is kept per row, starting from the CROWN bound, so the result is never looser.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import torch
from torch import Tensor

from genbab.bounds.adam import Adam
from genbab.bounds.backward import BoundState, backward, concretize, param_shape_bounds
from genbab.bounds.beta import BetaSetup, beta_terms, clamp_betas, keep_best
from genbab.bounds.box import Box
from genbab.bounds.plan import LINEAR
from genbab.verifier.options import BoundOptions

_LR_DECAY = 0.98


def _init_params(state: BoundState, rows: int, warm: Mapping[str, Tensor] | None) -> dict[str, Tensor]:
    params: dict[str, Tensor] = {}
    for node in state.plan.graph.nodes:
        if state.plan.kinds[node.name] == LINEAR:
            continue
        rule = state.plan.rules[node.name]
        if rule.num_params == 0 or rule.init_params is None:
            continue
        lower, upper = param_shape_bounds(state, node)
        init = rule.init_params(lower, upper)                       # (k, batch, *shape)
        shape = (init.shape[0], init.shape[1], rows, *init.shape[2:])
        start = warm.get(node.name) if warm else None
        if start is not None and tuple(start.shape) == shape:
            value = start.to(init)
        else:
            value = init.unsqueeze(2).expand(shape)
        params[node.name] = value.detach().clone().requires_grad_(True)
    return params


def refuted_rows(lower: Tensor, thresholds: Tensor | None, groups: Tensor | None) -> Tensor | None:
    """(batch, rows): whether the row's group (clause) is already refuted; None = no targets.
    groups: (rows,) or (batch, rows) clause ids, -1 for rows to ignore (always "refuted")."""
    if thresholds is None:
        return None
    ok = lower > thresholds.to(lower).expand_as(lower)
    if groups is None:
        return ok
    groups = groups.to(lower.device).expand_as(lower)
    valid = groups >= 0
    ids = groups.clamp(min=0)
    onehot = torch.nn.functional.one_hot(ids, int(ids.max()) + 1).to(lower.dtype)
    onehot = onehot * valid.unsqueeze(-1).to(lower.dtype)          # (batch, rows, groups)
    per_group = torch.einsum("br,brg->bg", ok.to(lower.dtype), onehot) > 0
    return torch.where(valid, torch.gather(per_group, 1, ids), True)


def _project(state: BoundState, params: dict[str, Tensor], rows: int) -> None:
    nodes = {n.name: n for n in state.plan.graph.nodes if n.name in params}
    with torch.no_grad():
        for name, p in params.items():
            rule = state.plan.rules[name]
            if rule.project_params is None:
                continue
            lower, upper = param_shape_bounds(state, nodes[name])
            lower, upper = _expand(lower, rows), _expand(upper, rows)
            p.copy_(rule.project_params(lower, upper, p))


def _expand(bounds: Any, rows: int) -> Any:
    if isinstance(bounds, tuple):
        return tuple(_expand(b, rows) for b in bounds)
    return bounds.unsqueeze(1).expand(bounds.shape[0], rows, *bounds.shape[1:])


def optimise(state: BoundState, coeffs: Tensor, box: Box, crown_lower: Tensor,
             options: BoundOptions, targets: Any,
             beta: BetaSetup | None = None,
             start: str | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Best lower bounds ``(batch, rows)`` and the parameters that gave them.

    beta: also optimise these split multipliers jointly (one backward pass per iteration for
    both); the best multipliers per row are left in ``beta.betas``.  start: the tensor whose
    rows ``coeffs`` bounds (default: the output; an intermediate tensor for tighter intervals)."""
    g = state.plan.graph
    batch, rows = coeffs.shape[:2]
    start = start or g.output_name
    full = coeffs.reshape(batch, rows, *g.shapes[start])
    best = crown_lower.clone()
    with torch.no_grad():
        params = _init_params(state, rows, targets.warm)
    if not params and beta is None:
        return best, {}
    _project(state, params, rows)
    best_params = {k: v.detach().clone() for k, v in params.items()}
    optimisers = [Adam(list(params.values()), lr=options.alpha_lr)]
    best_betas = {}
    if beta is not None:
        optimisers.append(Adam([b for pair in beta.betas.values() for b in pair], lr=beta.lr))
        best_betas = {k: tuple(b.detach().clone() for b in pair) for k, pair in beta.betas.items()}
    last = 0.0
    for step in range(options.alpha_iterations + 1):
        refuted = refuted_rows(best, targets.thresholds, targets.groups)
        if refuted is not None and bool(refuted.all()):
            break
        begun = time.monotonic()
        if begun + last >= targets.deadline:   # a step like the last would end past it
            break
        terms = None if beta is None else beta_terms(state, beta.masks, beta.betas, rows)
        x_coeffs, bias = backward(state, start, full, params or None, split_terms=terms)
        lower = concretize(x_coeffs, bias, box.lower, box.upper)
        with torch.no_grad():
            improved = lower > best
            best = torch.where(improved, lower, best)
            for name, p in params.items():
                mask = improved.reshape(1, batch, rows, *([1] * (p.dim() - 3)))
                best_params[name] = torch.where(mask, p.detach(), best_params[name])
            if beta is not None:
                best_betas = keep_best(best_betas, beta.betas, improved)
        if step == options.alpha_iterations:
            break
        active = torch.isfinite(lower) if refuted is None else torch.isfinite(lower) & ~refuted
        loss = -torch.where(active, lower, 0.0).sum()
        if not loss.requires_grad:
            break
        for opt in optimisers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for p in params.values():
            if p.grad is not None:
                p.grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        for opt in optimisers:
            opt.step()
            opt.decay_lr(_LR_DECAY)
        _project(state, params, rows)
        last = time.monotonic() - begun
        if beta is not None:
            clamp_betas(beta.betas)
    if beta is not None:
        beta.betas = best_betas
    return best.detach(), best_params
