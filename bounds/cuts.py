"""Scalar cuts: where a CROWN pass may stop early (``BoundOptions.scalar_cuts``).

Closed-loop models such as lsnc's send a whole controller through one or two scalars (a
control input, a dynamics term), and every intermediate row behind them repeats the pass
through the controller.  Two shortcuts, both sound, taken by ``backward`` passes that allow
them (``cuts=True``) when the state has them on:

* **Scalar cut** (``Plan.scalar_cuts``): at a one-element tensor ``s`` a row's coefficient
  ``c`` is replaced by ``c * L_s`` (``c >= 0``) or ``c * U_s`` (``c < 0``), where ``L_s <=
  s <= U_s`` are ``s``'s own input-space linear bounds, computed once per call by a pass of
  the two rows ``+-s`` when more rows than that need them.  The pass behind one element is
  positively homogeneous in its coefficient, so this is exact when nothing behind ``s`` is
  also reached by another path; where it is (lsnc's dynamics terms share the controller),
  rows no longer cancel there and the bound is a little looser.
* **Cut-affine tensor** (``Plan.cut_affine``): a small tensor that only linear ops connect
  to the input and to scalar cuts is a constant affine map of them.  That map (its
  Jacobian, computed once per graph) replaces the chain of linear ops, and the cuts' linear
  bounds are applied to its cut columns.  This is exact given the cuts.

On lsnc quadrotor2d_state_0 the intermediate rows of the dynamics (24 of them) and the rows
of the final bound stop at three scalars instead of each passing through the controller.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from genbab.bounds.plan import LINEAR
from genbab.bounds.steps import bias_sum, linear_step

Backward = Callable[..., tuple[Tensor, Tensor]]   # bounds.backward.backward

_CUT_ROWS = 2   # a cut's own linear bounds take a pass of 2 rows: worth it for more rows
# (or once they are known)


def stop_early(state, name: str, start: str, outs: list, bias: Tensor,
               pending: dict[str, Tensor], backward: Backward) -> tuple[list, Tensor]:
    """At the node making ``name`` (whose coefficients ``outs[0]`` are complete): replace
    the pass behind it if it is a cut-affine tensor or a scalar cut (not the pass's own
    start).  Returns the node's remaining coefficients and the bias.  ``backward``: the
    pass itself (``bounds.backward.backward``), for the cuts' own linear bounds."""
    plan = state.plan
    rows = outs[0].shape[1]
    if name in plan.cut_affine and rows > _CUT_ROWS * _missing(state, name, outs[0]):
        bias = _jump(state, name, outs[0], bias, pending, backward)
    elif name in plan.scalar_cuts and name != start:
        known = state.cut_bounds.get(name)
        if known is None and rows <= _CUT_ROWS:
            return outs, bias
        bias = _substitute(state, [name], outs[0].flatten(2), bias, pending, backward)
    else:
        return outs, bias
    return [None] + list(outs[1:]), bias


def _missing(state, name: str, like: Tensor) -> int:
    """How many of the cuts that the cut-affine ``name`` reads have no linear bounds yet."""
    return sum(1 for cut in _jacobian(state, name, like)[1] if cut not in state.cut_bounds)


def cut_bounds(state, name: str, like: Tensor,
               backward: Backward) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The scalar cut's input-space linear bounds ``(lower_coeffs (B, 1, n), lower_bias
    (B, 1), upper_coeffs, upper_bias)``, computed on first need.  ``like``: any tensor of
    the pass's batch size and dtype."""
    known = state.cut_bounds.get(name)
    if known is None:
        shape = state.plan.graph.shapes[name]
        batch = like.shape[0]
        unit = like.new_tensor([1.0, -1.0]).reshape(1, 2, *shape).expand(batch, 2, *shape)
        known = as_cut_bounds(*backward(state, name, unit, cuts=True))
        state.cut_bounds[name] = known
    return known


