"""``check-model`` tells the truth: a walk over the loader's whole op registry.

Every op the loader normalises has a tiny model here with the op on the perturbed path (or, for
shape ops, on constants) and the support level ``genbab.support`` must report for it; then
``verify`` itself is run on it, and must behave as the level promises:

* ``verify``: a trivially true property is *proved* (bounds ran end to end);
* ``attack only``: the same property is never proved (``unknown``), a violated one is refuted;
* ``folded``: the op never reaches the verifier, the property is proved;
* ``unsupported``: ``verify`` raises ``UnsupportedOpError``.

A new loader op without a case here fails ``test_every_loader_op_has_a_case``, so the report
and the verifier cannot drift apart again.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from genbab import Status, verify
from genbab.verifier.errors import UnsupportedOpError
from genbab.verifier.onnx_normalise import NORMALISERS
from genbab.support import ATTACK, FOLDED, UNSUPPORTED, VERIFY, support_report
from genbab.vnnlib.property import Property

pytestmark = pytest.mark.usefixtures("one_thread")

RNG = np.random.default_rng(0)
FLOAT = TensorProto.FLOAT


def _w(*shape) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.5).astype(np.float32)


def _model(nodes, inits=(), in_shape=(1, 4), out_shape=None, opset=17, out="y"):
    graph = helper.make_graph(
        nodes, "case", [helper.make_tensor_value_info("x", FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(out, FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _n(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, name=f"{op}_{outputs[0]}", **attrs)


def _unary(op, opset=17, **attrs):
    """x -> Gemm -> op -> Gemm: the op sits between two layers, on the perturbed path."""
    nodes = [_n("Gemm", ["x", "w1", "b1"], ["h"], transB=1), _n(op, ["h"], ["a"], **attrs),
             _n("Gemm", ["a", "w2", "b2"], ["y"], transB=1)]
    inits = [("w1", _w(5, 4)), ("b1", _w(5)), ("w2", _w(2, 5)), ("b2", _w(2))]
    return _model(nodes, inits, opset=opset)


def _positive(op):
    """For ops defined on x > 0 only: op(x * x + 1)."""
    nodes = [_n("Mul", ["x", "x"], ["sq"]), _n("Add", ["sq", "one"], ["p"]), _n(op, ["p"], ["y"])]
    return _model(nodes, [("one", np.float32(1.0))])


def _binary(op, const_shape=(4,)):
    return _model([_n(op, ["x", "c"], ["y"])], [("c", np.abs(_w(*const_shape)) + 0.5)])


def _image(op, **attrs):
    """(1, 1, 4, 4) image through ``op``, flattened by the output's declared shape."""
    return _model([_n(op, ["x"], ["y"], **attrs)], in_shape=(1, 1, 4, 4))


def _with_consts(op, consts, in_shape=(1, 4), opset=17, extra=(), **attrs):
    names = [f"c{i}" for i in range(len(consts))]
    nodes = [_n(op, ["x", *names], ["y"], **attrs)]
    return _model(nodes, [(n, v) for n, v in zip(names, consts)] + list(extra), in_shape,
                  opset=opset)


def _compare_where(cmp, logic=None):
    """Where(cmp(x, 0.1) [logic ...], x, -x): a comparison on the perturbed path."""
    nodes = [_n(cmp, ["x", "t"], ["c1"])]
    cond = "c1"
    if logic == "Not":
        nodes.append(_n("Not", ["c1"], ["c2"]))
        cond = "c2"
    elif logic is not None:
        nodes += [_n("Less", ["x", "t2"], ["d"]), _n(logic, ["c1", "d"], ["c2"])]
        cond = "c2"
    nodes += [_n("Neg", ["x"], ["nx"]), _n("Where", [cond, "x", "nx"], ["y"])]
    return _model(nodes, [("t", np.float32(0.1)), ("t2", np.float32(0.6))])


def _shape_op(op, **attrs):
    """``op`` computes a constant from x's static shape; x + that constant."""
    inits = []
    if op == "Shape":
        nodes = [_n("Shape", ["x"], ["s"], start=1)]
    elif op == "Size":
        nodes = [_n("Size", ["x"], ["s"])]
    elif op == "ConstantOfShape":
        nodes = [_n("Shape", ["x"], ["sh"], start=1),
                 _n("ConstantOfShape", ["sh"], ["s"],
                    value=numpy_helper.from_array(np.array([3], np.int64)))]
    else:  # Range
        nodes = [_n("Range", ["r0", "r1", "r2"], ["s"])]
        inits = [("r0", np.array(0, np.int64)), ("r1", np.array(4, np.int64)),
                 ("r2", np.array(1, np.int64))]
    nodes += [_n("Cast", ["s"], ["f"], to=FLOAT), _n("Add", ["x", "f"], ["y"])]
    return _model(nodes, inits)


