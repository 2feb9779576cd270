"""lut.table: signature keys, look-up, fallbacks and version checks (no bounds needed)."""
from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from genbab.lut.table import (DATA_DIR, INSIDE_FRACTION, BranchPoints, Consumer, StaleTableError,
                              TableError, canonical_key, key_dimension, pair_index, signature_key)

SHIPPED_AT_LEAST = ("Sigmoid", "Tanh", "Sin", "Cos", "Cos+Sin", "Exp", "Pow2", "Pow3",
                    "Reciprocal", "Mul@0", "Mul@1", "Atan", "Softsign", "LogSigmoid", "Celu",
                    "Mish", "GeluTanh", "Gelu", "SiLU")


@pytest.fixture(scope="module")
def points() -> BranchPoints:
    return BranchPoints()


def test_table_module_is_a_leaf():
    code = ("import sys, genbab.lut.table; bad = [m for m in sys.modules if m.startswith(("
            "'genbab.bounds', 'genbab.verifier', 'genbab.branching', 'genbab.vnnlib'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_signature_key_is_canonical():
    sin, cos = Consumer("Sin"), Consumer("Cos")
    assert signature_key([sin, cos]) == signature_key([cos, sin]) == "Cos+Sin"
    assert canonical_key("Sin+Cos") == "Cos+Sin"
    assert signature_key([Consumer("Sigmoid"), Consumer("Sigmoid")]) == "Sigmoid"
    assert signature_key([Consumer("Pow", exponent=3)]) == "Pow3"
    assert signature_key([Consumer("Pow", exponent=3.0)]) == "Pow3"
    assert signature_key([Consumer("Pow")]) == "Pow2"
    assert signature_key([Consumer("Pow", exponent=0.5)]) == "Pow0.5"
    assert signature_key([Consumer("Mul", num_inputs=2, slot=1)]) == "Mul@1"
    assert signature_key([Consumer("Mul", 2, 0), Consumer("Tanh")]) == "Mul@0+Tanh"
    assert key_dimension("Mul@0+Tanh") == 2 and key_dimension("Cos+Sin") == 1


def test_signature_keys_of_the_new_smooth_activations():
    for op in ("Atan", "Softsign", "LogSigmoid", "Celu", "Mish"):
        assert signature_key([Consumer(op)]) == op
    assert signature_key([Consumer("Gelu")]) == "Gelu"
    assert signature_key([Consumer("Gelu", approximate="none")]) == "Gelu"
    assert signature_key([Consumer("Gelu", approximate="tanh")]) == "GeluTanh"
    assert signature_key([Consumer("Gelu", approximate=b"tanh"), Consumer("Atan")]) == \
        "Atan+GeluTanh"
    # kinked or jumping ones split at their kinks (the branching code's business): no table
    for op in ("Elu", "Selu", "HardSwish", "Shrink", "ThresholdedRelu"):
        assert signature_key([Consumer(op)]) is None


@pytest.mark.parametrize("consumers", [
    [], [Consumer("Relu")], [Consumer("Sigmoid"), Consumer("Relu")], [Consumer("LeakyRelu")],
    [Consumer("MatMul", num_inputs=2)], [Consumer("Softmax")],
    [Consumer("Mul", 2, 0), Consumer("Mul", 2, 1)], [Consumer("Mul", 3, 0)],
    [Consumer("Sigmoid", num_inputs=2)]])
def test_signature_key_is_none_without_a_table(consumers):
    assert signature_key(consumers) is None


def test_shipped_tables(points):
    assert set(SHIPPED_AT_LEAST) <= set(points.keys())
    total = sum(p.stat().st_size for p in DATA_DIR.iterdir())
    assert total < 2_000_000, f"shipped tables take {total} bytes"
    for key in points.keys():
        table = points.table(key)
        assert len(table.grid.size) == key_dimension(key)
        assert table.offsets.shape == (table.grid.num_boxes,)


def _random_boxes(generator: torch.Generator, n: int, dtype: torch.dtype):
    """On-grid, off-grid, tiny, huge, degenerate, out-of-range and half-infinite boxes."""
    u01 = lambda: torch.rand(n, generator=generator, dtype=torch.float64)
    a = u01() * 12 - 6
    b = a + u01() * (6 - a)
    on_grid_a = torch.round(a * 100) / 100
    on_grid_b = torch.maximum(torch.round(b * 100) / 100, on_grid_a + 0.01)
    parts = [
        (a, b),                                   # off grid, partly outside [-5, 5]
        (on_grid_a, on_grid_b),                   # on the 0.01 grid
        (a.abs() * 0.8 + 1e-3, a.abs() * 0.8 + 1e-3 + u01() * 2),   # positive
        (a, a + 1e-6 * u01()),                    # tiny
        (a * 1e30, a.abs() * 1e30 + 1.0),         # huge
        (a, a.clone()),                           # degenerate
        (torch.full((n,), -math.inf, dtype=torch.float64), b),
        (a, torch.full((n,), math.inf, dtype=torch.float64)),
    ]
    lower = torch.cat([p[0] for p in parts]).to(dtype)
    upper = torch.cat([p[1] for p in parts]).to(dtype)
    return torch.minimum(lower, upper), torch.maximum(lower, upper)


def _has_interior(lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    return torch.nextafter(lower, upper) < upper


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lookup_is_strictly_inside(points, dtype):
    generator = torch.Generator().manual_seed(0)
    lower, upper = _random_boxes(generator, 500, dtype)
    other_lower, other_upper = _random_boxes(generator, 500, dtype)
    for key in (*points.keys(), "Gelu", None):
        split = points.lookup(key, lower, upper, other_lower, other_upper)
        assert split.dtype == dtype and split.shape == lower.shape
        inside = _has_interior(lower, upper)
        assert bool(((split > lower) & (split < upper))[inside].all()), key
        assert bool((split == lower)[~inside].all()), key


def test_lookup_keeps_shape_and_broadcasts_other_bounds(points):
    lower = torch.linspace(-4, 3, 24).reshape(2, 3, 4)
    upper = lower + 1.5
    split = points.lookup("Mul@1", lower, upper, torch.tensor(-2.0), torch.tensor(3.0))
    assert split.shape == (2, 3, 4)
    assert bool(((split > lower) & (split < upper)).all())
    with pytest.raises(ValueError, match="other"):
        points.lookup("Mul@0", lower, upper)


def test_lookup_on_grid_box_takes_the_stored_point(points):
    table = points.table("Sigmoid")
    lo, step, n = table.grid.lower[0], table.grid.step[0], table.grid.size[0]
    i = np.array([0, 100, 400, 500, 0, 998])
    k = np.array([1000, 700, 450, 501, 3, 1000])
    stored = table.offsets[pair_index(i, k, n)]
    expected = lo + step * (i + k) / 2 + stored * step / table.grid.refine
    split = points.lookup("Sigmoid", torch.tensor(lo + i * step), torch.tensor(lo + k * step))
    assert np.allclose(split.numpy(), expected, rtol=0, atol=1e-12)
    # A real box a little larger than a grid box (inside the range) uses that grid box's
    # point at the same fraction of the real box.
    inner = slice(1, 4)
    lower, upper = lo + i[inner] * step - 0.004, lo + k[inner] * step + 0.003
    fraction = (expected[inner] - lo - i[inner] * step) / ((k[inner] - i[inner]) * step)
    wider = points.lookup("Sigmoid", torch.tensor(lower), torch.tensor(upper))
    assert np.allclose(wider.numpy(), lower + fraction * (upper - lower), rtol=0, atol=1e-12)


def test_off_grid_and_out_of_range_boxes_split_at_the_midpoint(points):
    lower = torch.tensor([-6.0, 0.001, 2.0, -4.0])
    upper = torch.tensor([0.0, 0.009, 6.0, -3.995])       # below, inside one step, above, one step
    split = points.lookup("Tanh", lower, upper)
    assert torch.equal(split[:3], (lower[:3] + upper[:3]) / 2)
    assert -4.0 < float(split[3]) < -3.995
    huge = points.lookup("Sigmoid", torch.tensor([-3e38, -3e38]), torch.tensor([3e38, 0.0]))
    assert torch.equal(huge, torch.tensor([0.0, -1.5e38]))
    # Reciprocal's grid starts at 1e-3: a box reaching 0 gets the midpoint.
    assert float(points.lookup("Reciprocal", torch.tensor(0.0), torch.tensor(2.0))) == 1.0


def test_float32_grid_values_find_their_grid_box(points):
    table = points.table("Tanh")
    i, k = np.array([1, 250, 731]), np.array([999, 400, 733])
    lo, step = table.grid.lower[0], table.grid.step[0]
    lower64, upper64 = torch.tensor(lo + i * step), torch.tensor(lo + k * step)
    split64 = points.lookup("Tanh", lower64, upper64)
    split32 = points.lookup("Tanh", lower64.float(), upper64.float())
    assert torch.allclose(split32.double(), split64, rtol=0, atol=1e-6)


def test_missing_signature_warns_once_and_splits_at_the_midpoint(points, caplog):
    lower, upper = torch.tensor([-1.0, 0.0]), torch.tensor([3.0, 0.5])
    with caplog.at_level(logging.WARNING, logger="genbab.lut.table"):
        first = points.lookup("Softplus+Tanh", lower, upper)
        second = points.lookup("Tanh+Softplus", lower, upper)
    assert torch.equal(first, torch.tensor([1.0, 0.25])) and torch.equal(second, first)
    warnings = [r for r in caplog.records if "Softplus+Tanh" in r.getMessage()]
    assert len(warnings) == 1
    assert "python -m genbab.lut.build Softplus+Tanh" in warnings[0].getMessage()
    assert torch.equal(points.lookup(None, lower, upper), first)


def test_stale_fingerprint_is_refused_with_the_rebuild_command():
    stale = BranchPoints(fingerprint=lambda key: "0" * 64)
    with pytest.raises(StaleTableError, match=r"python -m genbab\.lut\.build Cos\+Sin"):
        stale.lookup("Sin+Cos", torch.tensor([0.0]), torch.tensor([1.0]))


def test_stale_table_can_fall_back_to_the_midpoint(caplog):
    stale = BranchPoints(fingerprint=lambda key: "0" * 64, on_stale="warn")
    with caplog.at_level(logging.WARNING, logger="genbab.lut.table"):
        for _ in range(3):
            split = stale.lookup("Sigmoid", torch.tensor([0.0, -2.0]), torch.tensor([1.0, 4.0]))
    assert torch.equal(split, torch.tensor([0.5, 1.0]))
    assert sum("python -m genbab.lut.build Sigmoid" in r.getMessage() for r in caplog.records) == 1


def test_matching_fingerprint_is_accepted(points):
    shipped = points.manifest["tables"]["Exp"]["fingerprint"]
    checked = BranchPoints(fingerprint=lambda key: shipped)
    assert checked.table("Exp").fingerprint == shipped


def test_old_format_version_is_refused(tmp_path):
    for path in DATA_DIR.iterdir():
        shutil.copy(path, tmp_path / path.name)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["tables"]["Sigmoid"]["format_version"] = 0
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StaleTableError, match="python -m genbab.lut.build Sigmoid"):
        BranchPoints(tmp_path).lookup("Sigmoid", torch.tensor(0.0), torch.tensor(1.0))
    assert isinstance(StaleTableError("x"), TableError)


def test_empty_directory_gives_midpoints(tmp_path):
    points = BranchPoints(tmp_path)
    assert points.keys() == ()
    assert float(points.lookup("Sigmoid", torch.tensor(0.0), torch.tensor(1.0))) == 0.5


def test_loading_is_fast():
    start = time.perf_counter()
    points = BranchPoints()
    elapsed = time.perf_counter() - start
    assert elapsed < 0.05, f"manifest took {elapsed:.3f} s"
    best = math.inf
    for _ in range(3):
        fresh = BranchPoints()
        start = time.perf_counter()
        fresh.table("Sigmoid")
        best = min(best, time.perf_counter() - start)
    assert best < 0.05, f"one table took {best:.3f} s"
    assert points.keys()


def test_clamp_keeps_a_margin_inside(points):
    lower, upper = torch.tensor([-5.0]), torch.tensor([5.0])
    split = points.lookup("Exp", lower, upper)
    assert float(split) >= -5.0 + 10 * INSIDE_FRACTION * 0.999
    assert float(split) <= 5.0 - 10 * INSIDE_FRACTION * 0.999
