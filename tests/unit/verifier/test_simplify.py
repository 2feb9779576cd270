"""Peeling the output softmax (genbab/simplify.py): only where the property means the same on
the logits, and then the verdicts agree with ground truth on the original model."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from genbab.api import verify
from genbab.verifier.forward import evaluate
from genbab.verifier.onnx_loader import load_model
from genbab.verifier.result import Status
from genbab.simplify import peel_output_softmax, simplify
from genbab.vnnlib.property import Property

N_IN, N_OUT = 2, 3


def _softmax_model(after: str | None = None, shape=(1, N_OUT), seed: int = 0) -> onnx.ModelProto:
    """``softmax(W2 tanh(W1 x + b1) + b2)`` (optionally followed by ``after``)."""
    rng = np.random.default_rng(seed)
    out = int(np.prod(shape))
    w1 = rng.standard_normal((8, N_IN)).astype(np.float32) * 2
    w2 = rng.standard_normal((out, 8)).astype(np.float32) * 3
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(np.zeros(8, np.float32), "b1"),
             numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.zeros(out, np.float32), "b2"),
             numpy_helper.from_array(np.array(shape, dtype=np.int64), "shape")]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["z1"], transB=1),
             helper.make_node("Tanh", ["z1"], ["h1"]),
             helper.make_node("Gemm", ["h1", "w2", "b2"], ["z2"], transB=1),
             helper.make_node("Reshape", ["z2", "shape"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["p"], axis=-1)]
    last = "p"
    if after == "Neg":
        nodes.append(helper.make_node("Neg", ["p"], ["q"]))
        last = "q"
    graph = helper.make_graph(nodes, "softmax_net",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, N_IN])],
                              [helper.make_tensor_value_info(last, TensorProto.FLOAT, list(shape))],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _row(i: int, j: int, scale: float = 1.0, m: int = N_OUT) -> np.ndarray:
    """Coefficients of ``scale (y_i - y_j)``."""
    row = np.zeros(m)
    row[i], row[j] = scale, -scale
    return row


def _prop(rows, thresholds, m: int = N_OUT, lo=-1.0, hi=1.0) -> Property:
    clauses = [(np.array([r]), np.array([t])) for r, t in zip(rows, thresholds)]
    return Property.from_box(np.full(N_IN, lo), np.full(N_IN, hi), clauses)


def test_pairwise_property_is_searched_on_the_logits():
    graph = load_model(_softmax_model())
    prop = _prop([_row(0, 2), _row(2, 1, scale=-3.0)], [0.0, 0.0])
    peeled, notes = simplify(graph, prop)
    assert notes and peeled.nodes[-1].op_type != "Softmax"
    x = torch.rand(64, N_IN, dtype=torch.float64) * 2 - 1
    logits = evaluate(peeled, x).reshape(64, -1)
    probs = evaluate(graph, x).reshape(64, -1)
    assert torch.allclose(torch.softmax(logits, dim=1), probs, atol=1e-12)
    # the same clauses hold on both (no ties among random points)
    for clause in (c for d in prop.disjuncts for c in d.clauses):
        on_probs = clause.is_satisfied(probs.numpy())
        on_logits = clause.is_satisfied(logits.numpy())
        assert np.array_equal(on_probs, on_logits)


@pytest.mark.parametrize("rows,thresholds", [
    ([_row(0, 1)], [0.1]),                                     # threshold: not scale-free
    ([np.array([1.0, 0.0, 0.0])], [0.0]),                      # one output against a constant
    ([np.array([1.0, -2.0, 0.0])], [0.0]),                     # unequal weights
    ([np.array([1.0, -1.0, 1.0])], [0.0]),                     # three outputs
    ([_row(0, 1), np.array([0.0, 1.0, 0.0])], [0.0, 0.5]),     # one clause not pairwise
])
def test_properties_that_softmax_changes_are_not_peeled(rows, thresholds):
    graph = load_model(_softmax_model())
    assert peel_output_softmax(graph, _prop(rows, thresholds)) is None


def test_softmax_that_is_not_the_last_op_or_spans_several_groups_is_not_peeled():
    assert peel_output_softmax(load_model(_softmax_model(after="Neg")),
                               _prop([_row(0, 1)], [0.0])) is None
    grouped = load_model(_softmax_model(shape=(2, 3)))     # softmax per row of a 2 x 3 output
    assert peel_output_softmax(grouped, _prop([_row(0, 4, m=6)], [0.0], m=6)) is None


def _ground_truth(model: onnx.ModelProto, prop: Property, n: int = 401) -> bool:
    """True if some grid point of the box violates ``prop`` on the original model (float64)."""
    graph = load_model(model)
    box = prop.disjuncts[0]
    axes = [torch.linspace(float(box.lower[k]), float(box.upper[k]), n, dtype=torch.float64)
            for k in range(N_IN)]
    y = evaluate(graph, torch.cartesian_prod(*axes)).reshape(n * n, -1).numpy()
    return any(bool(c.is_satisfied(y).any()) for d in prop.disjuncts for c in d.clauses)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_verdicts_on_peeled_models_match_a_grid(seed):
    """"The top class at the centre stays on top" on a small and on a large box, against every
    other class: sat iff the grid finds a violating point (the grid is fine enough for these
    smooth 2-D nets), and both verdicts occur."""
    model = _softmax_model(seed=seed)
    centre = torch.full((1, N_IN), 0.2, dtype=torch.float64)
    top = int(evaluate(load_model(model), centre).reshape(-1).argmax())
    verdicts = set()
    for radius in (0.05, 1.0):
        for other in (k for k in range(N_OUT) if k != top):
            prop = _prop([_row(top, other)], [0.0], lo=0.2 - radius, hi=0.2 + radius)
            result = verify(model, prop, timeout=20)
            assert result.stats.extra.get("simplified")
            expected = _ground_truth(model, prop)
            if result.status is Status.FALSIFIED:
                assert expected, "sat without a grid point violating the property"
            else:
                assert result.status is Status.VERIFIED and not expected
            verdicts.add(result.status)
    assert verdicts == {Status.FALSIFIED, Status.VERIFIED}
