"""The fast default slopes of Sin and Cos (``bounds.ops.sin.periodic_slopes``).

Soundness is sampled on boxes chosen for the fast path's case split: narrow boxes inside every
convexity piece, boxes straddling one or more inflection points, degenerate boxes, widths just
below and above pi, 2 pi and 4 pi, huge ``|x|``, in float32 and float64.  The lines are also
compared with those of the generic search (``bounds.anchors.default_slopes``) they replace: at
the midpoint they are never looser, up to the rounding of the bias to the working dtype.
"""
from __future__ import annotations

import math

import pytest
import torch

from genbab.bounds import anchors
from genbab.bounds.anchors import default_slopes
from genbab.bounds.lines import sound_lines
from genbab.bounds.ops import RULES
from genbab.bounds.ops._closed_form import CHUNK
from genbab.bounds.ops.cos import COS_CURVE
from genbab.bounds.ops.sin import SIN_CURVE
from tests.unit.bounds.helpers import assert_below, assert_no_nan

PI = math.pi
CURVES = {"Sin": SIN_CURVE, "Cos": COS_CURVE}
INFLECTION = {"Sin": 0.0, "Cos": PI / 2}        # inflection points at INFLECTION + k pi
DTYPES = [torch.float32, torch.float64]


pytestmark = pytest.mark.usefixtures("one_thread")


def _log_uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return torch.exp(math.log(lo) + (math.log(hi) - math.log(lo))
                     * torch.rand(n, generator=gen, dtype=torch.float64))


