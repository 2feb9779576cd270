"""Out of memory where branch-and-bound cannot halve a batch (the root bounds, an attack)
answers ``unknown`` with a clear message, never a crash or ``error`` (issue 14, item 6)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from genbab import cli
from genbab.bounds import engine

DEMO = Path(__file__).resolve().parents[2] / "benchmarks" / "demo" / "models"
ARGS = [str(DEMO / "onnx" / "sin_tanh.onnx"),
        str(DEMO / "vnnlib" / "sin_tanh_bound_high.vnnlib")]


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")])
def test_out_of_memory_in_the_bounds_answers_unknown(monkeypatch, tmp_path, capsys, error):
    def exhausted(*args, **kwargs):
        raise error

    monkeypatch.setattr(engine, "prove", exhausted)
    result = tmp_path / "r.txt"
    code = cli.main(["verify", *ARGS, "--timeout", "20", "--json", "--result-file", str(result)])
    out, err = capsys.readouterr()
    assert code == 0 and result.read_text() == "unknown\n"
    report = json.loads(out)
    assert report["result"] == "unknown" and report["stage"] == "bounds"
    assert "out of memory during bounds" in err and "--max-memory" in err


def test_other_runtime_errors_stay_internal_errors(monkeypatch, tmp_path, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(engine, "prove", broken)
    result = tmp_path / "r.txt"
    code = cli.main(["verify", *ARGS, "--timeout", "20", "--result-file", str(result)])
    assert code == cli.EXIT_ERROR and result.read_text() == "error\n"
    assert "internal error" in capsys.readouterr().err
