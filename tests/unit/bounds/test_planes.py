"""Plane search for terminal products (``bounds/planes.py``).

Checked here: which products count as terminal; the searched bound and its linear function
contain sampled values on narrow, wide, degenerate and large boxes; the search is never looser
than CROWN and is clearly tighter on a product of two nonlinear factors (so the test fails if
the search stops running); rows already above their threshold are left alone.
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

_RNG = np.random.default_rng(11)


def _w(*shape: int, scale: float = 0.6) -> np.ndarray:
    return (_RNG.standard_normal(shape) * scale).astype(np.float32)


def _product_model(tail: str = "linear", width: int = 4):
    """y = [sum(s * t), sum(k * s * t) + sum(h)] with s = tanh(x W1) W2 + x W3 and
    t = sin(x W4) W5 + c: a product of two nonlinear factors.  tail="tanh" puts a Tanh after
    the product (not terminal); tail="two" adds a second product of ``width`` elements."""
    inits = {"W1": _w(3, width), "W2": _w(width, width), "W3": _w(3, width),
             "W4": _w(3, width), "W5": _w(width, width), "c": _w(width),
             "k": _w(width), "axes": np.array([-1], np.int64)}
    nodes = [n("MatMul", ["x", "W1"], ["a"]), n("Tanh", ["a"], ["h"]),
             n("MatMul", ["h", "W2"], ["s1"]), n("MatMul", ["x", "W3"], ["s2"]),
             n("Add", ["s1", "s2"], ["s"]),
             n("MatMul", ["x", "W4"], ["b"]), n("Sin", ["b"], ["g"]),
             n("MatMul", ["g", "W5"], ["t1"]), n("Add", ["t1", "c"], ["t"]),
             n("Mul", ["s", "t"], ["m"])]
    if tail == "tanh":
        nodes.append(n("Tanh", ["m"], ["mt"]))
        product = "mt"
    elif tail == "two":
        nodes += [n("Mul", ["h", "g"], ["m2"]), n("Add", ["m", "m2"], ["mt"])]
        product = "mt"
    else:
        product = "m"
    nodes += [n("ReduceSum", [product, "axes"], ["y0"], keepdims=1),
              n("Mul", [product, "k"], ["mk"]), n("ReduceSum", ["mk", "axes"], ["y1a"], keepdims=1),
              n("ReduceSum", ["h", "axes"], ["y1b"], keepdims=1),
              n("Add", ["y1a", "y1b"], ["y1"]), n("Concat", ["y0", "y1"], ["y"], axis=-1)]
    return load_model(model(nodes, (1, 3), (1, 2), inits))


def _boxes(scale: float, batch: int = 16):
    return random_boxes(scale, batch, seed=5)


_ROWS = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.5, -1.0], [0.0, 1.0]])


def _bounds(graph, lower, upper, search: bool, thresholds=None):
    options = BoundOptions(method="crown", plane_search=search)
    return spec_bounds(graph, lower, upper, _ROWS, method="crown", options=options,
                       thresholds=thresholds)


def test_terminal_products_are_those_with_only_linear_ops_after_them():
    assert [node.name for node in make_plan(_product_model()).terminal_products] != []
    assert make_plan(_product_model("tanh")).terminal_products == ()
    # two products of 4 elements: both fit the element budget, in graph order
    assert len(make_plan(_product_model("two")).terminal_products) == 2
    # a product of 20 elements is over the budget
    assert make_plan(_product_model(width=20)).terminal_products == ()


@pytest.mark.parametrize("scale", [0.05, 0.5, 3.0, 400.0])
def test_searched_bounds_contain_sampled_values(scale):
    graph = _product_model()
    lower, upper = _boxes(scale)
    points = samples(lower, upper, per_box=400)
    y = outputs(graph, points).double() @ _ROWS.double().T                     # (B, K, R)
    result = _bounds(graph, lower, upper, search=True)
    assert_linear_bound_holds(points, y, result.lower, *result.searched, "plane search")


def test_search_is_never_looser_and_usually_tighter():
    graph = _product_model()
    lower, upper = _boxes(0.5, batch=64)
    plain = _bounds(graph, lower, upper, search=False).lower.double()
    searched = _bounds(graph, lower, upper, search=True).lower.double()
    assert (searched >= plain - 1e-6 * (1 + plain.abs())).all()
    rows = [0, 1, 2]                                    # the rows that read the product
    gained = (searched[1:, rows] > plain[1:, rows] + 1e-4).float().mean()
    assert gained > 0.5, f"the search tightened only {float(gained):.0%} of the bounds"


def test_rows_already_above_their_threshold_are_left_alone():
    graph = _product_model()
    lower, upper = _boxes(0.5)
    plain = _bounds(graph, lower, upper, search=False)
    proved = _bounds(graph, lower, upper, search=True, thresholds=torch.full((4,), -1e9))
    assert torch.equal(proved.searched[0], plain.input_coeffs)
    assert torch.equal(proved.lower, plain.lower)
    open_rows = _bounds(graph, lower, upper, search=True, thresholds=torch.full((4,), 1e9))
    assert not torch.equal(open_rows.searched[0], plain.input_coeffs)
