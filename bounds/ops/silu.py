"""SiLU ``x * sigmoid(x)`` as one unary op (the loader fuses ``Mul(x, Sigmoid(x))``).

Like Gelu: convex on (-c, c) with ``c = 2.39936`` (``c tanh(c/2) = 2``), concave on the tails,
minimum about -0.2785 at -1.2785.  Stationary points by bisection on the three monotone pieces
of the derivative, out to |x| = 750 (beyond, ``sigmoid`` is exactly 0 or 1 in float64)."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve, bisection_slack, roots_on_monotone_pieces
from genbab.bounds.ops._curve_rule import tangent_rule

_C = 2.399357280515467
_PIECES = ((-750.0, -_C), (-_C, _C), (_C, 750.0))


def silu(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


def _slope(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return roots_on_monotone_pieces(_slope, a, _PIECES)


SILU_CURVE = Curve(value=silu, slope=_slope, stationary=_stationary,
                   stationary_slack=bisection_slack(_PIECES, 0.5))  # max |f''| <= 0.5
SILU = tangent_rule("SiLU", SILU_CURVE, silu)
