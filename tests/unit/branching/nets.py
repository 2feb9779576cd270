"""Small generated ONNX MLPs for branch-and-bound tests, with a Lipschitz bound so that a
dense grid gives ground truth that does not come from genbab."""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from genbab.verifier.onnx_loader import load_model

SLOPE = {"Relu": 1.0, "Sigmoid": 0.25, "Tanh": 1.0, "Sin": 1.0, "Clip": 1.0}   # max |f'|
CLIP_RANGE = (-0.5, 0.5)   # Clip's min and max in these nets (a hard tanh with kinks at +-0.5)


def mlp(act: str, widths: tuple[int, ...], seed: int, scale: float):
    """ONNX ``Gemm -> act -> ... -> Gemm`` (weights ``N(0, scale^2 / fan_in)``, biases
    ``N(0, 0.09)``) and an upper bound on its l2 Lipschitz constant (product of spectral norms
    times the activations' slope bounds)."""
    rng = np.random.default_rng(seed)
    nodes, inits, lip, name = [], [], 1.0, "x"
    for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        w = (rng.standard_normal((b, a)) * scale / math.sqrt(a)).astype(np.float32)
        bias = (rng.standard_normal(b) * 0.3).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{k}"), numpy_helper.from_array(bias, f"b{k}")]
        nodes.append(helper.make_node("Gemm", [name, f"W{k}", f"b{k}"], [f"z{k}"], transB=1))
        lip *= float(np.linalg.norm(w.astype(np.float64), 2))
        name = f"z{k}"
        if k < len(widths) - 2:
            extra = ["clip_min", "clip_max"] if act == "Clip" else []
            nodes.append(helper.make_node(act, [name, *extra], [f"h{k}"]))
            lip *= SLOPE[act]
            name = f"h{k}"
    if act == "Clip":
        inits += [numpy_helper.from_array(np.float32(v), n)
                  for n, v in zip(("clip_min", "clip_max"), CLIP_RANGE)]
    graph = helper.make_graph(
        nodes, f"mlp_{act}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, widths[0]])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, widths[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return load_model(model), lip
