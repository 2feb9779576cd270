"""examples/acopf_14bus.py runs end to end on the 14-bus ml4acopf model: one property of each
kind, built in Python, verified with verify(), printed as a table and exported as VNN-LIB."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from genbab.vnnlib.parser import parse_vnnlib

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "acopf_14bus.py"
KINDS = ("power balance", "thermal limit", "generator limits", "voltage limits")


@pytest.mark.slow
def test_acopf_14bus_example_verifies_one_property_of_each_kind(benchmarks, tmp_path):
    if not (benchmarks / "ml4acopf_2023" / "data" / "14_ieee.ref.json").exists():
        pytest.skip("ml4acopf_2023 data not in this benchmark snapshot")
    out = tmp_path / "vnnlib"
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--timeout", "8", "--out", str(out),
                           "--benchmarks", str(benchmarks)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    words = {line.split("  ")[0].strip(): line.split()[-2]
             for line in proc.stdout.splitlines() if line.startswith(KINDS)}
    assert set(words) == set(KINDS)
    assert all(word in ("sat", "unsat", "timeout", "unknown") for word in words.values())
    # the limits hold by construction (sigmoid outputs; 14-bus limits are small, so float32
    # rounding stays far below the 1e-6 slack): a "sat" here would be wrong
    assert words["generator limits"] != "sat" and words["voltage limits"] != "sat"
    files = sorted(out.glob("*.vnnlib"))
    assert len(files) == 4
    for path in files:
        prop = parse_vnnlib(path, num_inputs=22, num_outputs=186)
        assert prop.disjuncts and prop.disjuncts[0].clauses