def as_cut_bounds(x: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A scalar's linear bounds in ``cut_bounds`` form from the pass of its rows ``+-s``
    (``x`` (B, 2, n), ``b`` (B, 2))."""
    return x[:, :1], b[:, :1], -x[:, 1:], -b[:, 1:]


def _substitute(state, names: list[str], weights: Tensor, bias: Tensor,
                pending: dict[str, Tensor], backward: Backward) -> Tensor:
    """Add ``weights (B, R, K)`` on the scalar cuts ``names`` to the input's coefficients via
    the cuts' linear bounds (lower for positive weights, upper for negative ones)."""
    known = [cut_bounds(state, name, bias, backward) for name in names]
    low, low_b, up, up_b = (torch.cat([k[i] for k in known], dim=1) for i in range(4))
    pos, neg = weights.clamp(min=0), weights.clamp(max=0)
    batch, count = bias.shape[0], len(names)
    if weights.shape[0] == 1 and batch > 1:   # the same weights for every domain: one GEMM
        basis = torch.cat([low, up], dim=1).transpose(0, 1).reshape(2 * count, -1)
        x = (torch.cat([pos[0], neg[0]], dim=1) @ basis).reshape(-1, batch, low.shape[2])
        x = x.transpose(0, 1)                                                    # (B, R, n)
    else:   # a few cuts: broadcast products beat batched tiny matmuls
        x = None
        for k in range(count):
            term = pos[:, :, k:k + 1] * low[:, k:k + 1] + neg[:, :, k:k + 1] * up[:, k:k + 1]
            x = term if x is None else x + term
    _add_input(state, pending, x, batch)
    return bias + bias_sum(pos, low_b.unsqueeze(1), neg, up_b.unsqueeze(1))


def _jump(state, name: str, coeff: Tensor, bias: Tensor, pending: dict[str, Tensor],
          backward: Backward) -> Tensor:
    """Replace the linear ops behind the cut-affine tensor ``name`` by its Jacobian."""
    on_input, cuts, on_cuts, offset = _jacobian(state, name, coeff)
    c = coeff.flatten(2)                                                       # (B, R, size)
    if c.shape[0] > 1 and c.stride(0) == 0:   # the same rows for every domain (C = I)
        c = c[:1]
    _add_input(state, pending, torch.matmul(c, on_input), bias.shape[0])
    bias = bias + torch.matmul(c, offset)
    if cuts:
        bias = _substitute(state, list(cuts), torch.matmul(c, on_cuts), bias, pending, backward)
    return bias


def _add_input(state, pending: dict[str, Tensor], x: Tensor, batch: int) -> None:
    g = state.plan.graph
    x = x.reshape(*x.shape[:2], *g.input_shape).expand(batch, *x.shape[1:2], *g.input_shape)
    pending[g.input_name] = pending[g.input_name] + x if g.input_name in pending else x


def _jacobian(state, name: str, like: Tensor) -> tuple[Tensor, tuple[str, ...], Tensor, Tensor]:
    """``name = on_input @ x + on_cuts @ cuts + offset``, elementwise (flat): ``(on_input
    (size, n), cuts, on_cuts (size, K), offset (size,))``, from a pass of the identity
    through the linear ops behind ``name`` (cached per graph, dtype and device)."""
    plan = state.plan
    key = (name, like.dtype, like.device)
    cached = plan.jacobians.get(key)
    if cached is not None:
        return cached
    g = plan.graph
    shape = g.shapes[name]
    size = int(torch.Size(shape).numel())
    eye = torch.eye(size, dtype=like.dtype, device=like.device)
    pending = {name: eye.reshape(1, size, *shape)}
    offset = eye.new_zeros((1, size))
    leaves: dict[str, Tensor] = {}
    for node in reversed(g.nodes):
        outs = [pending.pop(o, None) for o in node.outputs]
        if all(o is None for o in outs):
            continue
        if node.outputs[0] != name and node.outputs[0] in plan.scalar_cuts:
            leaves[node.outputs[0]] = outs[0].reshape(size)
            continue
        if plan.kinds[node.name] != LINEAR:
            raise AssertionError(f"{name} is not cut-affine: {node.name} is nonlinear")
        pushed, extra = linear_step(state, node, outs)
        if extra is not None:
            offset = offset + extra
        for tensor, c in pushed.items():
            if tensor in plan.perturbed:
                pending[tensor] = pending[tensor] + c if tensor in pending else c
    on_input = pending.pop(g.input_name, eye.new_zeros((1, size, g.input_size)))
    cuts = tuple(leaves)
    on_cuts = (torch.stack([leaves[k] for k in cuts], dim=1) if cuts
               else eye.new_zeros((size, 0)))
    result = (on_input.reshape(size, -1), cuts, on_cuts, offset.reshape(size))
    plan.jacobians[key] = result
    return result
