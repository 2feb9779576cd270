"""Fixtures shared by the ACOPF tests."""
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def folder(benchmarks: Path) -> Path:
    path = benchmarks / "ml4acopf_2023"
    if not (path / "data" / "14_ieee.ref.json").exists():
        pytest.skip("ml4acopf_2023/data not in this benchmark snapshot")
    return path
