"""Domain clipping (branching/clip.py) against brute force: every sampled point of a box that
satisfies all halfspaces ``a_r . x + b_r <= d_r`` of some open clause must stay inside the
clipped box; and the clipped box must really be smaller where the halfspaces cut."""
from __future__ import annotations

import math

import pytest
import torch

from genbab.branching.clip import clip_boxes


def _sample(lower: torch.Tensor, upper: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """(B, count, n) float64 points of each box: uniform, plus the box's corners."""
    gen = torch.Generator().manual_seed(seed)
    batch, n = lower.shape
    lo, up = lower.double().unsqueeze(1), upper.double().unsqueeze(1)
    points = lo + (up - lo) * torch.rand(batch, count, n, generator=gen, dtype=torch.float64)
    corners = torch.cartesian_prod(*[torch.tensor([0.0, 1.0], dtype=torch.float64)] * n)
    corners = corners.reshape(-1, n)
    return torch.cat([points, lo + (up - lo) * corners.unsqueeze(0)], dim=1)


def _violating(points, coeffs, offset, thresholds, members, open_clause):
    """(B, P) bool: the point satisfies every row of some open clause (exact, float64)."""
    value = torch.einsum("bun,bpn->bpu", coeffs.double(), points) + offset.double().unsqueeze(1)
    holds = value <= thresholds.double()                                    # (B, P, U)
    rows = members.T                                                        # (K, U)
    clause_holds = (holds.unsqueeze(2) | ~rows.view(1, 1, *rows.shape)).all(dim=3)  # (B, P, K)
    return (clause_holds & open_clause.unsqueeze(1)).any(dim=2)


def _check_brute_force(lower, upper, coeffs, offset, thresholds, members, open_clause,
                       passes=1, seed=0, surrogates=True):
    new_lo, new_up, proved = clip_boxes(lower, upper, coeffs, offset, thresholds, members,
                                        open_clause, passes, surrogates)
    assert new_lo.dtype == lower.dtype and new_up.dtype == upper.dtype
    assert torch.all(new_lo >= lower) and torch.all(new_up <= upper)
    points = _sample(lower, upper, 4000, seed)
    bad = _violating(points, coeffs, offset, thresholds, members, open_clause)
    inside = ((points >= new_lo.double().unsqueeze(1)) & (points <= new_up.double().unsqueeze(1))
              ).all(dim=2)
    assert not bool((bad & ~inside).any()), "a violating point was clipped off"
    assert not bool((bad & proved.unsqueeze(1)).any()), "a box with a violation was proved"
    return new_lo, new_up, proved


def _random_case(batch, n, rows, clauses, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    lower = (torch.rand(batch, n, generator=gen) * 4 - 2).to(dtype)
    upper = lower + (torch.rand(batch, n, generator=gen) * 2).to(dtype)
    coeffs = torch.randn(batch, rows, n, generator=gen).to(dtype)
    coeffs[torch.rand(batch, rows, n, generator=gen) < 0.2] = 0.0          # some a_ri = 0
    centre = (lower + upper) / 2
    # thresholds near the value at the centre, so that the halfspaces cut through the boxes
    offset = (torch.randn(batch, rows, generator=gen)
              - torch.einsum("brn,bn->br", coeffs, centre)).to(dtype)
    thresholds = torch.randn(rows, generator=gen, dtype=torch.float64)
    members = torch.rand(rows, clauses, generator=gen) < 0.5
    members[torch.arange(rows), torch.randint(clauses, (rows,), generator=gen)] = True
    open_clause = torch.rand(batch, clauses, generator=gen) < 0.7
    return lower, upper, coeffs, offset, thresholds, members, open_clause


@pytest.mark.parametrize("surrogates", [False, True])
@pytest.mark.parametrize("passes", [1, 2])
@pytest.mark.parametrize("seed", range(4))
def test_clip_keeps_every_violating_point(seed, passes, surrogates):
    case = _random_case(batch=64, n=3, rows=4, clauses=3, seed=seed)
    new_lo, new_up, proved = _check_brute_force(*case, passes=passes, seed=seed,
                                                surrogates=surrogates)
    lower, upper = case[:2]
    shrunk = (new_lo > lower).any(dim=1) | (new_up < upper).any(dim=1)
    assert bool(shrunk.any()) and bool(proved.any())    # the cases do cut boxes


def test_clip_single_row_matches_the_closed_form():
    # x0 + 2 x1 >= 1 is what the bound says; a violation needs x0 + 2 x1 <= 1.5, so on
    # [0, 1]^2: x0 <= 1.5 (no cut), x1 <= 0.75
    lower, upper = torch.zeros(1, 2), torch.ones(1, 2)
    coeffs = torch.tensor([[[1.0, 2.0]]])
    new_lo, new_up, proved = clip_boxes(lower, upper, coeffs, torch.tensor([[1.0]]),
                                        torch.tensor([2.5], dtype=torch.float64),
                                        torch.ones(1, 1, dtype=torch.bool),
                                        torch.ones(1, 1, dtype=torch.bool))
    assert not bool(proved[0])
    assert new_lo.tolist() == [[0.0, 0.0]]
    assert new_up[0, 0] == 1.0 and 0.75 <= float(new_up[0, 1]) < 0.75 + 1e-5


def test_clip_negative_coefficient_raises_the_lower_end():
    # -x0 + 0 <= -0.25 needs x0 >= 0.25
    new_lo, new_up, _ = clip_boxes(torch.zeros(1, 1), torch.ones(1, 1), -torch.ones(1, 1, 1),
                                   torch.zeros(1, 1), torch.tensor([-0.25], dtype=torch.float64),
                                   torch.ones(1, 1, dtype=torch.bool),
                                   torch.ones(1, 1, dtype=torch.bool))
    assert 0.25 - 1e-5 < float(new_lo) <= 0.25 and float(new_up) == 1.0


def test_clip_infeasible_rows_prove_the_box():
    # the linear bound's minimum over the box (b = 3) is above the threshold 2
    lower, upper = torch.zeros(2, 2), torch.ones(2, 2)
    coeffs = torch.tensor([[[1.0, 1.0]], [[0.0, 0.0]]])
    new_lo, new_up, proved = clip_boxes(lower, upper, coeffs, torch.full((2, 1), 3.0),
                                        torch.tensor([2.0], dtype=torch.float64),
                                        torch.ones(1, 1, dtype=torch.bool),
                                        torch.ones(2, 1, dtype=torch.bool))
    assert proved.tolist() == [True, True]
    assert torch.equal(new_lo, lower) and torch.equal(new_up, upper)


def test_clip_zero_rows_and_degenerate_boxes():
    # a_r = 0 and a feasible constant: no cut; a point box l = u stays that point
    lower = torch.tensor([[0.5, -1.0], [0.3, 0.3]])
    upper = torch.tensor([[0.5, 2.0], [0.3, 0.3]])
    coeffs = torch.tensor([[[0.0, 0.0]], [[1.0, -1.0]]])
    new_lo, new_up, proved = clip_boxes(lower, upper, coeffs, torch.tensor([[1.0], [0.0]]),
                                        torch.tensor([1.0], dtype=torch.float64),
                                        torch.ones(1, 1, dtype=torch.bool),
                                        torch.ones(2, 1, dtype=torch.bool))
    assert proved.tolist() == [False, False]
    assert torch.equal(new_lo, lower) and torch.equal(new_up, upper)
    case = _random_case(batch=32, n=3, rows=3, clauses=2, seed=7)
    lower, upper = case[0].clone(), case[1].clone()
    upper[:, 1] = lower[:, 1]                               # one dimension a point
    upper[:8] = lower[:8]                                   # whole boxes points
    _check_brute_force(lower, upper, *case[2:])


def test_clip_a_point_on_the_boundary_survives():
    # the violating set is the single point x = 1 of [0, 2]: a x + b <= d with a = 1, b = 0,
    # d = 1 touches it exactly; the point must stay in the box
    for lo, up in ((0.0, 1.0), (1.0, 2.0), (1.0, 1.0)):
        new_lo, new_up, proved = clip_boxes(torch.tensor([[lo]]), torch.tensor([[up]]),
                                            torch.ones(1, 2, 1) * torch.tensor([[[1.0], [-1.0]]]),
                                            torch.zeros(1, 2),
                                            torch.tensor([1.0, -1.0], dtype=torch.float64),
                                            torch.ones(2, 1, dtype=torch.bool),
                                            torch.ones(1, 1, dtype=torch.bool))
        assert not bool(proved[0])
        assert float(new_lo) <= 1.0 <= float(new_up)


def test_clip_takes_the_bounding_box_of_the_open_clauses():
    # clause 0: x0 <= 0.2; clause 1: x0 >= 0.7 (as -x0 <= -0.7); clause 2: x1 <= 0.1
    lower, upper = torch.zeros(3, 2), torch.ones(3, 2)
    coeffs = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]).expand(3, 3, 2)
    thresholds = torch.tensor([0.2, -0.7, 0.1], dtype=torch.float64)
    members = torch.eye(3, dtype=torch.bool)
    open_clause = torch.tensor([[True, True, False], [True, False, True], [False, False, False]])
    new_lo, new_up, proved = _check_brute_force(lower, upper, coeffs, torch.zeros(3, 3),
                                                thresholds, members, open_clause)
    # clauses 0 and 1 together leave the whole x0 range; x1 untouched
    assert torch.equal(new_lo[0], lower[0]) and torch.equal(new_up[0], upper[0])
    # clauses 0 and 2: x0 in [0, 0.2] or x1 in [0, 0.1]: the union's box is the whole box
    assert torch.equal(new_up[1], upper[1])
    assert proved.tolist() == [False, False, True]   # no open clause: nothing can be violated
    only_one = _check_brute_force(lower[:1], upper[:1], coeffs[:1], torch.zeros(1, 3),
                                  thresholds, members, torch.tensor([[True, False, False]]))
    assert float(only_one[1][0, 0]) == pytest.approx(0.2, abs=1e-5)


