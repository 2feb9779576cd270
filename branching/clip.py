"""Domain clipping: shrink an input box to where the property can still be violated.

After a bound call, CROWN's final linear bound says, for every spec row ``r`` and every ``x`` in
the box, ``c_r . y(x) >= a_r . x + b_r``.  Clause ``k`` (rows ``r`` in ``k``, all of which must
hold) is violated at ``x`` only if ``c_r . y(x) <= d_r`` for each of its rows, so only where
``a_r . x + b_r <= d_r`` for each of them.  Per row and dimension this gives, in closed form,

    a_ri > 0:  x_i <= l_i + s_r / a_ri        a_ri < 0:  x_i >= u_i - s_r / |a_ri|
    with the slack  s_r = d_r - b_r - min over the box of a_r . x

(the other dimensions at their most favourable end).  A clause's box is the intersection of
its rows' boxes (empty when some ``s_r < 0``); the domain's new box is the bounding box of the
union of its open clauses' boxes, and a domain whose open clauses all have empty boxes is
proved.  The linear bound stays valid on every sub-box, so the children of a clipped box may
use it as their box.

Soundness in floating point: the arithmetic is float64 (a product of two float32 numbers is
exact there), the slack is padded by a few float32 ulps of the magnitudes that formed it, and
the new ends are moved out by a few float32 ulps of the box's scale and rounded outward to the
box's dtype, so rounding only ever keeps points in.
"""
from __future__ import annotations

import torch
from torch import Tensor

_SLACK_ULPS = 8.0   # float32 ulps of the row's magnitude added to its slack
_BOX_ULPS = 2.0    # float32 ulps of the box's scale added to each clipped end
_EPS32 = float(torch.finfo(torch.float32).eps)
_TINY = 1e-30       # absolute slack pad, for rows whose terms are all (near) zero


def clip_boxes(lower: Tensor, upper: Tensor, coeffs: Tensor, offset: Tensor,
               thresholds: Tensor, members: Tensor, open_clause: Tensor,
               passes: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """Shrink each box to the bounding box of the points that may violate an open clause.

    lower, upper: (B, n) boxes; coeffs (B, U, n), offset (B, U): linear lower bounds of the
    ``U`` bounded spec rows, valid on each box; thresholds: (U,) the rows' ``d_r``;
    members: (U, K) bool, row u belongs to clause k; open_clause: (B, K) bool, clauses not yet
    refuted on the box (others contribute nothing).  Rows of a clause missing from ``U``, and
    rows with a non-finite bound, constrain nothing.  passes: how often each clause's rows are
    applied, each pass to the box the previous one left.  Returns ``(lower, upper, proved)``:
    the new boxes, within the old ones and in their dtype, and (B,) bool for boxes where no
    open clause can be violated (their returned box is the old one)."""
    batch, n = lower.shape
    domain, clause = torch.nonzero(open_clause, as_tuple=True)            # (Q,) open pairs
    rows_in = members.T[clause]                                           # (Q, U)
    lo, up = lower.double()[domain], upper.double()[domain]               # (Q, n)
    a, b = coeffs[domain].double(), offset[domain].double()
    useless = ~torch.isfinite(a).all(dim=2)                               # (Q, U)
    if bool(useless.any()):
        a, b = torch.where(useless.unsqueeze(2), 0.0, a), torch.where(useless, -torch.inf, b)
    d = thresholds.double().to(lower.device)
    empty = torch.zeros(len(domain), dtype=torch.bool, device=lower.device)
    for _ in range(passes):
        lo, up, row_empty = _apply_rows(lo, up, a, b, d, rows_in)
        empty |= row_empty
    index = domain.unsqueeze(1).expand(-1, n)
    keep = (~empty).unsqueeze(1)
    new_lower = lower.new_full((batch, n), torch.inf, dtype=torch.float64).scatter_reduce(
        0, index, torch.where(keep, lo, torch.inf), "amin")
    new_upper = lower.new_full((batch, n), -torch.inf, dtype=torch.float64).scatter_reduce(
        0, index, torch.where(keep, up, -torch.inf), "amax")
    proved = new_lower[:, 0] > new_upper[:, 0]        # no open clause left a box (n >= 1)
    pad = _BOX_ULPS * _EPS32 * (lower.double().abs() + upper.double().abs()) + _TINY
    new_lower = torch.where(proved.unsqueeze(1), lower.double(), new_lower - pad)
    new_upper = torch.where(proved.unsqueeze(1), upper.double(), new_upper + pad)
    return (torch.maximum(lower, _round_down(new_lower, lower.dtype)),
            torch.minimum(upper, _round_up(new_upper, upper.dtype)), proved)


def _apply_rows(lo: Tensor, up: Tensor, a: Tensor, b: Tensor, d: Tensor,
                rows_in: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One pass of the closed form over the rows ``rows_in`` (Q, U) of each box (Q, n), all
    float64: the intersection of the rows' boxes and (Q,) whether it is empty.
    a: (Q, U, n); b: (Q, U); d: (U,)."""
    least = torch.minimum(a * lo.unsqueeze(1), a * up.unsqueeze(1))       # (Q, U, n)
    scale = least.abs().sum(dim=2) + b.abs() + d.abs()
    slack = d - b - least.sum(dim=2) + (_SLACK_ULPS * _EPS32) * scale + _TINY
    slack = torch.where(rows_in & torch.isfinite(slack), slack, torch.inf)   # (Q, U)
    ratio = slack.unsqueeze(2) / a
    new_up = torch.where(a > 0, lo.unsqueeze(1) + ratio, torch.inf).amin(dim=1).minimum(up)
    new_lo = torch.where(a < 0, up.unsqueeze(1) + ratio, -torch.inf).amax(dim=1).maximum(lo)
    empty = (slack < 0).any(dim=1) | (new_lo > new_up).any(dim=1)
    return new_lo, new_up, empty


def _round_down(value: Tensor, dtype: torch.dtype) -> Tensor:
    """``value`` in ``dtype``, never above it."""
    out = value.to(dtype)
    return torch.where(out.double() > value, torch.nextafter(out, out.new_tensor(-torch.inf)), out)


def _round_up(value: Tensor, dtype: torch.dtype) -> Tensor:
    """``value`` in ``dtype``, never below it."""
    out = value.to(dtype)
    return torch.where(out.double() < value, torch.nextafter(out, out.new_tensor(torch.inf)), out)
