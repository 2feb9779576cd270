"""Cos (algorithms.md 3.3): like Sin; ``cos'(x) = -sin(x) = a`` at ``x = arcsin(-a)`` and
``x = pi - arcsin(-a)`` (mod 2 pi).  Computed directly rather than by shifting sin, so no
rounding of ``x + pi/2`` enters the lines; only the choice of default slopes
(``periodic_slopes``) works with ``cos(x) = sin(x + pi/2)``."""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from genbab.bounds.lines import Curve
from genbab.bounds.ops._curve_rule import tangent_rule
from genbab.bounds.ops.sin import periodic_interval, periodic_points, periodic_slopes


def _stationary(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    r = torch.arcsin((-a).clamp(-1.0, 1.0))
    return periodic_points((r, math.pi - r), lower, upper)


COS_CURVE = Curve(value=torch.cos, slope=lambda x: -torch.sin(x), stationary=_stationary)


def cos_interval(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    return periodic_interval(torch.cos, 0.0, math.pi, lower, upper)


COS = dataclasses.replace(tangent_rule("Cos", COS_CURVE, torch.cos,
                                       slopes=periodic_slopes(math.pi / 2)),
                          interval=cos_interval)