def test_clip_a_refuted_clause_contributes_nothing():
    # clause 1 (x0 >= 0.7) would keep the right part, but it is refuted already
    lower, upper = torch.zeros(1, 1), torch.ones(1, 1)
    coeffs = torch.tensor([[[1.0], [-1.0]]])
    new_lo, new_up, _ = clip_boxes(lower, upper, coeffs, torch.zeros(1, 2),
                                   torch.tensor([0.2, -0.7], dtype=torch.float64),
                                   torch.eye(2, dtype=torch.bool),
                                   torch.tensor([[True, False]]))
    assert float(new_up) == pytest.approx(0.2, abs=1e-5)


def test_clip_rows_with_non_finite_bounds_constrain_nothing():
    lower, upper = torch.zeros(2, 2), torch.ones(2, 2)
    coeffs = torch.tensor([[[1.0, math.inf]], [[1.0, 1.0]]])
    offset = torch.tensor([[0.0], [-math.inf]])
    new_lo, new_up, proved = clip_boxes(lower, upper, coeffs, offset,
                                        torch.tensor([-5.0], dtype=torch.float64),
                                        torch.ones(1, 1, dtype=torch.bool),
                                        torch.ones(2, 1, dtype=torch.bool))
    assert proved.tolist() == [False, False]
    assert torch.equal(new_lo, lower) and torch.equal(new_up, upper)


