"""Sampling helpers for the relaxation soundness tests (STYLE.md section 9).

Boxes are float32; ground truth is evaluated in float64 at the float32 sample points, and the
lines are evaluated in float64 from their float32 coefficients, so a check failing here means
the relaxation is unsound in exact arithmetic, not that float32 rounded a line.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

# Inflection points, extrema, kinks and jumps of the supported ops (and of the attribute
# variants the tests use), multiples of pi/2, float32 limits.
SPECIAL_POINTS = (
    [0.0, 1.0, -1.0, 0.5, -0.5, math.sqrt(2), -math.sqrt(2), -0.7517916, 2.3993573, -2.3993573,
     -1.2784645, 0.99, 6.0, -3.0, 3.0, 0.1, 1e-6, -1e-6, 15.0, -15.0, 30.0, -30.0, 88.0, 88.7,
     89.0, -88.0, -104.0, 710.0, 1e3, -1e3, 1e4, -1e4,
     # HardSwish minimum, Shrink / ThresholdedRelu variants' breakpoints, Mish inflection
     # points and minimum, tanh-Gelu inflection points and minimum
     -1.5, 1.5, 0.25, -0.25, 2.5, -2.5, -2.2563764, 1.4905712, -1.1924300, 1.4185040,
     -1.4185040, -0.7524600]
    + [k * math.pi / 2 for k in range(-12, 13)])


def _log_uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> Tensor:
    return 10 ** (math.log10(lo) + (math.log10(hi) - math.log10(lo))
                  * torch.rand(n, generator=gen, dtype=torch.float64))


def _signs(n: int, gen: torch.Generator) -> Tensor:
    return torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).double()


def random_boxes(n: int, seed: int = 0, positive: bool = False) -> tuple[Tensor, Tensor]:
    """``n`` float32 boxes from eight families (an eighth each): moderate boxes in [-20, 20];
    degenerate ``l == u``; tiny widths (1e-7 .. 1e-5, relative to the centre); huge boxes
    (|x| up to 1e4); offset boxes in the tails; boxes straddling a special point; boxes near
    float32 saturation; boxes with an endpoint exactly on a special point.  ``positive``
    reflects everything into ``x >= 0`` (with some ``l == 0``)."""
    gen = torch.Generator().manual_seed(seed)
    m = n // 8
    specials = torch.tensor(SPECIAL_POINTS, dtype=torch.float64)
    pick = lambda k: specials[torch.randint(len(specials), (k,), generator=gen)]  # noqa: E731
    rand = lambda k: torch.rand(k, generator=gen, dtype=torch.float64)  # noqa: E731
    families = []
    centre = 40 * rand(m) - 20
    families.append((centre, _log_uniform(m, 1e-3, 40, gen)))
    families.append((torch.cat([40 * rand(m - m // 2) - 20, pick(m // 2)]), torch.zeros(m)))
    centre = 40 * rand(m) - 20
    families.append((centre, _log_uniform(m, 1e-7, 1e-5, gen) * centre.abs().clamp_min(1)))
    families.append((2e3 * rand(m) - 1e3, 2e4 * rand(m)))
    families.append((_signs(m, gen) * _log_uniform(m, 30, 1e4, gen), 10 * rand(m)))
    sp = pick(m)
    lo_w, up_w = _log_uniform(m, 1e-6, 5, gen), _log_uniform(m, 1e-6, 5, gen)
    families.append((sp + (up_w - lo_w) / 2, lo_w + up_w))
    families.append((_signs(m, gen) * torch.tensor([15.0, 40, 88, 88.7, 89, 104, 710])[
        torch.randint(7, (m,), generator=gen)].double() + rand(m) - 0.5, 5 * rand(m)))
    rest = n - 7 * m
    sp, width = pick(rest), _log_uniform(rest, 1e-4, 20, gen)
    left = torch.rand(rest, generator=gen) < 0.5
    families.append((torch.where(left, sp + width / 2, sp - width / 2), width))
    centre = torch.cat([c for c, _ in families])
    width = torch.cat([w for _, w in families])
    lower = (centre - width / 2).float()
    upper = torch.maximum((centre + width / 2).float(), lower)
    if positive:
        a, b = lower.abs(), upper.abs()
        lower, upper = torch.minimum(a, b), torch.maximum(a, b)
        lower = torch.where(torch.arange(n) % 16 == 0, torch.zeros_like(lower), lower)
    return lower, upper


def sample_in_box(lower: Tensor, upper: Tensor, per_box: int = 64, seed: int = 1) -> Tensor:
    """``(n, per_box)`` float32 points in each box: both endpoints, the box's 0, its nearest
    multiple of pi/2 and integer (clamped into the box), then uniform points."""
    gen = torch.Generator().manual_seed(seed)
    l64, u64 = lower.double()[:, None], upper.double()[:, None]
    t = torch.rand(lower.shape[0], per_box, generator=gen, dtype=torch.float64)
    t[:, 0], t[:, 1] = 0.0, 1.0
    x = l64 + t * (u64 - l64)
    mid = (l64 + u64) / 2
    x[:, 2:3] = 0.0
    x[:, 3:4] = torch.round(mid / (math.pi / 2)) * (math.pi / 2)
    x[:, 4:5] = torch.round(mid)
    x = x.float()
    return torch.minimum(torch.maximum(x, lower[:, None]), upper[:, None])


def _finite(t: Tensor) -> Tensor:
    return torch.where(torch.isfinite(t), t, torch.zeros_like(t))


def violations(lhs: Tensor, rhs: Tensor, scale: Tensor, rtol: float) -> Tensor:
    """Mask where ``lhs <= rhs`` fails by more than ``rtol * scale`` (infinities compare
    exactly; NaN always fails)."""
    ok = (lhs <= rhs) | ((lhs - rhs) <= rtol * scale)
    return ~ok


def assert_below(slope: Tensor, bias: Tensor, x: Tensor, y: Tensor, rtol: float = 1e-12,
                 what: str = "") -> None:
    """``slope*x + bias <= y`` elementwise, evaluated in float64, up to ``rtol`` times the
    magnitudes involved (a few thousand float64 ulps: far below float32's own rounding)."""
    slope, bias, x, y = torch.broadcast_tensors(slope.double(), bias.double(), x.double(),
                                                y.double())
    term = torch.where(slope == 0, torch.zeros_like(x), slope * x)
    lhs = term + bias
    scale = _finite(term).abs() + _finite(bias).abs() + _finite(y).abs()
    bad = violations(lhs, y, scale, rtol) | torch.isnan(y)
    if bad.any():
        i = bad.nonzero()[0].tolist()
        raise AssertionError(f"{what}: {int(bad.sum())} violations, first at {i}: x={x[tuple(i)]!r}"
                             f" line={lhs[tuple(i)]!r} value={y[tuple(i)]!r}"
                             f" slope={slope[tuple(i)]!r} bias={bias[tuple(i)]!r}")


def assert_no_nan(*tensors: Tensor) -> None:
    for t in tensors:
        assert not torch.isnan(t).any(), "NaN in a relaxation"
