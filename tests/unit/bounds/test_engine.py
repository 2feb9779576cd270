"""Engine tests on tiny hand-built graphs: every op class, checked against sampling.

Each model is built with onnx.helper and loaded by the real loader.  For random boxes (a batch
of domains, one degenerate) the certified bounds of IBP, CROWN and alpha-CROWN must contain
the outputs of ``verifier.forward.evaluate`` at many sampled points and the box corners; CROWN
must never be looser than IBP on the spec rows, alpha never looser than CROWN.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from genbab.bounds.engine import output_bounds, prove, spec_bounds
from genbab.verifier.forward import evaluate
from genbab.verifier.onnx_loader import load_model
from genbab.verifier.options import BoundOptions
from genbab.vnnlib.property import Property

_RNG = np.random.default_rng(0)
def weight(*shape: int, scale: float = 0.5) -> np.ndarray:
    return (_RNG.standard_normal(shape) * scale).astype(np.float32)


def model(nodes: list, in_shape: tuple, out_shape: tuple, inits: dict | None = None,
          opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def n(op: str, inputs: list, outputs: list, **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, outputs, **attrs)


def mlp(act: str, width: int = 6, depth: int = 2, inputs: int = 3, outputs: int = 2) -> onnx.ModelProto:
    nodes, inits, prev, size = [], {}, "x", inputs
    for i in range(depth):
        inits[f"W{i}"], inits[f"b{i}"] = weight(size, width), weight(width)
        nodes += [n("MatMul", [prev, f"W{i}"], [f"m{i}"]), n("Add", [f"m{i}", f"b{i}"], [f"z{i}"]),
                  n(act, [f"z{i}"], [f"h{i}"])]
        prev, size = f"h{i}", width
    inits["Wo"] = weight(size, outputs)
    nodes.append(n("MatMul", [prev, "Wo"], ["y"]))
    return model(nodes, (1, inputs), (1, outputs), inits)


def all_models() -> dict[str, onnx.ModelProto]:
    """One small model per op class the engine handles."""
    m: dict[str, onnx.ModelProto] = {}
    for act in ("Relu", "Sigmoid", "Tanh", "Sin", "Cos", "LeakyRelu", "Exp"):
        m[f"mlp_{act}"] = mlp(act)
    m["square"] = model([n("MatMul", ["x", "W"], ["z"]), n("Pow", ["z", "two"], ["p"]),
                         n("MatMul", ["p", "V"], ["y"])], (1, 3), (1, 2),
                        {"W": weight(3, 4), "two": np.array(2.0, np.float32), "V": weight(4, 2)})
    m["mul_xy"] = model([n("MatMul", ["x", "W"], ["a"]), n("MatMul", ["x", "V"], ["b"]),
                         n("Mul", ["a", "b"], ["y"])], (1, 3), (1, 4),
                        {"W": weight(3, 4), "V": weight(3, 4)})
    m["div_xy"] = model([n("MatMul", ["x", "W"], ["a"]), n("Sigmoid", ["x"], ["s"]),
                         n("ReduceSum", ["s"], ["t"], keepdims=1), n("Add", ["t", "one"], ["d"]),
                         n("Div", ["a", "d"], ["y"])], (1, 3), (1, 4),
                        {"W": weight(3, 4), "one": np.array(0.5, np.float32)})
    m["softmax"] = model([n("MatMul", ["x", "W"], ["z"]), n("Softmax", ["z"], ["y"], axis=-1)],
                         (1, 3), (1, 4), {"W": weight(3, 4, scale=1.0)})
    m["layernorm"] = model([n("MatMul", ["x", "W"], ["z"]),
                            n("LayerNormalization", ["z", "g", "bb"], ["y"], axis=-1, epsilon=1e-3)],
                           (1, 3), (1, 4), {"W": weight(3, 4, scale=1.0), "g": weight(4), "bb": weight(4)})
    m["attention"] = model([n("MatMul", ["x", "Wq"], ["q"]), n("MatMul", ["x", "Wk"], ["k"]),
                            n("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
                            n("MatMul", ["q", "kt"], ["y"])], (1, 3, 2), (1, 3, 3),
                           {"Wq": weight(2, 2), "Wk": weight(2, 2)})
    m["conv_pool"] = model([n("Conv", ["x", "K", "cb"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
                            n("Relu", ["c"], ["r"]), n("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                            n("Flatten", ["p"], ["f"]), n("MatMul", ["f", "W"], ["y"])],
                           (1, 1, 4, 4), (1, 2), {"K": weight(2, 1, 3, 3), "cb": weight(2), "W": weight(8, 2)})
    m["conv_stride"] = model([n("Conv", ["x", "K"], ["c"], pads=[0, 1, 1, 0], strides=[2, 2]),
                              n("Sigmoid", ["c"], ["s"]), n("AveragePool", ["s"], ["a"], kernel_shape=[2, 2]),
                              n("Flatten", ["a"], ["y"])],
                             (1, 1, 5, 5), (1, 2), {"K": weight(2, 1, 2, 2)})
    m["conv_transpose"] = model([n("ConvTranspose", ["x", "K"], ["c"], strides=[2, 2]),
                                 n("Tanh", ["c"], ["t"]), n("ReduceMean", ["t"], ["y"], axes=[2, 3], keepdims=0)],
                                (1, 1, 2, 2), (1, 2), {"K": weight(1, 2, 2, 2)})
    m["shapes"] = model([n("Reshape", ["x", "shape"], ["r"]), n("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
                         n("Slice", ["t", "st", "en", "ax"], ["s"]), n("Sigmoid", ["s"], ["h"]),
                         n("Gather", ["h", "idx"], ["g"], axis=2), n("Concat", ["g", "h"], ["c"], axis=2),
                         n("Split", ["c"], ["p", "q"], axis=1), n("Sub", ["p", "q"], ["d"]),
                         n("Pad", ["d", "pads"], ["pd"]), n("Neg", ["pd"], ["ng"]),
                         n("ReduceSum", ["ng", "axes"], ["y"], keepdims=0)],
                        (1, 6), (1, 4),
                        {"shape": np.array([1, 2, 3]), "st": np.array([0]), "en": np.array([2]),
                         "ax": np.array([1]), "idx": np.array([1, 0, 1]), "pads": np.array([0, 0, 1, 0, 0, 0]),
                         "axes": np.array([1])})
    m["max_min"] = model([n("MatMul", ["x", "W"], ["a"]), n("MatMul", ["x", "V"], ["b"]),
                          n("Max", ["a", "b"], ["mx"]), n("Min", ["a", "b"], ["mn"]),
                          n("Sub", ["mx", "mn"], ["y"])], (1, 3), (1, 4),
                         {"W": weight(3, 4), "V": weight(3, 4)})
    m["reciprocal_open"] = model([n("MatMul", ["x", "W"], ["a"]), n("Reciprocal", ["a"], ["y"])],
                                 (1, 3), (1, 2), {"W": weight(3, 2)})
    return m


# -- helpers --------------------------------------------------------------------------------
MODELS = all_models()
_OPTS = BoundOptions(alpha_iterations=5, alpha_lr=0.1)


def boxes(size: int, batch: int = 3, radius: float = 0.6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    centre = torch.randn(batch, size, generator=gen)
    rad = torch.rand(batch, size, generator=gen) * radius
    rad[-1] = 0.0                                   # one degenerate domain
    return centre - rad, centre + rad


def samples(lower: torch.Tensor, upper: torch.Tensor, per_box: int = 300, seed: int = 1) -> torch.Tensor:
    """(batch, per_box + corners, n) points in each box, corners included for n <= 6."""
    gen = torch.Generator().manual_seed(seed)
    batch, size = lower.shape
    u = torch.rand(batch, per_box, size, generator=gen)
    if size <= 6:
        corners = torch.tensor(list(np.ndindex(*(2,) * size)), dtype=lower.dtype)
        u = torch.cat([u, corners.expand(batch, *corners.shape)], dim=1)
    return lower[:, None] + u * (upper - lower)[:, None]


def outputs(graph, points: torch.Tensor) -> torch.Tensor:
    batch, k, size = points.shape
    return evaluate(graph, points.reshape(batch * k, size)).reshape(batch, k, -1)


def random_boxes(scale: float, batch: int = 16, seed: int = 5, size: int = 3):
    """``batch`` boxes of radius up to ``scale`` around random centres (spread with the
    scale); the first is degenerate (lower = upper)."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.randn(batch, size, generator=gen) * max(1.0, scale / 4)
    radius = torch.rand(batch, size, generator=gen) * scale
    radius[0] = 0.0
    return centre - radius, centre + radius


