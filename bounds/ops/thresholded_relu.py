"""ThresholdedRelu (ONNX; default alpha 1.0): ``x`` for x > alpha, else 0; any finite alpha.

Piecewise linear: 0 (slope 0) up to and including ``alpha``, ``x`` (slope 1) beyond, so a jump
of size ``alpha`` at ``alpha`` (upwards for alpha > 0, downwards for alpha < 0; alpha = 0 is
Relu, continuous with a kink).  Offsets are exact over the closures of the two pieces, so
sound at the jump (``bounds.ops._jumps``).  ``kinks = (alpha,)``."""
from __future__ import annotations

from typing import Any, Mapping

from genbab.bounds.ops._attributes import finite_attribute, reject_unknown
from genbab.bounds.ops._jumps import Pieces, jump_rule
from genbab.bounds.relaxation import OpRule


def make_thresholded_relu(attrs: Mapping[str, Any]) -> OpRule:
    reject_unknown("ThresholdedRelu", attrs, {"alpha"})
    alpha = finite_attribute("ThresholdedRelu", attrs, "alpha", 1.0)
    pieces = Pieces((alpha,), ((0.0, 0.0), (1.0, 0.0)), (0.0,))
    return jump_rule("ThresholdedRelu", pieces, {"alpha": alpha}, make_thresholded_relu)


THRESHOLDED_RELU = make_thresholded_relu({})
