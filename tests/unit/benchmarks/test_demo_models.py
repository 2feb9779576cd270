"""The bundled demo (benchmarks/demo): the shipped files load, are well formed, and their recorded
answers are confirmed by a dense grid evaluated with onnxruntime, independently of the generator
(only the shipped ONNX, VNN-LIB and CSV files are read; no torch, no genbab)."""
from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "benchmarks" / "demo"
GRID_POINTS = 1001
SAFE_MARGIN = 0.05
ACTIVATION_LIPSCHITZ = {"Sigmoid": 0.25, "Tanh": 1.0, "Sin": 1.0, "Relu": 1.0}
ATOM = re.compile(r"\((<=|>=)\s+([XY]_\d+|[-+0-9.eE]+)\s+([XY]_\d+|[-+0-9.eE]+)\)")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def instances() -> list[dict[str, str]]:
    return read_csv(DEMO / "instances.csv")


def expected_rows() -> list[dict[str, str]]:
    return read_csv(DEMO / "expected.csv")


def model_folder() -> Path:
    (benchmark,) = {row["benchmark"] for row in instances()}
    return DEMO / benchmark


def session(path: Path, batched: bool = False) -> ort.InferenceSession:
    """A session for the model; ``batched`` relaxes the fixed batch dimension 1 to a symbolic one."""
    model = onnx.load(str(path))
    if batched:
        for value in (*model.graph.input, *model.graph.output):
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
        del model.graph.value_info[:]
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def parse_property(text: str) -> dict:
    """A light reading of the demo's own VNN-LIB subset (the real parser lives in vnnlib/)."""
    body = "\n".join(line.split(";", 1)[0] for line in text.splitlines())
    lower, upper, outputs = {}, {}, []
    for op, left, right in ATOM.findall(body):
        if left.startswith("X_"):
            (lower if op == ">=" else upper)[int(left[2:])] = float(right)
        else:
            outputs.append((op, left, right))
    return {"x": re.findall(r"\(declare-const (X_\d+) Real\)", body),
            "y": re.findall(r"\(declare-const (Y_\d+) Real\)", body),
            "lower": lower, "upper": upper, "outputs": outputs, "body": body}


def margin_function(outputs: list[tuple[str, str, str]]):
    """(function (batch, m) -> (batch,) positive where safe, Lipschitz row vectors of the margin).

    Supports the two shapes the demo writes: ``(or (and (>= Y_j Y_t)) ...)`` and ``(>= Y_0 c)``.
    """
    if len(outputs) == 1 and not outputs[0][2].startswith("Y_"):
        op, name, value = outputs[0]
        assert op == ">=" and name == "Y_0"
        index, threshold = int(name[2:]), float(value)
        return (lambda y: threshold - y[:, index]), [(index, None)]
    targets = {right for _, _, right in outputs}
    assert all(op == ">=" for op, _, _ in outputs) and len(targets) == 1
    target = int(targets.pop()[2:])
    others = [int(left[2:]) for _, left, _ in outputs]
    return (lambda y: (y[:, [target]] - y[:, others]).min(axis=1)), [(target, j) for j in others]


def lipschitz_bound(path: Path, rows: list[tuple[int, int | None]]) -> float:
    """Spectral-norm bound for the margin of a chain Gemm -> act -> ... -> Gemm ONNX model."""
    model = onnx.load(str(path))
    weights = {init.name: numpy_helper.to_array(init).astype(np.float64)
               for init in model.graph.initializer}
    layers = []
    for node in model.graph.node:
        if node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            matrix = weights[node.input[1]] * attrs.get("alpha", 1.0)
            layers.append(matrix if attrs.get("transB", 0) else matrix.T)   # (out, in)
        else:
            layers.append(ACTIVATION_LIPSCHITZ[node.op_type])
    constant = 1.0
    for layer in layers[:-1]:
        constant *= np.linalg.norm(layer, 2) if isinstance(layer, np.ndarray) else layer
    last = layers[-1]
    norms = [np.linalg.norm(last[a] - (last[b] if b is not None else 0.0)) for a, b in rows]
    return constant * max(norms)


