"""Torch evaluator: the batched convention, broadcasting across the batch axis, dtypes, gradients
and ops whose padding rules are easy to get wrong (checked against onnxruntime)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from genbab.verifier.forward import FORWARD, evaluate, prepared_constants
from genbab.verifier.graph import Graph, Node
from genbab.model_check import compare_with_onnxruntime
from genbab.verifier.onnx_loader import load_model

FLOAT = TensorProto.FLOAT


def make_model(nodes, in_shape, inits=(), opset=13):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v), name=k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def check_ort(model, tmp_path: Path, tol=1e-5):
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    graph = load_model(path)
    check = compare_with_onnxruntime(path, graph, samples=3)
    assert check.finite and check.max_rel_error <= tol, check
    return graph


def f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def node(op_type, n_inputs=2, **attrs):
    return Node("n", op_type, tuple(f"i{k}" for k in range(n_inputs)), ("o",), attrs)


# -- the batched convention ------------------------------------------------------------------
def test_add_aligns_low_rank_batched_operand_with_higher_rank_constant():
    """x has ONNX shape (3,) and batch 2; c has shape (4, 3): the result is (2, 4, 3), which
    numpy right-alignment of (2, 3) with (4, 3) would get wrong."""
    x, c = torch.randn(2, 3), torch.randn(4, 3)
    (y,) = FORWARD["Add"](node("Add"), [x, c], [True, False])
    assert y.shape == (2, 4, 3)
    torch.testing.assert_close(y[1], x[1] + c)


def test_mul_of_two_batched_operands_of_different_ranks():
    a, b = torch.randn(5, 3), torch.randn(5, 2, 3)
    (y,) = FORWARD["Mul"](node("Mul"), [a, b], [True, True])
    assert y.shape == (5, 2, 3)
    torch.testing.assert_close(y[4], a[4] * b[4])


def test_matmul_batched_vector_times_stacked_constant():
    """ONNX (3,) @ (2, 3, 4) -> (2, 4); torch.matmul on (batch, 3) would treat batch as rows."""
    x, w = torch.randn(5, 3), torch.randn(2, 3, 4)
    (y,) = FORWARD["MatMul"](node("MatMul"), [x, w], [True, False])
    assert y.shape == (5, 2, 4)
    torch.testing.assert_close(y[3], torch.matmul(x[3], w))


def test_matmul_of_two_batched_matrices():
    a, b = torch.randn(4, 2, 3, 5), torch.randn(4, 2, 5, 3)
    (y,) = FORWARD["MatMul"](node("MatMul"), [a, b], [True, True])
    torch.testing.assert_close(y, a @ b)


def test_unbatched_call_is_plain_onnx_semantics():
    x = torch.arange(6.0).reshape(2, 3)
    (y,) = FORWARD["Transpose"](node("Transpose", 1, perm=(1, 0)), [x], [False])
    assert torch.equal(y, x.T)


def test_concat_expands_constants_over_the_batch():
    x, c = torch.randn(4, 1, 2), torch.randn(1, 3)
    (y,) = FORWARD["Concat"](node("Concat", axis=1), [x, c], [True, False])
    assert y.shape == (4, 1, 5)
    assert torch.equal(y[2, :, 2:], c)


# -- evaluate --------------------------------------------------------------------------------
def _small_graph() -> Graph:
    model = make_model([helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
                        helper.make_node("Tanh", ["h"], ["t"]),
                        helper.make_node("Gather", ["t", "idx"], ["y"], axis=1)],
                       [1, 3], inits=[("w", f32(4, 3)), ("b", f32(4)), ("idx", np.array([3, -4]))])
    return load_model(model)


def test_evaluate_accepts_flat_and_shaped_inputs_and_keeps_intermediates():
    graph = _small_graph()
    x = torch.randn(6, 3)
    y = evaluate(graph, x)
    assert y.shape == (6, 1, 2)
    torch.testing.assert_close(evaluate(graph, x.reshape(6, 1, 3)), y)
    values = evaluate(graph, x, keep=True)
    assert set(values) == {"x", "h", "t", "y"}
    assert values["h"].shape == (6, 1, 4)
    torch.testing.assert_close(y[:, 0, 1], values["t"][:, 0, 0])


def test_evaluate_rejects_wrong_input_size():
    with pytest.raises(ValueError, match="expected"):
        evaluate(_small_graph(), torch.randn(2, 4))


def test_evaluate_in_float64_keeps_integer_constants():
    graph = _small_graph()
    y = evaluate(graph, torch.randn(2, 3, dtype=torch.float64))
    assert y.dtype == torch.float64
    constants = prepared_constants(graph, torch.float64, "cpu")
    weight = graph.nodes[0].inputs[1]       # W transposed at load time: (in, out)
    assert constants[weight].dtype == torch.float64 and constants[weight].shape == (3, 4)
    assert constants["idx"].dtype == torch.int64
    assert prepared_constants(graph, torch.float64, "cpu") is constants


def test_gradient_flows_to_the_input():
    graph = _small_graph()
    x = torch.randn(3, 3, requires_grad=True)
    evaluate(graph, x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_float64_agrees_with_float32():
    graph = _small_graph()
    x = torch.randn(8, 3, dtype=torch.float64)
    torch.testing.assert_close(evaluate(graph, x.float()).double(), evaluate(graph, x),
                               rtol=1e-5, atol=1e-6)


# -- ops checked against onnxruntime ----------------------------------------------------------
def test_conv_with_asymmetric_pads_strides_and_groups(tmp_path):
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[0, 1, 2, 1], strides=[2, 1],
                            group=2, dilations=[1, 2])
    model = make_model([conv], [1, 4, 7, 6], inits=[("w", f32(6, 2, 3, 2)), ("b", f32(6))])
    check_ort(model, tmp_path)


def test_conv1d_and_auto_pad_same(tmp_path):
    conv = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2])
    check_ort(make_model([conv], [1, 2, 9], inits=[("w", f32(3, 2, 4))]), tmp_path)


@pytest.mark.parametrize("pads,output_padding", [([0, 0, 0, 0], [0, 0]), ([1, 1, 1, 1], [1, 1]),
                                                 ([1, 0, 2, 1], [1, 0])])
def test_conv_transpose_padding(pads, output_padding, tmp_path):
    deconv = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], pads=pads,
                              output_padding=output_padding)
    model = make_model([deconv], [1, 3, 4, 5], inits=[("w", f32(3, 2, 4, 3)), ("b", f32(2))])
    check_ort(model, tmp_path)


@pytest.mark.parametrize("op,extra", [("MaxPool", {}), ("AveragePool", {"count_include_pad": 0}),
                                      ("AveragePool", {"count_include_pad": 1})])
def test_pooling_with_pads(op, extra, tmp_path):
    pool = helper.make_node(op, ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 2],
                            pads=[1, 0, 0, 1], **extra)
    check_ort(make_model([pool], [1, 2, 6, 5]), tmp_path)


def test_layer_normalization_and_gelu_like_ops(tmp_path):
    nodes = [helper.make_node("LayerNormalization", ["x", "s", "b"], ["n"], axis=-1),
             helper.make_node("Erf", ["n"], ["e"]),
             helper.make_node("Softplus", ["e"], ["p"]),
             helper.make_node("HardSigmoid", ["p"], ["h"]),
             helper.make_node("LeakyRelu", ["h"], ["y"], alpha=0.2)]
    model = make_model(nodes, [1, 3, 4], inits=[("s", f32(4, seed=1)), ("b", f32(4, seed=2))],
                       opset=17)
    check_ort(model, tmp_path)


def test_elementwise_zoo(tmp_path):
    nodes = [helper.make_node("Sigmoid", ["x"], ["a"]),
             helper.make_node("Sqrt", ["a"], ["b"]),
             helper.make_node("Log", ["b"], ["c"]),
             helper.make_node("Exp", ["c"], ["d"]),
             helper.make_node("Reciprocal", ["d"], ["e"]),
             helper.make_node("Sin", ["e"], ["f"]),
             helper.make_node("Abs", ["f"], ["g"]),
             helper.make_node("Max", ["g", "x", "c"], ["h"]),
             helper.make_node("Div", ["h", "two"], ["i"]),
             helper.make_node("Sub", ["two", "i"], ["j"]),
             helper.make_node("Floor", ["x"], ["k"]),
             helper.make_node("Sign", ["x"], ["l"]),
             helper.make_node("Sum", ["j", "k", "l"], ["m"]),
             helper.make_node("ReduceMean", ["m"], ["y"], axes=[1], keepdims=0)]
    graph = check_ort(make_model(nodes, [1, 3, 4], inits=[("two", np.float32(2.0))], opset=13),
                      tmp_path)
    assert "Sum" not in graph.op_types()


def test_two_input_attention_matmul_and_softmax(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"]),
             helper.make_node("MatMul", ["x", "wk"], ["k"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "x"], ["y"])]
    model = make_model(nodes, [1, 4, 3], inits=[("wq", f32(3, 3, seed=1)), ("wk", f32(3, 3, seed=2))])
    check_ort(model, tmp_path)
