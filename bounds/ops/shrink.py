"""Shrink (ONNX; defaults bias 0.0, lambd 0.5): ``x - bias`` for x > lambd, ``x + bias`` for
x < -lambd, else 0.  torch's Softshrink is ``bias = lambd`` (continuous), Hardshrink is
``bias = 0`` (jumps of size lambd at +-lambd); any finite bias and lambd.

Piecewise linear with breakpoints at ``-lambd`` and ``lambd`` (slopes 1, 0, 1; ``f(+-lambd) =
0``), jumps there unless ``bias = lambd``.  ``lambd = 0``: one breakpoint at 0 (``f(0) = 0``,
``x + bias`` left of it, ``x - bias`` right).  ``lambd < 0``: onnxruntime tests ``x < -lambd``
first, so ``f`` is ``x + bias`` below ``-lambd`` and ``x - bias`` from ``-lambd`` on (one
breakpoint).  Offsets are exact over the closures of the pieces, so sound at the jumps
(``bounds.ops._jumps``).  ``kinks``: the breakpoints where ``f`` is not locally linear
(``(-lambd, lambd)`` in general; none for the identity ``lambd = bias = 0``)."""
from __future__ import annotations

from typing import Any, Mapping

from genbab.bounds.ops._attributes import finite_attribute, reject_unknown
from genbab.bounds.ops._jumps import Pieces, jump_rule
from genbab.bounds.relaxation import OpRule


def shrink_pieces(bias: float, lambd: float) -> Pieces:
    left, right = (1.0, bias), (1.0, -bias)
    if lambd > 0:
        return Pieces((-lambd, lambd), (left, (0.0, 0.0), right), (0.0, 0.0))
    if lambd == 0:
        return Pieces((0.0,), (left, right), (0.0,))
    return Pieces((-lambd,), (left, right), (-lambd - bias,))


def make_shrink(attrs: Mapping[str, Any]) -> OpRule:
    reject_unknown("Shrink", attrs, {"bias", "lambd"})
    bias = finite_attribute("Shrink", attrs, "bias", 0.0)
    lambd = finite_attribute("Shrink", attrs, "lambd", 0.5)
    return jump_rule("Shrink", shrink_pieces(bias, lambd), {"bias": bias, "lambd": lambd},
                     make_shrink)


SHRINK = make_shrink({})
