"""bounds.lines: ``extreme_value`` (the value-only reduction behind every bias) agrees exactly
with ``extreme``."""
from __future__ import annotations

import pytest
import torch

from genbab.bounds.lines import extreme, extreme_value
from genbab.bounds.ops.abs import ABS_CURVE
from genbab.bounds.ops.cos import COS_CURVE
from genbab.bounds.ops.erf import ERF_CURVE
from genbab.bounds.ops.exp import EXP_CURVE
from genbab.bounds.ops.floor import FLOOR_CURVE
from genbab.bounds.ops.gelu import GELU_CURVE
from genbab.bounds.ops.sigmoid import SIGMOID_CURVE
from genbab.bounds.ops.sin import SIN_CURVE
from genbab.bounds.ops.tanh import TANH_CURVE
from tests.unit.bounds.helpers import random_boxes

CURVES = {"Abs": ABS_CURVE, "Cos": COS_CURVE, "Erf": ERF_CURVE, "Exp": EXP_CURVE,
          "Floor": FLOOR_CURVE, "Gelu": GELU_CURVE, "Sigmoid": SIGMOID_CURVE, "Sin": SIN_CURVE,
          "Tanh": TANH_CURVE}


@pytest.mark.parametrize("lowest", [True, False])
@pytest.mark.parametrize("name", sorted(CURVES))
def test_extreme_value_is_the_value_of_extreme(name, lowest):
    lower, upper = random_boxes(2048, seed=21)
    l64, u64 = lower.double(), upper.double()
    gen = torch.Generator().manual_seed(22)
    slope = 4 * torch.rand(l64.shape, generator=gen, dtype=torch.float64) - 2
    slope[::7] = 0.0
    curve = CURVES[name]
    best, _ = extreme(curve, l64, u64, slope, lowest)
    assert torch.equal(extreme_value(curve, l64, u64, slope, lowest), best)


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh", "silu", "mish"])
def test_stacked_and_per_piece_bisection_give_the_same_roots(name):
    """Small inputs bisect every piece in one tensor, large ones piece by piece: the points
    must agree bit for bit (the branching-point tables' fingerprints depend on them), and each
    must be a root of ``f' = a`` within the bracket the curve's slack assumes, or a piece end."""
    from genbab.bounds import lines
    from genbab.bounds.ops import gelu, mish, silu
    slope, pieces = {"gelu": (gelu._slope, gelu._PIECES),
                     "gelu_tanh": (gelu._tanh_slope, gelu._TANH_PIECES),
                     "silu": (silu._slope, silu._PIECES),
                     "mish": (mish._slope, mish._PIECES)}[name]
    gen = torch.Generator().manual_seed(0)
    target = torch.cat([torch.rand(lines._STACK_BELOW - 9, generator=gen,
                                   dtype=torch.float64) * 3 - 1,
                        torch.tensor([0.0, 1.0, -0.1, 1.1, -5.0, 5.0, 0.5, 0.5],
                                     dtype=torch.float64)])
    stacked = lines.roots_on_monotone_pieces(slope, target, pieces)
    assert target.numel() < lines._STACK_BELOW
    per_piece = [lines._roots_on_piece(slope, target, piece) for piece in pieces]
    for a, b, (lo, hi) in zip(stacked, per_piece, pieces):
        assert torch.equal(a, b)
        inside = (a > lo + 1e-3) & (a < hi - 1e-3)
        step = lines._FINAL_BRACKET
        crossed = (slope(a[inside] - step) - target[inside]) * (slope(a[inside] + step)
                                                                - target[inside])
        assert bool((crossed <= 0).all())
