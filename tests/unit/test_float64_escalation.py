"""Bounds that fail in float32 by less than its rounding noise are recomputed in float64
(an ml4acopf-like generator output ``lo + (hi - lo) * sigmoid(z)`` against a limit that is
1 ulp above ``hi``), and the float64 pass never proves a truly violated property."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from genbab.bounds.engine import prove
from genbab.api import verify
from genbab.verifier.onnx_loader import load_model
from genbab.verifier.options import VerifyOptions
from genbab.verifier.result import Status
from genbab.vnnlib.property import Property

LO, HI = np.float32(0.25), np.float32(6.53)


def _bounded_output():
    inits = [numpy_helper.from_array(np.array([[3.0]], np.float32), "w"),
             numpy_helper.from_array(np.array([HI - LO], np.float32), "span"),
             numpy_helper.from_array(np.array([LO], np.float32), "lo")]
    nodes = [helper.make_node("Gemm", ["x", "w"], ["z"], transB=1),
             helper.make_node("Sigmoid", ["z"], ["s"]),
             helper.make_node("Mul", ["s", "span"], ["m"]),
             helper.make_node("Add", ["m", "lo"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _limit(gap: float) -> Property:
    # violated iff y >= HI + gap, written as -y <= -(HI + gap)
    return Property.from_box([-10.0], [10.0], [(np.array([[-1.0]]), np.array([-(float(HI) + gap)]))])


def test_float32_misses_by_rounding_and_float64_proves():
    model = _bounded_output()
    prop = _limit(8e-7)
    assert not prove(load_model(model), prop, VerifyOptions(dtype="float32")).verified, \
        "float32 already proves it: the escalation is not exercised"
    result = verify(model, prop, options=VerifyOptions(timeout_s=20))
    assert result.status is Status.VERIFIED, result.message
    assert "float64" in result.message and result.stats.extra["float64_bounds"] == "proved"


@pytest.mark.parametrize("gap", [-1e-3, 0.0])
def test_float64_pass_never_proves_a_reachable_limit(gap):
    # sigmoid(30) rounds to 1 in float32, so y reaches HI (and anything below it)
    result = verify(_bounded_output(), _limit(gap), options=VerifyOptions(timeout_s=10))
    assert result.status is not Status.VERIFIED
