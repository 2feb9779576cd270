"""The CLI commands a user runs first: ``bounds`` contains sampled outputs, ``check-model``
agrees with onnxruntime, ``run-suite`` runs the bundled demo and writes its CSV."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from genbab.cli import main
from genbab.verifier.forward import evaluate
from genbab.verifier.onnx_loader import load_model
from genbab.vnnlib.parser import parse_vnnlib

DEMO = Path(__file__).resolve().parents[2] / "benchmarks" / "demo"
MODEL = DEMO / "models/onnx/sin_tanh.onnx"
SPEC = DEMO / "models/vnnlib/sin_tanh_bound_high.vnnlib"


def test_bounds_json_contains_sampled_outputs(capsys):
    for method in ("ibp", "crown", "alpha"):
        assert main(["bounds", str(MODEL), str(SPEC), "--method", method, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        graph = load_model(MODEL)
        box = parse_vnnlib(SPEC, num_inputs=2, num_outputs=1).disjuncts[0]
        x = torch.rand(4096, 2, dtype=torch.float64)
        x = torch.tensor(box.lower) + x * torch.tensor(box.upper - box.lower)
        y = evaluate(graph, x).reshape(-1).numpy()
        assert out["lower"][0] <= y.min() + 1e-6 and y.max() <= out["upper"][0] + 1e-6


def test_check_model_agrees_on_the_demo(capsys):
    assert main(["check-model", str(MODEL), "--spec", str(SPEC)]) == 0
    assert "agree" in capsys.readouterr().out


def test_run_suite_on_the_demo_writes_results(tmp_path, capsys):
    out = tmp_path / "demo.csv"
    code = main(["run-suite", str(DEMO / "instances.csv"), "--root", str(DEMO), "--out", str(out),
                 "--expected", str(DEMO / "expected_results.csv"), "--timeout", "30"])
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert code == 0 and len(rows) == 6
    assert not any(r["correct"] == "WRONG" for r in rows)
    for row in rows:
        first = Path(row["result_file"]).read_text().splitlines()[0]
        assert first == row["result"]
    solved = [r for r in rows if r["result"] in ("sat", "unsat")]
    assert len(solved) >= 5, capsys.readouterr().out
    assert "TOTAL" in capsys.readouterr().out
