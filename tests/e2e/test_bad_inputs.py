"""The bad-input corpus: every broken model or property gets a one-paragraph error that names
the file and the problem, a non-zero exit without a traceback, and ``error`` in the result file
(never ``sat``/``unsat``)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from genbab.cli import main

N_IN, N_OUT = 2, 2

GOOD_SPEC = """; a valid property for the 2-input, 2-output model
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (>= X_0 -1.0))
(assert (<= X_0 1.0))
(assert (>= X_1 -1.0))
(assert (<= X_1 1.0))
(assert (<= Y_0 Y_1))
"""


def make_model(*, weight=None, op="Relu", inputs=1, outputs=1, dims=(1, N_IN)) -> onnx.ModelProto:
    w = np.array([[1.0, -1.0], [0.5, 2.0]], dtype=np.float32) if weight is None else weight
    inits = [numpy_helper.from_array(w, "W")]
    ins = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, list(dims))
           for i in range(inputs)]
    nodes = [helper.make_node("MatMul", ["x0", "W"], ["h"], name="matmul"),
             helper.make_node(op, ["h"], ["y0"], name="act")]
    outs = [helper.make_tensor_value_info("y0", TensorProto.FLOAT, [1, N_OUT])]
    if outputs == 2:
        nodes.append(helper.make_node("Relu", ["h"], ["y1"], name="second"))
        outs.append(helper.make_tensor_value_info("y1", TensorProto.FLOAT, [1, N_OUT]))
    graph = helper.make_graph(nodes, "g", ins, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _write_model(path: Path, model: onnx.ModelProto) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _spec_without(line_part: str) -> str:
    return "\n".join(l for l in GOOD_SPEC.splitlines() if line_part not in l) + "\n"


# name -> (model builder, spec text builder); each builder gets tmp_path and returns a path.
def _model_cases():
    good = lambda d: _write_model(d / "good.onnx", make_model())  # noqa: E731
    return {
        "truncated_onnx": lambda d: _truncate(_write_model(d / "m.onnx", make_model())),
        "not_onnx": lambda d: _text(d / "m.onnx", "this is not a protobuf \x00\xff"),
        "empty_onnx": lambda d: _text(d / "m.onnx", ""),
        "unsupported_op": lambda d: _write_model(d / "m.onnx", make_model(op="FooBarOp")),
        "two_inputs": lambda d: _write_model(d / "m.onnx", make_model(inputs=2)),
        "two_outputs": lambda d: _write_model(d / "m.onnx", make_model(outputs=2)),
        "dynamic_shape": lambda d: _write_model(d / "m.onnx", make_model(dims=(1, "n"))),
        "nan_weights": lambda d: _write_model(
            d / "m.onnx", make_model(weight=np.array([[np.nan, 1], [0, 1]], dtype=np.float32))),
        "missing_model": lambda d: d / "does_not_exist.onnx",
        "model_is_directory": lambda d: _mkdir(d / "model_dir.onnx"),
    }, good


SPEC_CASES = {
    "unbalanced_parens": GOOD_SPEC.replace("(assert (<= Y_0 Y_1))", "(assert (<= Y_0 Y_1)"),
    "extra_close_paren": GOOD_SPEC + ")\n",
    "undeclared_variable": GOOD_SPEC.replace("(<= Y_0 Y_1)", "(<= Y_0 Y_7)"),
    "missing_lower_bound": _spec_without("(>= X_1"),
    "missing_upper_bound": _spec_without("(<= X_0 1.0)"),
    "lower_above_upper": GOOD_SPEC.replace("(>= X_0 -1.0)", "(>= X_0 2.0)"),
    "too_few_inputs": _spec_without("X_1"),
    "too_many_outputs": GOOD_SPEC.replace("(declare-const Y_1 Real)",
                                          "(declare-const Y_1 Real)\n(declare-const Y_2 Real)"),
    "unsupported_not": GOOD_SPEC.replace("(assert (<= Y_0 Y_1))", "(assert (not (<= Y_0 Y_1)))"),
    "unsupported_arithmetic": GOOD_SPEC.replace("(<= Y_0 Y_1)", "(<= (* 2.0 Y_0) Y_1)"),
    "nan_constant": GOOD_SPEC.replace("(<= X_0 1.0)", "(<= X_0 nan)"),
    "garbage_token": GOOD_SPEC.replace("(assert (<= Y_0 Y_1))", "(assert (<= Y_0 Y_1)) @#!"),
    "empty_file": "",
    "only_comments": "; nothing here\n",
    "no_output_constraint": _spec_without("Y_0 Y_1"),
}


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _run(capsys, model: Path, spec: Path, result_file: Path) -> tuple[int, str, str]:
    code = main(["verify", str(model), str(spec), "--timeout", "20",
                 "--result-file", str(result_file)])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_clean_error(code: int, out: str, err: str, result_file: Path, name: str) -> None:
    assert code != 0
    assert "Traceback" not in err and "Traceback" not in out
    assert name in err, f"the message should name the file {name!r}: {err!r}"
    assert len(err.strip()) > 20
    assert result_file.read_text().split("\n")[0] == "error"


MODEL_CASES, GOOD_MODEL = _model_cases()


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_bad_model_gives_clean_error(case, tmp_path, capsys):
    model = MODEL_CASES[case](tmp_path)
    spec = _text(tmp_path / "good.vnnlib", GOOD_SPEC)
    result_file = tmp_path / "result.txt"
    code, out, err = _run(capsys, model, spec, result_file)
    _assert_clean_error(code, out, err, result_file, model.name)


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_bad_spec_gives_clean_error(case, tmp_path, capsys):
    model = GOOD_MODEL(tmp_path)
    spec = _text(tmp_path / f"{case}.vnnlib", SPEC_CASES[case])
    result_file = tmp_path / "result.txt"
    code, out, err = _run(capsys, model, spec, result_file)
    _assert_clean_error(code, out, err, result_file, spec.name)


@pytest.mark.parametrize("case", ["missing_spec", "spec_is_directory", "corrupt_gzip"])
def test_bad_spec_file_gives_clean_error(case, tmp_path, capsys):
    model = GOOD_MODEL(tmp_path)
    if case == "missing_spec":
        spec = tmp_path / "nope.vnnlib"
    elif case == "spec_is_directory":
        spec = _mkdir(tmp_path / "dir.vnnlib")
    else:
        spec = tmp_path / "broken.vnnlib.gz"
        spec.write_bytes(gzip.compress(GOOD_SPEC.encode())[:20])
    result_file = tmp_path / "result.txt"
    code, out, err = _run(capsys, model, spec, result_file)
    _assert_clean_error(code, out, err, result_file, spec.name)


def test_unsupported_op_error_lists_every_op(tmp_path, capsys):
    model = make_model(op="FooBarOp")
    model.graph.node.append(helper.make_node("BazOp", ["y0"], ["z"], name="baz"))
    model.graph.output[0].name = "z"
    path = _write_model(tmp_path / "two_bad_ops.onnx", model)
    code, _, err = _run(capsys, path, _text(tmp_path / "s.vnnlib", GOOD_SPEC),
                        tmp_path / "r.txt")
    assert code != 0 and "FooBarOp" in err and "BazOp" in err and "'act'" in err


def test_negative_timeout_is_rejected_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["verify", "m.onnx", "s.vnnlib", "--timeout", "-1"])
    assert info.value.code != 0
    assert "Traceback" not in capsys.readouterr().err


def test_good_inputs_do_not_error(tmp_path, capsys):
    """The corpus is meaningful only if the unbroken model and spec are accepted."""
    code, out, err = _run(capsys, GOOD_MODEL(tmp_path), _text(tmp_path / "g.vnnlib", GOOD_SPEC),
                          tmp_path / "r.txt")
    assert code == 0, err
    assert out.strip().splitlines()[-1] in ("sat", "unsat", "unknown", "timeout")
