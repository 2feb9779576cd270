"""The falsifier finds real counterexamples, never invents them, and every ``sat`` result file
passes the official VNN-COMP checker's logic (re-implemented here independently)."""
from __future__ import annotations

import json
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from genbab.api import verify
from genbab.branching.attack import Falsifier
from genbab.cli import main
from genbab.verifier.onnx_loader import load_model
from genbab.verifier.options import AttackOptions
from genbab.verifier.result import Status
from genbab.witness import confirm, format_counterexample, run_onnxruntime
from genbab.vnnlib.property import Property


def _sine_model(path) -> str:
    """y0 = sin(3 x0) + 0.5 x1,  y1 = x0 * x1 (two perturbed factors)."""
    nodes = [
        helper.make_node("Gather", ["x", "i0"], ["x0"], axis=1, name="g0"),
        helper.make_node("Gather", ["x", "i1"], ["x1"], axis=1, name="g1"),
        helper.make_node("Mul", ["x0", "three"], ["x0s"], name="scale"),
        helper.make_node("Sin", ["x0s"], ["s"], name="sin"),
        helper.make_node("Mul", ["x1", "half"], ["x1h"], name="half_x1"),
        helper.make_node("Add", ["s", "x1h"], ["y0"], name="add"),
        helper.make_node("Mul", ["x0", "x1"], ["y1"], name="product"),
        helper.make_node("Concat", ["y0", "y1"], ["y"], axis=1, name="concat"),
    ]
    inits = [numpy_helper.from_array(np.array([0], dtype=np.int64), "i0"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "i1"),
             numpy_helper.from_array(np.array(3.0, dtype=np.float32), "three"),
             numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")]
    graph = helper.make_graph(nodes, "sine", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return str(path)


def _true_max_y0(lo, hi, n=2001):
    """Dense grid ground truth for max over the box of y0 = sin(3 x0) + 0.5 x1."""
    x0 = np.linspace(lo[0], hi[0], n)
    return np.sin(3 * x0).max() + 0.5 * hi[1]


@pytest.fixture()
def sine(tmp_path):
    return _sine_model(tmp_path / "sine.onnx")


def _prop_y0_at_least(threshold, lo=(-1.0, -1.0), hi=(1.0, 1.0)) -> Property:
    # violated iff y0 >= threshold, i.e. -y0 <= -threshold
    return Property.from_box(lo, hi, [(np.array([[-1.0, 0.0]]), np.array([-threshold]))])


def test_attack_finds_counterexample_near_the_true_maximum(sine):
    truth = _true_max_y0((-1, -1), (1, 1))          # 1.5
    prop = _prop_y0_at_least(truth - 0.01)
    result = verify(sine, prop, timeout=20)
    assert result.status is Status.FALSIFIED
    cex = result.counterexample
    assert -cex.y[0] <= -(truth - 0.01)
    np.testing.assert_allclose(run_onnxruntime(sine, cex.x.reshape(-1)), cex.y, rtol=0, atol=0)
    # both opinions on the witness: onnxruntime's margin of the violated clause, and genbab's
    # float64 evaluation of the same x, which agrees to float32 rounding
    assert cex.margin == pytest.approx(-cex.y[0] + (truth - 0.01), abs=0)
    assert cex.margin <= 0 and cex.margin_float64 <= 0
    x = cex.x.reshape(-1)
    exact = -(np.sin(3 * x[0]) + 0.5 * x[1]) + (truth - 0.01)
    assert cex.margin_float64 == pytest.approx(exact, abs=1e-9)
    assert abs(cex.margin - cex.margin_float64) < 1e-5


def test_attack_never_claims_an_impossible_violation(sine):
    truth = _true_max_y0((-1, -1), (1, 1))
    prop = _prop_y0_at_least(truth + 0.05)
    graph = load_model(sine)
    falsifier = Falsifier(graph, prop, AttackOptions(rounds=3, steps=30))
    assert falsifier.run(time.monotonic() + 20) is None
    assert falsifier.best_margin > 0


def test_confirm_rejects_a_point_that_does_not_violate(sine):
    prop = _prop_y0_at_least(1.4)
    assert confirm(sine, prop, np.array([0.0, 0.0]), (1, 2)) is None
    good = confirm(sine, prop, np.array([np.pi / 6, 1.0]), (1, 2))
    assert good is not None and good.disjunct == 0 and good.clause == 0


def test_confirm_rejects_a_point_outside_the_box(sine):
    prop = _prop_y0_at_least(1.0, lo=(-0.1, -0.1), hi=(0.1, 0.1))
    assert confirm(sine, prop, np.array([np.pi / 6, 1.0]), (1, 2)) is None


def _official_check(text: str, model: str, prop: Property) -> bool:
    """The VNN-COMP checker's steps (vnncomp.md 2.1), written from the description."""
    lines = text.splitlines()
    assert lines[0] == "sat"
    body = "".join(lines[1:]).strip()
    assert body.startswith("(") and body.endswith(")")
    pairs = [p.strip().lstrip("(").split() for p in body[1:-1].split(")") if p.strip()]
    xs = [(name, float(v)) for name, v in pairs if name.startswith("X_")]
    ys = [(name, float(v)) for name, v in pairs if name.startswith("Y_")]
    assert [n for n, _ in xs] == [f"X_{i}" for i in range(len(xs))]
    assert [n for n, _ in ys] == [f"Y_{i}" for i in range(len(ys))]
    x = np.array([v for _, v in xs], dtype=np.float32)
    y_written = np.array([v for _, v in ys])
    y_onnx = run_onnxruntime(model, x)
    scale = max(np.abs(y_written).max(), 1e-6)
    assert np.abs(y_onnx - y_written).max() / scale <= 1e-3
    return prop.violated_by(x.astype(np.float64), y_written, tol=1e-4)


def test_sat_result_file_passes_the_official_check(sine, tmp_path, capsys):
    prop_text = """(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (>= X_0 -1))
(assert (<= X_0 1))
(assert (>= X_1 -1))
(assert (<= X_1 1))
(assert (or (and (>= Y_0 1.45)) (and (>= Y_1 0.9))))
"""
    spec = tmp_path / "p.vnnlib"
    spec.write_text(prop_text)
    out = tmp_path / "result.txt"
    assert main(["verify", sine, str(spec), "--timeout", "20", "--result-file", str(out),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["result"] == "sat" and out.read_text().startswith("sat\n")
    witness = report["counterexample"]
    assert witness["margin_onnxruntime"] <= 0 and witness["margin_float64"] <= 0
    from genbab.vnnlib.parser import parse_vnnlib
    assert _official_check(out.read_text(), sine, parse_vnnlib(spec, num_inputs=2, num_outputs=2))


def test_counterexample_text_has_full_precision():
    from genbab.verifier.result import Counterexample
    cex = Counterexample(x=np.array([[0.1234567890123]]), y=np.array([1e-12, -3.0]),
                         disjunct=0, clause=0)
    text = format_counterexample(cex)
    assert "(X_0 0.1234567890123)" in text and "(Y_0 1e-12)" in text and "(Y_1 -3.0)" in text
    assert text.startswith("((X_0") and text.rstrip().endswith("))")
