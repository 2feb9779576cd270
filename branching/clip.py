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
               passes: int = 1, surrogates: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Shrink each box to the bounding box of the points that may violate an open clause.

    lower, upper: (B, n) boxes; coeffs (B, U, n), offset (B, U): linear lower bounds of the
    ``U`` bounded spec rows, valid on each box; thresholds: (U,) the rows' ``d_r``;
    members: (U, K) bool, row u belongs to clause k; open_clause: (B, K) bool, clauses not yet
    refuted on the box (others contribute nothing).  Rows of a clause missing from ``U``, and
    rows with a non-finite bound, constrain nothing.  passes: how often each clause's rows are
    applied, each pass to the box the previous one left.  surrogates: also apply, for each
    pair of rows of a clause, their best convex combination (see ``_with_surrogates``).
    Returns ``(lower, upper, proved)``: the new boxes, within the old ones and in their dtype,
    and (B,) bool for boxes where no open clause can be violated (their returned box is the
    old one).  Boxes with an infinite end are left as they are."""
    batch, n = lower.shape
    finite = torch.isfinite(lower).all(dim=1) & torch.isfinite(upper).all(dim=1)
    domain, clause = torch.nonzero(open_clause & finite.unsqueeze(1), as_tuple=True)  # (Q,)
    local = _row_table(members)[clause]                  # (Q, R): the clause's own rows
    rows_in, local = local >= 0, local.clamp(min=0)
    lo, up = lower.double()[domain], upper.double()[domain]               # (Q, n)
    owner = domain.unsqueeze(1)
    a, b = coeffs[owner, local].double(), offset[owner, local].double()  # (Q, R, n), (Q, R)
    d = thresholds.double().to(lower.device)[local]
    rows_in = rows_in & torch.isfinite(a).all(dim=2) & torch.isfinite(b - d)  # usable rows
    a = torch.where(rows_in.unsqueeze(2), a, 0.0)
    b, mag = torch.where(rows_in, b - d, 0.0), torch.where(rows_in, b.abs() + d.abs(), 0.0)
    if surrogates and a.shape[1] > 1:
        a, b, mag, rows_in = _with_surrogates(lo, up, (a, b, mag, rows_in))
    empty = torch.zeros(len(domain), dtype=torch.bool, device=lower.device)
    for _ in range(passes):
        lo, up, row_empty = _apply_rows(lo, up, a, b, mag, rows_in)
        empty |= row_empty
    index = domain.unsqueeze(1).expand(-1, n)
    keep = (~empty).unsqueeze(1)
    new_lower = lower.new_full((batch, n), torch.inf, dtype=torch.float64).scatter_reduce(
        0, index, torch.where(keep, lo, torch.inf), "amin")
    new_upper = lower.new_full((batch, n), -torch.inf, dtype=torch.float64).scatter_reduce(
        0, index, torch.where(keep, up, -torch.inf), "amax")
    proved = (new_lower[:, 0] > new_upper[:, 0]) & finite   # no open clause left a box
    same = (proved | ~finite).unsqueeze(1)                    # (unbounded boxes: not clipped)
    pad = _BOX_ULPS * _EPS32 * (lower.double().abs() + upper.double().abs()) + _TINY
    new_lower = torch.where(same, lower.double(), new_lower - pad)
    new_upper = torch.where(same, upper.double(), new_upper + pad)
    return (torch.maximum(lower, _round_down(new_lower, lower.dtype)),
            torch.minimum(upper, _round_up(new_upper, upper.dtype)), proved)


def _apply_rows(lo: Tensor, up: Tensor, a: Tensor, b: Tensor, mag: Tensor,
                rows_in: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One pass of the closed form over the rows ``rows_in`` (Q, U) of each box (Q, n), all
    float64: the intersection of the boxes of ``a . x + b <= 0`` and (Q,) whether it is
    empty.  a: (Q, U, n); b: (Q, U); mag: (Q, U) magnitude of what formed ``b`` beyond
    itself (the slack is padded in proportion)."""
    least = torch.minimum(a * lo.unsqueeze(1), a * up.unsqueeze(1))       # (Q, U, n)
    scale = least.abs().sum(dim=2) + b.abs() + mag
    slack = -b - least.sum(dim=2) + (_SLACK_ULPS * _EPS32) * scale + _TINY
    slack = torch.where(rows_in & torch.isfinite(slack), slack, torch.inf)   # (Q, U)
    ratio = slack.unsqueeze(2) / a
    new_up = torch.where(a > 0, lo.unsqueeze(1) + ratio, torch.inf).amin(dim=1).minimum(up)
    new_lo = torch.where(a < 0, up.unsqueeze(1) + ratio, -torch.inf).amax(dim=1).maximum(lo)
    empty = (slack < 0).any(dim=1) | (new_lo > new_up).any(dim=1)
    return new_lo, new_up, empty


_MAX_PAIRS = 16   # most row pairs per clause that get a surrogate row


