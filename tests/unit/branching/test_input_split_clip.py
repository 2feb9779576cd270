"""Input splitting with domain clipping against ground truth that does not come from genbab:
small Sin / Tanh MLPs with a 2-D input and two outputs, built here with onnx.helper, and a
property of two clauses with two rows each (so clipping intersects rows, takes the union of
clauses and combines rows); a dense grid gives the true worst margin up to a Lipschitz slack."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from genbab.branching.bab import BabStatus, input_split_bab
from genbab.verifier.forward import evaluate
from genbab.verifier.options import AttackOptions, BoundOptions, BranchingOptions
from genbab.verifier.result import Stats
from genbab.vnnlib.property import Clause, Disjunct

from tests.unit.branching.nets import mlp

# whole branch-and-bound runs with timeouts: deselect with -m "not slow"
pytestmark = pytest.mark.slow

LOWER, UPPER = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
GRID = 501
# rows c_r . y; clause 0 = rows 0, 1; clause 1 = rows 2, 3 (a violation needs both rows of a
# clause at or below their threshold)
ROWS = np.array([[1.0, 0.0], [0.5, 1.0], [-1.0, 0.3], [0.0, -1.0]])
GROUPS = (0, 0, 1, 1)


def _mlp(act: str, seed: int):
    """A 2 -> 12 -> 12 -> 2 MLP (``nets.mlp``) and an upper bound on the l2 Lipschitz
    constant of every row ``c_r . y``."""
    graph, lip = mlp(act, (2, 12, 12, 2), seed, scale=1.5)
    return graph, lip * float(np.linalg.norm(ROWS, axis=1).max())


def _worst(graph, x: torch.Tensor) -> torch.Tensor:
    """(P,) for points (P, 2): min over clauses of max over its rows of ``c_r . y`` (the
    property with all thresholds ``s`` is violated at x iff this is <= s)."""
    with torch.no_grad():
        y = evaluate(graph, x).reshape(len(x), -1).double()
    rows = y @ torch.as_tensor(ROWS).T
    return torch.minimum(rows[:, :2].amax(dim=1), rows[:, 2:].amax(dim=1))


def _grid_min(graph) -> float:
    axes = [torch.linspace(float(LOWER[i]), float(UPPER[i]), GRID, dtype=torch.float64)
            for i in range(2)]
    return float(_worst(graph, torch.cartesian_prod(*axes)).min())


def _disjunct(threshold: float) -> Disjunct:
    clauses = tuple(Clause(ROWS[[i for i, g in enumerate(GROUPS) if g == k]],
                           np.full(2, threshold)) for k in range(2))
    return Disjunct(LOWER, UPPER, clauses)


def _run(graph, threshold: float, clip: bool = True, timeout_s: float = 60.0):
    def check(x):
        value = float(_worst(graph, torch.as_tensor(x, dtype=torch.float64).reshape(1, 2)))
        return x if value <= threshold else None

    return input_split_bab(
        graph, _disjunct(threshold), check,
        options=BranchingOptions(method="crown", input_batch_size=1024, clip=clip),
        bound_options=BoundOptions(), attack=AttackOptions(rounds=0),
        deadline=time.monotonic() + timeout_s, stats=Stats())


@pytest.mark.parametrize("act,seed", [("Sin", 0), ("Tanh", 1), ("Sin", 2)])
def test_clipped_input_split_proves_a_threshold_below_the_true_minimum(act, seed):
    graph, lip = _mlp(act, seed)
    spacing = float(max(UPPER - LOWER)) / (GRID - 1)
    # the true minimum is at least the grid minimum less half a grid diagonal times the
    # Lipschitz constant; a threshold 0.05 below that holds
    threshold = _grid_min(graph) - lip * spacing * math.sqrt(2) / 2 - 0.05
    outcome = _run(graph, threshold)
    assert outcome.status is BabStatus.VERIFIED, outcome.reason


@pytest.mark.parametrize("act,seed", [("Sin", 0), ("Tanh", 1), ("Sin", 2)])
def test_clipped_input_split_never_proves_a_violated_threshold(act, seed):
    graph, _ = _mlp(act, seed)
    threshold = _grid_min(graph) + 0.01      # some grid point violates it
    outcome = _run(graph, threshold, timeout_s=20.0)
    assert outcome.status is not BabStatus.VERIFIED, outcome.reason
    if outcome.status is BabStatus.FALSIFIED:
        x = torch.as_tensor(outcome.counterexample, dtype=torch.float64).reshape(1, 2)
        assert float(_worst(graph, x)) <= threshold
        assert np.all(outcome.counterexample >= LOWER) and np.all(outcome.counterexample <= UPPER)


def test_clipping_needs_fewer_boxes_than_plain_bisection():
    graph, lip = _mlp("Sin", 0)
    spacing = float(max(UPPER - LOWER)) / (GRID - 1)
    threshold = _grid_min(graph) - lip * spacing * math.sqrt(2) / 2 - 0.05
    visited = {}
    for clip in (False, True):
        stats = Stats()
        outcome = input_split_bab(
            graph, _disjunct(threshold), lambda x: None,
            options=BranchingOptions(method="crown", input_batch_size=1024, clip=clip),
            bound_options=BoundOptions(), attack=AttackOptions(rounds=0),
            deadline=time.monotonic() + 60.0, stats=stats)
        assert outcome.status is BabStatus.VERIFIED, outcome.reason
        visited[clip] = stats.domains_visited
    assert visited[True] < visited[False]
