"""Bound-time fusion (bounds/fuse.py) and the ReduceMax / Ceil rewrites: the torch exports of
SiLU, Mish, GeLU (erf and tanh), LogSigmoid, Softsign, Hardshrink and Softshrink become their
one-op form, the rewritten graph computes what the original computes, and CROWN bounds of the
rewritten graph contain sampled outputs of the *original* graph (so a wrong fusion cannot
hide behind a sound relaxation of the wrong function)."""
from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from genbab.bounds.engine import output_bounds
from genbab.bounds.fuse import fuse
from genbab.bounds.plan import make_plan
from genbab.verifier.forward import evaluate
from genbab.verifier.onnx_loader import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


class _Atan(nn.Module):
    def forward(self, x):
        return torch.atan(x)


# activation -> (the op the plan graph must hold, ops that must be gone)
FUSED = {
    "SiLU": (nn.SiLU(), "SiLU", {"Sigmoid", "Mul"}),
    "Mish": (nn.Mish(), "Mish", {"Softplus", "Tanh", "Mul"}),
    "GELU": (nn.GELU(), "Gelu", {"Erf", "Mul"}),
    "GELU_tanh": (nn.GELU(approximate="tanh"), "Gelu", {"Tanh", "Pow", "Mul"}),
    "LogSigmoid": (nn.LogSigmoid(), "LogSigmoid", {"Sigmoid", "Log"}),
    "Softsign": (nn.Softsign(), "Softsign", {"Abs", "Reciprocal", "Mul"}),
    "Hardshrink": (nn.Hardshrink(0.3), "Shrink", {"Where", "Or", "Greater", "Less"}),
    "Softshrink": (nn.Softshrink(0.4), "Shrink", {"Where", "Greater", "Less"}),
    "PReLU": (nn.PReLU(), "LeakyRelu", set()),
    "PReLU_channels": (nn.PReLU(6), "Relu", set()),
    "Tanhshrink": (nn.Tanhshrink(), "Tanh", set()),
    "GLU": (nn.GLU(), "Sigmoid", set()),
    "Atan": (_Atan(), "Atan", set()),
}


def _export(act: nn.Module, seed: int = 0):
    torch.manual_seed(seed)
    width = 6 if not isinstance(act, nn.GLU) else 3
    model = nn.Sequential(nn.Linear(3, 6), act, nn.Linear(width, 2)).eval()
    if isinstance(act, nn.PReLU):
        with torch.no_grad():
            act.weight.uniform_(-0.5, 1.5)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3),), buffer, dynamo=False,
                          input_names=["input"], output_names=["output"], opset_version=17)
    return load_model(onnx.load_from_string(buffer.getvalue()))


@pytest.mark.parametrize("name", sorted(FUSED))
def test_exported_activation_becomes_one_op(name):
    act, op, gone = FUSED[name]
    plan = make_plan(_export(act))
    ops = {n.op_type for n in plan.graph.nodes}
    assert op in ops and not (ops & gone), ops


@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_graph_computes_the_original(name):
    graph = _export(FUSED[name][0])
    fused = fuse(graph)
    x = torch.randn(4096, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        want, got = evaluate(graph, x), evaluate(fused, x)
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-6), (got - want).abs().max()


@pytest.mark.parametrize("name", sorted(FUSED))
@pytest.mark.parametrize("method", ["crown", "alpha"])
def test_bounds_of_the_rewritten_graph_contain_the_original_outputs(name, method):
    graph = _export(FUSED[name][0])
    gen = torch.Generator().manual_seed(2)
    centre = torch.randn(3, generator=gen)
    for radius in (0.05, 0.5, 3.0):
        lower, upper = centre - radius, centre + radius
        lo, up = output_bounds(graph, lower.reshape(1, -1), upper.reshape(1, -1), method=method)
        x = lower + (upper - lower) * torch.rand(4000, 3, generator=gen)
        corners = torch.cartesian_prod(*[torch.stack([lower[i], upper[i]]) for i in range(3)])
        with torch.no_grad():
            y = evaluate(graph, torch.cat([x, corners]).double())
        assert (y >= lo.double() - 1e-5).all() and (y <= up.double() + 1e-5).all(), \
            (name, radius, float((lo.double() - y).max()), float((y - up.double()).max()))


def _model(nodes, inits, in_shape, out_shape):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits])
    return load_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def test_lookalikes_with_other_constants_or_operands_are_not_fused():
    w = np.random.default_rng(0).standard_normal((2, 2))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["z"]),
             helper.make_node("Sigmoid", ["x"], ["s"]),
             helper.make_node("Mul", ["z", "s"], ["a"]),             # z * sigmoid(x): no SiLU
             helper.make_node("Div", ["a", "two"], ["d"]),
             helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["p"]),
             helper.make_node("Mul", ["a", "p"], ["q"]),
             helper.make_node("Mul", ["q", "half"], ["y"])]          # erf(a / 2): not GeLU
    graph = _model(nodes, [("w", w), ("two", 2.0), ("one", 1.0), ("half", 0.5)], [1, 2], [1, 2])
    assert fuse(graph) is graph


@pytest.mark.parametrize("op,keepdims,axes", [("ReduceMax", 1, [1]), ("ReduceMin", 0, [1, 2]),
                                              ("ReduceMax", 0, [2])])
def test_reduce_max_min_are_bounded_soundly(op, keepdims, axes):
    w = np.random.default_rng(3).standard_normal((4, 12)).astype(np.float32)
    out_shape = [1, 3, 4] if keepdims else ([1] if len(axes) == 2 else [1, 3])
    if keepdims:
        out_shape = [1] + [1 if i + 1 in axes else d for i, d in enumerate([3, 4])]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["z"]),
             helper.make_node("Reshape", ["z", "shape"], ["r"]),
             helper.make_node(op, ["r", "axes"], ["y"], keepdims=keepdims)]
    inits = [("w", w), ("shape", np.array([1, 3, 4])), ("axes", np.array(axes))]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    loaded = load_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    assert op not in {n.op_type for n in make_plan(loaded).graph.nodes}
    _check_contains(loaded, 4)


def test_ceil_is_bounded_soundly():
    w = np.random.default_rng(4).standard_normal((3, 5)) * 2
    nodes = [helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("Ceil", ["z"], ["y"])]
    graph = _model(nodes, [("w", w)], [1, 3], [1, 5])
    assert "Ceil" not in {n.op_type for n in make_plan(graph).graph.nodes}
    _check_contains(graph, 3)


def _check_contains(graph, size: int) -> None:
    gen = torch.Generator().manual_seed(5)
    lower, upper = -torch.rand(size, generator=gen), torch.rand(size, generator=gen)
    lo, up = output_bounds(graph, lower.reshape(1, -1), upper.reshape(1, -1), method="crown")
    x = lower + (upper - lower) * torch.rand(5000, size, generator=gen)
    with torch.no_grad():
        y = evaluate(graph, x).reshape(5000, -1)
    assert (y >= lo.reshape(1, -1) - 1e-5).all() and (y <= up.reshape(1, -1) + 1e-5).all()