def assert_linear_bound_holds(points, y, lower, coeffs, offset, what: str) -> None:
    """The lower bounds ``lower`` (B, R) and the linear bounds ``coeffs . x + offset``
    ((B, R, n), (B, R)) lie below the sampled row values ``y`` (B, K, R) at ``points``
    (B, K, n)."""
    assert not torch.isnan(lower).any(), what
    tol = 1e-4 * (1 + y.abs())
    assert (y >= lower.double()[:, None] - tol).all(), f"{what}: lower bound above a sample"
    linear = (torch.einsum("brn,bkn->bkr", coeffs.double(), points.double())
              + offset.double()[:, None])
    assert (y >= linear - tol).all(), f"{what}: linear bound above a sampled value"


def assert_contains(lower, upper, y, what: str) -> None:
    tol = 1e-4 * (1 + y.abs())
    assert not torch.isnan(lower).any() and not torch.isnan(upper).any(), what
    assert (y >= lower[:, None] - tol).all(), f"{what}: lower bound above a sampled output"
    assert (y <= upper[:, None] + tol).all(), f"{what}: upper bound below a sampled output"


def graph_of(name: str):
    return load_model(MODELS[name])


# -- soundness of every op class -------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_bounds_contain_sampled_outputs(name):
    graph = graph_of(name)
    lower, upper = boxes(graph.input_size, radius=0.3 if name == "reciprocal_open" else 0.6)
    y = outputs(graph, samples(lower, upper)).double()
    widths = {}
    for method in ("ibp", "crown", "alpha"):
        lo, up = output_bounds(graph, lower, upper, method=method, options=_OPTS)
        lo, up = lo.reshape(lo.shape[0], -1).double(), up.reshape(up.shape[0], -1).double()
        assert_contains(lo, up, y, f"{name}/{method}")
        widths[method] = (lo, up)
    for weaker, stronger in (("ibp", "crown"), ("crown", "alpha")):
        (wl, wu), (sl, su) = widths[weaker], widths[stronger]
        assert (sl >= wl - 1e-5 * (1 + wl.abs())).all(), f"{name}: {stronger} lower looser than {weaker}"
        assert (su <= wu + 1e-5 * (1 + wu.abs())).all(), f"{name}: {stronger} upper looser than {weaker}"


