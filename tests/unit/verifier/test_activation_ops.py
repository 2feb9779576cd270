"""The activation ops added with their relaxations (Celu, Selu, HardSwish, Atan, Shrink,
ThresholdedRelu, Mish, plus Elu, Softsign and tanh-Gelu): forward semantics against
onnxruntime on one-node and Gemm + op models built with ``onnx.helper`` and on small torch
exports; the bound rule's ``evaluate`` against ``verifier.forward`` (the relaxation must be
of the function the model computes); certified output bounds containing sampled outputs."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from genbab.bounds.engine import output_bounds
from genbab.bounds.ops import make_rule
from genbab.verifier.forward import FORWARD, evaluate
from genbab.verifier.graph import Node
from genbab.model_check import compare_with_onnxruntime
from genbab.verifier.onnx_loader import load_model
from genbab.verifier.options import BoundOptions

pytestmark = pytest.mark.usefixtures("one_thread")

FLOAT = TensorProto.FLOAT

# (op_type, attributes, opset); attribute values are float32-representable
CASES = [
    ("Elu", {}, 13), ("Elu", {"alpha": 0.5}, 13), ("Elu", {"alpha": -0.5}, 13),
    ("Celu", {}, 13), ("Celu", {"alpha": 0.5}, 13), ("Celu", {"alpha": 2.0}, 13),
    ("Celu", {"alpha": -1.5}, 13),
    ("Selu", {}, 13), ("Selu", {"alpha": 0.5, "gamma": 2.0}, 13),
    ("HardSwish", {}, 14),
    ("Softsign", {}, 13),
    ("Atan", {}, 13),
    ("Shrink", {}, 13), ("Shrink", {"bias": 0.5, "lambd": 0.5}, 13),
    ("Shrink", {"bias": 1.5, "lambd": 0.25}, 13), ("Shrink", {"bias": 1.0, "lambd": 0.0}, 13),
    ("Shrink", {"bias": 0.25, "lambd": -0.5}, 13),
    ("ThresholdedRelu", {}, 13), ("ThresholdedRelu", {"alpha": 0.0}, 13),
    ("ThresholdedRelu", {"alpha": -1.0}, 13), ("ThresholdedRelu", {"alpha": 2.5}, 13),
    ("Mish", {}, 18),
    ("Gelu", {"approximate": "tanh"}, 20),
]
IDS = [f"{op}{attrs or ''}" for op, attrs, _ in CASES]

# every breakpoint above, on both sides, plus tails and a dense sweep
_SPECIAL = [0.0, 0.5, -0.5, 0.25, -0.25, 1.0, -1.0, 2.5, -2.5, 3.0, -3.0, 1e-8, -1e-8, 1e-30,
            20.0, -20.0, 88.0, -88.0, 100.0, -100.0, 1e4, -1e4]


def _points() -> np.ndarray:
    sweep = np.linspace(-12.0, 12.0, 2401)
    noise = np.random.default_rng(0).standard_normal(500) * 4
    return np.concatenate([_SPECIAL, np.nextafter(np.float32(_SPECIAL[1:12]), np.float32(9)),
                           sweep, noise]).astype(np.float32)[None]


def _save(model: onnx.ModelProto, tmp_path: Path) -> Path:
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return path


def _one_node(op: str, attrs: dict, opset: int, size: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], **attrs)], "g",
        [helper.make_tensor_value_info("x", FLOAT, [1, size])],
        [helper.make_tensor_value_info("y", FLOAT, [1, size])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _gemm_op_gemm(op: str, attrs: dict, opset: int, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits = {"W": rng.standard_normal((3, 8)).astype(np.float32) * 2,
             "b": rng.standard_normal(8).astype(np.float32),
             "V": rng.standard_normal((8, 2)).astype(np.float32)}
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["z"]),
             helper.make_node(op, ["z"], ["h"], **attrs),
             helper.make_node("MatMul", ["h", "V"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", FLOAT, [1, 2])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float((np.abs(ours.astype(np.float64) - theirs)
                  / np.maximum(1.0, np.abs(theirs))).max())


@pytest.mark.parametrize("op,attrs,opset", CASES, ids=IDS)
def test_forward_matches_onnxruntime_on_one_node(op, attrs, opset, tmp_path):
    x = _points()
    path = _save(_one_node(op, attrs, opset, x.shape[1]), tmp_path)
    theirs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0].astype(np.float64)
    graph = load_model(path)
    assert graph.op_types() == [op]
    with torch.no_grad():
        ours = evaluate(graph, torch.from_numpy(x)).numpy().reshape(theirs.shape)
        ours64 = evaluate(graph, torch.from_numpy(x).double()).numpy().reshape(theirs.shape)
    finite = np.isfinite(theirs)
    assert np.array_equal(finite, np.isfinite(ours)) and np.array_equal(finite, np.isfinite(ours64))
    assert _relative_error(ours[finite], theirs[finite]) <= 1e-5
    assert _relative_error(ours64[finite], theirs[finite]) <= 1e-5


@pytest.mark.parametrize("op,attrs,opset", CASES, ids=IDS)
def test_forward_matches_onnxruntime_after_a_gemm(op, attrs, opset, tmp_path):
    path = _save(_gemm_op_gemm(op, attrs, opset), tmp_path)
    graph = load_model(path)
    lower, upper = np.full(3, -3.0), np.full(3, 3.0)
    check = compare_with_onnxruntime(path, graph, samples=64, lower=lower, upper=upper)
    assert check.finite and check.max_rel_error <= 1e-5, check


@pytest.mark.parametrize("op,attrs,opset", CASES, ids=IDS)
def test_bound_rule_evaluates_the_forward_function(op, attrs, opset):
    """The relaxed function (``OpRule.evaluate``) is the one the model computes."""
    x = torch.from_numpy(_points()[0]).double()
    x = torch.cat([x, torch.linspace(-40, 40, 8001, dtype=torch.float64)])
    rule = make_rule(op, attrs)
    node = Node("n", op, ("x",), ("y",), _onnx_defaults(op, attrs))
    (forward,) = FORWARD[op](node, [x[None]], [True])
    torch.testing.assert_close(rule.evaluate(x), forward[0], rtol=1e-12, atol=1e-15)


def _onnx_defaults(op: str, attrs: dict) -> dict:
    defaults = {"Elu": {"alpha": 1.0}, "Celu": {"alpha": 1.0},
                "Selu": {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875},
                "Shrink": {"bias": 0.0, "lambd": 0.5}, "ThresholdedRelu": {"alpha": 1.0},
                "Gelu": {"approximate": "none"}}.get(op, {})
    return {**defaults, **attrs}


def test_loader_fills_in_the_onnx_default_attributes(tmp_path):
    expected = {"Celu": {"alpha": 1.0},
                "Selu": {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875},
                "Shrink": {"bias": 0.0, "lambd": 0.5}, "ThresholdedRelu": {"alpha": 1.0}}
    for op, attrs in expected.items():
        graph = load_model(_save(_gemm_op_gemm(op, {}, 13), tmp_path))
        (node,) = [n for n in graph.nodes if n.op_type == op]
        assert dict(node.attrs) == attrs
        assert make_rule(op, node.attrs).attrs == attrs


_OPTIONS = BoundOptions(alpha_iterations=3, alpha_lr=0.1)


@pytest.mark.parametrize("op,attrs,opset", CASES, ids=IDS)
def test_certified_bounds_contain_sampled_outputs(op, attrs, opset, tmp_path):
    graph = load_model(_save(_gemm_op_gemm(op, attrs, opset, seed=1), tmp_path))
    gen = torch.Generator().manual_seed(2)
    centre = torch.randn(4, 3, generator=gen)
    radius = torch.rand(4, 3, generator=gen) * torch.tensor([[1.0], [0.3], [0.05], [0.0]])
    lower, upper = centre - radius, centre + radius
    u = torch.rand(4, 400, 3, generator=gen)
    u[:, :8] = torch.tensor(list(np.ndindex(2, 2, 2)), dtype=torch.float32)
    points = lower[:, None] + u * (upper - lower)[:, None]
    with torch.no_grad():
        y = evaluate(graph, points.reshape(-1, 3)).reshape(4, 400, -1).double()
    for method in ("crown", "alpha"):
        lo, up = output_bounds(graph, lower, upper, method=method, options=_OPTIONS)
        lo, up = lo.reshape(4, 1, -1).double(), up.reshape(4, 1, -1).double()
        tol = 1e-5 * (1 + y.abs())
        assert not torch.isnan(lo).any() and not torch.isnan(up).any()
        assert (y >= lo - tol).all(), f"{method}: lower bound above a sampled output"
        assert (y <= up + tol).all(), f"{method}: upper bound below a sampled output"


# -- torch exports --------------------------------------------------------------------------
class _Atan(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.atan(x)


TORCH_MODULES = {
    "ELU": lambda: torch.nn.ELU(0.7), "CELU": lambda: torch.nn.CELU(0.5),
    "SELU": torch.nn.SELU, "Hardswish": torch.nn.Hardswish,
    "Hardtanh": lambda: torch.nn.Hardtanh(-2.0, 1.5), "ReLU6": torch.nn.ReLU6,
    "Mish": torch.nn.Mish, "Softsign": torch.nn.Softsign, "Tanhshrink": torch.nn.Tanhshrink,
    "GLU": torch.nn.GLU, "Atan": _Atan,
}
# exported as one op with a bound rule (the others are compositions the rewrite may fuse)
BOUNDABLE = {"ELU", "CELU", "SELU", "Hardswish", "Hardtanh", "ReLU6", "Atan"}


def _export(name: str, tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), TORCH_MODULES[name](),
                              torch.nn.Linear(8 // (2 if name == "GLU" else 1), 3)).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 4), buffer, dynamo=False, opset_version=17)
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize("name", sorted(TORCH_MODULES))
def test_torch_export_loads_and_matches_onnxruntime(name, tmp_path):
    path = _export(name, tmp_path)
    graph = load_model(path)
    check = compare_with_onnxruntime(path, graph, samples=64, lower=np.full(4, -6.0),
                                     upper=np.full(4, 6.0))
    assert check.finite and check.max_rel_error <= 1e-5, check
    if name in BOUNDABLE:
        lower, upper = torch.full((1, 4), -1.0), torch.full((1, 4), 1.0)
        points = lower + torch.rand(256, 4, generator=torch.Generator().manual_seed(0)) * 2
        with torch.no_grad():
            y = evaluate(graph, points).double()
        lo, up = output_bounds(graph, lower, upper, method="crown", options=_OPTIONS)
        assert (y >= lo.double() - 1e-5 * (1 + y.abs())).all()
        assert (y <= up.double() + 1e-5 * (1 + y.abs())).all()
