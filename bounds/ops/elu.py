"""Elu ``x`` for x > 0, ``alpha (exp(x) - 1)`` for x <= 0 (ONNX default alpha 1.0, any finite
alpha).

Linear on x > 0; on x < 0 convex for alpha > 0, concave for alpha < 0 (``f'' = alpha e^x``),
no inflection point inside a piece; alpha = 0 is Relu.  Kink at 0 unless alpha = 1 (the
one-sided slopes are alpha and 1).  Stationary points in closed form (``x = log(a / alpha)``
on the left piece, plus 0): see ``bounds.ops._exp_linear``."""
from __future__ import annotations

from typing import Any, Mapping

from genbab.bounds.ops._attributes import finite_attribute, reject_unknown
from genbab.bounds.ops._exp_linear import exp_linear_rule
from genbab.bounds.relaxation import OpRule


def make_elu(attrs: Mapping[str, Any]) -> OpRule:
    reject_unknown("Elu", attrs, {"alpha"})
    alpha = finite_attribute("Elu", attrs, "alpha", 1.0)
    return exp_linear_rule("Elu", 1.0, alpha, 1.0, {"alpha": alpha}, make_elu)


ELU = make_elu({})
