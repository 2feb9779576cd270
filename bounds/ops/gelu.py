"""Gelu ``x * Phi(x)`` (algorithms.md 3.4), ONNX ``approximate = "none"``, and its tanh
approximation (``approximate = "tanh"``, below).

Convex on (-sqrt 2, sqrt 2), concave on both tails, global minimum about -0.170 at -0.7518.
``g'`` is monotone on (-inf, -sqrt 2], [-sqrt 2, sqrt 2] and [sqrt 2, inf); the stationary
points of ``g(x) - a x`` are found by bisection on each piece (out to |x| = 40, beyond which
``g`` is exactly 0 or x in float64).  The case table of 3.4 (chords, anchored tangents, the
three-piece cases) comes out of ``bounds.anchors``; the interval includes the minimum exactly
when the box contains it.

``approximate = "tanh"``: ``0.5 x (1 + tanh(k (x + 0.044715 x**3)))`` with ``k = sqrt(2/pi)``,
evaluated as ``x sigmoid(2 k (x + 0.044715 x**3))`` (the same value, no cancellation, and the
cubic is taken at ``x`` clamped to [-50, 50], beyond which the sigmoid is exactly 0 or 1, so
nothing overflows).  Same shape as the exact Gelu: ``f''`` is even (``f(x) - f(-x) = x``), so
the inflection points are ``+-1.4185040087908283`` (bisection on ``f''`` in float64; no other
sign change on [-40, 40], and beyond the sigmoid is saturated); convex between them, concave
outside; minimum about -0.170041 at -0.75246; ``max |f''| = f''(0) = k = 0.79788``.
Stationary points by bisection on the three monotone pieces of ``f'`` out to ``|x| = 40``
(beyond, ``f`` is exactly 0 or x in float64); slack from the curvature bound 0.8 plus the
float64 error of ``f'`` (as for Mish: error 1e-14 times the widest piece)."""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor

from genbab.bounds.lines import Curve, bisection_slack, roots_on_monotone_pieces
from genbab.bounds.ops._curve_rule import tangent_rule
from genbab.bounds.relaxation import OpRule

_R2 = math.sqrt(2.0)
_PIECES = ((-40.0, -_R2), (-_R2, _R2), (_R2, 40.0))


def gelu(x: Tensor) -> Tensor:
    return x * (0.5 * torch.erfc(-x / _R2))


def _slope(x: Tensor) -> Tensor:
    return 0.5 * torch.erfc(-x / _R2) + x * torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return roots_on_monotone_pieces(_slope, a, _PIECES)


GELU_CURVE = Curve(value=gelu, slope=_slope, stationary=_stationary,
                   stationary_slack=bisection_slack(_PIECES, 0.8))  # max |f''| <= 0.8


_TANH_SCALE = 2 * math.sqrt(2 / math.pi)
_CUBIC = 0.044715
TANH_INFLECTION = 1.4185040087908283
_TANH_PIECES = ((-40.0, -TANH_INFLECTION), (-TANH_INFLECTION, TANH_INFLECTION),
                (TANH_INFLECTION, 40.0))


def _tanh_inner(x: Tensor) -> tuple[Tensor, Tensor]:
    """(h, h') for the sigmoid argument ``h = 2 k (x + 0.044715 x**3)``, at x clamped to
    [-50, 50] (the sigmoid is saturated beyond)."""
    x = torch.clamp(x, -50.0, 50.0)
    return _TANH_SCALE * (x + _CUBIC * x * x * x), _TANH_SCALE * (1 + 3 * _CUBIC * x * x)


def gelu_tanh(x: Tensor) -> Tensor:
    return x * torch.sigmoid(_tanh_inner(x)[0])


def _tanh_slope(x: Tensor) -> Tensor:
    h, dh = _tanh_inner(x)
    s = torch.sigmoid(h)
    return s + torch.clamp(x, -50.0, 50.0) * s * torch.sigmoid(-h) * dh


def _tanh_stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return roots_on_monotone_pieces(_tanh_slope, a, _TANH_PIECES)


GELU_TANH_CURVE = Curve(value=gelu_tanh, slope=_tanh_slope, stationary=_tanh_stationary,
                        stationary_slack=bisection_slack(_TANH_PIECES, 0.8) + 1e-14 * 40)


def make_gelu(attrs: Mapping[str, Any]) -> OpRule:
    unknown = set(attrs) - {"approximate"}
    if unknown:
        raise ValueError(f"Gelu: unknown attributes {sorted(unknown)}")
    approximate = attrs.get("approximate", "none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    if approximate == "tanh":
        return GELU_TANH
    if approximate != "none":
        raise ValueError(f"Gelu: approximate={approximate!r} is not supported "
                         f"(only 'none' and 'tanh')")
    return GELU


GELU = tangent_rule("Gelu", GELU_CURVE, gelu, binder=make_gelu)
GELU_TANH = tangent_rule("Gelu", GELU_TANH_CURVE, gelu_tanh, attrs={"approximate": "tanh"},
                         binder=make_gelu)
