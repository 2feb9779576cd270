"""The quadratic-form rewrite (``bounds.rewrite._squares``): ``ReduceSum(z * (z @ P))`` becomes a
weighted sum of squares of linear forms plus an exact remainder.

Checked here: the rewritten graph computes the same function (float64, symmetric, skew and
indefinite P); the pattern is only taken where the product and the MatMul feed nothing else;
bounds stay sound on sampled points and box corners; and the lower bound of a convex form is
within the tangent-plane error of the true minimum, which McCormick planes on the coordinates
are not (so the test fails if the rewrite stops applying).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genbab.bounds.engine import spec_bounds
from genbab.bounds.rewrite import prepare
from tests.unit.bounds.test_engine import model, n, outputs, samples
from genbab.verifier.forward import evaluate
from genbab.verifier.onnx_loader import load_model
from genbab.verifier.options import BoundOptions

_RNG = np.random.default_rng(7)


def _matrix(kind: str, size: int = 4) -> np.ndarray:
    r = _RNG.standard_normal((size, size))
    if kind == "pd":
        return (r.T @ r + 0.1 * np.eye(size)).astype(np.float32)
    if kind == "indefinite":
        return ((r + r.T) / 2).astype(np.float32)
    return r.astype(np.float32)                 # "skew": not symmetric


def _form_model(kind: str, extra_use: bool = False):
    """y = [z^T P z, sum(z)] with z = x @ W + c (3 inputs, 4-dim z)."""
    inits = {"W": (_RNG.standard_normal((3, 4)) * 0.7).astype(np.float32),
             "c": (_RNG.standard_normal(4) * 0.3).astype(np.float32), "P": _matrix(kind),
             "axes": np.array([-1], np.int64)}
    nodes = [n("MatMul", ["x", "W"], ["zw"]), n("Add", ["zw", "c"], ["z"]),
             n("MatMul", ["z", "P"], ["t"]), n("Mul", ["z", "t"], ["m"]),
             n("ReduceSum", ["m", "axes"], ["v"], keepdims=1),
             n("ReduceSum", ["t" if extra_use else "z", "axes"], ["s"], keepdims=1),
             n("Concat", ["v", "s"], ["y"], axis=-1)]
    return load_model(model(nodes, (1, 3), (1, 2), inits))


def _ops(graph) -> list[str]:
    return [node.op_type for node in graph.nodes]


@pytest.mark.parametrize("kind", ["pd", "indefinite", "skew"])
def test_rewritten_graph_computes_the_same_function(kind):
    graph = _form_model(kind)
    rewritten = prepare(graph)
    assert "Pow" in _ops(rewritten)
    x = torch.randn(500, 3, dtype=torch.float64) * 3
    before, after = evaluate(graph, x), evaluate(rewritten, x)
    assert torch.allclose(before, after, rtol=1e-10, atol=1e-10 * float(before.abs().max()))


def test_pattern_is_left_alone_when_the_product_is_used_elsewhere():
    assert "Pow" not in _ops(prepare(_form_model("pd", extra_use=True)))


def _boxes(batch: int = 12, seed: int = 3):
    gen = torch.Generator().manual_seed(seed)
    centre = torch.randn(batch, 3, generator=gen, dtype=torch.float64)
    radius = torch.rand(batch, 3, generator=gen, dtype=torch.float64) * 0.8
    radius[0] = 0.0                                   # a degenerate box
    return centre - radius, centre + radius


@pytest.mark.parametrize("kind", ["pd", "indefinite", "skew"])
@pytest.mark.parametrize("method", ["crown", "alpha"])
def test_bounds_contain_sampled_values(kind, method):
    graph = _form_model(kind)
    lower, upper = _boxes()
    coeffs = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.5, -1.0]], dtype=torch.float64)
    result = spec_bounds(graph, lower, upper, coeffs, method=method,
                         options=BoundOptions(method=method, alpha_iterations=10))
    y = outputs(graph, samples(lower, upper, per_box=400, seed=5))
    rows = torch.einsum("bpm,rm->bpr", y, coeffs)
    assert bool((result.lower.unsqueeze(1) <= rows + 1e-9 * (1 + rows.abs())).all())


def test_convex_form_lower_bound_is_within_the_tangent_error():
    """For positive definite P the bound is at most ``sum_i lam_i r_i^2`` below the true
    minimum (r_i: half the range of ``q_i . z`` over the box), the error of a tangent plane
    at the centre; McCormick planes on ``z_j * (z @ P)_j`` are several times looser."""
    graph = _form_model("pd")
    lower, upper = _boxes(seed=11)
    result = spec_bounds(graph, lower, upper, torch.tensor([[1.0, 0.0]], dtype=torch.float64),
                         method="crown", options=BoundOptions(method="crown"))
    consts = graph.constants
    w, p = consts["W"].double(), consts["P"].double()
    lam, q = torch.linalg.eigh(p)
    half = (upper - lower) / 2
    radius = (half @ (w @ q).abs())                             # (B, 4): range of q_i . z
    allowed = (lam * radius ** 2).sum(dim=1)
    y = outputs(graph, samples(lower, upper, per_box=2000, seed=5))
    true_min = y[..., 0].min(dim=1).values
    assert bool((result.lower[:, 0] >= true_min - allowed - 1e-9).all())
    assert bool((result.lower[:, 0] <= true_min + 1e-9).all())
