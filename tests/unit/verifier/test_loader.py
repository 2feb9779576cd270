"""ONNX loader: error cases, constant folding and every normalisation, on tiny models built with
``onnx.helper``.  Semantics are checked against onnxruntime on random inputs."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from genbab.verifier.errors import ModelError, UnsupportedOpError
from genbab.verifier.forward import evaluate
from genbab.model_check import compare_with_onnxruntime
from genbab.verifier.onnx_loader import load_model

FLOAT = TensorProto.FLOAT


def make_model(nodes, in_shape, out_shape=None, inits=(), opset=13, in_name="x", out_name="y",
               extra_inputs=(), extra_outputs=()):
    inputs = [helper.make_tensor_value_info(in_name, FLOAT, in_shape), *extra_inputs]
    outputs = [helper.make_tensor_value_info(out_name, FLOAT, out_shape), *extra_outputs]
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(np.asarray(v), name=k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def save(model, tmp_path: Path, name="m.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def check_ort(model, tmp_path, lower=-2.0, upper=2.0, tol=1e-5):
    """Load the model and compare it with onnxruntime; returns the graph."""
    path = save(model, tmp_path)
    graph = load_model(path)
    size = graph.input_size
    check = compare_with_onnxruntime(path, graph, samples=4, lower=np.full(size, lower),
                                     upper=np.full(size, upper))
    assert check.finite
    assert check.max_rel_error <= tol, check
    return graph


def f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- errors ---------------------------------------------------------------------------------
def test_loader_rejects_missing_file(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        load_model(tmp_path / "absent.onnx")


def test_loader_rejects_directory(tmp_path):
    with pytest.raises(ModelError, match="directory"):
        load_model(tmp_path)


def test_loader_rejects_truncated_file(tmp_path):
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [1, 64], [1, 64],
                       inits=[("w", f32(64, 64))])
    data = model.SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cannot be read as an ONNX model"):
        load_model(path)


def test_loader_rejects_text_file(tmp_path):
    path = tmp_path / "text.onnx"
    path.write_text("this is not a model\n" * 10)
    with pytest.raises(ModelError, match="ONNX"):
        load_model(path)


def test_loader_rejects_two_inputs():
    extra = [helper.make_tensor_value_info("z", FLOAT, [1, 2])]
    model = make_model([helper.make_node("Add", ["x", "z"], ["y"])], [1, 2], [1, 2],
                       extra_inputs=extra)
    with pytest.raises(ModelError, match="exactly one network input.*2"):
        load_model(model)


def test_loader_rejects_two_outputs():
    extra = [helper.make_tensor_value_info("r", FLOAT, [1, 2])]
    nodes = [helper.make_node("Neg", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["r"])]
    with pytest.raises(ModelError, match="exactly one network output"):
        load_model(make_model(nodes, [1, 2], [1, 2], extra_outputs=extra))


def test_loader_rejects_dynamic_non_batch_dims():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], ["N", "H"], ["N", "H"])
    with pytest.raises(ModelError, match=r"dynamic dimensions \[N, H\]"):
        load_model(model)


def test_loader_accepts_symbolic_batch_dim():
    graph = load_model(make_model([helper.make_node("Relu", ["x"], ["y"])], ["batch", 3], None))
    assert graph.input_shape == (1, 3) and graph.onnx_input_shape == (1, 3)
    assert graph.output_shape == (1, 3)


def test_loader_accepts_input_without_batch_axis():
    graph = load_model(make_model([helper.make_node("Relu", ["x"], ["y"])], [12, 8], [12, 8]))
    assert graph.input_shape == (12, 8)


def test_loader_rejects_nan_weights():
    w = f32(2, 2)
    w[0, 1] = np.nan
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [1, 2], [1, 2],
                       inits=[("w", w)])
    with pytest.raises(ModelError, match="NaN or infinity: w"):
        load_model(model)


def test_loader_lists_every_unsupported_op():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("Hardmax", ["a"], ["b"], name="hm1"),
             helper.make_node("Hardmax", ["b"], ["c"], name="hm2"),
             helper.make_node("Einsum", ["c"], ["y"], name="es", equation="ij->ij")]
    with pytest.raises(UnsupportedOpError) as info:
        load_model(make_model(nodes, [1, 2], [1, 2]))
    assert set(info.value.unsupported) == {"Hardmax", "Einsum"}
    assert info.value.unsupported["Hardmax"] == ["hm1", "hm2"]
    message = str(info.value)
    assert "'hm1'" in message and "'es'" in message and "supported:" in message


def test_loader_rejects_input_dependent_reshape_target():
    nodes = [helper.make_node("Relu", ["x"], ["s"]),
             helper.make_node("Reshape", ["x", "s"], ["y"], name="r")]
    with pytest.raises(ModelError, match="'r'.*depends on the network input"):
        load_model(make_model(nodes, [2], [2]))


def test_loader_reads_gzip(tmp_path):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [1, 3], [1, 3])
    path = tmp_path / "m.onnx.gz"
    path.write_bytes(gzip.compress(model.SerializeToString()))
    assert load_model(path).source == str(path)


# -- structure ------------------------------------------------------------------------------
def test_loader_sorts_nodes_topologically_and_names_them():
    nodes = [helper.make_node("Relu", ["a"], ["y"], name="second"),
             helper.make_node("Neg", ["x"], ["a"])]
    graph = load_model(make_model(nodes, [1, 3], [1, 3]))
    assert [n.op_type for n in graph.nodes] == ["Neg", "Relu"]
    assert graph.nodes[1].name == "second" and graph.nodes[0].name
    assert len({n.name for n in graph.nodes}) == 2


def test_identity_and_dropout_are_removed(tmp_path):
    nodes = [helper.make_node("Identity", ["x"], ["a"]),
             helper.make_node("Dropout", ["a"], ["b"]),
             helper.make_node("Relu", ["b"], ["y"])]
    graph = check_ort(make_model(nodes, [1, 3], [1, 3]), tmp_path)
    assert [n.op_type for n in graph.nodes] == ["Relu"]
    assert graph.nodes[0].inputs == ("x",)


def test_shape_ops_become_static_reshapes(tmp_path):
    nodes = [helper.make_node("Flatten", ["x"], ["a"], axis=1),
             helper.make_node("Unsqueeze", ["a", "ax"], ["b"]),
             helper.make_node("Squeeze", ["b", "ax"], ["c"]),
             helper.make_node("Reshape", ["c", "shape"], ["y"])]
    model = make_model(nodes, [1, 2, 3], [1, 3, 2],
                       inits=[("ax", np.array([-1])), ("shape", np.array([0, -1, 2]))])
    graph = check_ort(model, tmp_path)
    assert [n.op_type for n in graph.nodes] == ["Reshape"] * 4
    assert [n.attrs["shape"] for n in graph.nodes] == [(1, 6), (1, 6, 1), (1, 6), (1, 3, 2)]


def test_shape_gather_concat_chain_is_folded(tmp_path):
    """vit's pattern: the reshape target is computed at run time from Shape."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
             helper.make_node("Concat", ["n1", "rest"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"])]
    model = make_model(nodes, ["batch", 4, 6], ["batch", 2, 12],
                       inits=[("zero", np.array(0)), ("ax0", np.array([0])),
                              ("rest", np.array([2, 12]))])
    graph = check_ort(model, tmp_path)
    assert [n.op_type for n in graph.nodes] == ["Reshape"]
    assert graph.nodes[0].attrs["shape"] == (1, 2, 12)
    assert graph.nodes[0].inputs == ("x",)


def test_constant_mask_chain_is_folded(tmp_path):
    """ml4acopf/lsnc pattern: ConstantOfShape, Equal, Where, Expand on constants only."""
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["ones"],
                              value=numpy_helper.from_array(np.array([1], dtype=np.int64))),
             helper.make_node("Equal", ["ones", "idx"], ["eq"]),
             helper.make_node("Where", ["eq", "a", "b"], ["w"]),
             helper.make_node("Expand", ["w", "big"], ["e"]),
             helper.make_node("Mul", ["x", "e"], ["y"])]
    model = make_model(nodes, [1, 3], [1, 3], opset=14,
                       inits=[("shape", np.array([3])), ("idx", np.array([1, 0, 1])),
                              ("a", np.float32(2.0)), ("b", np.float32(-1.0)),
                              ("big", np.array([1, 3]))])
    graph = check_ort(model, tmp_path)
    assert [n.op_type for n in graph.nodes] == ["Mul"]
    const = graph.constants[graph.nodes[0].inputs[1]]
    assert const.tolist() == [[2.0, -1.0, 2.0]]


