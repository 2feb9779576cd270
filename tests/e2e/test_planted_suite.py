"""The planted-counterexample CI set (issue 14, items 1-2; benchmarks/soundness): built here,
then run with ``genbab run-suite`` as a user would.  Never ``unsat`` on a planted instance;
every planted instance (2 and 5 inputs) found (``sat``, confirmed by onnxruntime); every safe
twin proved."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.soundness.build import build, tiny_specs

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_planted_ci_set(tmp_path):
    root = tmp_path / "planted"
    rows = build(tiny_specs(), root, timeout_s=30.0, samples=100_000)
    assert len(rows) == len(tiny_specs())            # every network passed the hidden check
    out = tmp_path / "results.csv"
    subprocess.run([sys.executable, "-m", "genbab.cli", "run-suite", str(root / "instances.csv"),
                    "--root", str(root), "--out", str(out), "--verify-args", "--threads", "1"],
                   cwd=REPO, check=False, timeout=2 * 60 * 60)
    with open(out, newline="") as handle:
        results = list(csv.DictReader(handle))
    assert len(results) == 2 * len(rows)
    planted = [r for r in results if r["vnnlib"].endswith("_planted.vnnlib")]
    safe = [r for r in results if r["vnnlib"].endswith("_safe.vnnlib")]
    assert [r["vnnlib"] for r in planted if r["result"] == "unsat"] == []     # soundness
    assert [r["vnnlib"] for r in planted if r["result"] != "sat"] == []       # completeness
    assert [r["vnnlib"] for r in safe if r["result"] != "unsat"] == []
    assert all(r["correct"] == "yes" for r in results)
