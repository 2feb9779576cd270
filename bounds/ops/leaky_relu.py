"""LeakyRelu with slope ``alpha`` for x < 0 (algorithms.md 3.1), any real ``alpha``; Relu is
``alpha = 0`` (``bounds/ops/relu.py``).

``alpha <= 1``: convex, chord above, optimisable lower slope ``s`` in [alpha, 1] (line ``s x``).
``alpha > 1``: concave, chord below, optimisable upper slope in [1, alpha].
One parameter: the slope of the non-chord line.  Default ("adaptive"): 1 if ``u > -l`` else
alpha (exact on stable boxes).

Closed form, no float64: the line through the origin has bias exactly 0 and is valid for any
slope between alpha and 1.  The chord has slope ``a = (f(u+) - f(l-)) / (u+ - l-)`` with
``u+ = max(u, 0)``, ``l- = min(l, 0)`` (exact 1 or alpha on stable boxes) and the bias is
``max((a - alpha)|l-|, (1 - a) u+)`` (convex; ``min`` when concave), i.e. the line lies above
(below) ``f`` at both ends of ``[l-, u+]``, rounded outward by the factor ``1 + 4 eps`` (three
roundings of ``eps/2``).  Infinite bounds give a zero slope and an infinite bias ("no
information") or a flat line, never NaN.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Mapping

import torch
from torch import Tensor

from genbab.bounds.lines import Curve, chord_slope
from genbab.bounds.ops._closed_form import clamp_param, eps_of, needs_bound_grad
from genbab.bounds.ops._curve_rule import slope_rule
from genbab.bounds.relaxation import LinearRelaxation, OpRule


def _positive(x: Tensor) -> Tensor:
    """1.0 where x > 0, else 0.0 (NaN stays NaN)."""
    return torch.sign(x).clamp_(min=0.0)


@functools.lru_cache(maxsize=None)
def _rounded(alpha: float, dtype: torch.dtype) -> tuple[float, float]:
    """The largest ``dtype`` value <= alpha and the smallest >= alpha."""
    exact = torch.tensor(alpha, dtype=torch.float64)
    near = exact.to(dtype)
    down = near if near.double() <= exact else torch.nextafter(near, near.new_tensor(-math.inf))
    up = near if near.double() >= exact else torch.nextafter(near, near.new_tensor(math.inf))
    return float(down), float(up)


def _kink(slope: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, ...]:
    return (torch.zeros_like(lower),)


@functools.lru_cache(maxsize=None)
def _reference(op_type: str, alpha: float) -> OpRule:
    """The float64 exact-offset construction (``bounds.ops._curve_rule``), differentiable in
    the bounds; used where the bounds require gradients."""
    convex = alpha <= 1.0

    def value(x: Tensor) -> Tensor:
        return torch.where(x >= 0, x, alpha * x)

    def slope(x: Tensor) -> Tensor:
        return torch.where(x > 0, 1.0, alpha).to(x.dtype)

    def slopes(curve: Curve, lower: Tensor, upper: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        adaptive = torch.where(lower >= 0, 1.0, torch.where(
            upper <= 0, alpha, torch.where(upper > -lower, 1.0, alpha))).to(lower.dtype)
        chord = chord_slope(curve, lower, upper)
        return (adaptive, chord) if convex else (chord, adaptive)

    def slope_range(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        at_l, at_u = slope(lower), slope(upper)
        return torch.minimum(at_l, at_u), torch.maximum(at_l, at_u)

    curve = Curve(value=value, slope=slope, stationary=_kink)
    return slope_rule(op_type, curve, value, param_sides=("lower",) if convex else ("upper",),
                      slope_range=slope_range, slopes=slopes)


def make_kink_rule(op_type: str, alpha: float, binder=None) -> OpRule:
    """The rule for ``x if x >= 0 else alpha * x`` (Relu: ``alpha = 0``).  ``alpha`` need not
    be representable in the working dtype: slopes use its outward roundings."""
    convex = alpha <= 1.0

    def evaluate(x: Tensor) -> Tensor:
        return torch.relu(x) if alpha == 0.0 else torch.where(x >= 0, x, alpha * x)

    def bounded_value(x: Tensor, down: bool) -> Tensor:
        """A bound on f(x): x+ plus alpha * x- rounded down (``down``) or up."""
        if alpha == 0.0:
            return torch.relu(x)
        eps = eps_of(x)
        a_down, a_up = _rounded(alpha, x.dtype)
        left = x.clamp(max=0.0) * (a_up if down else a_down)     # alpha x- is decreasing in alpha
        grow = (alpha >= 0) == down                              # |.| must grow to move outward
        left.mul_((1 + 2 * eps) if grow else (1 - 2 * eps))
        tiny = float(torch.finfo(x.dtype).tiny)                 # subnormal products
        left.sub_(tiny) if down else left.add_(tiny)
        return left.add_(x.clamp(min=0.0))

    def interval(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        lo, hi = bounded_value(lower, True), bounded_value(upper, False)
        if alpha >= 0:                                           # increasing
            return lo, hi
        at_zero = bounded_value(torch.minimum(torch.maximum(lower.new_zeros(()), lower), upper),
                                True)
        lo = torch.minimum(torch.minimum(lo, bounded_value(upper, True)), at_zero)
        return lo, torch.maximum(bounded_value(lower, False), hi)

    def slope_at(x: Tensor) -> Tensor:
        """1 where x > 0 else alpha (rounded into [alpha, 1])."""
        a_down, a_up = _rounded(alpha, x.dtype)
        return torch.lerp(torch.full_like(x, a_up if convex else a_down), torch.ones_like(x),
                          _positive(x))

    def project(lower: Tensor, upper: Tensor, params: Tensor) -> Tensor:
        at_l, at_u = slope_at(lower), slope_at(upper)
        lo, hi = torch.minimum(at_l, at_u), torch.maximum(at_l, at_u)
        return clamp_param(params[0], lo, hi).unsqueeze(0)

    def default_slope(lower: Tensor, upper: Tensor) -> Tensor:
        """1 where u > -l else alpha (rounded into the slope range)."""
        a_down, a_up = _rounded(alpha, lower.dtype)
        wide_right = torch.add(lower, upper).sign_().clamp_(min=0.0).nan_to_num_(nan=0.0)
        if alpha == 0.0:
            return wide_right
        return torch.lerp(torch.full_like(lower, a_up if convex else a_down),
                          torch.ones_like(lower), wide_right)

    def chord(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        """Written with in-place steps: fresh allocations dominate at this arithmetic cost."""
        eps = eps_of(lower)
        l_neg, u_pos = lower.clamp(max=0.0), upper.clamp(min=0.0)
        # -1 where a product below may be inexact (l < 0; for Relu only l < 0 < u), else 0
        inexact = torch.sign(l_neg)
        if alpha == 0.0:
            inexact.mul_(torch.sign(u_pos))
        # only an empty width is replaced (rise is 0 there): clamping a subnormal width up to
        # the smallest normal number made the slope of a stable box [u, u] with subnormal u
        # differ from 1, and its line cut f (found by hypothesis at u = 1.5e-39 in float32)
        den = torch.sub(u_pos, l_neg)
        den.masked_fill_(den == 0, torch.finfo(lower.dtype).tiny)
        rise = u_pos if alpha == 0.0 else torch.add(u_pos, l_neg, alpha=-alpha)
        slope = torch.div(rise, den, out=den).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        a_down, a_up = _rounded(alpha, lower.dtype)
        at_left = l_neg.mul_(torch.sub(slope, a_down if convex else a_up)).neg_() \
            if alpha != 0.0 else l_neg.mul_(slope).neg_()
        at_left.nan_to_num_(nan=0.0, posinf=float("inf"), neginf=float("-inf"))
        at_right = u_pos.mul_(torch.neg(slope).add_(1.0))
        at_right.nan_to_num_(nan=0.0, posinf=float("inf"), neginf=float("-inf"))
        pick = torch.maximum if convex else torch.minimum
        bias = pick(at_left, at_right, out=at_left).mul_(1 + 4 * eps)
        # absolute error of products in the subnormal range (a few subnormal spacings); the
        # smallest *normal* number covers it without creating subnormals (slow on x86)
        tiny = float(torch.finfo(lower.dtype).tiny)
        bias.add_(inexact, alpha=-tiny if convex else tiny)
        return slope, bias

    def relax(lower: Tensor, upper: Tensor, params: Tensor | None) -> LinearRelaxation:
        if needs_bound_grad(lower, upper):
            return _reference(op_type, alpha).relax(lower, upper, params)
        slope = default_slope(lower, upper) if params is None \
            else project(lower, upper, params.to(lower.dtype))[0]
        chord_slope, chord_bias = chord(lower, upper)
        zero = torch.zeros_like(lower)
        if convex:
            return LinearRelaxation(slope, zero, chord_slope, chord_bias)
        return LinearRelaxation(chord_slope, chord_bias, slope, zero)

    def init_params(lower: Tensor, upper: Tensor) -> Tensor:
        return project(lower, upper, default_slope(lower, upper).unsqueeze(0))

    return OpRule(op_type=op_type, evaluate=evaluate, interval=interval, relax=relax,
                  init_params=init_params, project_params=project, num_params=1,
                  attrs={"alpha": alpha} if binder is not None else {}, binder=binder,
                  kinks=(0.0,), piecewise_linear=True)


def make_leaky_relu(attrs: Mapping[str, Any]) -> OpRule:
    unknown = set(attrs) - {"alpha"}
    if unknown:
        raise ValueError(f"LeakyRelu: unknown attributes {sorted(unknown)}")
    alpha = float(attrs.get("alpha", 0.01))
    if not torch.isfinite(torch.tensor(alpha)):
        raise ValueError(f"LeakyRelu: alpha must be finite, got {alpha}")
    return make_kink_rule("LeakyRelu", alpha, binder=make_leaky_relu)


LEAKY_RELU = make_leaky_relu({})