@pytest.mark.parametrize("opset", [9, 13])
def test_slice_attrs_and_inputs_are_normalised(opset, tmp_path):
    if opset < 10:
        node = helper.make_node("Slice", ["x"], ["y"], starts=[1, -100], ends=[100, -1],
                                axes=[-1, 1])
        inits = []
    else:
        node = helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])
        inits = [("st", np.array([1, -100])), ("en", np.array([100, -1])),
                 ("ax", np.array([-1, 1])), ("sp", np.array([2, 1]))]
    graph = check_ort(make_model([node], [1, 4, 5], None, inits=inits, opset=opset), tmp_path)
    attrs = dict(graph.nodes[0].attrs)
    step = 2 if opset >= 10 else 1
    assert attrs == {"axes": (1, 2), "starts": (0, 1), "ends": (3, 5), "steps": (1, step)}


def test_slice_negative_step(tmp_path):
    node = helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])
    inits = [("st", np.array([-1])), ("en", np.array([-100])), ("ax", np.array([1])),
             ("sp", np.array([-2]))]
    graph = check_ort(make_model([node], [1, 5], None, inits=inits), tmp_path)
    assert graph.output_shape == (1, 3)


@pytest.mark.parametrize("opset,axis", [(11, 1), (11, -1), (13, 1)])
def test_softmax_axis_semantics_follow_the_opset(opset, axis, tmp_path):
    model = make_model([helper.make_node("Softmax", ["x"], ["y"], axis=axis)], [1, 3, 4], None,
                       opset=opset)
    graph = check_ort(model, tmp_path)
    ops = [n.op_type for n in graph.nodes]
    if opset < 13 and axis == 1:
        assert ops == ["Reshape", "Softmax", "Reshape"]
        assert graph.nodes[1].attrs["axis"] == 1
    else:
        assert ops == ["Softmax"] and graph.nodes[0].attrs["axis"] == (2 if axis == -1 else 1)