def _families(op: str, seed: int = 0, m: int = 256) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """float64 (lower, upper) per family of boxes."""
    gen = torch.Generator().manual_seed(seed)
    rand = lambda k: torch.rand(k, generator=gen, dtype=torch.float64)  # noqa: E731
    c0 = INFLECTION[op]
    k = torch.randint(-8, 9, (m,), generator=gen).double()
    families = {}
    # inside one convexity piece [c0 + k pi, c0 + (k + 1) pi] (even k and odd k: both curvatures)
    width = _log_uniform(m, 1e-7, PI, gen) * rand(m)
    lower = c0 + k * PI + (PI - width) * rand(m)
    families["one piece"] = (lower, lower + width)
    # straddling the inflection point c0 + k pi (and, for wider ones, more of them)
    left, right = _log_uniform(m, 1e-7, 3.0, gen), _log_uniform(m, 1e-7, 3.0, gen)
    families["straddling"] = (c0 + k * PI - left, c0 + k * PI + right)
    # degenerate, at random points, inflection points and extrema
    at = torch.cat([20 * rand(m // 2) - 10, c0 + k[: m - m // 2] * PI / 2])
    families["degenerate"] = (at, at.clone())
    # widths just below and above pi, 2 pi, 4 pi, anywhere
    base = torch.tensor([PI, 2 * PI, 4 * PI], dtype=torch.float64)
    factor = 1 + torch.tensor([-1e-2, -1e-5, -1e-7, 1e-7, 1e-5, 1e-2], dtype=torch.float64)
    widths = (base[:, None] * factor[None]).reshape(-1).repeat(m // 16 + 1)[:m]
    lower = 40 * rand(m) - 20
    families["near pi, 2 pi, 4 pi"] = (lower, lower + widths)
    # the same widths from an inflection point or an extremum
    lower = c0 + k * PI / 2
    families["near pi, 2 pi, 4 pi from special points"] = (lower, lower + widths)
    # huge |x|
    centre = torch.where(rand(m) < 0.5, -1.0, 1.0) * torch.where(rand(m) < 0.5, 1e4, 1e6)
    width = _log_uniform(m, 1e-3, 20, gen)
    families["huge |x|"] = (centre - width * rand(m), centre + width * rand(m))
    # wide boxes
    lower = 40 * rand(m) - 20
    families["wide"] = (lower, lower + _log_uniform(m, 1.0, 100.0, gen))
    return families


def _in_dtype(lower: torch.Tensor, upper: torch.Tensor, dtype: torch.dtype):
    lo, up = lower.to(dtype), upper.to(dtype)
    return lo, torch.maximum(up, lo)


def _points(lower: torch.Tensor, upper: torch.Tensor, per_box: int = 48) -> torch.Tensor:
    """(n, per_box) float64 points of each box: both ends, the midpoint, the multiples of
    pi/2 nearest to the ends and the midpoint, then uniform points."""
    l64, u64 = lower.double()[:, None], upper.double()[:, None]
    t = torch.rand(lower.shape[0], per_box, generator=torch.Generator().manual_seed(1),
                   dtype=torch.float64)
    x = l64 + t * (u64 - l64)
    x[:, 0:1], x[:, 1:2], x[:, 2:3] = l64, u64, (l64 + u64) / 2
    for i, ref in enumerate((l64, u64, (l64 + u64) / 2)):
        for j, shift in enumerate((-1, 0, 1)):
            x[:, 3 + 3 * i + j: 4 + 3 * i + j] = (torch.round(ref / (PI / 2)) + shift) * (PI / 2)
    return torch.minimum(torch.maximum(x, l64), u64)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", ["Sin", "Cos"])
def test_periodic_default_relaxation_is_sound_on_every_family(op, dtype):
    rule = RULES[op]
    for family, (lower, upper) in _families(op).items():
        lo, up = _in_dtype(lower, upper, dtype)
        rel = rule.relax(lo, up, None)
        assert_no_nan(rel.lower_slope, rel.lower_bias, rel.upper_slope, rel.upper_bias)
        assert rel.lower_bias.dtype == dtype
        x = _points(lo, up)
        y = rule.evaluate(x)
        what = f"{op} {dtype} {family}"
        assert_below(rel.lower_slope[:, None], rel.lower_bias[:, None], x, y, what=what + " lower")
        assert_below(-rel.upper_slope[:, None], -rel.upper_bias[:, None], x, -y,
                     what=what + " upper")


def _midpoint_values(rel, lower: torch.Tensor, upper: torch.Tensor):
    mid = (lower.double() + upper.double()) / 2
    reach = torch.maximum(lower.double().abs(), upper.double().abs())
    lines = []
    for slope, bias in ((rel.lower_slope, rel.lower_bias), (rel.upper_slope, rel.upper_bias)):
        slope, bias = slope.double(), bias.double()
        lines.append((slope * mid + bias, slope.abs() * reach + bias.abs()))
    return lines


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", ["Sin", "Cos"])
def test_periodic_lines_are_no_looser_than_the_generic_search_at_the_midpoint(op, dtype):
    """Against ``sound_lines`` of the generic ``default_slopes`` (the relaxation before the fast
    path), on random boxes of lsnc-like widths and on every family above.  Allowed slack: what
    rounding the biases to the working dtype can cost (4 eps (|a| max(|l|,|u|) + |b|))."""
    rule, curve = RULES[op], CURVES[op]
    gen = torch.Generator().manual_seed(2)
    n = 4096
    width = _log_uniform(n, 1e-4, 2.0, gen)
    lower = 20 * torch.rand(n, generator=gen, dtype=torch.float64) - 10
    boxes = [(lower, lower + width)] + list(_families(op, seed=3, m=128).values())
    lower = torch.cat([b[0] for b in boxes])
    upper = torch.cat([b[1] for b in boxes])
    lo, up = _in_dtype(lower, upper, dtype)
    eps = torch.finfo(dtype).eps
    a_lo, a_up = default_slopes(curve, lo.double(), up.double(), eps)
    old = _midpoint_values(sound_lines(curve, lo, up, a_lo, a_up), lo, up)
    new = _midpoint_values(rule.relax(lo, up, None), lo, up)
    (old_lo, scale_old_lo), (old_up, scale_old_up) = old
    (new_lo, scale_new_lo), (new_up, scale_new_up) = new
    slack_lo = 4 * eps * (scale_old_lo + scale_new_lo) + 1e-300
    slack_up = 4 * eps * (scale_old_up + scale_new_up) + 1e-300
    assert (new_lo >= old_lo - slack_lo).all(), (new_lo - old_lo).min()
    assert (new_up <= old_up + slack_up).all(), (old_up - new_up).min()
    # and the same lines on nearly all boxes
    same = (rule.relax(lo, up, None).lower_slope == a_lo.to(dtype)).double().mean()
    assert same > 0.9


@pytest.mark.parametrize("op", ["Sin", "Cos"])
def test_generic_search_runs_only_for_non_finite_bounds(op, monkeypatch):
    """Finite boxes (narrow, straddling, wide, huge) never reach the generic search."""
    seen = []
    generic = anchors.default_slopes

    def spy(curve, lower, upper, eps):
        seen.append(lower.numel())
        return generic(curve, lower, upper, eps)

    monkeypatch.setattr(anchors, "default_slopes", spy)
    families = _families(op)
    lower = torch.cat([b[0] for b in families.values()]).float()
    upper = torch.maximum(torch.cat([b[1] for b in families.values()]).float(), lower)
    RULES[op].relax(lower, upper, None)
    assert seen == []
    inf = float("inf")
    RULES[op].relax(torch.cat([lower, torch.tensor([-inf, 0.0, float("nan"), 1e30])]),
                    torch.cat([upper, torch.tensor([1.0, inf, 1.0, 1e30])]), None)
    assert seen == [4]


def test_sin_single_curvature_lines_are_the_chord_and_the_midpoint_tangent():
    lower, upper = torch.tensor([0.5, 3.5], dtype=torch.float64), \
        torch.tensor([2.5, 5.5], dtype=torch.float64)       # concave, convex
    rel = RULES["Sin"].relax(lower, upper, None)
    mid = (lower + upper) / 2
    chord = (torch.sin(upper) - torch.sin(lower)) / (upper - lower)
    torch.testing.assert_close(rel.lower_slope[0], chord[0])
    torch.testing.assert_close(rel.upper_slope[1], chord[1])
    torch.testing.assert_close(rel.upper_slope[0], torch.cos(mid[0]))
    torch.testing.assert_close(rel.lower_slope[1], torch.cos(mid[1]))
    torch.testing.assert_close(rel.upper_slope[0] * mid[0] + rel.upper_bias[0], torch.sin(mid[0]))


def test_cos_straddling_lower_line_is_the_anchored_tangent():
    """cos on [0.5, 3]: concave up to pi/2, convex after; the lower line passes through the
    left end and touches the convex part."""
    lower, upper = torch.tensor([0.5], dtype=torch.float64), torch.tensor([3.0],
                                                                          dtype=torch.float64)
    rel = RULES["Cos"].relax(lower, upper, None)
    torch.testing.assert_close(rel.lower_slope * lower + rel.lower_bias, torch.cos(lower),
                               atol=1e-6, rtol=1e-6)
    xs = torch.linspace(PI / 2, 3.0, 20001, dtype=torch.float64)
    gap = torch.cos(xs) - (rel.lower_slope * xs + rel.lower_bias)
    assert gap.min() >= -1e-12 and gap.min() < 1e-6


@pytest.mark.parametrize("op", ["Sin", "Cos"])
def test_periodic_slopes_keep_shape_and_are_sound_on_a_chunked_batch(op):
    """More than two CPU chunks, in a 2-D shape."""
    gen = torch.Generator().manual_seed(5)
    n = 2 * CHUNK + 1000
    lower = (40 * torch.rand(n, generator=gen) - 20)
    upper = lower + _log_uniform(n, 1e-5, 8.0, gen).float()
    lower, upper = lower.reshape(2, -1), upper.reshape(2, -1)
    rule = RULES[op]
    rel = rule.relax(lower, upper, None)
    assert rel.lower_slope.shape == lower.shape
    flat_rel = rule.relax(lower.reshape(-1), upper.reshape(-1), None)
    assert torch.equal(flat_rel.upper_slope, rel.upper_slope.reshape(-1))
    x = _points(lower.reshape(-1), upper.reshape(-1), per_box=8)
    y = rule.evaluate(x)
    assert_below(rel.lower_slope.reshape(-1, 1), rel.lower_bias.reshape(-1, 1), x, y,
                 what=op + " chunked lower")
    assert_below(-rel.upper_slope.reshape(-1, 1), -rel.upper_bias.reshape(-1, 1), x, -y,
                 what=op + " chunked upper")