@pytest.mark.parametrize("name", ["mlp_Sigmoid", "mlp_Relu", "softmax", "mul_xy", "attention"])
def test_spec_rows_are_sound_and_ordered(name):
    graph = graph_of(name)
    lower, upper = boxes(graph.input_size, batch=4, seed=3)
    m = graph.output_size
    gen = torch.Generator().manual_seed(5)
    coeffs = torch.randn(4, 3, m, generator=gen)
    values = torch.einsum("bkm,brm->bkr", outputs(graph, samples(lower, upper)), coeffs)
    results = {}
    for method in ("ibp", "crown", "alpha"):
        res = spec_bounds(graph, lower, upper, coeffs, method=method, options=_OPTS)
        assert res.lower.shape == (4, 3)
        assert (values >= res.lower[:, None] - 1e-4 * (1 + values.abs())).all(), method
        results[method] = res.lower
    assert (results["crown"] >= results["ibp"] - 1e-6).all()
    assert (results["alpha"] >= results["crown"] - 1e-6).all()


def test_crown_is_tighter_than_ibp_on_a_deep_sigmoid_net():
    graph = load_model(mlp("Sigmoid", width=16, depth=4))
    lower, upper = boxes(graph.input_size, batch=1, radius=0.5)
    ibp = output_bounds(graph, lower, upper, method="ibp")
    crown = output_bounds(graph, lower, upper, method="crown")
    assert float((crown[1] - crown[0]).sum()) < float((ibp[1] - ibp[0]).sum())


# -- batching, overrides, warm starts --------------------------------------------------------
def test_batched_domains_match_single_domain_calls():
    graph = graph_of("mlp_Tanh")
    lower, upper = boxes(graph.input_size, batch=3)
    coeffs = torch.randn(2, graph.output_size)
    together = spec_bounds(graph, lower, upper, coeffs, method="crown").lower
    for b in range(3):
        alone = spec_bounds(graph, lower[b:b + 1], upper[b:b + 1], coeffs, method="crown").lower
        torch.testing.assert_close(together[b:b + 1], alone, rtol=1e-5, atol=1e-5)


def test_interm_override_tightens_and_stays_sound_on_the_restricted_set():
    graph = graph_of("mlp_Relu")
    lower, upper = boxes(graph.input_size, batch=1, radius=1.0, seed=7)
    coeffs = torch.eye(graph.output_size)
    base = spec_bounds(graph, lower, upper, coeffs, method="crown")
    z_lo, z_up = base.intermediate["z0"]
    split = (z_lo + z_up) / 2
    child = spec_bounds(graph, lower, upper, coeffs, method="crown",
                        interm={"z0": (z_lo, torch.minimum(z_up, split))})
    assert (child.lower >= base.lower - 1e-5).all()
    assert (child.intermediate["z0"][1] <= split + 1e-6).all()
    points = samples(lower, upper, per_box=4000)[0]
    values = evaluate(graph, points, keep=True)
    keep = (values["z0"].reshape(len(points), -1) <= split.reshape(1, -1)).all(dim=1)
    y = values["y"].reshape(len(points), -1)[keep]
    assert ((y @ coeffs.T) >= child.lower - 1e-4).all()