@pytest.mark.parametrize("opset", [11, 13])
def test_split_and_reduce_opset_forms(opset, tmp_path):
    if opset < 13:
        split = helper.make_node("Split", ["x"], ["a", "b"], axis=-1, split=[1, 3])
        reduce = helper.make_node("ReduceSum", ["b"], ["r"], axes=[-1], keepdims=1)
        inits = []
    else:
        split = helper.make_node("Split", ["x", "sp"], ["a", "b"], axis=-1)
        reduce = helper.make_node("ReduceSum", ["b", "ax"], ["r"], keepdims=1)
        inits = [("sp", np.array([1, 3])), ("ax", np.array([-1]))]
    nodes = [split, reduce, helper.make_node("Mul", ["a", "r"], ["y"])]
    graph = check_ort(make_model(nodes, [1, 2, 4], None, inits=inits, opset=opset), tmp_path)
    by_op = {n.op_type: n for n in graph.nodes}
    assert dict(by_op["Split"].attrs) == {"axis": 2, "split": (1, 3)}
    assert dict(by_op["ReduceSum"].attrs) == {"axes": (2,), "keepdims": 1}


@pytest.mark.parametrize("form", ["upsample7", "upsample9", "resize13"])
def test_upsample_and_resize_become_nearest_resize(form, tmp_path):
    scales = np.array([1, 1, 2, 2], dtype=np.float32)
    if form == "upsample7":
        nodes, inits, opset = [helper.make_node("Upsample", ["x"], ["y"], scales=scales.tolist())], [], 7
    elif form == "upsample9":
        nodes, inits, opset = [helper.make_node("Upsample", ["x", "s"], ["y"])], [("s", scales)], 9
    else:
        nodes = [helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest")]
        inits, opset = [("s", scales)], 13
    graph = check_ort(make_model(nodes, [1, 2, 3, 3], None, inits=inits, opset=opset), tmp_path)
    assert [n.op_type for n in graph.nodes] == ["Resize"]
    assert graph.output_shape == (1, 2, 6, 6)
    assert graph.nodes[0].attrs["scales"] == (1.0, 1.0, 2.0, 2.0)


def test_resize_non_integer_scale_matches_onnxruntime(tmp_path):
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest")
    model = make_model([node], [1, 1, 4, 5], None, opset=13,
                       inits=[("s", np.array([1, 1, 1.5, 0.6], dtype=np.float32))])
    check_ort(model, tmp_path)


@pytest.mark.parametrize("opset", [2, 13])
def test_pad_forms(opset, tmp_path):
    pads = [0, 1, 0, 2, 0, 1, 0, 0]
    if opset < 11:
        nodes, inits = [helper.make_node("Pad", ["x"], ["y"], pads=pads, value=0.5)], []
    else:
        nodes = [helper.make_node("Pad", ["x", "p", "v"], ["y"])]
        inits = [("p", np.array(pads)), ("v", np.float32(0.5))]
    graph = check_ort(make_model(nodes, [1, 2, 3, 2], None, inits=inits, opset=opset), tmp_path)
    assert graph.output_shape == (1, 4, 3, 4)
    assert graph.nodes[0].attrs["value"] == 0.5


def test_batchnorm_becomes_mul_and_add(tmp_path):
    c = 3
    inits = [("s", f32(c, seed=1)), ("b", f32(c, seed=2)), ("m", f32(c, seed=3)),
             ("v", np.abs(f32(c, seed=4)) + 0.5)]
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)
    graph = check_ort(make_model([node], [1, c, 2, 2], None, inits=inits, opset=9), tmp_path)
    assert [n.op_type for n in graph.nodes] == ["Mul", "Add"]
    assert graph.constants[graph.nodes[0].inputs[1]].shape == (c, 1, 1)