def test_clip_float32_rounding_keeps_edge_points():
    # boxes far from 0 and halfspaces through float32 grid points: the clipped end must not
    # round inwards past a violating point on the cut
    gen = torch.Generator().manual_seed(3)
    lower = (1000 + torch.rand(256, 2, generator=gen)).float()
    upper = lower + torch.rand(256, 2, generator=gen).float() * 1e-3
    cut = lower[:, 0] + (upper[:, 0] - lower[:, 0]) * 0.37       # x0 <= cut
    coeffs = torch.zeros(256, 1, 2)
    coeffs[:, 0, 0] = 3.0
    offset = (-3.0 * cut).reshape(256, 1)
    new_lo, new_up, _ = clip_boxes(lower, upper, coeffs, offset,
                                   torch.zeros(1, dtype=torch.float64),
                                   torch.ones(1, 1, dtype=torch.bool),
                                   torch.ones(256, 1, dtype=torch.bool))
    # the exact cut in float64 of the float32 line: 3 x0 - 3 cut <= 0
    exact = offset[:, 0].double() / -3.0
    assert torch.all(new_up[:, 0].double() >= torch.minimum(exact, upper[:, 0].double()))


def test_clip_two_passes_are_never_looser_than_one():
    case = _random_case(batch=128, n=4, rows=4, clauses=2, seed=11)
    one = clip_boxes(*case, passes=1, surrogates=False)
    two = clip_boxes(*case, passes=2, surrogates=False)
    assert torch.all(two[2] | ~one[2])
    assert bool((two[2] & ~one[2]).any())          # the second pass proves more boxes
    kept = ~two[2]                                 # (proved boxes come back unchanged)
    assert torch.all(two[0][kept] >= one[0][kept]) and torch.all(two[1][kept] <= one[1][kept])


def test_surrogate_row_refutes_what_neither_row_refutes_alone():
    # on [0, 1]^2 a violation needs x0 + x1 <= 0.9 and x0 + x1 >= 1.1: impossible, but one
    # pass of per-dimension clipping only narrows the box to [0.1, 0.9]^2; the half-half
    # combination of the rows, 0.1 <= 0, refutes the clause at once
    lower, upper = torch.zeros(1, 2), torch.ones(1, 2)
    coeffs = torch.tensor([[[1.0, 1.0], [-1.0, -1.0]]])
    offset = torch.tensor([[-0.9, 1.1]])
    members = torch.ones(2, 1, dtype=torch.bool)
    args = (lower, upper, coeffs, offset, torch.zeros(2, dtype=torch.float64), members,
            torch.ones(1, 1, dtype=torch.bool))
    assert not bool(clip_boxes(*args, surrogates=False)[2][0])
    assert bool(clip_boxes(*args, surrogates=True)[2][0])
