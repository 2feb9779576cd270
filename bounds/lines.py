"""Sound lines by construction: choose a slope, then compute the exact offset.

Every relaxation in ``bounds/ops`` is built the same way.  Its *slopes* come from the usual
recipes (chord, tangent at a point, anchored tangent, optimisable parameter); its *biases* do
not come from a formula but from the exact extreme

    lower_bias = min_{x in [l, u]} f(x) - a_lo * x,      upper_bias = max_{x in [l, u]} f(x) - a_up * x.

For the functions we support, ``f(x) - a*x`` is extreme either at ``l``, at ``u`` or where
``f'(x) = a``, and those stationary points have closed forms (or are found by bisection on the
monotone pieces of ``f'``).  So the bias is the min/max over a handful of candidate points,
evaluated in float64 and then rounded outward to the working dtype.  Consequences:

* soundness never depends on the slope: a wrong table value, a rounding error in a chord slope,
  an optimiser's parameter anywhere at all, all give sound lines (just looser ones);
* degenerate boxes ``l == u`` and tiny widths need no special case;
* the only things to get right per op are ``f`` in float64 and the list of stationary points
  (a superset is fine: candidates are clamped into ``[l, u]`` and only ever lower the min).

Outward rounding: the float64 extreme is moved out by ``8 * eps64 * (|a| max(|l|,|u|) + |b|)``
(covering float64 rounding of ``f(p) - a*p``) and then rounded down (lower) or up (upper) to
the working dtype with ``nextafter``.  Non-finite results become "no information" lines
(slope 0, bias -inf/+inf; see ``bounds.relaxation``).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from genbab.bounds.relaxation import LinearRelaxation

_EPS64 = torch.finfo(torch.float64).eps


@dataclass(frozen=True)
class Curve:
    """A scalar function described by what the exact-offset construction needs.

    ``value`` and ``slope`` must be accurate in float64 and never raise on any real input.
    ``stationary(a, lower, upper)`` returns points where ``value' == a`` (all of them that may
    lie in ``[lower, upper]``; extra, NaN or infinite entries are harmless).  For piecewise
    linear functions it returns the kinks.  All arguments are float64 tensors.
    """

    value: Callable[[Tensor], Tensor]
    slope: Callable[[Tensor], Tensor]
    stationary: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, ...]]
    # For step functions (Sign, Floor) whose extremes are not attained at stationary points:
    # (lower, upper, slope, lowest) -> (a sound min/max of f(x) - slope*x, a point near it).
    custom_extreme: Callable[[Tensor, Tensor, Tensor, bool], tuple[Tensor, Tensor]] | None = None
    # Absolute bound on how far f(p) - a p at a returned stationary point p can exceed the true
    # extreme (nonzero only for roots found numerically; see ``bisection_slack``).
    stationary_slack: float = 0.0


def clamp_into(points: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """NaN becomes ``lower``; everything is clamped into ``[lower, upper]``."""
    points = torch.where(torch.isnan(points), lower, points)
    return torch.minimum(torch.maximum(points, lower), upper)


def extreme(curve: Curve, lower: Tensor, upper: Tensor, slope: Tensor,
            lowest: bool) -> tuple[Tensor, Tensor]:
    """Exact ``min`` (``lowest``) or ``max`` of ``f(x) - slope*x`` on ``[lower, upper]`` and a
    point attaining it.  float64 in, float64 out; NaN values count as unbounded."""
    if curve.custom_extreme is not None:
        return curve.custom_extreme(lower, upper, slope, lowest)
    points, values = _candidate_values(curve, lower, upper, slope, lowest)
    best, index = values.min(0) if lowest else values.max(0)
    return _slacken(curve, best, lowest), points.gather(0, index.unsqueeze(0)).squeeze(0)


def extreme_value(curve: Curve, lower: Tensor, upper: Tensor, slope: Tensor,
                  lowest: bool) -> Tensor:
    """The first half of ``extreme`` (the same values), without the point (an arg-reduction
    costs several times the reduction on CPU)."""
    if curve.custom_extreme is not None:
        return curve.custom_extreme(lower, upper, slope, lowest)[0]
    _, values = _candidate_values(curve, lower, upper, slope, lowest)
    return _slacken(curve, values.amin(0) if lowest else values.amax(0), lowest)


def _candidate_values(curve: Curve, lower: Tensor, upper: Tensor, slope: Tensor,
                      lowest: bool) -> tuple[Tensor, Tensor]:
    """The candidate points of ``extreme`` (ends, stationary points) and ``f(x) - slope*x``
    there, NaN made unbounded."""
    candidates = [lower, upper, *curve.stationary(slope, lower, upper)]
    points = torch.stack([clamp_into(torch.as_tensor(p, dtype=lower.dtype).expand_as(lower),
                                     lower, upper) for p in candidates])
    values = curve.value(points) - slope * points
    values = torch.nan_to_num(values, nan=float("-inf") if lowest else float("inf"),
                              posinf=float("inf"), neginf=float("-inf"))
    return points, values


def _slacken(curve: Curve, best: Tensor, lowest: bool) -> Tensor:
    if curve.stationary_slack:
        return best - curve.stationary_slack if lowest else best + curve.stationary_slack
    return best


def round_outward(value64: Tensor, dtype: torch.dtype, down: bool) -> Tensor:
    """Round float64 values to ``dtype`` so that the result is <= (``down``) or >= the input."""
    rounded = value64.to(dtype)
    if dtype == torch.float64:
        return rounded
    wrong = rounded.double() > value64 if down else rounded.double() < value64
    target = torch.full_like(rounded, float("-inf") if down else float("inf"))
    return torch.where(wrong, torch.nextafter(rounded, target), rounded)


def outward_bias(best: Tensor, reach: Tensor, lowest: bool, dtype: torch.dtype) -> Tensor:
    """A float64 extreme ``best`` of ``f(x) - (linear part)`` moved out by
    ``8 eps64 (reach + |best|)`` (``reach`` bounds the magnitude of the linear part on the box)
    and rounded outward to ``dtype``."""
    margin = torch.nan_to_num(8 * _EPS64 * (reach + best.abs()), nan=0.0, posinf=0.0)
    margin = margin + _absolute_floor(dtype)
    return round_outward(best - margin if lowest else best + margin, dtype, down=lowest)


def _absolute_floor(dtype: torch.dtype) -> float:
    """float64 arithmetic loses relative precision among subnormals (below ~1e-292); in a float64
    working dtype that absolute error must be covered too.  For narrower dtypes it is far below
    their own resolution and rounding outward covers it."""
    return 1e-280 if dtype == torch.float64 else 0.0


def _bias(curve: Curve, lower: Tensor, upper: Tensor, slope: Tensor, lowest: bool,
          dtype: torch.dtype) -> Tensor:
    best = extreme_value(curve, lower, upper, slope, lowest)
    reach = slope.abs() * torch.maximum(lower.abs(), upper.abs())
    return outward_bias(best, reach, lowest, dtype)


def no_information_lines(shape_like: Tensor) -> LinearRelaxation:
    zero = torch.zeros_like(shape_like)
    return LinearRelaxation(zero, torch.full_like(zero, float("-inf")),
                            zero.clone(), torch.full_like(zero, float("inf")))


def finalize(lower_slope: Tensor, lower_bias: Tensor, upper_slope: Tensor,
             upper_bias: Tensor) -> LinearRelaxation:
    """Replace any line with a non-finite slope or bias by the "no information" line."""
    inf = torch.tensor(float("inf"), dtype=lower_bias.dtype, device=lower_bias.device)
    good_lo = torch.isfinite(lower_slope) & torch.isfinite(lower_bias)
    good_up = torch.isfinite(upper_slope) & torch.isfinite(upper_bias)
    return LinearRelaxation(
        lower_slope=torch.where(good_lo, lower_slope, 0.0),
        lower_bias=torch.where(good_lo, lower_bias, -inf),
        upper_slope=torch.where(good_up, upper_slope, 0.0),
        upper_bias=torch.where(good_up, upper_bias, inf))


def sound_lines(curve: Curve, lower: Tensor, upper: Tensor, lower_slope: Tensor,
                upper_slope: Tensor) -> LinearRelaxation:
    """The tightest lines with the given slopes (cast to ``lower.dtype`` first), biases exact
    and rounded outward.  ``lower``/``upper`` in the working dtype; slopes any float dtype."""
    dtype = lower.dtype
    l64, u64 = lower.double(), upper.double()
    a_lo = torch.nan_to_num(lower_slope.to(dtype), nan=0.0)
    a_up = torch.nan_to_num(upper_slope.to(dtype), nan=0.0)
    b_lo = _bias(curve, l64, u64, a_lo.double(), True, dtype)
    b_up = _bias(curve, l64, u64, a_up.double(), False, dtype)
    return finalize(a_lo, b_lo, a_up, b_up)


def sound_interval(curve: Curve, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """Exact ``[min f, max f]`` on the box, rounded outward (slope-0 lines)."""
    dtype = lower.dtype
    l64, u64 = lower.double(), upper.double()
    zero = torch.zeros_like(l64)
    lo = extreme_value(curve, l64, u64, zero, lowest=True)
    hi = extreme_value(curve, l64, u64, zero, lowest=False)
    lo = torch.nan_to_num(lo, nan=float("-inf"))
    hi = torch.nan_to_num(hi, nan=float("inf"))
    floor = _absolute_floor(dtype)
    lo = lo - 8 * _EPS64 * torch.nan_to_num(lo.abs(), posinf=0.0) - floor
    hi = hi + 8 * _EPS64 * torch.nan_to_num(hi.abs(), posinf=0.0) + floor
    return round_outward(lo, dtype, down=True), round_outward(hi, dtype, down=False)


def chord_slope(curve: Curve, lower: Tensor, upper: Tensor) -> Tensor:
    """``(f(u) - f(l)) / (u - l)`` in float64; 0 on degenerate boxes (any slope is exact at a
    point, and 0 carries no spurious dependence); non-finite becomes 0 as well."""
    width = upper - lower
    wide = width > 0
    rise = curve.value(upper) - curve.value(lower)
    slope = torch.where(wide, rise / torch.where(wide, width, 1.0), 0.0)
    return torch.nan_to_num(slope, nan=0.0, posinf=0.0, neginf=0.0)


_TABLE_SIZE = 1 << 16


@functools.lru_cache(maxsize=32)
def _slope_table(slope_fn: Callable[[Tensor], Tensor], piece: tuple[float, float],
                 device: str) -> tuple[Tensor, Tensor, bool]:
    """Grid ``xs`` on the piece and ``slope_fn(xs)``, ordered so the values increase."""
    xs = torch.linspace(piece[0], piece[1], _TABLE_SIZE + 1, dtype=torch.float64, device=device)
    values = slope_fn(xs)
    increasing = bool(values[-1] >= values[0])
    if not increasing:
        xs, values = xs.flip(0), values.flip(0)
    return xs, values, increasing


# Bisection stops once every bracket is below this width.  The slack it costs is
# ``max |f''| * width**2 / 2``, about 2e-10 (far below float32 rounding of a bias); a bracket
# of 1.2e-9 (19 steps on Gelu's widest piece instead of 5) made Gelu's relaxation 2.8x slower.
_FINAL_BRACKET = 2e-5


def _steps(piece: tuple[float, float]) -> int:
    """Bisection steps after the table lookup (whose cell is the first bracket) for every
    final bracket to be below ``_FINAL_BRACKET``."""
    cell = (piece[1] - piece[0]) / _TABLE_SIZE
    return max(0, math.ceil(math.log2(cell / _FINAL_BRACKET)))


def bisection_slack(pieces: tuple[tuple[float, float], ...], curvature_bound: float) -> float:
    """Bound on ``g(p) - g(p*)`` for ``g = f - a x`` when ``p`` is within the final bisection
    bracket of the true stationary point ``p*``: ``max |f''| * width**2 / 2``."""
    width = max((b - a) / _TABLE_SIZE / 2 ** _steps((a, b)) for a, b in pieces)
    return curvature_bound * width * width / 2


_STACK_BELOW = 2048   # elements: see roots_on_monotone_pieces (equal speed near 2,000)


def _roots_on_piece(slope_fn: Callable[[Tensor], Tensor], target: Tensor,
                    piece: tuple[float, float]) -> Tensor:
    xs, values, _ = _slope_table(slope_fn, piece, str(target.device))
    index = torch.searchsorted(values, target.contiguous()).clamp(1, _TABLE_SIZE)
    lo, hi = xs[index - 1], xs[index]
    for _ in range(_steps(piece)):
        mid = (lo + hi) / 2
        below = slope_fn(mid) < target      # the root lies beyond mid in table order
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (lo + hi) / 2


@functools.lru_cache(maxsize=32)
def _stacked_tables(slope_fn: Callable[[Tensor], Tensor], pieces: tuple[tuple[float, float], ...],
                    device: str) -> tuple[Tensor, Tensor]:
    """Every piece's ``_slope_table`` stacked, ``(pieces, _TABLE_SIZE + 1)`` each."""
    tables = [_slope_table(slope_fn, piece, device) for piece in pieces]
    return torch.stack([t[0] for t in tables]), torch.stack([t[1] for t in tables])


