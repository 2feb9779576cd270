"""The result is written within the timeout plus a small margin, as a separate process (as
the competition harness runs us), on a property that is too hard to settle in time."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from genbab.vnnlib.property import Property

DEMO = Path(__file__).resolve().parents[2] / "benchmarks" / "demo" / "models"
_MARGIN_S = 3.0


def _hard_spec(tmp_path: Path) -> Path:
    """Output of the sin/tanh demo >= 1.0 on [-1, 1]^2 (its grid maximum is 0.9974): true,
    but far too tight to prove in a few seconds."""
    from benchmarks.acopf.vnnlib_writer import write_vnnlib

    prop = Property.from_box([-1.0, -1.0], [1.0, 1.0], [(np.array([[-1.0]]), np.array([-1.0]))])
    path = tmp_path / "hard.vnnlib"
    write_vnnlib(prop, path)
    return path


def test_result_file_is_written_before_timeout_plus_margin(tmp_path):
    spec = _hard_spec(tmp_path)
    result_file = tmp_path / "result.txt"
    timeout_s = 4.0
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "genbab.cli", "verify",
                           str(DEMO / "onnx/sin_tanh.onnx"), str(spec), "--timeout", str(timeout_s),
                           "--result-file", str(result_file)], capture_output=True, text=True,
                          timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    word = result_file.read_text().split("\n")[0]
    assert word in ("timeout", "unsat", "unknown", "sat")
    if word == "sat":   # only with a counterexample that the witness check accepted
        assert "(X_0" in result_file.read_text()
    assert elapsed <= timeout_s + _MARGIN_S, f"took {elapsed:.1f} s for a {timeout_s} s timeout"
