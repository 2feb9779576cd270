"""Selu ``gamma x`` for x > 0, ``gamma alpha (exp(x) - 1)`` for x <= 0 (ONNX defaults
alpha 1.67326319217681884765625, gamma 1.05070102214813232421875; any finite values).

Linear on x > 0; on x < 0 convex when ``gamma alpha > 0``, concave when ``< 0``
(``f'' = gamma alpha e^x``), no inflection point inside a piece.  Kink at 0 (one-sided slopes
``gamma alpha`` and ``gamma``) unless alpha = 1 or gamma = 0.  Stationary points in closed form
(``x = log(a / (gamma alpha))`` on the left piece, plus 0): see ``bounds.ops._exp_linear``."""
from __future__ import annotations

from typing import Any, Mapping

from genbab.bounds.ops._attributes import finite_attribute, reject_unknown
from genbab.bounds.ops._exp_linear import exp_linear_rule
from genbab.bounds.relaxation import OpRule

SELU_ALPHA = 1.67326319217681884765625
SELU_GAMMA = 1.05070102214813232421875


def make_selu(attrs: Mapping[str, Any]) -> OpRule:
    reject_unknown("Selu", attrs, {"alpha", "gamma"})
    alpha = finite_attribute("Selu", attrs, "alpha", SELU_ALPHA)
    gamma = finite_attribute("Selu", attrs, "gamma", SELU_GAMMA)
    return exp_linear_rule("Selu", gamma, alpha, 1.0, {"alpha": alpha, "gamma": gamma},
                           make_selu)


SELU = make_selu({})
