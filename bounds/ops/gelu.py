"""Gelu ``x * Phi(x)`` (algorithms.md 3.4), ONNX ``approximate = "none"``.

Convex on (-sqrt 2, sqrt 2), concave on both tails, global minimum about -0.170 at -0.7518.
``g'`` is monotone on (-inf, -sqrt 2], [-sqrt 2, sqrt 2] and [sqrt 2, inf); the stationary
points of ``g(x) - a x`` are found by bisection on each piece (out to |x| = 40, beyond which
``g`` is exactly 0 or x in float64).  The case table of 3.4 (chords, anchored tangents, the
three-piece cases) comes out of ``bounds.anchors``; the interval includes the minimum exactly
when the box contains it."""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor

from bounds.lines import Curve, bisection_slack, roots_on_monotone_pieces
from bounds.ops._curve_rule import tangent_rule
from bounds.relaxation import OpRule

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


def make_gelu(attrs: Mapping[str, Any]) -> OpRule:
    unknown = set(attrs) - {"approximate"}
    if unknown:
        raise ValueError(f"Gelu: unknown attributes {sorted(unknown)}")
    approximate = attrs.get("approximate", "none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    if approximate != "none":
        raise ValueError(f"Gelu: approximate={approximate!r} is not supported (only 'none')")
    return GELU


GELU = tangent_rule("Gelu", GELU_CURVE, gelu, binder=make_gelu)
