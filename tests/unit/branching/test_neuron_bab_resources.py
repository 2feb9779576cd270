"""Neuron-split BaB bookkeeping: warm starts carried by ``Domains``, split statistics, spec-row
compaction and the out-of-memory back-off of the one function that bounds children."""
from __future__ import annotations

import pytest
import torch

import genbab.branching.neuron_bab as nb
from genbab.branching.domain import Domains, Pool
from tests.unit.branching.test_neuron_bab import _mlp, _run, _unsat_threshold
from genbab.branching.bab import BabStatus


def _domains(batch: int, rows: int = 3) -> Domains:
    lower = torch.arange(batch, dtype=torch.float32).reshape(batch, 1)
    return Domains(lower, lower + 1, torch.full((batch, 2), -1.0, dtype=torch.float64),
                   torch.zeros(batch, dtype=torch.long),
                   {"h": (torch.zeros(batch, 4), torch.ones(batch, 4))},
                   alpha={"n": lower.reshape(1, batch, 1, 1).expand(2, batch, rows, 4).clone()},
                   beta={"h": (lower.expand(batch, rows * 4).reshape(batch, rows, 4).clone(),
                               torch.zeros(batch, rows, 4))})


def test_domains_select_and_cat_keep_alpha_and_beta_aligned_with_the_batch():
    d = Domains.cat([_domains(3), _domains(2)])
    assert d.alpha["n"].shape == (2, 5, 3, 4) and d.beta["h"][0].shape == (5, 3, 4)
    picked = d.select(torch.tensor([4, 0]))
    assert torch.equal(picked.alpha["n"][0, :, 0, 0], picked.lower[:, 0])
    assert torch.equal(picked.beta["h"][0][:, 0, 0], picked.lower[:, 0])
    pool = Pool(d)
    taken = pool.pop(2)
    assert taken.alpha["n"].shape[1] == 2 and len(pool) == 3


def test_cat_drops_a_warm_start_some_part_lacks():
    plain = Domains(torch.zeros(1, 1), torch.ones(1, 1), torch.zeros(1, 2),
                    torch.zeros(1, dtype=torch.long), {"h": (torch.zeros(1, 4), torch.ones(1, 4))})
    d = Domains.cat([_domains(2), plain])
    assert len(d) == 3 and not d.alpha and not d.beta


def test_put_rows_writes_only_the_bounded_rows():
    full = torch.zeros(2, 5, 3)
    part = torch.ones(2, 2, 3)
    out = nb._put_rows(full, part, torch.tensor([1, 3]), 1, 5)
    assert out[:, [1, 3]].eq(1).all() and out[:, [0, 2, 4]].eq(0).all()
    assert full.eq(0).all()
    fresh = nb._put_rows(None, part, torch.tensor([0, 4]), 1, 5)
    assert fresh.shape == (2, 5, 3) and fresh[:, [0, 4]].eq(1).all()


@pytest.mark.slow
def test_out_of_memory_halves_the_child_batch_and_retries(monkeypatch):
    graph, lip = _mlp("Sigmoid")
    threshold = _unsat_threshold(graph, lip)
    real = nb._bound_batch
    calls = {"sizes": [], "raised": False}

    def flaky(search, children, fixed):
        calls["sizes"].append(len(children))
        if not calls["raised"] and len(children) >= 2:
            calls["raised"] = True
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(search, children, fixed)

    monkeypatch.setattr(nb, "_bound_batch", flaky)
    outcome, stats = _run(graph, threshold, method="alpha")
    assert calls["raised"] and outcome.status is BabStatus.VERIFIED, outcome.reason
    first = calls["sizes"][0]
    assert calls["sizes"][1] == first // 2       # retried with half the children
    assert max(calls["sizes"][1:]) <= first // 2  # and remembered
    assert stats.splits_by_kind.get("sigmoid", 0) > 0
    assert stats.bab_rounds > 0 and stats.domains_visited > 0 and stats.best_bound_history


@pytest.mark.slow
def test_other_errors_are_not_swallowed(monkeypatch):
    graph, lip = _mlp("Relu")
    threshold = _unsat_threshold(graph, lip)

    def broken(search, children, fixed):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(nb, "_bound_batch", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        _run(graph, threshold)


def test_split_kind_names_the_consumers():
    from types import SimpleNamespace as NS
    node = NS(consumers=(NS(op_type="Sin"), NS(op_type="Cos")))
    assert nb.split_kind(node) == "sin/cos"
    assert nb.split_kind(NS(consumers=(NS(op_type="Relu"),))) == "relu"
    assert nb.split_kind(NS(consumers=(NS(op_type="Mul"),))) == "mul"


def test_warm_starts_are_dropped_pool_wide_past_the_memory_budget(monkeypatch):
    d = _domains(4)
    assert nb._within_warm_budget(d, 10).alpha                      # small: kept
    monkeypatch.setattr(nb, "_WARM_BYTES", 64)
    kept = nb._within_warm_budget(d, 10)
    assert not kept.alpha and not kept.beta and len(kept) == 4
    pool = Pool(_domains(3))
    pool.push(kept)
    assert len(pool) == 7 and not pool.pop(7).alpha


def test_relu_only_keeps_general_neurons_unsplit():
    from types import SimpleNamespace as NS
    nodes = [NS(tensor="a", at_zero=True), NS(tensor="b", at_zero=False)]
    assert [n.tensor for n in nb.splittable_nodes(nodes, "relu-only")] == ["a"]
    assert [n.tensor for n in nb.splittable_nodes(nodes, "all")] == ["a", "b"]


@pytest.mark.slow
def test_relu_only_on_a_sigmoid_net_bisects_inputs_and_stays_sound():
    graph, lip = _mlp("Sigmoid")
    threshold = _unsat_threshold(graph, lip)
    outcome, stats = _run(graph, threshold, split="relu-only", timeout_s=10.0)
    assert "sigmoid" not in stats.splits_by_kind
    assert stats.splits_by_kind.get("input", 0) > 0
    from tests.unit.branching.test_neuron_bab import _grid_min
    bad, _ = _run(graph, _grid_min(graph) + 1e-3, split="relu-only", timeout_s=3.0)
    assert bad.status is not BabStatus.VERIFIED
