"""Shared pieces of the closed-form (fast) relaxations: rounding margins, branch-free selection
and the fallback for non-finite bounds.

Why this is sound
-----------------
The fast relaxations compute in the working dtype (float32 usually) instead of float64 with
``nextafter``.  Every bias is still an *exact extreme* ``min/max over candidate points c of
f(c) - a*c`` (as in ``bounds.lines``), evaluated in the working dtype and then moved outward by

    margin = eps * (C_F * F + C_R * |a| * R + C_W * |a| * W) + C_SQ * eps**2 * R**2 + floor * (2 + W)

with ``F`` the largest ``|f|`` among the values used, ``R = max(|l|, |u|)``, ``W = u - l``.
The terms cover, in order: the error of evaluating ``f`` (at most ``ULPS_F`` ulps), the
rounding of ``a*c``, of the subtraction and of subtracting the margin itself; the mismatch
between the computed slope and the slope whose stationary points are the candidates (at most
``ULPS_D`` ulps; it moves the extreme by ``2 |a_computed - a_true| W``); stationary points
that are located only to within a few ulps of ``R`` (``g`` is flat there, the error is
quadratic); and flushed subnormals (an absolute error ``floor`` per value and per slope).

``ULPS_F``/``ULPS_D`` are conservative: torch's float32 CPU kernels measure <= 1.2 ulp for
``sigmoid``/``tanh``/``sin``/``cos``/``exp`` and <= 1.8 ulp for the derivatives as written
here (``sigmoid(x)*sigmoid(-x)``, ``cosh(x)**-2``); CUDA's are within 2-4 ulp.

Inputs with a bound beyond ``±limit`` (an op-specific finite range), infinite or NaN take
``with_fallback``: the fast formulas run on clamped copies and those elements are replaced by
flat lines at the op's (sound, infinity-aware) interval, or "no information".  This costs one
host sync (``amax``) per call; everything else is branch-free elementwise arithmetic (torch's
``where`` and comparisons are several times slower than arithmetic on CPU, so selections use
``lerp`` with 0/1 weights, which is exact for finite operands).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from genbab.bounds.relaxation import LinearRelaxation

ULPS_F = 4.0
ULPS_D = 8.0
C_F = 2 * ULPS_F + 6
C_R = 8.0
C_W = 2 * ULPS_D + 2
C_SQ = 64.0


def eps_of(like: Tensor) -> float:
    return float(torch.finfo(like.dtype).eps)


def floor_of(like: Tensor) -> float:
    """Absolute error allowance for flushed subnormals (and float64 subnormal arithmetic)."""
    return 1e-280 if like.dtype == torch.float64 else 4 * float(torch.finfo(like.dtype).tiny)


def margin(eps: float, floor: float, f_scale: Tensor, slope: Tensor, reach: Tensor,
           width: Tensor | None) -> Tensor:
    """The outward margin of the module doc (``width=None``: no slope mismatch term)."""
    slope_abs = slope.abs()
    m = f_scale * C_F + slope_abs * reach * C_R
    if width is not None:
        m = m + slope_abs * width * C_W + width * (floor / eps)
    return m * eps + (C_SQ * eps * eps) * reach * reach + 2 * floor


def ones_where_greater(x: Tensor, y: Tensor) -> Tensor:
    """1.0 where ``x > y`` else 0.0 (finite inputs), in ``x``'s dtype, without a bool pass."""
    return torch.sign(x - y).clamp_(min=0.0)


def pick(default: Tensor, other: Tensor, take_other: Tensor) -> Tensor:
    """``other`` where ``take_other == 1`` else ``default``; exact for finite operands."""
    return torch.lerp(default, other, take_other)


def bounds_within(limit: float, *tensors: Tensor) -> bool:
    """True when every element of every tensor is finite with magnitude <= limit (one sync)."""
    peaks = torch.stack([t.abs().amax() for t in tensors if t.numel()]) if any(
        t.numel() for t in tensors) else None
    if peaks is None:
        return True
    return bool(peaks.max() <= limit)          # NaN compares False


