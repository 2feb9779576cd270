"""The same run twice gives the same answer (issue 14, item 6): fresh processes, same seed.
The attack is seeded, so a counterexample it finds is the same point bit for bit; in
branch-and-bound the attacks are time-shared, so there only the answer must repeat."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.soundness.build import build_one
from benchmarks.soundness.planted import PlantedSpec

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "benchmarks" / "demo" / "models"


def _run(model: Path, spec: Path, out: Path) -> str:
    subprocess.run([sys.executable, "-m", "genbab.cli", "verify", str(model), str(spec),
                    "--timeout", "30", "--threads", "1", "--result-file", str(out), "-q"],
                   cwd=REPO, check=True, timeout=120, capture_output=True)
    return out.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("model, spec", [("sigmoid_mlp", "sigmoid_mlp_boundary"),
                                         ("sin_tanh", "sin_tanh_bound_high")])
def test_the_same_run_twice_writes_the_same_result_file(tmp_path, model, spec):
    args = (DEMO / "onnx" / f"{model}.onnx", DEMO / "vnnlib" / f"{spec}.vnnlib")
    first, second = _run(*args, tmp_path / "a.txt"), _run(*args, tmp_path / "b.txt")
    assert first.split("\n")[0] in ("sat", "unsat")
    assert first == second          # the counterexample too, digit for digit


@pytest.mark.slow
def test_a_planted_counterexample_found_in_bab_is_found_again(tmp_path):
    spec = PlantedSpec("sigmoid", 5, 1e-4, seed=0)
    assert build_one(spec, tmp_path, samples=10_000) is not None
    folder = tmp_path / "planted"
    args = (folder / "onnx" / f"{spec.name}.onnx",
            folder / "vnnlib" / f"{spec.name}_planted.vnnlib")
    words = {_run(*args, tmp_path / f"{k}.txt").split("\n")[0] for k in range(2)}
    assert words == {"sat"}