def _recurrent(op):
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    nodes = [_n("Reshape", ["x", "shape"], ["seq"]),
             _n(op, ["seq", "W", "R", "B"], ["", "yh"], hidden_size=2),
             _n("Reshape", ["yh", "flat"], ["y"])]
    inits = [("shape", np.array([2, 1, 2], np.int64)), ("W", _w(1, gates * 2, 2)),
             ("R", _w(1, gates * 2, 2)), ("B", _w(1, gates * 4)),
             ("flat", np.array([1, 2], np.int64))]
    return _model(nodes, inits)


CASES = {
    # elementwise with a relaxation
    **{op: (lambda op=op: _unary(op), VERIFY) for op in (
        "Relu", "Sigmoid", "Tanh", "Sin", "Cos", "Exp", "Abs", "Sign", "Floor", "Ceil", "Erf",
        "Softplus", "Softsign", "Neg", "Elu", "Celu", "Selu", "HardSigmoid", "HardSwish",
        "Atan", "Identity", "Dropout", "LeakyRelu", "ThresholdedRelu")},
    "Mish": (lambda: _unary("Mish", opset=18), VERIFY),     # Mish exists from opset 18
    "Shrink": (lambda: _unary("Shrink", lambd=0.3, bias=0.1), VERIFY),
    "Gelu": (lambda: _unary("Gelu", opset=20), VERIFY),
    **{op: (lambda op=op: _positive(op), VERIFY) for op in ("Log", "Sqrt", "Reciprocal")},
    "Clip": (lambda: _with_consts("Clip", [np.float32(-0.2), np.float32(0.3)]), VERIFY),
    "Pow": (lambda: _with_consts("Pow", [np.float32(3.0)]), VERIFY),
    "PRelu": (lambda: _with_consts("PRelu", [_w(4)]), VERIFY),
    # linear and products
    **{op: (lambda op=op: _binary(op), VERIFY) for op in ("Add", "Sub", "Mul", "Div")},
    "Max": (lambda: _binary("Max"), VERIFY), "Min": (lambda: _binary("Min"), VERIFY),
    "Sum": (lambda: _model([_n("Sum", ["x", "x", "c"], ["y"])], [("c", _w(4))]), VERIFY),
    "MatMul": (lambda: _binary("MatMul", (4, 3)), VERIFY),
    "Gemm": (lambda: _with_consts("Gemm", [_w(4, 3), _w(3)]), VERIFY),
    "Conv": (lambda: _with_consts("Conv", [_w(2, 1, 3, 3), _w(2)], (1, 1, 4, 4)), VERIFY),
    "ConvTranspose": (lambda: _with_consts("ConvTranspose", [_w(1, 2, 2, 2)], (1, 1, 4, 4)),
                      VERIFY),
    "BatchNormalization": (lambda: _with_consts(
        "BatchNormalization", [_w(1), _w(1), _w(1), np.abs(_w(1)) + 1], (1, 1, 4, 4)), VERIFY),
    "LayerNormalization": (lambda: _with_consts("LayerNormalization", [_w(4), _w(4)]), VERIFY),
    "Softmax": (lambda: _model([_n("Softmax", ["x"], ["y"], axis=-1)]), VERIFY),
    "LogSoftmax": (lambda: _model([_n("LogSoftmax", ["x"], ["y"], axis=-1)]), VERIFY),
    # pooling and reductions
    "MaxPool": (lambda: _image("MaxPool", kernel_shape=[2, 2], strides=[2, 2]), VERIFY),
    "AveragePool": (lambda: _image("AveragePool", kernel_shape=[2, 2]), VERIFY),
    "GlobalAveragePool": (lambda: _image("GlobalAveragePool"), VERIFY),
    "GlobalMaxPool": (lambda: _image("GlobalMaxPool"), VERIFY),
    **{op: (lambda op=op: _with_consts(op, [np.array([1], np.int64)], opset=18), VERIFY)
       for op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin")},
    # shape and data movement
    "Reshape": (lambda: _with_consts("Reshape", [np.array([2, 2], np.int64)]), VERIFY),
    "Flatten": (lambda: _image("Flatten"), VERIFY),
    "Squeeze": (lambda: _with_consts("Squeeze", [np.array([0], np.int64)]), VERIFY),
    "Unsqueeze": (lambda: _with_consts("Unsqueeze", [np.array([0], np.int64)]), VERIFY),
    "Transpose": (lambda: _model([_n("Transpose", ["x"], ["y"], perm=[1, 0])]), VERIFY),
    "Slice": (lambda: _with_consts("Slice", [np.array([1], np.int64), np.array([3], np.int64),
                                            np.array([1], np.int64)]), VERIFY),
    "Gather": (lambda: _with_consts("Gather", [np.array([0, 2], np.int64)], axis=1), VERIFY),
    "Concat": (lambda: _model([_n("Concat", ["x", "x"], ["y"], axis=1)]), VERIFY),
    "Split": (lambda: _model([_n("Split", ["x"], ["y", "z"], axis=1)]), VERIFY),
    "Expand": (lambda: _with_consts("Expand", [np.array([2, 4], np.int64)]), VERIFY),
    "Tile": (lambda: _with_consts("Tile", [np.array([1, 2], np.int64)]), VERIFY),
    "Pad": (lambda: _with_consts("Pad", [np.array([0, 1, 0, 1], np.int64)]), VERIFY),
    "Resize": (lambda: _with_consts("Resize", [np.array([], np.float32),
                                               np.array([1, 1, 2, 2], np.float32)],
                                    (1, 1, 2, 2), mode="nearest"), VERIFY),
    "Upsample": (lambda: _with_consts("Upsample", [np.array([1, 1, 2, 2], np.float32)],
                                      (1, 1, 2, 2), opset=9, mode="nearest"), VERIFY),
    "Cast": (lambda: _model([_n("Cast", ["x"], ["y"], to=TensorProto.DOUBLE)]), VERIFY),
    # recurrent
    **{op: (lambda op=op: _recurrent(op), VERIFY) for op in ("LSTM", "GRU", "RNN")},
    # comparisons and logic on the perturbed path: evaluated, no relaxation
    **{op: (lambda op=op: _compare_where(op), ATTACK)
       for op in ("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual")},
    "Where": (lambda: _compare_where("Greater"), ATTACK),
    **{op: (lambda op=op: _compare_where("Greater", op), ATTACK) for op in ("And", "Or", "Xor",
                                                                            "Not")},
    # shape arithmetic on constants
    **{op: (lambda op=op: _shape_op(op), FOLDED) for op in ("Shape", "Size", "ConstantOfShape",
                                                             "Range")},
}

# the output shape each case declares is left to the loader (None): only the op matters here
UNSUPPORTED_CASES = {
    "Hardmax": lambda: _model([_n("Hardmax", ["x"], ["y"])]),
    "Einsum": lambda: _model([_n("Einsum", ["x"], ["y"], equation="ij->ij")]),
    "com.microsoft.FusedGemm": lambda: _model(
        [helper.make_node("FusedGemm", ["x", "x"], ["y"], domain="com.microsoft")]),
}


def test_every_loader_op_has_a_case():
    missing = set(NORMALISERS) - set(CASES)
    assert not missing, f"add a case (and its support level) for {sorted(missing)}"


def _level(model, op: str) -> str:
    report = support_report(model)
    return {o.op_type: o.level for o in report.ops}[op]


def _trivial(model, timeout: float = 10.0):
    """verify on the box [0.1, 0.9]^n with a property no finite output violates."""
    from genbab.verifier.onnx_loader import load_model
    graph = load_model(model)
    n, m = graph.input_size, graph.output_size
    row = np.zeros((1, m))
    row[0, 0] = 1.0
    prop = Property.from_box(np.full(n, 0.1), np.full(n, 0.9), [(row, np.array([-1e30]))])
    return verify(model, prop, timeout=timeout)


@pytest.mark.parametrize("op", sorted(CASES))
def test_support_level_is_what_verify_does(op):
    build, expected = CASES[op]
    model = build()
    assert _level(model, op) == expected
    # attack-only models are attacked until the deadline: a short one
    result = _trivial(model, timeout=10.0 if expected != ATTACK else 1.5)
    if expected in (VERIFY, FOLDED):
        assert result.status is Status.VERIFIED, (op, result.status, result.message)
    else:
        assert result.status is Status.UNKNOWN and "attack only" in result.message, \
            (op, result.status, result.message)


@pytest.mark.parametrize("op", ["Where", "Greater"])
def test_attack_only_models_are_still_refuted(op):
    model = CASES[op][0]()
    from genbab.verifier.onnx_loader import load_model
    graph = load_model(model)
    row = np.zeros((1, graph.output_size))
    row[0, 0] = 1.0       # violated iff y0 <= 10: true everywhere on this box
    prop = Property.from_box(np.full(4, 0.1), np.full(4, 0.9), [(row, np.array([10.0]))])
    result = verify(model, prop, timeout=3)
    assert result.status is Status.FALSIFIED


@pytest.mark.parametrize("op", sorted(UNSUPPORTED_CASES))
def test_unsupported_ops_are_reported_and_refused(op):
    model = UNSUPPORTED_CASES[op]()
    report = support_report(model)
    assert report.level == UNSUPPORTED and _level(model, op) == UNSUPPORTED
    prop = Property.from_box(np.zeros(4), np.ones(4), [(np.ones((1, 4)), np.zeros(1))])
    with pytest.raises(UnsupportedOpError):
        verify(model, prop, timeout=5)


def test_report_traces_unnamed_nodes():
    model = _unary("Elu")
    for node in model.graph.node:
        node.name = ""
    report = support_report(model)
    assert report.level == VERIFY and {o.op_type for o in report.ops} == {"Gemm", "Elu"}


def test_model_file_round_trip(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_compare_where("Greater"), str(path))
    assert support_report(path).level == ATTACK
