"""bounds.lines: ``extreme_value`` (the value-only reduction behind every bias) agrees exactly
with ``extreme``."""
from __future__ import annotations

import pytest
import torch

from bounds.lines import extreme, extreme_value
from bounds.ops.abs import ABS_CURVE
from bounds.ops.cos import COS_CURVE
from bounds.ops.erf import ERF_CURVE
from bounds.ops.exp import EXP_CURVE
from bounds.ops.floor import FLOOR_CURVE
from bounds.ops.gelu import GELU_CURVE
from bounds.ops.sigmoid import SIGMOID_CURVE
from bounds.ops.sin import SIN_CURVE
from bounds.ops.tanh import TANH_CURVE
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