def grid_min_margin(row: dict[str, str]) -> tuple[float, float]:
    """(minimum margin over a GRID_POINTS^2 grid of the box, Lipschitz slack of that grid)."""
    folder = model_folder()
    prop = parse_property((folder / row["vnnlib"]).read_text())
    margin, rows = margin_function(prop["outputs"])
    axes = [np.linspace(prop["lower"][i], prop["upper"][i], GRID_POINTS) for i in range(2)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    sess = session(folder / row["onnx"], batched=True)
    outputs = sess.run(None, {sess.get_inputs()[0].name: grid.astype(np.float32)})[0]
    half_steps = [(prop["upper"][i] - prop["lower"][i]) / (GRID_POINTS - 1) / 2 for i in range(2)]
    slack = lipschitz_bound(folder / row["onnx"], rows) * math.hypot(*half_steps)
    return float(margin(outputs.astype(np.float64)).min()), slack


def test_instances_csv_lists_the_shipped_files():
    rows = instances()
    assert rows and list(rows[0]) == ["benchmark", "onnx", "vnnlib", "timeout"]
    assert {Path(r["onnx"]).name for r in rows} >= {"sigmoid_mlp.onnx", "sin_tanh.onnx"}
    for row in rows:
        assert (model_folder() / row["onnx"]).is_file()
        assert (model_folder() / row["vnnlib"]).is_file()
        assert float(row["timeout"]) > 0
    keys = [(r["onnx"], r["vnnlib"]) for r in rows]
    assert keys == [(r["onnx"], r["vnnlib"]) for r in expected_rows()]
    suite_expected = read_csv(DEMO / "expected_results.csv")
    assert [(r["benchmark"], r["onnx"], r["vnnlib"], r["verdict"]) for r in suite_expected] == [
        (model_folder().name, r["onnx"], r["vnnlib"], r["expected"]) for r in expected_rows()]


def test_every_model_has_a_holding_and_a_violated_property():
    answers: dict[str, set[str]] = {}
    for row in expected_rows():
        answers.setdefault(row["onnx"], set()).add(row["expected"])
    assert answers and all(found == {"sat", "unsat"} for found in answers.values())


@pytest.mark.parametrize("name", sorted({r["onnx"] for r in instances()}))
def test_demo_model_is_tiny_and_runs_in_onnxruntime(name):
    path = model_folder() / name
    assert path.stat().st_size < 20 * 1024
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert 13 <= model.opset_import[0].version <= 17
    sess = session(path)
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.shape == [1, 2]
    result = sess.run(None, {inp.name: np.zeros((1, 2), np.float32)})[0]
    assert result.shape == tuple(out.shape) and np.isfinite(result).all()
    batched = session(path, batched=True)
    points = np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32)
    many = batched.run(None, {inp.name: points})[0]
    one_by_one = np.concatenate([sess.run(None, {inp.name: p[None]})[0] for p in points])
    np.testing.assert_allclose(many, one_by_one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("row", instances(), ids=lambda r: Path(r["vnnlib"]).stem)
def test_demo_vnnlib_is_well_formed(row):
    sess = session(model_folder() / row["onnx"])
    n_in = math.prod(sess.get_inputs()[0].shape)
    n_out = math.prod(sess.get_outputs()[0].shape)
    prop = parse_property((model_folder() / row["vnnlib"]).read_text())
    assert prop["x"] == [f"X_{i}" for i in range(n_in)]
    assert prop["y"] == [f"Y_{j}" for j in range(n_out)]
    assert prop["body"].count("(") == prop["body"].count(")")
    for i in range(n_in):
        assert prop["lower"][i] <= prop["upper"][i]
    used = {int(v[2:]) for _, a, b in prop["outputs"] for v in (a, b) if v.startswith("Y_")}
    assert prop["outputs"] and used <= set(range(n_out))


@pytest.mark.parametrize("row", expected_rows(), ids=lambda r: Path(r["vnnlib"]).stem)
def test_expected_answer_is_confirmed_by_a_dense_grid(row):
    minimum, slack = grid_min_margin(row)
    assert minimum == pytest.approx(float(row["grid_min_margin"]), abs=1e-3)
    if row["expected"] == "unsat":
        assert minimum - slack >= SAFE_MARGIN   # sound: every box point is near a grid point
    else:
        assert row["expected"] == "sat"
        assert minimum <= -SAFE_MARGIN          # a grid point is a clear counterexample


@pytest.mark.slow
def test_generator_writes_loadable_models(tmp_path):
    out = tmp_path / "models"
    done = subprocess.run([sys.executable, "-m", "benchmarks.demo.generate", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    written = read_csv(tmp_path / "expected.csv")
    assert [(r["onnx"], r["vnnlib"], r["expected"]) for r in written] == [
        (r["onnx"], r["vnnlib"], r["expected"]) for r in expected_rows()]
    for row in read_csv(tmp_path / "instances.csv"):
        assert row["benchmark"] == "models"
        session(out / row["onnx"]).run(None, {"input": np.zeros((1, 2), np.float32)})
        assert (out / row["vnnlib"]).read_text().startswith("; genbab demo property")