def test_empty_domain_is_vacuously_bounded():
    graph = graph_of("mlp_Relu")
    lower, upper = boxes(graph.input_size, batch=1, seed=2)
    res = spec_bounds(graph, lower, upper, torch.eye(graph.output_size), method="crown")
    z_lo, z_up = res.intermediate["z0"]
    crossed = {"z0": (z_up + 1.0, z_up + 2.0)}
    child = spec_bounds(graph, lower, upper, torch.eye(graph.output_size), method="crown", interm=crossed)
    assert torch.isposinf(child.lower).all()


def test_alpha_warm_start_is_accepted_and_never_looser():
    graph = graph_of("mlp_Sigmoid")
    lower, upper = boxes(graph.input_size, batch=2)
    coeffs = torch.randn(2, 3, graph.output_size)
    first = spec_bounds(graph, lower, upper, coeffs, method="alpha", options=_OPTS)
    assert first.alpha, "sigmoid nodes should carry optimisable parameters"
    again = spec_bounds(graph, lower, upper, coeffs, method="alpha", options=_OPTS, state=first.alpha)
    crown = spec_bounds(graph, lower, upper, coeffs, method="crown").lower
    assert (again.lower >= crown - 1e-6).all()


def test_keep_linear_gives_sound_input_space_bounds():
    graph = graph_of("mlp_Sigmoid")
    lower, upper = boxes(graph.input_size, batch=2)
    res = spec_bounds(graph, lower, upper, torch.eye(graph.output_size), method="crown", keep_linear=True)
    assert "z1" in res.linear
    lin = res.linear["z1"]
    points = samples(lower, upper)
    z = evaluate(graph, points.reshape(-1, points.shape[-1]), keep=True)["z1"].reshape(*points.shape[:2], -1)
    z = z[..., lin.index]
    low = torch.einsum("bkn,brn->bkr", points, lin.lower_coeffs) + lin.lower_bias[:, None]
    up = torch.einsum("bkn,brn->bkr", points, lin.upper_coeffs) + lin.upper_bias[:, None]
    assert (low <= z + 1e-4).all() and (z <= up + 1e-4).all()


# -- float care and prove ----------------------------------------------------------------------
def test_reciprocal_of_an_interval_around_zero_is_unbounded_not_an_error():
    graph = graph_of("reciprocal_open")
    lower, upper = torch.full((1, 3), -2.0), torch.full((1, 3), 2.0)
    for method in ("ibp", "crown", "alpha"):
        lo, up = output_bounds(graph, lower, upper, method=method, options=_OPTS)
        assert not torch.isnan(lo).any() and not torch.isnan(up).any()
        assert (lo < -1e30).all() and (up > 1e30).all()


def _prop(graph, lower, upper, coeffs, thresholds) -> Property:
    return Property.from_box(lower.numpy().ravel(), upper.numpy().ravel(),
                             [(np.asarray(coeffs, float), np.asarray(thresholds, float))])


def test_prove_refutes_a_clause_with_margin_and_not_one_that_is_reachable():
    graph = graph_of("mlp_Sigmoid")
    lower, upper = boxes(graph.input_size, batch=1, radius=0.05)
    lo, up = output_bounds(graph, lower, upper, method="crown")
    safe = _prop(graph, lower, upper, [[1.0, 0.0]], [float(lo.flatten()[0]) - 0.1])
    outcome = prove(graph, safe, BoundOptions(method="alpha", alpha_iterations=3))
    assert outcome.verified and outcome.refuted == ((True,),)
    centre = evaluate(graph, (lower + upper) / 2)
    reachable = _prop(graph, lower, upper, [[1.0, 0.0]], [float(centre.flatten()[0]) + 1e-3])
    outcome = prove(graph, reachable, BoundOptions(method="alpha", alpha_iterations=3))
    assert not outcome.verified and outcome.refuted == ((False,),)


def test_prove_never_counts_unbounded_rows():
    graph = graph_of("reciprocal_open")
    lower, upper = torch.full((1, 3), -2.0), torch.full((1, 3), 2.0)
    prop = _prop(graph, lower, upper, [[1.0, 0.0]], [-1e30])
    outcome = prove(graph, prop, BoundOptions(method="alpha", alpha_iterations=2))
    assert not outcome.verified
    assert outcome.margins[0][0] < -1e30


def test_unknown_method_is_rejected():
    graph = graph_of("mlp_Relu")
    lower, upper = boxes(graph.input_size, batch=1)
    with pytest.raises(ValueError, match="method"):
        spec_bounds(graph, lower, upper, torch.eye(2), method="zonotope")
