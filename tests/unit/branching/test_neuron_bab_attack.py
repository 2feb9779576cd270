"""Attack turns inside neuron branch-and-bound (branching/neuron_bab.py): a sat disjunct is
answered by the attack, and on an unsat one the turns stay within their share of the time."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from genbab.branching.bab import BabStatus
from genbab.branching.neuron_bab import _ATTACK_SHARE, _FIRST_TURN_SHARE, neuron_split_bab
from genbab.branching.attack import Falsifier
from genbab.verifier.forward import evaluate
from genbab.verifier.options import AttackOptions, BoundOptions, BranchingOptions
from genbab.verifier.result import Stats
from genbab.vnnlib.property import Property

from tests.unit.branching.test_neuron_bab import LOWER, UPPER, _grid_min, _mlp

pytestmark = pytest.mark.slow

_OPTIONS = BranchingOptions(batch_size=16, method="crown", neuron_tighten_iterations=0,
                            neuron_root_iterations=0)


def _search(graph, threshold: float, falsify, seconds: float):
    prop = Property.from_box(LOWER, UPPER, [(np.array([[1.0]]), np.array([threshold]))])
    return neuron_split_bab(graph, prop.disjuncts[0], lambda x: None, options=_OPTIONS,
                            bound_options=BoundOptions(alpha_iterations=5),
                            attack=AttackOptions(), deadline=time.monotonic() + seconds,
                            stats=Stats(), falsify=falsify), prop


def test_a_violated_bound_is_answered_by_the_attack_turns():
    graph, _ = _mlp("Tanh", seed=3)
    threshold = _grid_min(graph) + 0.05             # some grid point violates it
    holder = {}

    def falsify(until: float):
        candidate = holder["falsifier"].run(until, rounds=1_000)
        if candidate is None:
            return None
        y = evaluate(graph, torch.as_tensor(candidate.x).reshape(1, -1)).item()
        assert y <= threshold + 1e-3
        return candidate.x

    prop = Property.from_box(LOWER, UPPER, [(np.array([[1.0]]), np.array([threshold]))])
    holder["falsifier"] = Falsifier(graph, prop, AttackOptions())
    outcome, _ = _search(graph, threshold, falsify, 20.0)
    assert outcome.status is BabStatus.FALSIFIED
    x = np.asarray(outcome.counterexample)
    assert np.all(x >= LOWER - 1e-6) and np.all(x <= UPPER + 1e-6)


def test_turns_keep_to_their_share_of_the_time():
    graph, _ = _mlp("Sigmoid", widths=(2, 16, 16, 1), seed=1)
    threshold = _grid_min(graph) + 0.05             # unprovable: the search runs to its deadline
    spent = []

    def falsify(until: float):
        begun = time.monotonic()
        time.sleep(max(0.0, until - begun))         # an attack that finds nothing
        spent.append(time.monotonic() - begun)
        return None

    seconds = 15.0
    begun = time.monotonic()
    outcome, _ = _search(graph, threshold, falsify, seconds)
    elapsed = time.monotonic() - begun
    assert outcome.status is BabStatus.TIMEOUT
    assert spent, "the attack never got a turn"
    # the first turn takes its share of the time left, later turns at most their share of
    # the time since the search began (plus one minimum turn of slack)
    assert sum(spent) <= (_FIRST_TURN_SHARE + _ATTACK_SHARE) * elapsed + 0.5
    assert elapsed <= seconds + 2.0
