"""Optimised intermediate bounds (``bounds.engine.tighten_intermediate``): never looser than
CROWN's, and every sampled value of every tensor lies inside them."""
from __future__ import annotations

import pytest
import torch

from genbab.bounds.engine import spec_bounds, tighten_intermediate
from genbab.bounds.plan import make_plan
from tests.unit.branching.test_neuron_bab import _mlp
from genbab.verifier.forward import evaluate
from genbab.verifier.options import BoundOptions


@pytest.mark.parametrize("act", ["Relu", "Sigmoid", "Tanh", "Sin"])
def test_tightened_intervals_are_sound_and_no_looser(act):
    graph, _ = _mlp(act, widths=(2, 8, 8, 8, 1), seed=3)
    lo, up = torch.tensor([[-1.0, -1.0]]), torch.tensor([[1.0, 1.0]])
    root = spec_bounds(graph, lo, up, torch.tensor([[1.0]]), method="crown")
    tight = tighten_intermediate(graph, lo, up, root.intermediate,
                                 BoundOptions(alpha_iterations=10), deadline=float("inf"))
    plan = make_plan(graph)
    xs = torch.rand(4000, 2) * 2 - 1
    xs = torch.cat([xs, torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])])
    with torch.no_grad():
        values = evaluate(plan.graph, xs, keep=True)
    narrower = 0.0
    for name, (t_lo, t_up) in tight.items():
        c_lo, c_up = root.intermediate[name]
        assert bool((t_lo >= c_lo).all()) and bool((t_up <= c_up).all()), name
        narrower += float((c_up - c_lo).sum() - (t_up - t_lo).sum())
        if name in values:
            v = values[name].reshape(len(xs), -1)
            assert bool((v >= t_lo.reshape(1, -1) - 1e-5).all()), name
            assert bool((v <= t_up.reshape(1, -1) + 1e-5).all()), name
    assert narrower > 0