def roots_on_monotone_pieces(slope_fn: Callable[[Tensor], Tensor], target: Tensor,
                             pieces: tuple[tuple[float, float], ...]) -> tuple[Tensor, ...]:
    """For each interval ``(a, b)`` on which ``slope_fn`` is monotone: a point where it equals
    ``target`` (an end of the interval if there is none).  float64.  A cached table of
    ``slope_fn`` on the piece brackets the root within one grid cell, then vectorised
    bisection shrinks the bracket below ``_FINAL_BRACKET``; the curve declares the resulting
    error of the extreme value as ``stationary_slack`` (``bisection_slack``), so it stays
    sound.  Used for stationary points without a closed form (Gelu, SiLU, Mish); the pieces
    must reach far enough that ``f`` is exactly linear beyond them.

    Small inputs bisect all pieces together, as one ``(pieces, n)`` tensor, each piece for its
    own number of steps (bit for bit the points of the per-piece path, so the branching-point
    tables' fingerprints hold): there each step's cost is mostly per-call overhead, so three
    pieces cost about one piece's steps (Gelu on 100 elements: 0.2-0.3 instead of 0.44 ms).  From ``_STACK_BELOW`` elements the work itself
    dominates and each piece takes only its own steps (50,000 elements: 31 ms against 46)."""
    if target.numel() >= _STACK_BELOW:
        return tuple(_roots_on_piece(slope_fn, target, piece) for piece in pieces)
    xs, values = _stacked_tables(slope_fn, pieces, str(target.device))
    flat = target.reshape(1, -1).expand(len(pieces), -1).contiguous()
    index = torch.searchsorted(values, flat).clamp(1, _TABLE_SIZE)
    lo, hi = xs.gather(1, index - 1), xs.gather(1, index)
    steps = [_steps(piece) for piece in pieces]
    limit = torch.tensor(steps, device=flat.device).unsqueeze(1)
    for step in range(max(steps)):
        mid = (lo + hi) / 2
        below = slope_fn(mid) < flat        # the root lies beyond mid in table order
        live = limit > step
        lo = torch.where(below & live, mid, lo)   # a piece past its own steps stays put, so
        hi = torch.where(~below & live, mid, hi)  # both paths give the same points
    return tuple(((lo + hi) / 2).reshape(len(pieces), *target.shape).unbind(0))
