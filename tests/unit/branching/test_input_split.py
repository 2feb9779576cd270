"""Input-splitting branch-and-bound against ground truth that does not come from genbab: a
dense grid over the demo sin/tanh network's 2-D input, with a Lipschitz margin."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from genbab.branching.bab import BabStatus, input_split_bab
from genbab.verifier.forward import evaluate
from genbab.verifier.onnx_loader import load_model
from genbab.verifier.options import AttackOptions, BoundOptions, BranchingOptions
from genbab.verifier.result import Stats
from genbab.witness import confirm
from genbab.vnnlib.property import Property

# whole branch-and-bound runs with timeouts: deselect with -m "not slow"
pytestmark = pytest.mark.slow

MODEL = Path(__file__).resolve().parents[3] / "benchmarks/demo/models/onnx/sin_tanh.onnx"
LOWER, UPPER = np.array([-0.6, -0.6]), np.array([0.6, 0.6])


@pytest.fixture(scope="module")
def graph():
    return load_model(MODEL)


@pytest.fixture(scope="module")
def grid_max(graph):
    """Max of the output over the box on a 801 x 801 grid (float64)."""
    axes = [torch.linspace(float(LOWER[i]), float(UPPER[i]), 801, dtype=torch.float64)
            for i in range(2)]
    points = torch.cartesian_prod(*axes)
    with torch.no_grad():
        return float(evaluate(graph, points).max())


def _property(threshold: float) -> Property:
    # violated iff y >= threshold
    return Property.from_box(LOWER, UPPER, [(np.array([[-1.0]]), np.array([-threshold]))])


def _run(graph, prop: Property, timeout_s: float = 30.0):
    return input_split_bab(
        graph, prop.disjuncts[0], lambda x: confirm(str(MODEL), prop, x, (1, 2)),
        options=BranchingOptions(batch_size=32, method="crown"), bound_options=BoundOptions(),
        attack=AttackOptions(), deadline=time.monotonic() + timeout_s, stats=Stats())


def test_input_split_proves_a_bound_just_above_the_maximum(graph, grid_max):
    # the grid spacing is 1.5e-3 and the network's gradient is below 10, so the true maximum is
    # within 0.015 of the grid maximum: a threshold 0.05 above it holds.
    outcome = _run(graph, _property(grid_max + 0.05))
    assert outcome.status is BabStatus.VERIFIED, outcome.reason


def test_input_split_refutes_a_bound_just_below_the_maximum(graph, grid_max):
    prop = _property(grid_max - 0.01)
    outcome = _run(graph, prop)
    assert outcome.status is BabStatus.FALSIFIED, outcome.reason
    cex = outcome.counterexample
    assert cex.y[0] >= grid_max - 0.01
    assert np.all(cex.x.reshape(-1) >= LOWER - 1e-6) and np.all(cex.x.reshape(-1) <= UPPER + 1e-6)


def test_input_split_never_proves_a_violated_bound(graph, grid_max):
    outcome = _run(graph, _property(grid_max - 1e-3), timeout_s=10.0)
    assert outcome.status is not BabStatus.VERIFIED
    assert math.isfinite(grid_max)
