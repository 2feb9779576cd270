"""The PGD search itself: where restarts start, how the loss weighs rows, and that a violation
reachable only on the box boundary or far along a slow ascent is found."""
from __future__ import annotations

import time

import numpy as np
import torch
from onnx import TensorProto, helper, numpy_helper

from genbab.branching.attack import Falsifier, _hinge_loss, _row_scale
from genbab.verifier.onnx_loader import load_model
from genbab.verifier.options import AttackOptions
from genbab.vnnlib.property import Property


def _linear_model(weight: np.ndarray, bias: np.ndarray):
    """y = W x + b as a loaded graph."""
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)]
    inits = [numpy_helper.from_array(weight.astype(np.float32), "w"),
             numpy_helper.from_array(bias.astype(np.float32), "b")]
    graph = helper.make_graph(nodes, "lin", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, weight.shape[1]])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, weight.shape[0]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return load_model(model)


def test_half_of_the_restarts_start_on_box_faces():
    graph = _linear_model(np.eye(2, 40), np.zeros(2))
    prop = Property.from_box(-np.ones(40), np.ones(40), [(np.array([[1.0, 0.0]]), np.array([-5.0]))])
    falsifier = Falsifier(graph, prop, AttackOptions())
    targets = falsifier.targets.subset(torch.zeros(200, dtype=torch.long))
    x = falsifier._restart_points(targets)
    assert bool(((x >= -1) & (x <= 1)).all())
    on_face = (x.abs() == 1).float()
    assert on_face[0::2].mean() == 0                      # uniform rows: interior
    assert 0.55 < float(on_face[1::2].mean()) < 0.78      # face rows: about two thirds


def test_hinge_loss_weighs_rows_by_their_coefficient_norm():
    rows = torch.tensor([[3.0, -1.0, 10.0]])
    coeffs = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    loss = _hinge_loss(rows, _row_scale(coeffs), tolerance=0.0)
    assert torch.allclose(loss, torch.tensor([3.0 + 0.0 + 1.0]))
    padded = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert _row_scale(padded)[0, 1] == 1


def test_violation_only_in_a_corner_is_found():
    """y0 = sum(x) over 30 inputs in [-1, 1]; violation only if y0 >= 29.5, which needs every
    coordinate within 1/60 of its upper bound: uniform samples never get there, PGD must."""
    n = 30
    graph = _linear_model(np.ones((1, n)), np.zeros(1))
    prop = Property.from_box(-np.ones(n), np.ones(n), [(np.array([[-1.0]]), np.array([-29.5]))])
    falsifier = Falsifier(graph, prop, AttackOptions(samples=0, rounds=1))
    found = falsifier.run(time.monotonic() + 20)
    assert found is not None and found.x.sum() >= 29.5


def test_pgd_keeps_climbing_a_slow_quadratic():
    """margin = 100 - (w.x)^2 with w.x near 0 at the centre: sign steps must keep growing |w.x|
    over many steps (the ACOPF thermal-limit shape), not shrink their step while improving."""
    n = 50
    rng = np.random.default_rng(0)
    w = rng.normal(size=(1, n)) / np.sqrt(n)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["z"], transB=1),
             helper.make_node("Mul", ["z", "z"], ["y"])]
    inits = [numpy_helper.from_array(w.astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(1, dtype=np.float32), "b")]
    g = helper.make_graph(nodes, "quad", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, n])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 1])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    graph = load_model(model)
    top = float(np.abs(w).sum()) ** 2            # max of (w.x)^2 over [-1, 1]^n
    prop = Property.from_box(-np.ones(n), np.ones(n),
                             [(np.array([[-1.0]]), np.array([-0.95 * top]))])
    falsifier = Falsifier(graph, prop, AttackOptions(samples=0, restarts=4, rounds=1))
    assert falsifier.run(time.monotonic() + 20) is not None


