"""BBPS/BaBSR arbitration (``neuron_bab._arbitrate``): the children it bounds are the real
children (checked against children built by hand), and it never keeps the worse of the two
picks.  Small sigmoid MLPs of ``test_neuron_bab``; fast enough for CI (about 10 s)."""
from __future__ import annotations

import time

import pytest
import torch

from genbab.branching.bbps import split_nodes
from genbab.bounds.engine import spec_bounds
from genbab.bounds.plan import make_plan
from genbab.verifier.result import Stats

from tests.unit.branching.test_neuron_bab import (LOWER, UPPER, _mlp, _property,
                                                  _unsat_threshold)


def _arbitration_setup(seed: int):
    from types import SimpleNamespace

    from genbab.branching.bab import Spec
    from genbab.branching.bbps import ScoreInput, shortcuts
    from genbab.branching.domain import Domains
    graph, lip = _mlp("Sigmoid", widths=(2, 12, 12, 1), seed=seed)
    spec = Spec.from_disjunct(_property(_unsat_threshold(graph, lip)).disjuncts[0],
                              torch.float32, torch.device("cpu"))
    lo = torch.tensor(LOWER, dtype=torch.float32).reshape(1, -1)
    up = torch.tensor(UPPER, dtype=torch.float32).reshape(1, -1)
    root = spec_bounds(graph, lo, up, spec.coeffs, method="crown", keep_linear=True,
                       record_coeffs=True)
    plan = make_plan(graph)
    nodes = split_nodes(plan)
    interm = {n.tensor: root.intermediate[n.tensor] for n in nodes}
    intervals = {t: (a.reshape(1, -1), b.reshape(1, -1)) for t, (a, b) in interm.items()}
    data = ScoreInput(intervals, {t: (a + b) / 2 for t, (a, b) in intervals.items()},
                      dict(root.output_coeffs), torch.ones(1, 1, dtype=torch.bool), (lo, up))
    parents = Domains(lo, up, spec.clause_margins(root.lower), torch.zeros(1, dtype=torch.long),
                      interm)
    search = SimpleNamespace(graph=graph, plan=plan, cuts=shortcuts(plan, root.linear, nodes),
                             deadline=time.monotonic() + 60, child_batch=64, stats=Stats())
    return search, nodes, parents, data, spec, interm


def _child_truth(search, nodes, parents, data, spec, interm, i: int, j: int) -> float:
    """Both children of neuron j of nodes[i], built by hand, bounded by CROWN."""
    t = nodes[i].tensor
    lo, up = interm[t]
    point = data.points[t][0, j]
    worst = []
    for side in (0, 1):
        child_lo, child_up = lo.reshape(1, -1).clone(), up.reshape(1, -1).clone()
        (child_up if side == 0 else child_lo)[0, j] = point
        res = spec_bounds(search.graph, parents.lower, parents.upper, spec.coeffs,
                          method="crown", interm={**interm, t: (child_lo.reshape(lo.shape),
                                                                child_up.reshape(up.shape))},
                          refresh=False)
        worst.append(float(spec.clause_margins(res.lower).min()))
    return min(worst)


@pytest.mark.parametrize("seed", [0, 1])
def test_arbitration_bounds_the_real_children_and_never_keeps_the_worse_pick(seed):
    from genbab.branching.neuron_bab import _arbitrate, _children_worst
    search, nodes, parents, data, spec, interm = _arbitration_setup(seed)
    truth = {}
    for i, node in enumerate(nodes):
        for j in range(data.intervals[node.tensor][0].shape[1]):
            got = _children_worst(search, nodes, parents, data, spec, interm,
                                  torch.tensor([0]), torch.tensor([i]), torch.tensor([j]))
            truth[(i, j)] = _child_truth(search, nodes, parents, data, spec, interm, i, j)
            assert float(got[0]) == pytest.approx(truth[(i, j)], abs=1e-5)
    # handed the worst neuron as "BBPS's pick", arbitration must end at least as well as BaBSR
    (i, j) = min(truth, key=truth.get)
    which, index = _arbitrate(search, nodes, parents, data, spec, interm,
                              torch.tensor([i]), torch.tensor([j]))
    from genbab.branching.bbps import choose_neurons
    bw, bi, _ = choose_neurons(search.plan, nodes, data, "babsr", search.cuts)
    kept = truth[(int(which[0]), int(index[0]))]
    assert kept >= max(truth[(i, j)], truth[(int(bw[0]), int(bi[0]))]) - 1e-6
    assert search.stats.extra.get("arbitrated", 0) == (0 if (int(bw[0]), int(bi[0])) == (i, j)
                                                        else 1)
