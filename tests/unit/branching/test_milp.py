"""The HiGHS MILP for ReLU chains: exact against a dense grid on 2-D nets, and then used as
the independent ground truth for neuron-split BaB on a 6-D ReLU net (no grid possible)."""
from __future__ import annotations

import math
import time

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from genbab.branching import milp
from genbab.branching.bab import BabStatus
from genbab.branching.neuron_bab import neuron_split_bab
from genbab.bounds.engine import spec_bounds
from genbab.verifier.forward import evaluate
from genbab.verifier.onnx_loader import load_model
from genbab.verifier.options import AttackOptions, BoundOptions, BranchingOptions
from genbab.verifier.result import Stats
from genbab.vnnlib.property import Property


def _net(widths, act="Relu", seed=0, skip=False):
    rng = np.random.default_rng(seed)
    nodes, inits, name = [], [], "x"
    for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        w = (rng.standard_normal((b, a)) * 1.2 / math.sqrt(a)).astype(np.float32)
        bias = (rng.standard_normal(b) * 0.3).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{k}"), numpy_helper.from_array(bias, f"b{k}")]
        nodes.append(helper.make_node("Gemm", [name, f"W{k}", f"b{k}"], [f"z{k}"], transB=1))
        name = f"z{k}"
        if k < len(widths) - 2:
            nodes.append(helper.make_node(act, [name], [f"h{k}"]))
            name = f"h{k}"
            if skip and k == 1:
                nodes.append(helper.make_node("Add", [name, "h0"], ["s"]))
                name = "s"
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, widths[0]])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, widths[-1]])], inits)
    return load_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def test_chain_reproduces_the_network():
    g = _net((5, 12, 12, 12, 3), seed=3)
    chain = milp.relu_chain(g)
    assert chain is not None and len(chain.weights) == 4
    x = torch.rand(50, 5, dtype=torch.float64) * 4 - 2
    a = x.numpy()
    for w, b in zip(chain.weights[:-1], chain.biases[:-1]):
        a = np.maximum(a @ w.T + b, 0.0)
    y = a @ chain.weights[-1].T + chain.biases[-1]
    assert np.allclose(y, evaluate(g, x).numpy().reshape(50, 3), atol=1e-6)


@pytest.mark.parametrize("act, skip", [("Sigmoid", False), ("Relu", True)])
def test_non_chains_are_declined(act, skip):
    assert milp.relu_chain(_net((2, 6, 6, 6, 1), act=act, skip=skip)) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_milp_minimum_matches_the_grid(seed):
    g = _net((2, 10, 10, 1), seed=seed)
    chain = milp.relu_chain(g)
    lo, up = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    bounds = milp.interval_bounds(chain, lo, up)
    axes = [torch.linspace(-1, 1, 801, dtype=torch.float64)] * 2
    with torch.no_grad():
        grid_min = float(evaluate(g, torch.cartesian_prod(*axes)).min())
    c = np.array([[1.0]])
    above = milp.solve(chain, lo, up, [(c, np.array([grid_min + 1e-3]))], bounds, 30)
    assert above.refuted == (False,) and above.candidate is not None
    with torch.no_grad():
        y = float(evaluate(g, torch.tensor(above.candidate).reshape(1, 2)))
    assert y <= grid_min + 1e-3 + 1e-6 and np.all(above.candidate >= lo) and np.all(above.candidate <= up)
    # the true minimum is at most the grid minimum and (for these weights) within 0.02 of it
    below = milp.solve(chain, lo, up, [(c, np.array([grid_min - 0.02]))], bounds, 30)
    assert below.refuted == (True,) and below.complete


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_neuron_bab_agrees_with_the_milp_on_a_6d_relu_net(seed):
    g = _net((6, 16, 16, 1), seed=seed)
    chain = milp.relu_chain(g)
    lo, up = -np.ones(6), np.ones(6)
    bounds = milp.interval_bounds(chain, lo, up)
    c = np.array([[1.0]])
    # the exact minimum of y over the box: the MILP's optimum with threshold 0
    exact = milp.solve(chain, lo, up, [(c, np.array([0.0]))], bounds, 60)
    assert exact.complete and exact.candidate is not None
    minimum = exact.lower[0]
    with torch.no_grad():
        at_witness = float(evaluate(g, torch.tensor(exact.candidate).reshape(1, 6)))
    assert abs(at_witness - minimum) < 1e-4
    root = spec_bounds(g, torch.tensor(lo, dtype=torch.float32)[None],
                       torch.tensor(up, dtype=torch.float32)[None], torch.tensor(c),
                       method="crown").lower.item()
    assert root < minimum - 0.01, "the root bound already proves it: the test would be vacuous"
    for threshold, provable in ((minimum - 0.3 * (minimum - root), True), (minimum + 1e-3, False)):
        prop = Property.from_box(lo, up, [(c, np.array([threshold]))])
        outcome = neuron_split_bab(
            g, prop.disjuncts[0], lambda x: None,
            options=BranchingOptions(batch_size=16, method="crown"),
            bound_options=BoundOptions(alpha_iterations=5), attack=AttackOptions(),
            deadline=time.monotonic() + (60.0 if provable else 3.0), stats=Stats())
        if provable:
            assert outcome.status is BabStatus.VERIFIED, outcome.reason
        else:
            assert outcome.status is not BabStatus.VERIFIED


def test_verify_with_milp_proves_what_the_root_bounds_cannot_and_finds_violations():
    import dataclasses

    from genbab.api import verify
    from genbab.verifier.options import VerifyOptions
    from genbab.verifier.result import Status

    g = _net((2, 10, 10, 1), seed=1)
    lo, up = -np.ones(2), np.ones(2)
    c = np.array([[1.0]])
    chain = milp.relu_chain(g)
    exact = milp.solve(chain, lo, up, [(c, np.array([0.0]))], milp.interval_bounds(chain, lo, up), 30)
    root = spec_bounds(g, torch.tensor(lo, dtype=torch.float32)[None],
                       torch.tensor(up, dtype=torch.float32)[None], torch.tensor(c),
                       method="alpha").lower.item()
    minimum = exact.lower[0]
    assert root < minimum - 0.01
    options = VerifyOptions(timeout_s=20)
    options = dataclasses.replace(options, branching=dataclasses.replace(
        options.branching, milp=True))
    proved = verify(g, Property.from_box(lo, up, [(c, np.array([(root + minimum) / 2]))]),
                    options=options)
    assert proved.status is Status.VERIFIED and proved.message == "proved by the MILP"
    assert "milp" in proved.stats.seconds
    violated = verify(g, Property.from_box(lo, up, [(c, np.array([minimum + 1e-3]))]),
                      options=options)
    assert violated.status is Status.FALSIFIED
