"""Mish ``x * tanh(softplus(x))`` (ONNX opset 18; the bound-time rewrite also fuses torch's
export ``Mul(x, Tanh(Softplus(x)))`` into it).

Shape, like SiLU: concave on (-inf, c1), convex on (c1, c2), concave on (c2, inf) with the two
inflection points ``c1 = -2.2563763963607935`` and ``c2 = 1.4905711794854284`` (roots of ``f''``
found by bisection in float64; ``f''`` has no other sign change on [-40, 40], and none beyond:
``f'' ~ e^x (x + 2) < 0`` far left, ``f'' ~ -8 (x - 1) e^(-2x) < 0`` far right).  Global minimum
about -0.30884 at -1.19243; ``f'`` ranges over [-0.11253, 1.08850], decreasing on the first
piece, increasing on the second, decreasing (to 1) on the third.

Stationary points of ``f(x) - a x``: at most one per monotone piece of ``f'``, found by
bisection (``bounds.lines.roots_on_monotone_pieces``) on (-750, c1), (c1, c2), (c2, 40):
beyond -750 ``e^x`` underflows (``f`` is exactly 0 in float64), beyond 40 ``f`` is exactly
``x``, so ``f - a x`` is linear outside the pieces and the list is complete.  Slack
(``stationary_slack``): ``max |f''| = 0.6442`` (at x = -0.088), bounded by 0.65 in
``bisection_slack``, plus ``_SLOPE_ERROR_SLACK`` for the float64 error of ``f'`` itself (a root
of the computed ``f'`` is off the true one by at most the piece width, where ``|f' - a|`` is
at most that error).

Evaluation without overflow: with ``n = e^x`` (x <= 0) ``tanh(softplus(x)) = n (n + 2) /
(n (n + 2) + 2)``, with ``m = e^-x`` (x >= 0) it is ``(1 + 2m) / (1 + 2m + 2m**2)``; the same
forms give ``1 - tanh(softplus(x))`` without cancellation for ``f' = t + x sigmoid(x) (1 - t**2)``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.lines import Curve, bisection_slack, roots_on_monotone_pieces
from genbab.bounds.ops._curve_rule import tangent_rule

INFLECTIONS = (-2.2563763963607935, 1.4905711794854284)
_PIECES = ((-750.0, INFLECTIONS[0]), INFLECTIONS, (INFLECTIONS[1], 40.0))
# |computed f' - f'| <= 1e-14 on the pieces (a few ulps of terms of size <= 40), times the
# widest piece (750), plus an absolute allowance for subnormal e^x near -745.
_SLOPE_ERROR_SLACK = 1e-14 * 750 + 1e-300


def _tanh_softplus(x: Tensor) -> tuple[Tensor, Tensor]:
    """(t, 1 - t) for ``t = tanh(softplus(x))``, both accurate to a few ulps."""
    n = torch.exp(torch.clamp(x, max=0.0))
    m = torch.exp(-torch.clamp(x, min=0.0))
    p = n * (n + 2)
    q = 1 + 2 * m
    den_neg, den_pos = p + 2, q + 2 * m * m
    positive = x > 0
    t = torch.where(positive, q / den_pos, p / den_neg)
    one_minus = torch.where(positive, 2 * m * m / den_pos, 2 / den_neg)
    return t, one_minus


def mish(x: Tensor) -> Tensor:
    return x * _tanh_softplus(x)[0]


def _slope(x: Tensor) -> Tensor:
    t, one_minus = _tanh_softplus(x)
    return t + x * torch.sigmoid(x) * one_minus * (1 + t)


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return roots_on_monotone_pieces(_slope, a, _PIECES)


MISH_CURVE = Curve(value=mish, slope=_slope, stationary=_stationary,
                   stationary_slack=bisection_slack(_PIECES, 0.65) + _SLOPE_ERROR_SLACK)
MISH = tangent_rule("Mish", MISH_CURVE, mish)
