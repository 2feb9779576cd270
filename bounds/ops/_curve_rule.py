"""Two rule factories shared by the elementwise ops (one place for the plumbing).

``tangent_rule``: smooth functions.  Parameters are tangent points, shape ``(2, *shape)``:
``params[0]`` for the lower line and ``params[1]`` for the upper line.  The line for a point
``t`` has slope ``f'(t)`` and the exact offset of ``bounds.lines``, so *any* ``t`` is sound;
``project`` clamps ``t`` into ``[l, u]`` (or a narrower op-specific range, e.g. Exp's cap
``l + 0.99``) only to keep the optimiser among sensible lines.

``slope_rule``: piecewise-linear functions (Relu, LeakyRelu, Abs, Clip, HardSigmoid), whose
tangent points would have zero gradients.  Parameters are slopes, one per side listed in
``param_sides``, clamped into ``slope_range(l, u)``.

Ops with a restricted domain pass ``domain(lower, upper) -> (lower, upper, valid)``; where
``valid`` is False the relaxation is "no information" and the interval ``(-inf, inf)``.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from genbab.bounds.anchors import default_slopes, tangent_points
from genbab.bounds.lines import Curve, no_information_lines, sound_interval, sound_lines
from genbab.bounds.relaxation import LinearRelaxation, OpRule

Domain = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]
Range = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
Slopes = Callable[[Curve, Tensor, Tensor, float], tuple[Tensor, Tensor]]  # (curve, l64, u64, eps)


def whole_line(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return lower, upper, torch.ones_like(lower, dtype=torch.bool)


def _mask_invalid(rel: LinearRelaxation, valid: Tensor) -> LinearRelaxation:
    none = no_information_lines(rel.lower_bias)
    return LinearRelaxation(*(torch.where(valid, getattr(rel, name), getattr(none, name))
                              for name in ("lower_slope", "lower_bias", "upper_slope",
                                           "upper_bias")))


def _safe(lower: Tensor, upper: Tensor, domain: Domain) -> tuple[Tensor, Tensor, Tensor]:
    lower, upper, valid = domain(lower, upper)
    return torch.where(valid, lower, 1.0), torch.where(valid, upper, 1.0), valid


def _interval(curve: Curve, domain: Domain) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
    def interval(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        lower, upper, valid = _safe(lower, upper, domain)
        lo, hi = sound_interval(curve, lower, upper)
        return torch.where(valid, lo, float("-inf")), torch.where(valid, hi, float("inf"))
    return interval


def _eps(like: Tensor) -> float:
    return float(torch.finfo(like.dtype).eps)


def _clamp(value: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    value = torch.where(torch.isnan(value), (lo + hi) / 2, value)
    return torch.minimum(torch.maximum(value, lo), hi)


def tangent_rule(op_type: str, curve: Curve, evaluate: Callable[[Tensor], Tensor], *,
                 domain: Domain = whole_line, lower_tangent_range: Range | None = None,
                 slopes: Slopes = default_slopes, input_range: tuple[float, float] | None = None,
                 attrs: Mapping[str, Any] | None = None,
                 binder: Callable[[Mapping[str, Any]], OpRule] | None = None,
                 kinks: tuple[float, ...] = ()) -> OpRule:
    """An ``OpRule`` for a smooth function with tangent-point parameters (see module doc);
    ``kinks``: points where it is not differentiable after all (ELU's 0 for alpha != 1)."""

    def project(lower: Tensor, upper: Tensor, params: Tensor) -> Tensor:
        lower, upper, _ = _safe(lower, upper, domain)
        lo_min, lo_max = (lower, upper) if lower_tangent_range is None \
            else lower_tangent_range(lower, upper)
        return torch.stack([_clamp(params[0], lo_min, lo_max), _clamp(params[1], lower, upper)])

    def relax(lower: Tensor, upper: Tensor, params: Tensor | None) -> LinearRelaxation:
        safe_lo, safe_up, valid = _safe(lower, upper, domain)
        if params is None:
            a_lo, a_up = slopes(curve, safe_lo.double(), safe_up.double(), _eps(lower))
        else:
            points = project(lower, upper, params.to(lower.dtype)).double()
            a_lo, a_up = curve.slope(points[0]), curve.slope(points[1])
        return _mask_invalid(sound_lines(curve, safe_lo, safe_up, a_lo, a_up), valid)

    def init_params(lower: Tensor, upper: Tensor) -> Tensor:
        safe_lo, safe_up, _ = _safe(lower, upper, domain)
        l64, u64 = safe_lo.double(), safe_up.double()
        a_lo, a_up = slopes(curve, l64, u64, _eps(lower))
        points = torch.stack([tangent_points(curve, l64, u64, a_lo),
                              tangent_points(curve, l64, u64, a_up)]).to(lower.dtype)
        return project(lower, upper, points)

    return OpRule(op_type=op_type, evaluate=evaluate, interval=_interval(curve, domain),
                  relax=relax, init_params=init_params, project_params=project, num_params=2,
                  input_range=input_range or (float("-inf"), float("inf")),
                  attrs=dict(attrs or {}), binder=binder, kinks=tuple(kinks))


def slope_rule(op_type: str, curve: Curve, evaluate: Callable[[Tensor], Tensor], *,
               param_sides: tuple[str, ...], slope_range: Range,
               slopes: Slopes = default_slopes, attrs: Mapping[str, Any] | None = None,
               binder: Callable[[Mapping[str, Any]], OpRule] | None = None,
               kinks: tuple[float, ...] = ()) -> OpRule:
    """An ``OpRule`` for a piecewise-linear function with slope parameters (see module doc),
    linear between ``kinks``.
    ``param_sides`` is a sub-tuple of ``("lower", "upper")``; ``params[i]`` is the slope of the
    line on side ``param_sides[i]``; the other side keeps its default slope."""

    def project(lower: Tensor, upper: Tensor, params: Tensor) -> Tensor:
        lo, hi = slope_range(lower, upper)
        return torch.stack([_clamp(params[i], lo, hi) for i in range(len(param_sides))])

    def relax(lower: Tensor, upper: Tensor, params: Tensor | None) -> LinearRelaxation:
        a_lo, a_up = slopes(curve, lower.double(), upper.double(), _eps(lower))
        if params is not None:
            chosen = project(lower, upper, params.to(lower.dtype))
            for i, side in enumerate(param_sides):
                if side == "lower":
                    a_lo = chosen[i]
                else:
                    a_up = chosen[i]
        return sound_lines(curve, lower, upper, a_lo, a_up)

    def init_params(lower: Tensor, upper: Tensor) -> Tensor:
        a_lo, a_up = slopes(curve, lower.double(), upper.double(), _eps(lower))
        chosen = [a_lo if side == "lower" else a_up for side in param_sides]
        return project(lower, upper, torch.stack(chosen).to(lower.dtype))

    return OpRule(op_type=op_type, evaluate=evaluate, interval=_interval(curve, whole_line),
                  relax=relax, init_params=init_params, project_params=project,
                  num_params=len(param_sides), attrs=dict(attrs or {}), binder=binder,
                  kinks=tuple(kinks), piecewise_linear=True)
