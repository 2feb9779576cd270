"""SIGTERM / SIGINT during any stage of ``genbab verify`` writes a result and ends the process
cleanly (issue 14, item 6; genbab/run_guard.py).

Each case runs the real CLI in a subprocess whose pipeline is made to hang on entering one
stage or function (``time.sleep`` in the main thread: the Python handler there does nothing,
the watcher thread answers), waits until it is entered, sends the signal and checks the result
file, the JSON report (stage, stats so far), the exit status and the time to answer.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "benchmarks" / "demo" / "models"
ROBUST = (DEMO / "onnx" / "sin_tanh.onnx", DEMO / "vnnlib" / "sin_tanh_bound_high.vnnlib")
BOUNDARY = (DEMO / "onnx" / "sigmoid_mlp.onnx", DEMO / "vnnlib" / "sigmoid_mlp_boundary.vnnlib")

DRIVER = textwrap.dedent('''
    import contextlib, importlib, pathlib, sys, time
    import genbab.api as api
    where, mark = sys.argv[1], pathlib.Path(sys.argv[2])
    real_timed = api.timed

    def hang(*args, **kwargs):
        mark.touch()
        time.sleep(3600)

    @contextlib.contextmanager
    def timed(stats, name):
        with real_timed(stats, name):
            if name == where:
                hang()
            yield

    api.timed = timed
    if ":" in where:                  # hang on calling module:function instead
        module, name = where.split(":")
        setattr(importlib.import_module(module), name, hang)
    from genbab.cli import main
    sys.argv = ["genbab", "verify", *sys.argv[3:]]
    main()
''')

# case -> (stage the report names, where to hang (a stage, or module:function), (model,
# property), options that make the pipeline get there)
CASES = {
    "start-up": ("start-up", "genbab.api:verify", ROBUST, []),
    "load": ("load", "load", ROBUST, []),
    "parse": ("parse", "parse", ROBUST, []),
    "attack": ("attack", "attack", ROBUST, []),
    "bounds": ("bounds", "bounds", ROBUST, []),
    "input-split bab": ("bab", "genbab.branching.bab:input_split_bab", ROBUST,
                        ["--bound-method", "ibp"]),
    "neuron-split bab": ("bab", "genbab.branching.neuron_bab:neuron_split_bab", ROBUST,
                         ["--bound-method", "ibp", "--split", "all"]),
    "confirm": ("confirm", "confirm", BOUNDARY, []),
}


def _interrupt(tmp_path: Path, case: str, signum: int) -> tuple[subprocess.CompletedProcess,
                                                                  float, str]:
    _, where, (model, prop), extra = CASES[case]
    driver, mark, result = tmp_path / "driver.py", tmp_path / "entered", tmp_path / "result.txt"
    driver.write_text(DRIVER)
    cmd = [sys.executable, str(driver), where, str(mark), str(model), str(prop), "--timeout",
           "120", "--threads", "1", "--json", "--result-file", str(result), *extra]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        waited = time.monotonic()
        while not mark.exists():
            assert proc.poll() is None, f"ended before reaching {where}: {proc.communicate()}"
            assert time.monotonic() - waited < 90, f"never reached {where}"
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    return done, took, result.read_text() if result.exists() else ""


@pytest.mark.parametrize("case", list(CASES))
def test_sigterm_in_each_stage_writes_unknown_with_the_stats_so_far(tmp_path, case):
    stage = CASES[case][0]
    proc, took, written = _interrupt(tmp_path, case, signal.SIGTERM)
    assert written == "unknown\n"
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert took < 2.0
    report = json.loads(proc.stdout)
    assert report["result"] == "unknown" and report["stage"] == stage
    assert report["message"] == "interrupted by SIGTERM"
    assert ("stats" in report) == (stage != "start-up")
    assert "Traceback" not in proc.stderr
    assert f"interrupted by SIGTERM during {stage}" in proc.stderr


def test_sigint_is_an_interrupt_too(tmp_path):
    proc, took, written = _interrupt(tmp_path, "bounds", signal.SIGINT)
    assert written == "unknown\n" and proc.returncode == 130 and took < 2.0
    assert "Traceback" not in proc.stderr
