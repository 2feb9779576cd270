"""The pieces of input-splitting branch-and-bound, each on its own: multi-dimension bisection,
dimension ranking, distinct spec rows, the clause-aware sensitivity, batch-size tuning and the
out-of-memory back-off of the bound call."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import genbab.branching.bab as bab
from genbab.branching.bab import BatchSize, Spec, bound_domains
from genbab.branching.domain import Domains
from genbab.branching.heuristics import clause_sensitivity, rank_input_dims
from genbab.branching.split import split_input_dims
from genbab.vnnlib.property import Clause, Disjunct


def _domains(lower, upper, clauses: int = 1, sensitivity=None) -> Domains:
    lower = torch.as_tensor(lower, dtype=torch.float32)
    upper = torch.as_tensor(upper, dtype=torch.float32)
    return Domains(lower, upper, torch.full((len(lower), clauses), -math.inf, dtype=torch.float64),
                   torch.zeros(len(lower), dtype=torch.long), {}, sensitivity)


def test_split_input_dims_tiles_each_parent_box_exactly():
    parents = _domains([[0.0, 0.0, 0.0], [-1.0, -2.0, 5.0]], [[1.0, 2.0, 4.0], [1.0, 2.0, 6.0]])
    dims = torch.tensor([[0, 2], [1, 0]])
    children = split_input_dims(parents, dims)
    assert len(children) == 8
    volume = (children.upper - children.lower).prod(dim=1)
    for p in range(2):
        mine = [c for c in range(8) if c % 2 == p]   # children are tiled [parent 0, parent 1]*4
        lo, up = children.lower[mine], children.upper[mine]
        assert torch.all(lo >= parents.lower[p]) and torch.all(up <= parents.upper[p])
        parent_volume = (parents.upper[p] - parents.lower[p]).prod()
        assert torch.isclose(volume[mine].sum(), parent_volume)
        assert len({tuple(r) for r in torch.cat([lo, up], dim=1).tolist()}) == 4
        assert torch.all(children.depth[mine] == 2)
        untouched = [d for d in range(3) if d not in dims[p].tolist()]
        assert torch.all(lo[:, untouched] == parents.lower[p, untouched])


def test_rank_input_dims_takes_the_best_distinct_dims_and_skips_fixed_ones():
    sens = torch.tensor([[5.0, 1.0, 100.0, 3.0]])
    doms = _domains([[0.0, 0.0, 0.0, 0.0]], [[1.0, 1.0, 0.0, 1.0]], sensitivity=sens)
    dims = rank_input_dims(None, doms, torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), 2)
    assert dims.tolist() == [[0, 3]]   # dim 2 has no width: never split


def _spec() -> Spec:
    shared = np.array([[0.0, 1.0, 0.0]])
    clauses = [Clause(np.vstack([shared, [[1.0, 0.0, 0.0]]]), np.array([1.0, 0.0])),
               Clause(np.vstack([shared, [[0.0, 0.0, 1.0]]]), np.array([1.0, 2.0]))]
    disjunct = Disjunct(np.zeros(2), np.ones(2), tuple(clauses))
    return Spec.from_disjunct(disjunct, torch.float32, torch.device("cpu"))


def test_spec_bounds_a_shared_row_once_and_gives_the_same_clause_margins():
    spec = _spec()
    rows, members = spec.distinct
    assert len(rows) == 3
    assert members.sum(dim=1).tolist().count(2) == 1   # the shared row sits in both clauses
    # all four rows; rows 0 and 2 are the same row, so they have the same bound
    row_lower = torch.tensor([[1.5, -1.0, 1.5, 2.5], [0.0, 0.5, 0.0, 1.0]])
    distinct_lower = row_lower[:, rows]
    assert torch.equal(spec.margins_of(rows, members, distinct_lower),
                       spec.clause_margins(row_lower))


def test_clause_sensitivity_follows_the_most_nearly_proved_row_of_each_open_clause():
    coeffs = torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])       # (B=1, U=2, n=2)
    members = torch.tensor([[True], [True]])               # one clause with both rows
    near_second = clause_sensitivity(coeffs, torch.tensor([[-5.0, -0.1]]), members,
                                     torch.tensor([[True]]))
    assert near_second.tolist() == [[0.0, 3.0]]
    closed = clause_sensitivity(coeffs, torch.tensor([[-5.0, -0.1]]), members,
                                torch.tensor([[False]]))
    assert closed.tolist() == [[0.0, 0.0]]


def test_batch_size_grows_while_it_pays_then_steps_back():
    batch = BatchSize(cap=4096, size=16)
    for seconds in (0.01, 0.01, 0.01):   # 48 domains in 0.03 s: 1.6k/s
        batch.observe(16, seconds)
    assert batch.size == 64
    for seconds in (0.01, 0.01, 0.01):   # 6.4k/s
        batch.observe(64, seconds)
    assert batch.size == 256
    batch.observe(256, 0.1)
    batch.observe(256, 0.1)
    assert batch.size == 256
    batch.observe(256, 0.2)              # 768 in 0.4 s: 1.9k/s, worse: back to 64 for good
    assert batch.size == 64 and batch.settled
    batch.observe(64, 0.0001)
    assert batch.size == 64


def test_batch_size_pools_its_rounds_instead_of_taking_the_best():
    """One cheap round among slow ones must not make a size look better than it is."""
    batch = BatchSize(cap=4096, size=16)
    for seconds in (0.002, 0.05, 0.05):  # best round 8k/s, all three together 470/s
        batch.observe(16, seconds)
    assert batch.size == 64
    for seconds in (0.02, 0.02, 0.02):   # 3.2k/s: clearly better than 470/s, keeps growing
        batch.observe(64, seconds)
    assert batch.size == 256 and not batch.settled


def test_batch_size_ignores_rounds_that_did_not_fill_it():
    batch = BatchSize(cap=1024, size=16)
    for _ in range(3):
        batch.observe(3, 10.0)
    assert batch.size == 16 and not batch.settled


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory"),
                                   RuntimeError("DefaultCPUAllocator: can't allocate memory: "
                                                "you tried to allocate ... out of memory"),
                                   MemoryError()])
def test_bound_domains_halves_the_batch_on_out_of_memory(monkeypatch, error):
    calls = []

    def fake_bound(search, domains):
        calls.append(len(domains))
        if len(domains) > 3:
            raise error
        return domains.with_margins(domains.lower[:, :1].double() + 1)

    monkeypatch.setattr(bab, "_bound", fake_bound)
    search = SimpleNamespace(chunk=16)
    doms = _domains(torch.arange(10.0).reshape(10, 1), torch.arange(10.0).reshape(10, 1) + 1)
    out = bound_domains(search, doms)
    assert search.chunk == 2                       # 10 -> 5 -> 2 and remembered
    assert out.margins.flatten().tolist() == [float(i + 1) for i in range(10)]
    assert calls[:3] == [10, 5, 2]
    calls.clear()
    bound_domains(search, doms)
    assert max(calls) == 2                         # later rounds start at the smaller size


def test_bound_domains_passes_other_errors_on(monkeypatch):
    def broken(search, domains):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(bab, "_bound", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        bound_domains(SimpleNamespace(chunk=16), _domains([[0.0]], [[1.0]]))


def test_domains_needing_a_rare_row_are_bounded_apart(monkeypatch):
    from pathlib import Path

    from genbab.verifier.onnx_loader import load_model
    from genbab.verifier.options import AttackOptions, BoundOptions, BranchingOptions
    from genbab.verifier.result import Stats

    model = Path(__file__).resolve().parents[3] / "benchmarks/demo/models/onnx/relu_mlp.onnx"
    graph = load_model(model)
    clauses = tuple(Clause(np.eye(3)[[k]], np.array([0.0])) for k in range(3))
    disjunct = Disjunct(-np.ones(2), np.ones(2), clauses)
    spec = Spec.from_disjunct(disjunct, torch.float32, torch.device("cpu"))
    search = bab._Search(graph, spec, BranchingOptions(method="crown"), BoundOptions(),
                         AttackOptions(), disjunct, lambda x: None, math.inf, Stats(),
                         clip=False)   # boxes keep their size, so the order shows below
    lower = torch.linspace(-1, 0.8, 20).reshape(20, 1).expand(20, 2).contiguous()
    doms = _domains(lower, lower + 0.2, clauses=3)
    margins = doms.margins.clone()
    margins[:, 1] = 1.0               # clause 1 is proved everywhere
    margins[:17, 2] = 1.0             # clause 2 is open in only three domains
    doms = doms.with_margins(margins)
    rows_per_call = []
    real = bab.spec_bounds

    def counting(graph, lower, upper, coeffs, **kw):
        rows_per_call.append((len(lower), coeffs.shape[0]))
        return real(graph, lower, upper, coeffs, **kw)

    monkeypatch.setattr(bab, "spec_bounds", counting)
    apart = bab._bound(search, doms)
    assert sorted(rows_per_call) == [(3, 2), (17, 1)]
    # CROWN refines only neurons that some domain of the batch needs, so bounds depend a little
    # on the batch: compare each group with the same group bounded on its own
    common = doms.select(torch.arange(17))
    rare = doms.select(torch.arange(17, 20))
    members = spec.distinct[1]
    alone = [bab._bound_rows(search, common, members[:, 0]),
             bab._bound_rows(search, rare, members[:, 0] | members[:, 2])]
    assert torch.equal(apart.margins, torch.cat([a.margins for a in alone]))
    assert torch.equal(apart.lower, doms.lower)   # same order as given


def test_split_depth_bisects_two_dimensions_only_in_small_rounds():
    from genbab.branching.bab import _DEEP_BELOW, _split_depth
    assert _split_depth(budget=1024, parents=4, free_dims=6) == 2
    assert _split_depth(budget=1024, parents=4, free_dims=1) == 1
    assert _split_depth(budget=131072, parents=_DEEP_BELOW, free_dims=6) == 1
    assert _split_depth(budget=131072, parents=_DEEP_BELOW - 1, free_dims=6) == 2
