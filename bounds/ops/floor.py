"""Floor: a staircase.  ``x - 1 < floor(x) <= x``, and constant within one unit.

The offset for slope ``a`` uses ``floor(l) <= floor(x) <= floor(u)`` and
``x - 1 <= floor(x) <= x`` (both valid everywhere, exact for ``a`` in {0, 1}):
``min(floor(x) - a x) >= max(floor(l) - max(a l, a u), min((1-a) l, (1-a) u) - 1)`` and
symmetrically for the max.  Default slopes: the better (by area) of 0 and 1 on each side, so
a box inside one unit gets the exact constant.  No parameters."""
from __future__ import annotations

import torch
from torch import Tensor

from genbab.bounds.anchors import best_slope
from genbab.bounds.lines import Curve, sound_interval, sound_lines
from genbab.bounds.relaxation import LinearRelaxation, OpRule


def _extreme(lower: Tensor, upper: Tensor, a: Tensor, lowest: bool) -> tuple[Tensor, Tensor]:
    al, au, rl, ru = a * lower, a * upper, (1 - a) * lower, (1 - a) * upper
    if lowest:
        best = torch.maximum(torch.floor(lower) - torch.maximum(al, au),
                             torch.minimum(rl, ru) - 1)
        return best, lower
    best = torch.minimum(torch.floor(upper) - torch.minimum(al, au), torch.maximum(rl, ru))
    return best, upper


def _none(a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return ()


FLOOR_CURVE = Curve(value=torch.floor, slope=torch.ones_like, stationary=_none,
                    custom_extreme=_extreme)


def floor_interval(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    return sound_interval(FLOOR_CURVE, lower, upper)


def floor_relax(lower: Tensor, upper: Tensor, params: Tensor | None = None) -> LinearRelaxation:
    l64, u64 = lower.double(), upper.double()
    eps = float(torch.finfo(lower.dtype).eps)
    candidates = [torch.zeros_like(l64), torch.ones_like(l64)]
    a_lo = best_slope(FLOOR_CURVE, l64, u64, candidates, True, eps)
    a_up = best_slope(FLOOR_CURVE, l64, u64, candidates, False, eps)
    return sound_lines(FLOOR_CURVE, lower, upper, a_lo, a_up)


FLOOR = OpRule(op_type="Floor", evaluate=torch.floor, interval=floor_interval,
               relax=floor_relax)
