"""Piecewise-linear activations other than ReLU (Clip here, a hard tanh) are split at their
kinks (``OpRule.kinks``): only neurons with a kink inside their interval are candidates, the
split point is that kink, and branch-and-bound then proves bounds the root cannot, against a
dense-grid ground truth (``test_neuron_bab``)."""
from __future__ import annotations

import pytest
import torch

from genbab.bounds.plan import make_plan
from genbab.branching.bab import BabStatus
from genbab.branching.bbps import candidates, kink_inside, split_nodes
from tests.unit.branching.nets import CLIP_RANGE
from tests.unit.branching.test_neuron_bab import (_grid_min, _mlp, _root_margin, _run,
                                                  _unsat_threshold)


def test_clip_inputs_are_split_nodes_with_their_two_kinks():
    graph, _ = _mlp("Clip")
    nodes = split_nodes(make_plan(graph))
    assert nodes and all(n.kinks == CLIP_RANGE and n.piecewise and not n.at_zero
                         for n in nodes)


def test_only_neurons_with_a_kink_inside_are_candidates():
    graph, _ = _mlp("Clip")
    node = split_nodes(make_plan(graph))[0]
    lower = torch.tensor([[-2.0, -0.4, 0.6, -0.5, -0.6, -3.0]])
    upper = torch.tensor([[-0.6, 0.4, 2.0, 0.5, -0.4, 3.0]])
    # below, between and above the kinks: exact, not candidates; -0.5 and 0.5 as ends only
    # (not strictly inside): not candidates either
    assert candidates(node, lower, upper).tolist() == [[False, False, False, False, True, True]]


def test_the_split_point_is_the_kink_nearest_the_midpoint():
    graph, _ = _mlp("Clip")
    node = split_nodes(make_plan(graph))[0]
    lower = torch.tensor([-3.0, -1.0, -0.2, 0.0])
    upper = torch.tensor([2.0, 4.0, 0.2, 0.7])
    has, point = kink_inside(node, lower, upper)
    assert has.tolist() == [True, True, False, True]
    assert point[has].tolist() == [-0.5, 0.5, 0.5]


@pytest.mark.slow
def test_kink_splits_prove_a_bound_below_the_grid_minimum():
    # seed 2: proved in 5 rounds (about 2 s alone; 18 s on a machine shared with training
    # jobs); on seed 0 neither kink nor midpoint splits prove 30 % of the root's gap in 30 s
    graph, lip = _mlp("Clip", seed=2)
    threshold = _unsat_threshold(graph, lip, share=0.3)
    assert _root_margin(graph, threshold) <= 0, "the root already proves it: test is vacuous"
    outcome, stats = _run(graph, threshold, timeout_s=40.0)
    assert outcome.status is BabStatus.VERIFIED, outcome.reason
    assert stats.splits_by_kind.get("clip", 0) > 0


@pytest.mark.slow
@pytest.mark.parametrize("heuristic", ["bbps", "babsr"])
def test_kink_splits_never_prove_a_violated_bound(heuristic):
    graph, _ = _mlp("Clip")
    outcome, _ = _run(graph, _grid_min(graph) + 1e-3, timeout_s=2.0, heuristic=heuristic)
    assert outcome.status is not BabStatus.VERIFIED, outcome.reason