@pytest.mark.parametrize("trans_a,trans_b,alpha,beta", [(0, 0, 1.0, 1.0), (1, 1, 0.5, 2.0),
                                                        (0, 1, 1.0, 0.0)])
def test_gemm_is_folded_to_x_times_w_plus_b(trans_a, trans_b, alpha, beta, tmp_path):
    in_shape = [3, 1] if trans_a else [1, 3]
    w = f32(*([4, 3] if trans_b else [3, 4]), seed=1)
    node = helper.make_node("Gemm", ["x", "w", "c"], ["y"], transA=trans_a, transB=trans_b,
                            alpha=alpha, beta=beta)
    graph = check_ort(make_model([node], in_shape, None, inits=[("w", w), ("c", f32(4, seed=2))]),
                      tmp_path)
    gemm = graph.nodes[-1]
    assert gemm.op_type == "Gemm" and not gemm.attrs
    assert graph.constants[gemm.inputs[1]].shape == (3, 4)
    assert [n.op_type for n in graph.nodes] == (["Transpose", "Gemm"] if trans_a else ["Gemm"])


def test_gemm_with_input_dependent_second_operand_becomes_matmul(tmp_path):
    nodes = [helper.make_node("Transpose", ["x"], ["xt"]),
             helper.make_node("Gemm", ["x", "xt", "c"], ["y"], alpha=2.0)]
    graph = check_ort(make_model(nodes, [2, 3], None, inits=[("c", f32(2, seed=1))]), tmp_path)
    assert [n.op_type for n in graph.nodes] == ["Transpose", "MatMul", "Mul", "Add"]


