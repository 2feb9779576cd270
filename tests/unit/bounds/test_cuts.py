"""Scalar cuts (``BoundOptions.scalar_cuts``, ``bounds.backward._cut``).

Checked here: which tensors the plan offers as cuts (one element, something nonlinear behind,
no terminal product behind) and as cut-affine tensors, whose Jacobian must reproduce them;
bounds with cuts contain sampled values on narrow, wide, degenerate and large boxes, and so
do their linear functions; a cut whose past is its own gives the same bounds as the full
pass; the cuts are really taken (the test fails if the backward pass stops using them); and
they are off unless asked for.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genbab.bounds.engine import spec_bounds
from genbab.bounds.plan import make_plan
from tests.unit.bounds.test_engine import (assert_linear_bound_holds, model, n, outputs,
                                           random_boxes, samples)
from genbab.verifier.onnx_loader import load_model
from genbab.verifier.options import BoundOptions

_RNG = np.random.default_rng(23)


def _w(*shape: int, scale: float = 0.7) -> np.ndarray:
    return (_RNG.standard_normal(shape) * scale).astype(np.float32)


def _controlled_model(shared: bool = True, terminal: bool = False):
    """A small closed loop like lsnc's: a ReLU controller ``h`` gives the scalar ``u``
    (and, with ``shared``, a second scalar ``v`` read from the same ``h``); the dynamics
    ``p = sin(x0) * u`` is one element; ``z = [p, v, x] W`` (6 elements) goes through Tanh
    to two outputs.  With ``terminal`` the output also adds ``sum(x * z)``, a terminal
    product, whose one-element sum no cut may hide."""
    inits = {"W1": _w(3, 5), "b1": _w(5), "Wu": _w(5, 1), "Wv": _w(5, 1),
             "W4": _w(5 if shared else 4, 6), "Wo": _w(6, 2), "starts": np.array([0], np.int64),
             "ends": np.array([1], np.int64), "axes": np.array([1], np.int64),
             "raxes": np.array([-1], np.int64), "Wx": _w(3, 6)}
    nodes = [n("MatMul", ["x", "W1"], ["a0"]), n("Add", ["a0", "b1"], ["a"]),
             n("Relu", ["a"], ["h"]), n("MatMul", ["h", "Wu"], ["u"]),
             n("Slice", ["x", "starts", "ends", "axes"], ["x0"]), n("Sin", ["x0"], ["s"]),
             n("Mul", ["s", "u"], ["p"])]
    parts = ["p"]
    if shared:
        nodes.append(n("MatMul", ["h", "Wv"], ["v"]))
        parts.append("v")
    nodes += [n("Concat", parts + ["x"], ["c"], axis=-1), n("MatMul", ["c", "W4"], ["z"]),
              n("Tanh", ["z"], ["t"]), n("MatMul", ["t", "Wo"], ["yo"] if terminal else ["y"])]
    if terminal:
        nodes += [n("MatMul", ["x", "Wx"], ["xw"]), n("Mul", ["xw", "z"], ["q"]),
                  n("ReduceSum", ["q", "raxes"], ["qs"], keepdims=1), n("Add", ["yo", "qs"], ["y"])]
    return load_model(model(nodes, (1, 3), (1, 2), inits))


_ROWS = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.5, -1.0]])


def _boxes(scale: float, batch: int = 16):
    return random_boxes(scale, batch, seed=3)


def _bounds(graph, lower, upper, cuts: bool):
    options = BoundOptions(method="crown", scalar_cuts=cuts)
    return spec_bounds(graph, lower, upper, _ROWS, method="crown", options=options)


def test_cuts_are_one_element_tensors_with_something_nonlinear_behind():
    graph = _controlled_model()
    cuts = make_plan(graph).scalar_cuts
    assert {"u", "v", "p", "s"} <= cuts
    assert "x0" not in cuts                  # an affine function of the input: no gain
    assert not {"z", "t", "h"} & cuts        # more than one element
    assert "y" not in cuts


def test_no_cut_hides_a_terminal_product():
    graph = _controlled_model(terminal=True)
    plan = make_plan(graph)
    assert [node.name for node in plan.terminal_products]
    assert "qs" not in plan.scalar_cuts and {"u", "p"} <= plan.scalar_cuts


@pytest.mark.parametrize("scale", [0.05, 0.5, 3.0, 400.0])
@pytest.mark.parametrize("terminal", [False, True])
def test_bounds_with_cuts_contain_sampled_values(scale, terminal):
    graph = _controlled_model(terminal=terminal)
    lower, upper = _boxes(scale)
    points = samples(lower, upper, per_box=400)
    y = outputs(graph, points).double() @ _ROWS.double().T                     # (B, K, R)
    result = _bounds(graph, lower, upper, cuts=True)
    assert_linear_bound_holds(points, y, result.lower, result.input_coeffs, result.input_offset,
                              "scalar cuts")
    for name, (lo, up) in result.intermediate.items():
        assert (lo <= up + 1e-5 * (1 + up.abs())).all(), name


def test_a_cut_whose_past_is_its_own_is_exact():
    """Without ``v`` nothing behind ``u`` or ``p`` is reached by another path, and the pass
    behind one element is positively homogeneous in its coefficient."""
    graph = _controlled_model(shared=False)
    lower, upper = _boxes(0.5, batch=32)
    full = _bounds(graph, lower, upper, cuts=False)
    cut = _bounds(graph, lower, upper, cuts=True)
    assert torch.allclose(cut.lower, full.lower, rtol=1e-5, atol=1e-5)
    for name, (lo, up) in full.intermediate.items():
        assert torch.allclose(cut.intermediate[name][0], lo, rtol=1e-5, atol=1e-5), name
        assert torch.allclose(cut.intermediate[name][1], up, rtol=1e-5, atol=1e-5), name


def test_cut_affine_jacobian_reproduces_the_tensor():
    """``z = [p, v, x] W`` is an affine map of the input and the cuts p, v: its Jacobian
    must give z exactly from sampled values of x, p and v."""
    from genbab.bounds.backward import BoundState
    from genbab.bounds.cuts import _jacobian
    from genbab.verifier.forward import evaluate, prepared_constants

    graph = _controlled_model()
    plan = make_plan(graph)
    assert {"z", "c"} <= plan.cut_affine and not {"t", "h", "y"} & plan.cut_affine
    state = BoundState(plan, prepared_constants(plan.graph, torch.float64, torch.device("cpu")))
    on_input, cuts, on_cuts, offset = _jacobian(state, "z", torch.zeros(1, dtype=torch.float64))
    assert set(cuts) == {"p", "v"}
    x = torch.randn(50, 3, dtype=torch.float64) * 3
    values = evaluate(plan.graph, x, keep=True)
    at_cuts = torch.cat([values[k].reshape(50, 1) for k in cuts], dim=1)
    z = x @ on_input.T + at_cuts @ on_cuts.T + offset
    assert torch.allclose(z, values["z"].reshape(50, -1), atol=1e-10)


def test_cuts_are_taken_only_when_asked_for(monkeypatch):
    import genbab.bounds.cuts as cuts_module

    taken = []
    original = cuts_module._substitute

    def spy(state, names, *args):
        taken.extend(names)
        return original(state, names, *args)

    monkeypatch.setattr(cuts_module, "_substitute", spy)
    graph = _controlled_model()
    lower, upper = _boxes(0.5)
    _bounds(graph, lower, upper, cuts=False)
    assert taken == []
    _bounds(graph, lower, upper, cuts=True)
    # the 12 rows of z meet p and v, whose linear bounds then replace the pass behind them
    assert {"p", "v"} <= set(taken)
