"""lut.build: the objective, a tiny end-to-end build, agreement with brute force, and the
shipped tables' gain over the midpoint."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from genbab.bounds.ops import make_rule
from genbab.lut import build
from genbab.lut.build import (box_losses, default_grid, main, relaxation_fingerprint, split_loss,
                              stale_tables)
from genbab.lut.table import BranchPoints, StaleTableError, pair_index


@pytest.fixture(scope="module")
def points() -> BranchPoints:
    return BranchPoints(fingerprint=relaxation_fingerprint)


def _fresh_keys(points: BranchPoints) -> list[str]:
    """Shipped keys whose table matches the current relaxations (stale ones are reported by
    ``test_shipped_tables_are_fresh`` alone)."""
    fresh = []
    for key in points.keys():
        try:
            points.table(key)
        except StaleTableError:
            continue
        fresh.append(key)
    return fresh


def _numeric_gap_integral(key: str, lower: float, upper: float, other=None, count=401) -> float:
    """Midpoint-rule integral of (upper line - lower line) from the rule itself."""
    xs = torch.linspace(lower, upper, count + 1, dtype=torch.float64)
    xs = (xs[1:] + xs[:-1]) / 2
    total = 0.0
    for part in key.split("+"):
        rule, slot = build.parse_part(part)
        if slot is None:
            rel = rule.relax(torch.tensor(lower, dtype=torch.float64),
                             torch.tensor(upper, dtype=torch.float64), None)
            gap = (rel.upper_slope - rel.lower_slope) * xs + rel.upper_bias - rel.lower_bias
            total += float(gap.mean()) * (upper - lower) * (1 if other is None else
                                                            other[1] - other[0])
            continue
        ys = torch.linspace(other[0], other[1], count + 1, dtype=torch.float64)
        ys = (ys[1:] + ys[:-1]) / 2
        x, y = torch.meshgrid(xs, ys, indexing="ij")
        box = [torch.tensor(v, dtype=torch.float64) for v in (lower, other[0], upper, other[1])]
        lo, up = ((box[0], box[1]), (box[2], box[3])) if slot == 0 else \
            ((box[1], box[0]), (box[3], box[2]))
        rel = rule.relax(lo, up, None)
        a, b = (x, y) if slot == 0 else (y, x)
        gap = ((rel.upper_x - rel.lower_x) * a + (rel.upper_y - rel.lower_y) * b
               + rel.upper_bias - rel.lower_bias)
        total += float(gap.mean()) * (upper - lower) * (other[1] - other[0])
    return total


@pytest.mark.parametrize("key, box, other", [
    ("Sigmoid", (-3.0, 1.5), None), ("Cos+Sin", (-1.0, 2.5), None), ("Exp", (-2.0, 1.0), None),
    ("Reciprocal", (0.1, 2.0), None), ("Mul@0", (-1.0, 2.0), (0.5, 3.0)),
    ("Mul@1", (-1.0, 2.0), (-2.0, 0.5)), ("Mul@0+Tanh", (-1.0, 2.0), (0.5, 3.0))])
def test_box_loss_is_the_integral_of_the_relaxation_gap(key, box, other):
    args = [torch.tensor([v], dtype=torch.float64) for v in (*box, *(other or ()))]
    closed = float(box_losses(key, *args))
    assert closed > 0
    assert math.isclose(closed, _numeric_gap_integral(key, *box, other=other), rel_tol=1e-4)


def test_mul_objective_is_symmetric_so_its_best_split_is_the_midpoint():
    lower, upper = torch.tensor([-1.0]), torch.tensor([3.0])
    ol, ou = torch.tensor([0.5]), torch.tensor([2.0])
    points = torch.linspace(-0.9, 2.9, 39)
    losses = torch.cat([split_loss("Mul@0", lower, upper, p.reshape(1), ol, ou) for p in points])
    assert abs(float(points[losses.argmin()]) - 1.0) < 1e-6


def test_default_grid():
    assert default_grid("Sigmoid").size == (1001,)
    assert default_grid("Reciprocal").lower == (1e-3,)
    assert default_grid("Mul@1").size == (51, 51)
    with pytest.raises(ValueError):
        default_grid("Sigmoid", refine=3)


def _brute_force(key, grid, i, k, q=None):
    """Best loss over every fine candidate strictly inside grid box (i, k)."""
    lo0, step, m = grid.lower[0], grid.step[0], grid.refine
    count = m * (k - i) - 1
    candidates = lo0 + step * i + torch.arange(1, count + 1, dtype=torch.float64) * step / m
    lower = torch.full_like(candidates, lo0 + step * i)
    upper = torch.full_like(candidates, lo0 + step * k)
    other = () if q is None else tuple(torch.full_like(candidates, v) for v in q)
    return float(split_loss(key, lower, upper, candidates, *other).min())


def _table_loss(points, key, lower, upper, other=None):
    args = [torch.tensor([v], dtype=torch.float64) for v in (lower, upper)]
    other_args = [] if other is None else [torch.tensor([v], dtype=torch.float64) for v in other]
    split = points.lookup(key, *args, *other_args)
    return float(split_loss(key, *args, split, *other_args)), float(split)


def test_tiny_build_end_to_end(tmp_path, capsys):
    assert main(["Tanh", "Sin+Cos", "Mul@1", "--step", "0.5", "--step-2d", "2.5",
                 "--out", str(tmp_path)]) == 0
    assert "Cos+Sin" in capsys.readouterr().out
    assert stale_tables(tmp_path) == {}
    points = BranchPoints(tmp_path, fingerprint=relaxation_fingerprint)
    assert set(points.keys()) == {"Tanh", "Cos+Sin", "Mul@1"}
    for key in ("Tanh", "Cos+Sin"):
        grid = points.table(key).grid
        assert grid.size == (21,)
        for i, k in [(0, 20), (3, 9), (10, 11), (0, 1), (7, 19)]:
            lower, upper = grid.lower[0] + 0.5 * i, grid.lower[0] + 0.5 * k
            loss, split = _table_loss(points, key, lower, upper)
            assert lower < split < upper
            assert loss <= _brute_force(key, grid, i, k) * (1 + 1e-8) + 1e-15
    grid = points.table("Mul@1").grid
    loss, split = _table_loss(points, "Mul@1", -5.0, 2.5, other=(0.0, 5.0))
    assert split == pytest.approx(-1.25)
    assert main(["--check", "--out", str(tmp_path)]) == 0


def test_a_changed_relaxation_changes_the_fingerprint(monkeypatch):
    shipped = relaxation_fingerprint("Sigmoid")
    assert shipped != relaxation_fingerprint("Tanh")
    sigmoid = make_rule("Sigmoid")

    def looser(lower, upper, params):
        rel = sigmoid.relax(lower, upper, params)
        return dataclasses.replace(rel, upper_bias=rel.upper_bias + 1e-6)

    patched = dataclasses.replace(sigmoid, relax=looser)
    monkeypatch.setattr(build, "make_rule", lambda op, attrs=None: patched)
    relaxation_fingerprint.cache_clear()
    try:
        assert relaxation_fingerprint("Sigmoid") != shipped
    finally:
        monkeypatch.undo()
        relaxation_fingerprint.cache_clear()
    assert relaxation_fingerprint("Sigmoid") == shipped


def test_shipped_tables_are_fresh():
    stale = stale_tables()
    assert not stale, "\n".join(stale.values())


@pytest.mark.parametrize("key", ["Sigmoid", "Cos+Sin", "Pow3", "Log", "Mul@0"])
def test_shipped_table_is_the_argmin_on_grid_boxes(points, key):
    if key not in _fresh_keys(points):
        pytest.skip(f"{key} is stale (see test_shipped_tables_are_fresh)")
    table = points.table(key)
    grid = table.grid
    rng = np.random.default_rng(1)
    n = grid.size[0]
    for _ in range(4):
        i, k = sorted(rng.choice(n, size=2, replace=False))
        if k - i > 300:
            k = i + 300                    # keep the brute force small
        q = None
        if len(grid.size) == 2:
            a, b = sorted(rng.choice(grid.size[1], size=2, replace=False))
            q = (grid.lower[1] + grid.step[1] * a, grid.lower[1] + grid.step[1] * b)
        lower, upper = grid.lower[0] + grid.step[0] * i, grid.lower[0] + grid.step[0] * k
        loss, _ = _table_loss(points, key, lower, upper, q)
        assert loss <= _brute_force(key, grid, i, k, q) * (1 + 1e-8) + 1e-15
    assert table.offsets[pair_index(0, 1, n) if len(grid.size) == 1 else 0] == 0


def _loss_ratios(points, key, generator, count, on_grid):
    grid = points.table(key).grid
    lo, hi = grid.lower[0], grid.upper[0]
    a = lo + (hi - lo) * torch.rand(count, generator=generator, dtype=torch.float64)
    b = lo + (hi - lo) * torch.rand(count, generator=generator, dtype=torch.float64)
    lower, upper = torch.minimum(a, b), torch.maximum(a, b)
    if on_grid:
        step = grid.step[0]
        lower = lo + torch.floor((lower - lo) / step) * step
        upper = torch.maximum(lo + torch.ceil((upper - lo) / step) * step, lower + 2 * step)
        upper = torch.minimum(upper, torch.tensor(hi, dtype=torch.float64))
    other = ()
    if len(grid.size) == 2:
        c = torch.rand(count, generator=generator, dtype=torch.float64) * 10 - 5
        d = torch.rand(count, generator=generator, dtype=torch.float64) * 10 - 5
        other = (torch.minimum(c, d), torch.maximum(c, d))
    split = points.lookup(key, lower, upper, *other)
    table = split_loss(key, lower, upper, split, *other)
    mid = split_loss(key, lower, upper, (lower + upper) / 2, *other)
    keep = torch.isfinite(mid) & (mid > 0) & (upper - lower > 2 * grid.step[0])
    return table[keep] / mid[keep]


def test_shipped_tables_improve_on_the_midpoint(points):
    generator = torch.Generator().manual_seed(2)
    report = {}
    fresh = _fresh_keys(points)
    for key in fresh:
        on_grid = _loss_ratios(points, key, generator, 250, on_grid=True)
        off_grid = _loss_ratios(points, key, generator, 250, on_grid=False)
        report[key] = (float(on_grid.mean()), float(off_grid.mean()))
        assert float(on_grid.max()) <= 1 + 1e-8, key            # never worse on grid boxes
        assert float(off_grid.mean()) <= 1 + 1e-6, key
    print("mean loss ratio table/midpoint (grid boxes, random boxes):", report)
    for key in {"Sigmoid", "Tanh", "Sin", "Cos", "Exp", "Pow3", "Reciprocal"} & set(fresh):
        assert report[key][0] < 0.95 and report[key][1] < 0.95, (key, report[key])
    assert {"Pow2", "Mul@0", "Mul@1"} & set(fresh), "no table checked"