def _row_table(members: Tensor) -> Tensor:
    """(K, R) long: the rows of each clause (``members`` (U, K)), -1 padded."""
    if members.shape[0] == 0:
        return torch.full((members.shape[1], 1), -1, dtype=torch.long, device=members.device)
    counts = members.sum(dim=0)
    width = max(1, int(counts.max()))
    order = torch.argsort((~members).T.to(torch.int8), dim=1, stable=True)[:, :width]  # (K, R)
    filled = torch.arange(width, device=members.device).unsqueeze(0) < counts.unsqueeze(1)
    return torch.where(filled, order, -1)


def _with_surrogates(lo: Tensor, up: Tensor, rows: tuple[Tensor, Tensor, Tensor, Tensor]
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Append, for each pair of rows ``i < j`` of the clause (at most ``_MAX_PAIRS``), the
    convex combination ``lam * row_i + (1 - lam) * row_j`` (also <= 0 wherever both are)
    whose minimum over the box is largest: it can refute a clause that neither row refutes
    alone.  The best ``lam`` is one of the breakpoints where a combined coefficient changes
    sign.  rows: ``(a (Q, R, n), b (Q, R), mag (Q, R), rows_in (Q, R))``."""
    a, b, mag, rows_in = rows
    count = a.shape[1]
    pairs = [(x, y) for x in range(count) for y in range(x + 1, count)][:_MAX_PAIRS]
    i = torch.tensor([p[0] for p in pairs], device=a.device)                   # (P,)
    j = torch.tensor([p[1] for p in pairs], device=a.device)
    valid = rows_in[:, i] & rows_in[:, j]                                      # (Q, P)
    a_i, a_j, b_i, b_j = a[:, i], a[:, j], b[:, i], b[:, j]                    # (Q, P, n), (Q, P)
    best = _best_mix(lo, up, a_i, a_j, b_i, b_j).unsqueeze(2)                  # (Q, P, 1)
    reach = (a.abs() * torch.maximum(lo.abs(), up.abs()).unsqueeze(1)).sum(dim=2) + mag
    a_s = best * a_i + (1 - best) * a_j
    best = best.squeeze(2)
    b_s = best * b_i + (1 - best) * b_j
    mag_s = best * reach[:, i] + (1 - best) * reach[:, j]
    valid &= torch.isfinite(b_s)
    return (torch.cat([a, torch.where(valid.unsqueeze(2), a_s, 0.0)], dim=1),
            torch.cat([b, torch.where(valid, b_s, 0.0)], dim=1),
            torch.cat([mag, torch.where(valid, mag_s, 0.0)], dim=1),
            torch.cat([rows_in, valid], dim=1))


def _best_mix(lo: Tensor, up: Tensor, a_i: Tensor, a_j: Tensor, b_i: Tensor,
              b_j: Tensor) -> Tensor:
    """(Q, P) the ``lam`` in [0, 1] maximising the minimum over the box of
    ``lam * (a_i . x + b_i) + (1 - lam) * (a_j . x + b_j)``: a concave piecewise-linear
    function of ``lam``, so its maximum is at 0, 1 or a breakpoint where a combined
    coefficient is 0.  Only a choice (any ``lam`` gives a sound row), so float32."""
    a_i, a_j, diff = a_i.float(), a_j.float(), (a_i - a_j).float()
    centre, radius = ((lo + up) / 2).float(), ((up - lo) / 2).float()
    cross = torch.where(a_i * a_j < 0, a_j / torch.where(diff == 0, 1.0, -diff), 0.0)
    lam = torch.cat([cross, torch.ones_like(cross[..., :1])], dim=2).clamp(0.0, 1.0)
    at_i = torch.einsum("qpn,qn->qp", a_i, centre) + b_i.float()
    at_j = torch.einsum("qpn,qn->qp", a_j, centre) + b_j.float()
    comb = a_j.unsqueeze(2) + lam.unsqueeze(3) * diff.unsqueeze(2)             # (Q, P, L, n)
    spread = torch.einsum("qpln,qn->qpl", comb.abs(), radius)
    value = at_j.unsqueeze(2) + lam * (at_i - at_j).unsqueeze(2) - spread
    value = torch.nan_to_num(value, nan=-torch.inf)
    return lam.gather(2, value.argmax(dim=2, keepdim=True)).squeeze(2).double()


def _round_down(value: Tensor, dtype: torch.dtype) -> Tensor:
    """``value`` in ``dtype``, never above it."""
    out = value.to(dtype)
    return torch.where(out.double() > value, torch.nextafter(out, out.new_tensor(-torch.inf)), out)


def _round_up(value: Tensor, dtype: torch.dtype) -> Tensor:
    """``value`` in ``dtype``, never below it."""
    out = value.to(dtype)
    return torch.where(out.double() < value, torch.nextafter(out, out.new_tensor(torch.inf)), out)
