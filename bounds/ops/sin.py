"""Sin (algorithms.md 3.3): periodic and bounded.

``sin'(x) = a`` at ``x = +-arccos(a) + 2k pi``.  On each branch the residual
``sin(x) - a x`` changes by the constant ``-2 pi a`` from one solution to the next, so its
extreme over the solutions in ``[l, u]`` is at the first or the last one: four candidates
cover a box of any width (``periodic_points``).  The S-shaped sub-cases, chord tests and global
tangent lines of 3.3 all come out of ``bounds.anchors`` (anchored lines, flat lines, chords)."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from bounds.lines import Curve
from bounds.ops._curve_rule import tangent_rule

TWO_PI = 2 * math.pi


def periodic_points(branches: tuple[Tensor, ...], lower: Tensor,
                    upper: Tensor) -> tuple[Tensor, ...]:
    """For each ``r`` in ``branches``: the first and last ``r + 2 k pi`` in ``[lower, upper]``
    (or points outside it when there is none; callers clamp)."""
    points = []
    for r in branches:
        first = torch.ceil((lower - r) / TWO_PI)
        last = torch.floor((upper - r) / TWO_PI)
        points += [r + TWO_PI * first, r + TWO_PI * last]
    return tuple(points)


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    r = torch.arccos(a.clamp(-1.0, 1.0))
    return periodic_points((r, -r), lower, upper)


SIN_CURVE = Curve(value=torch.sin, slope=torch.cos, stationary=_stationary)
SIN = tangent_rule("Sin", SIN_CURVE, torch.sin)
