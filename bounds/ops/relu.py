"""Relu (algorithms.md 3.1): identity or zero when stable; otherwise the chord above and
``alpha * x`` below, ``alpha`` in [0, 1] optimisable (one parameter, the lower slope).
Closed form (``bounds.ops.leaky_relu.make_kink_rule`` with slope 0 on the left)."""
from __future__ import annotations

from genbab.bounds.ops.leaky_relu import make_kink_rule

RELU = make_kink_rule("Relu", 0.0)
