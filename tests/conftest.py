"""Shared fixtures.  Real VNN-COMP benchmarks are read from ../shared/benchmarks (next to the
repository) or from $GENBAB_BENCHMARKS; tests that need them skip cleanly when absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def benchmarks_root() -> Path | None:
    env = os.environ.get("GENBAB_BENCHMARKS")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "benchmarks")
    for path in candidates:
        if (path / "expected_results.csv").exists():
            return path
    return None


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    root = benchmarks_root()
    if root is None:
        pytest.skip("VNN-COMP benchmarks not found (set GENBAB_BENCHMARKS)")
    return root


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of small-tensor tests: intra-op threads only add overhead
    (and on a loaded 2-core machine, a lot of it).  Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