def test_squares_become_pow(tmp_path):
    nodes = [helper.make_node("Mul", ["x", "x"], ["a"]),
             helper.make_node("Pow", ["a", "three"], ["y"])]
    graph = check_ort(make_model(nodes, [1, 3], None, inits=[("three", np.float32(3.0))]),
                      tmp_path, tol=1e-5)
    assert [(n.op_type, n.inputs[:1], dict(n.attrs)) for n in graph.nodes] == [
        ("Pow", ("x",), {"exponent": 2.0}), ("Pow", ("a",), {"exponent": 3.0})]
    assert len(graph.nodes[1].inputs) == 1


@pytest.mark.parametrize("opset", [6, 12])
def test_clip_bounds_become_attributes(opset, tmp_path):
    if opset < 11:
        nodes, inits = [helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=1.0)], []
    else:
        nodes = [helper.make_node("Clip", ["x", "", "hi"], ["y"])]
        inits = [("hi", np.float32(1.0))]
    graph = check_ort(make_model(nodes, [1, 5], None, inits=inits, opset=opset), tmp_path)
    assert graph.nodes[0].attrs["max"] == 1.0
    assert graph.nodes[0].attrs["min"] == (-0.5 if opset < 11 else None)


def test_dead_nodes_and_unused_constants_are_dropped():
    nodes = [helper.make_node("Relu", ["x"], ["y"]),
             helper.make_node("MatMul", ["x", "w"], ["unused"])]
    graph = load_model(make_model(nodes, [1, 2], [1, 2], inits=[("w", f32(2, 2))]))
    assert [n.op_type for n in graph.nodes] == ["Relu"] and not graph.constants


def test_float64_evaluation_of_loaded_model():
    node = helper.make_node("Gemm", ["x", "w", "c"], ["y"], transB=1)
    graph = load_model(make_model([node], [1, 3], None, inits=[("w", f32(4, 3)), ("c", f32(4))]))
    x = torch.randn(5, 3, dtype=torch.float64)
    y = evaluate(graph, x)
    assert y.dtype == torch.float64 and y.shape == (5, 1, 4)
    expected = x.numpy() @ f32(4, 3).astype(np.float64).T + f32(4)
    np.testing.assert_allclose(y.reshape(5, 4).numpy(), expected, rtol=1e-12)


# -- what onnxruntime rejects, the loader rejects too (found by fuzzing; issue 14) ------------
def _relu_model(**kwargs):
    return make_model([helper.make_node("Relu", ["x"], ["y"], name="r", **kwargs)], [1, 3])


def test_loader_rejects_two_nodes_writing_one_tensor():
    model = _relu_model()
    model.graph.node.insert(0, helper.make_node("Relu", ["x"], ["y"], name="first"))
    with pytest.raises(ModelError, match="writes tensor 'y'"):
        load_model(model)


def test_loader_rejects_an_attribute_the_op_does_not_have():
    with pytest.raises(ModelError, match=r"node 'r' \(Relu\) is not valid ONNX"):
        load_model(_relu_model(axis=3))


def test_loader_rejects_an_op_absent_at_the_models_opset():
    model = make_model([helper.make_node("Mish", ["x"], ["y"], name="m")], [1, 3], opset=17)
    with pytest.raises(ModelError, match="No Op registered for Mish"):
        load_model(model)


@pytest.mark.parametrize("opset", [0, 10**6])
def test_loader_rejects_an_unknown_opset(opset):
    model = _relu_model()
    model.opset_import[0].version = opset
    with pytest.raises(ModelError, match=f"declares opset {opset}"):
        load_model(model)


@pytest.mark.parametrize("dims, message", [([0, 3], "empty dimension"),
                                           ([10**9, 3], "genbab handles at most")])
def test_loader_rejects_an_empty_or_huge_input_fast(dims, message):
    model = _relu_model()
    for d, value in zip(model.graph.input[0].type.tensor_type.shape.dim, dims):
        d.dim_value = value
    with pytest.raises(ModelError, match=message):
        load_model(model)