def test_points_with_nan_outputs_do_not_trap_the_search():
    """y = sqrt(x0) + x1 is NaN on half of the box; the violation needs x0 and x1 near 1."""
    nodes = [helper.make_node("Gather", ["x", "i0"], ["x0"], axis=1),
             helper.make_node("Gather", ["x", "i1"], ["x1"], axis=1),
             helper.make_node("Sqrt", ["x0"], ["r"]),
             helper.make_node("Add", ["r", "x1"], ["y"])]
    inits = [numpy_helper.from_array(np.array([0], dtype=np.int64), "i0"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "i1")]
    g = helper.make_graph(nodes, "nan", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 1])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    prop = Property.from_box([-1.0, -1.0], [1.0, 1.0], [(np.array([[-1.0]]), np.array([-1.95]))])
    falsifier = Falsifier(load_model(model), prop, AttackOptions(samples=0, rounds=2))
    found = falsifier.run(time.monotonic() + 20)
    assert found is not None and np.sqrt(found.x[0]) + found.x[1] >= 1.95


def test_a_round_cut_by_the_deadline_resumes_where_it_stopped():
    """Time-sliced attacks (inside branch-and-bound) continue one descent across calls."""
    n = 30
    graph = _linear_model(np.ones((1, n)), np.zeros(1))
    prop = Property.from_box(-np.ones(n), np.ones(n), [(np.array([[-1.0]]), np.array([-31.0]))])
    falsifier = Falsifier(graph, prop, AttackOptions(samples=0, steps=20))
    for _ in range(5):    # a deadline already passed: exactly one step per call
        assert falsifier._pgd_round(time.monotonic()) is None
    restarts = falsifier.restarts_done
    assert falsifier.steps_done == 5 and falsifier._queue[0].step == 5
    assert falsifier._pgd_round(time.monotonic() + 20) is None
    assert falsifier.steps_done == 20 and falsifier.restarts_done == restarts
    assert not falsifier._queue


def _binarised_net(seed: int, n: int = 200, hidden: int = 48):
    """``y = w2 . sign(W1 x + b1)`` on pixels around 100-140 (pre-activations in the hundreds,
    like binarised image nets), with ``b1`` chosen so that one point ``x*`` of the box puts every
    hidden sign where ``w2`` wants it (``y(x*) = hidden``).  Random points get about half of the
    signs right; a fixed ``tanh`` surrogate has no gradient at such pre-activations."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(100, 140, n)
    target = centre + rng.uniform(-20, 20, n)
    w1 = rng.choice([-1.0, 1.0], (hidden, n))
    w2 = rng.choice([-1.0, 1.0], (1, hidden))
    b1 = -(w1 @ target) + w2[0] * rng.uniform(5, 20, hidden)
    arrays = {"w1": w1, "b1": b1, "w2": w2, "b2": np.zeros(1)}
    inits = [numpy_helper.from_array(a.astype(np.float32), k) for k, a in arrays.items()]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["z"], transB=1),
             helper.make_node("Sign", ["z"], ["h"]),
             helper.make_node("Gemm", ["h", "w2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "bnn", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, n])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return load_model(model), centre


def test_sign_surrogate_leads_the_attack_through_large_pre_activations():
    for seed in range(3):
        graph, centre = _binarised_net(seed)
        hidden = 48
        # violated iff y >= hidden - 4 (at most two of 48 signs wrong)
        prop = Property.from_box(centre - 20, centre + 20,
                                 [(np.array([[-1.0]]), np.array([-(hidden - 4.0)]))])
        falsifier = Falsifier(graph, prop, AttackOptions(samples=16))
        found = falsifier.run(time.monotonic() + 10.0, rounds=20)
        assert found is not None, f"seed {seed}: best margin {falsifier.best_margin}"
        assert bool(np.all(found.x >= centre - 20 - 1e-4)) and bool(np.all(found.x <= centre + 20 + 1e-4))