def flat_lines(lo: Tensor, hi: Tensor) -> LinearRelaxation:
    zero = torch.zeros_like(lo)
    return LinearRelaxation(zero, lo, zero.clone(), hi)


def with_fallback(fast: Callable[[Tensor, Tensor], LinearRelaxation],
                  interval: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
                  lower: Tensor, upper: Tensor,
                  ok: float | Callable[[Tensor, Tensor], Tensor]) -> LinearRelaxation:
    """``fast(lower, upper)`` where both bounds lie in ``[-ok, ok]`` (or where the mask
    ``ok(lower, upper)`` holds); elsewhere flat lines at ``interval(lower, upper)`` (which must
    be sound and NaN-free for any input; infinite ends mean "no information")."""
    if callable(ok):
        bad = ~ok(lower, upper)
    else:
        bad = ~((lower.abs() <= ok) & (upper.abs() <= ok))
    safe_lo = torch.where(bad, torch.zeros_like(lower), lower)
    safe_up = torch.where(bad, torch.zeros_like(upper), upper)
    rel = fast(safe_lo, safe_up)
    lo, hi = interval(lower, upper)
    lo = torch.nan_to_num(lo, nan=float("-inf"), posinf=float("inf"), neginf=float("-inf"))
    hi = torch.nan_to_num(hi, nan=float("inf"), posinf=float("inf"), neginf=float("-inf"))
    zero = torch.zeros_like(lo)
    return LinearRelaxation(torch.where(bad, zero, rel.lower_slope),
                            torch.where(bad, lo, rel.lower_bias),
                            torch.where(bad, zero, rel.upper_slope),
                            torch.where(bad, hi, rel.upper_bias))


def clamp_param(value: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Clamp into ``[lo, hi]``; NaN becomes the midpoint (the projection of the old rules)."""
    clamped = torch.minimum(torch.maximum(value, lo), hi)
    if bool(torch.isnan(clamped.sum())):
        clamped = torch.where(torch.isnan(value), (lo + hi) / 2, clamped)
    return clamped


def needs_bound_grad(*tensors: Tensor) -> bool:
    """True when autograd must differentiate through the bounds themselves.  The fast code
    works in place on fresh buffers; rules then use their exact (differentiable) reference
    construction instead.  Gradients with respect to *parameters* are handled by each rule."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


CHUNK = 32768


def chunked(fn: Callable[..., tuple[Tensor, ...]], inputs: list[Tensor],
            num_outputs: int) -> tuple[Tensor, ...]:
    """``fn(*inputs)`` (elementwise, returning ``num_outputs`` tensors of the broadcast shape),
    evaluated on CPU in slices of ``CHUNK`` elements written into preallocated outputs.

    The fast formulas make a few dozen temporaries; at full size each one is fresh memory from
    the OS (page faults cost more than the arithmetic: ~0.5-1 ms per MB on a loaded machine),
    while slices of 128 KB keep the temporaries in the allocator's heap and in cache.  On
    other devices (caching allocators) ``fn`` runs once on the whole tensors."""
    shape = np.broadcast_shapes(*(t.shape for t in inputs))
    numel = math.prod(shape)
    if inputs[0].device.type != "cpu" or numel <= 2 * CHUNK:
        return tuple(fn(*(t.expand(shape) for t in inputs)))
    flat = [t.expand(shape).reshape(-1) for t in inputs]
    like = flat[0]
    outs = [torch.empty(numel, dtype=like.dtype, device=like.device) for _ in range(num_outputs)]
    for start in range(0, numel, CHUNK):
        stop = min(start + CHUNK, numel)
        results = fn(*(f[start:stop] for f in flat))
        for out, result in zip(outs, results):
            out[start:stop].copy_(result)
    return tuple(out.view(shape) for out in outs)
