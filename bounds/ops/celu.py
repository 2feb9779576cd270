"""Celu ``max(0, x) + min(0, alpha (exp(x / alpha) - 1))`` (ONNX default alpha 1.0; any finite
nonzero alpha, 0 is rejected: ``x / alpha`` is undefined).

For either sign of alpha this is ``x`` for x >= 0 and ``alpha expm1(x / alpha)`` (<= 0) for
x < 0.  Linear on x > 0; on x < 0 ``f'' = exp(x / alpha) / alpha``: convex for alpha > 0,
concave for alpha < 0 (then it falls like ``-exp(|x / alpha|)`` and overflows far out), no
inflection point inside a piece.  ``f'(0) = 1`` from both sides: C1, so no kink.  Stationary
points in closed form (``x = alpha log(a)`` on the left piece, plus 0): see
``bounds.ops._exp_linear``."""
from __future__ import annotations

from typing import Any, Mapping

from genbab.bounds.ops._attributes import finite_attribute, reject_unknown
from genbab.bounds.ops._exp_linear import exp_linear_rule
from genbab.bounds.relaxation import OpRule


def make_celu(attrs: Mapping[str, Any]) -> OpRule:
    reject_unknown("Celu", attrs, {"alpha"})
    alpha = finite_attribute("Celu", attrs, "alpha", 1.0)
    if alpha == 0.0:
        raise ValueError("Celu: alpha must be nonzero (the formula divides by it), got 0.0")
    return exp_linear_rule("Celu", 1.0, alpha, alpha, {"alpha": alpha}, make_celu)


CELU = make_celu({})
