"""Load-time folding of nodes with constant inputs, whatever their op type (verifier.onnx_fold):
shape arithmetic through ops our torch forward does not have must fold away, and agree with
onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from tests.unit.verifier.test_loader import check_ort, f32, make_model
from genbab.verifier.errors import ModelError, UnsupportedOpError
from genbab.verifier.onnx_fold import fold_node
from genbab.verifier.onnx_loader import load_model


def _shape_arithmetic_model():
    """y = Reshape(x, target) where target is computed with Mod, CumSum, ReduceProd and
    Shape: ops that exist only in the reference evaluator, all on constants."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),                       # [1, 6, 4]
        helper.make_node("Mod", ["s", "three"], ["m"]),                # [1, 0, 1]
        helper.make_node("CumSum", ["s", "axis0"], ["cs"]),            # [1, 7, 11]
        helper.make_node("ReduceProd", ["s"], ["numel"], keepdims=1),  # [24]
        helper.make_node("Div", ["numel", "eight"], ["rows"]),         # [3]
        helper.make_node("Concat", ["one", "rows", "eight"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["r"]),
        helper.make_node("Gather", ["m", "idx"], ["g"], axis=0),        # [0]
        helper.make_node("Cast", ["g"], ["gf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["r", "gf"], ["y"]),
    ]
    inits = [("three", np.array([3], dtype=np.int64)), ("axis0", np.array(0, dtype=np.int64)),
             ("eight", np.array([8], dtype=np.int64)), ("one", np.array([1], dtype=np.int64)),
             ("idx", np.array([1], dtype=np.int64))]
    return make_model(nodes, [1, 6, 4], [1, 3, 8], inits=inits, opset=13)


def test_ops_without_a_forward_fold_when_their_inputs_are_constant(tmp_path):
    graph = check_ort(_shape_arithmetic_model(), tmp_path)
    assert graph.output_shape == (1, 3, 8)
    assert {n.op_type for n in graph.nodes} == {"Reshape", "Add"}


def test_an_unsupported_op_on_the_perturbed_path_is_still_reported():
    nodes = [helper.make_node("Mod", ["x", "two"], ["y"], name="mod", fmod=1)]
    model = make_model(nodes, [1, 3], [1, 3], inits=[("two", np.array([2.0], np.float32))])
    with pytest.raises(UnsupportedOpError) as info:
        load_model(model)
    assert info.value.unsupported == {"Mod": ["mod"]}


def test_every_unsupported_op_is_reported_even_behind_another():
    nodes = [helper.make_node("Hardmax", ["x"], ["a"], name="hm"),
             helper.make_node("Relu", ["a"], ["b"], name="ok"),
             helper.make_node("Einsum", ["b"], ["y"], name="es", equation="ij->ij")]
    with pytest.raises(UnsupportedOpError) as info:
        load_model(make_model(nodes, [1, 2], [1, 2]))
    assert info.value.unsupported == {"Hardmax": ["hm"], "Einsum": ["es"]}


def test_random_ops_are_not_frozen_into_constants():
    nodes = [helper.make_node("RandomNormal", [], ["noise"], name="rnd", shape=[1, 2]),
             helper.make_node("Add", ["x", "noise"], ["y"])]
    with pytest.raises(ModelError, match="'rnd'.*random"):
        load_model(make_model(nodes, [1, 2], [1, 2]))


def test_fold_node_names_the_node_when_the_evaluator_fails():
    node = helper.make_node("Reshape", ["a", "shape"], ["b"])
    import torch
    with pytest.raises(ModelError, match="'bad' \\(Reshape\\).*cannot be evaluated"):
        fold_node(node, [torch.zeros(6), torch.tensor([4, 4])], 13, "m.onnx", "bad")


def test_folded_constants_keep_integer_and_boolean_types(tmp_path):
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=1),
             helper.make_node("Mod", ["s", "two"], ["m"]),
             helper.make_node("Equal", ["m", "zero"], ["even"]),
             helper.make_node("Where", ["even", "wa", "wb"], ["w"]),
             helper.make_node("Mul", ["x", "w"], ["y"])]
    inits = [("two", np.array([2], np.int64)), ("zero", np.array([0], np.int64)),
             ("wa", f32(1, 4, seed=1)), ("wb", f32(1, 4, seed=2))]
    graph = check_ort(make_model(nodes, [1, 4], [1, 4], inits=inits, opset=15), tmp_path)
    assert [n.op_type for n in graph.nodes] == ["Mul"]
