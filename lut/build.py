"""Offline optimisation of the branching-point tables (algorithms.md section 6).

    python -m genbab.lut.build [SIGNATURE ...] [--step S] [--step-2d S] [--refine M] [--out DIR]
    python -m genbab.lut.build --check     # which shipped tables are stale (exit 1 if any)

Objective.  Splitting variable 0 of a box at ``p`` gives two children; ``loss(p)`` is the sum
over both children and every consumer of the integral over the child box of
``upper line - lower line`` of the consumer's *default* relaxation (``rule.relax(.., None)``),
in closed form for affine gaps.  The loss of a child depends only on the child box, and every
candidate lies on a grid, so the loss of every child box is computed once and the search is a
min over sums of two table entries ("dynamic programming"):

* grid of variable 0: ``R_l + k*step`` (``R = [-5, 5]``; ``[0, 5]`` for Sqrt, ``[1e-3, 5]``
  for Log and Reciprocal), ``n`` values; boxes are all grid pairs ``i < k``;
* candidates: every point of the ``refine``-times finer grid strictly inside the box, so wide
  boxes get up to ``refine * (n - 1) - 1`` candidates (1999 at the defaults, the reference uses
  1000) and the midpoint is always one of them (``refine`` is even);
* child losses ``F[a, b]`` for fine-grid boxes with at least one coarse end (about
  ``refine * n**2 / 2`` relaxation evaluations, the dominant cost on a CPU);
* per box, the argmin over candidates; ties (within 1e-9 relative) go to the candidate nearest
  the midpoint.  Stored: the offset of the argmin from the box midpoint in fine steps.

Two-variable tables (a Mul consumer: the other factor is variable 1, grid step 0.2) do the same
for every pair of the other variable's grid at once.

Versioning: ``relaxation_fingerprint(key)`` hashes the default relaxations of the key's ops on
a fixed set of probe boxes (values to 9 significant digits), with the table format and the
objective version.  It changes exactly when the relaxations change, not when their source is
reformatted.  The manifest also records ``source_sha256`` of ``bounds/`` for information.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from genbab.bounds.ops import make_rule
from genbab.bounds.relaxation import OpRule
from genbab.verifier.threads import single_thread
from genbab.lut.table import (DATA_DIR, FORMAT_VERSION, MANIFEST_NAME, BranchPoints, Grid,
                              TableError, canonical_key, key_dimension, table_file_name)

OBJECTIVE_VERSION = 1            # bump when the objective or the search changes
SHIPPED = ("Sigmoid", "Tanh", "Sin", "Cos", "Cos+Sin", "Exp", "Pow2", "Pow3", "Reciprocal",
           "Sqrt", "Log", "Erf", "Softplus", "Mul@0", "Mul@1", "Atan", "Softsign", "LogSigmoid",
           "Celu", "Mish", "GeluTanh", "Gelu", "SiLU")
RANGE = (-5.0, 5.0)
POSITIVE_LOWER = 1e-3            # grid start for ops defined on x > 0 only
STEP_1D, STEP_2D, REFINE = 0.01, 0.2, 2
_CHUNK = 1 << 16
_TIE = 1e-9
_BLOCK = 128
_BOUNDS_DIR = Path(__file__).resolve().parent.parent / "bounds"


def parse_part(part: str) -> tuple[OpRule, int | None]:
    """(rule, slot) for one key part: ``"Sigmoid"``, ``"Pow3"``, ``"Mul@1"`` (slot 1),
    ``"GeluTanh"`` (Gelu with ``approximate = "tanh"``)."""
    if part.startswith("Mul@"):
        slot = int(part[4:])
        if slot not in (0, 1):
            raise ValueError(f"Mul slot must be 0 or 1, got {part!r}")
        return make_rule("Mul"), slot
    if part.startswith("Pow") and part != "Pow":
        return make_rule("Pow", {"exponent": float(part[3:])}), None
    if part == "GeluTanh":
        return make_rule("Gelu", {"approximate": "tanh"}), None
    return make_rule(part), None


def _grid_start(part: str, rule: OpRule) -> float:
    """Where variable 0's grid starts for one consumer: ``RANGE[0]``; 0 for ops defined on
    ``x >= 0`` (Sqrt, non-integer powers); ``POSITIVE_LOWER`` for ops with a pole or ``-inf``
    at 0 (Log, Reciprocal, negative powers)."""
    exponent = float(part[3:]) if part.startswith("Pow") and part != "Pow" else None
    if part in ("Log", "Reciprocal") or (exponent is not None and exponent < 0):
        return POSITIVE_LOWER
    if part == "Sqrt" or (exponent is not None and exponent != round(exponent)):
        return 0.0
    return max(RANGE[0], rule.input_range[0])


def default_grid(key: str, step: float = STEP_1D, step_2d: float = STEP_2D,
                 refine: int = REFINE) -> Grid:
    """The grid of a key: variable 0 over ``RANGE`` (from 0 or ``POSITIVE_LOWER`` for ops
    defined on ``x >= 0`` or ``x > 0``, see ``_grid_start``), a Mul's other factor over
    ``RANGE``."""
    if refine < 2 or refine % 2:
        raise ValueError(f"refine must be even and >= 2 (the midpoint is a candidate), "
                         f"got {refine}")
    parts = canonical_key(key).split("+")
    lower = max(_grid_start(p, parse_part(p)[0]) for p in parts)
    step0 = step if key_dimension(key) == 1 else step_2d
    n0 = int(math.floor((RANGE[1] - lower) / step0 + 1e-9)) + 1
    if key_dimension(key) == 1:
        return Grid((lower,), (step0,), (n0,), refine)
    n1 = int(math.floor((RANGE[1] - RANGE[0]) / step_2d + 1e-9)) + 1
    return Grid((lower, RANGE[0]), (step0, step_2d), (n0, n1), refine)


def _integral(gap_w0: Tensor, gap_w1: Tensor | None, gap_b: Tensor,
              boxes: list[tuple[Tensor, Tensor]]) -> Tensor:
    """Closed-form integral of ``gap_w0 z0 (+ gap_w1 z1) + gap_b`` over the box."""
    (l0, u0) = boxes[0]
    w0 = u0 - l0
    if gap_w1 is None:
        return gap_w0 * (u0 * u0 - l0 * l0) / 2 + gap_b * w0
    (l1, u1) = boxes[1]
    w1 = u1 - l1
    return (gap_w0 * (u0 * u0 - l0 * l0) / 2 * w1 + gap_w1 * (u1 * u1 - l1 * l1) / 2 * w0
            + gap_b * w0 * w1)


def _part_loss(part: str, boxes: list[tuple[Tensor, Tensor]]) -> Tensor:
    rule, slot = parse_part(part)
    (l0, u0) = boxes[0]
    if slot is None:
        rel = rule.relax(l0, u0, None)
        area = _integral(rel.upper_slope - rel.lower_slope, None,
                         rel.upper_bias - rel.lower_bias, boxes[:1])
        return area * (boxes[1][1] - boxes[1][0]) if len(boxes) > 1 else area
    (l1, u1) = boxes[1]
    lower, upper = ((l0, l1), (u0, u1)) if slot == 0 else ((l1, l0), (u1, u0))
    rel = rule.relax(lower, upper, None)
    dx, dy = rel.upper_x - rel.lower_x, rel.upper_y - rel.lower_y
    own, other = (dx, dy) if slot == 0 else (dy, dx)
    return _integral(own, other, rel.upper_bias - rel.lower_bias, boxes)


def box_losses(key: str, lower: Tensor, upper: Tensor, other_lower: Tensor | None = None,
               other_upper: Tensor | None = None) -> Tensor:
    """Sum over the key's consumers of the integral of (upper - lower line) of the default
    relaxation over each box (float64, 1-D tensors; ``inf`` where a relaxation says nothing)."""
    boxes = [(lower.double(), upper.double())]
    if key_dimension(key) == 2:
        if other_lower is None or other_upper is None:
            raise ValueError(f"{key!r} needs the other factor's bounds")
        boxes.append((other_lower.double(), other_upper.double()))
    total = torch.zeros_like(boxes[0][0])
    for part in canonical_key(key).split("+"):
        total = total + _part_loss(part, boxes)
    return torch.nan_to_num(total, nan=math.inf)


def split_loss(key: str, lower: Tensor, upper: Tensor, point: Tensor,
               other_lower: Tensor | None = None, other_upper: Tensor | None = None) -> Tensor:
    """The section 6 objective: losses of ``[lower, point]`` plus ``[point, upper]``."""
    return (box_losses(key, lower, point, other_lower, other_upper)
            + box_losses(key, point, upper, other_lower, other_upper))


def _grid_values(grid: Grid, v: int, fine: bool = False) -> Tensor:
    m = grid.refine if fine else 1
    count = m * (grid.size[v] - 1) + 1
    return grid.lower[v] + torch.arange(count, dtype=torch.float64) * (grid.step[v] / m)


def _other_pairs(grid: Grid) -> tuple[Tensor, Tensor] | None:
    """All pairs ``i < k`` of variable 1's grid, in ``pair_index`` order."""
    if len(grid.size) == 1:
        return None
    values = _grid_values(grid, 1)
    i, k = torch.triu_indices(grid.size[1], grid.size[1], offset=1)
    return values[i], values[k]


@functools.lru_cache(maxsize=3)
def _part_child_losses(part: str, grid: Grid) -> Tensor:
    """``F[a, b, q]``: one consumer's loss on the fine-grid box ``[c_a, c_b]`` (times the other
    variable's pair ``q``), for ``a < b`` with ``a`` or ``b`` on the coarse grid; else inf."""
    m, fine = grid.refine, _grid_values(grid, 0, fine=True)
    count = fine.numel()
    a, b = torch.triu_indices(count, count, offset=1)
    keep = (a % m == 0) | (b % m == 0)
    a, b = a[keep], b[keep]
    others = _other_pairs(grid)
    q = 1 if others is None else others[0].numel()
    boxes = [(fine[a].repeat_interleave(q), fine[b].repeat_interleave(q))]
    if others is not None:
        boxes.append((others[0].repeat(a.numel()), others[1].repeat(a.numel())))
    losses = _chunked_part_losses(part, boxes)
    table = torch.full((count, count, q), math.inf, dtype=torch.float64)
    table[a, b] = losses.view(-1, q)
    return table


def _chunked_part_losses(part: str, boxes: list[tuple[Tensor, Tensor]]) -> Tensor:
    out = []
    for start in range(0, boxes[0][0].numel(), _CHUNK):
        chunk = [tuple(t[start:start + _CHUNK] for t in box) for box in boxes]
        out.append(torch.nan_to_num(_part_loss(part, chunk), nan=math.inf))
    return torch.cat(out)


def _optimise(child: Tensor, grid: Grid) -> tuple[Tensor, Tensor, Tensor]:
    """Per coarse box (pair index major, other pair minor): (offset of the best candidate from
    the midpoint in fine steps, best loss, midpoint loss).  The search runs in float32 over
    blocks of boxes; the winner's loss is then recomputed in float64 and the midpoint kept
    unless the winner beats it by more than a relative ``_TIE``."""
    m, n = grid.refine, grid.size[0]
    ends = child[:, ::m].float().contiguous()        # (M, n, q): boxes [c_j, g_k]
    offsets, best_losses, mid_losses = [], [], []
    for i in range(n - 1):
        a = m * i
        starts = child[a].float()                     # (M, q): boxes [g_i, c_j]
        for k0 in range(i + 1, n, _BLOCK):
            k1 = min(k0 + _BLOCK, n)
            split = starts[a + 1:m * (k1 - 1), None] + ends[a + 1:m * (k1 - 1), k0:k1]
            js = a + 1 + split.argmin(0)              # (K, q); inf above the diagonal
            ks = torch.arange(k0, k1)[:, None].expand_as(js)
            best = child[a].gather(0, js) + child[js, m * ks, torch.arange(js.shape[1])]
            mid = (m * (i + ks) // 2)
            mid_loss = child[a].gather(0, mid) + child[mid, m * ks, torch.arange(js.shape[1])]
            keep_mid = ~(best < mid_loss * (1 - _TIE))
            offsets.append(torch.where(keep_mid, 0, js - mid))
            best_losses.append(torch.where(keep_mid, mid_loss, best))
            mid_losses.append(mid_loss)
    return torch.cat(offsets), torch.cat(best_losses), torch.cat(mid_losses)


def build_table(key: str, grid: Grid) -> tuple[np.ndarray, dict]:
    """Optimise one table: (offsets, flat in ``Table`` order, as int16/int32; statistics)."""
    with single_thread():   # many small kernels (verifier/threads.py)
        return _build_table(canonical_key(key), grid)


def _build_table(key: str, grid: Grid) -> tuple[np.ndarray, dict]:
    start = time.perf_counter()
    child = sum(_part_child_losses(part, grid) for part in key.split("+"))
    evaluated = time.perf_counter() - start
    offsets, best, mid = _optimise(child, grid)
    finite = torch.isfinite(mid) & (mid > 0)
    ratio = (best[finite] / mid[finite])
    dtype = np.int16 if offsets.abs().max() < 2 ** 15 else np.int32
    stats = {"boxes": int(offsets.numel()), "build_seconds": round(time.perf_counter() - start, 1),
             "relaxation_seconds": round(evaluated, 1),
             "mean_loss_ratio_vs_midpoint": round(float(ratio.mean()), 4),
             "min_loss_ratio_vs_midpoint": round(float(ratio.min()), 4),
             "fraction_not_midpoint": round(float((offsets != 0).double().mean()), 4)}
    return offsets.flatten().numpy().astype(dtype), stats


def _probe_boxes(grid: Grid, v: int, count: int) -> tuple[Tensor, Tensor]:
    values = torch.linspace(grid.lower[v], grid.upper[v], count, dtype=torch.float64)
    i, k = torch.triu_indices(count, count)          # includes degenerate boxes
    return values[i], values[k]


@functools.lru_cache(maxsize=None)
def relaxation_fingerprint(key: str) -> str:
    """sha256 of the default relaxations of ``key``'s ops on fixed probe boxes (9 significant
    digits), the table format and the objective version."""
    key = canonical_key(key)
    grid = default_grid(key)
    digest = hashlib.sha256(f"{FORMAT_VERSION}|{OBJECTIVE_VERSION}|{key}".encode())
    l0, u0 = _probe_boxes(grid, 0, 17)
    for part in key.split("+"):
        rule, slot = parse_part(part)
        if slot is None:
            rel = rule.relax(l0, u0, None)
            fields = (rel.lower_slope, rel.lower_bias, rel.upper_slope, rel.upper_bias)
        else:
            l1, u1 = _probe_boxes(grid, 1, 7)
            xl, xu = l0.repeat_interleave(l1.numel()), u0.repeat_interleave(l1.numel())
            yl, yu = l1.repeat(l0.numel()), u1.repeat(l0.numel())
            rel = rule.relax((xl, yl), (xu, yu), None)
            fields = (rel.lower_x, rel.lower_y, rel.lower_bias, rel.upper_x, rel.upper_y,
                      rel.upper_bias)
        digest.update(part.encode())
        for field in fields:
            digest.update(" ".join(f"{v:.9g}" for v in field.double().tolist()).encode())
    return digest.hexdigest()


def source_sha256() -> str:
    """sha256 of every ``bounds/**/*.py`` (for information; staleness uses the fingerprint)."""
    digest = hashlib.sha256()
    for path in sorted(_BOUNDS_DIR.rglob("*.py")):
        digest.update(path.relative_to(_BOUNDS_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def write_table(directory: Path, key: str, grid: Grid, offsets: np.ndarray, stats: dict) -> None:
    """Save ``<key>.npz`` and merge its entry into the manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    key = canonical_key(key)
    np.savez_compressed(directory / table_file_name(key), offsets=offsets)
    manifest_path = directory / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest["format_version"] = FORMAT_VERSION
    manifest.setdefault("tables", {})[key] = {
        "file": table_file_name(key), "format_version": FORMAT_VERSION,
        "objective_version": OBJECTIVE_VERSION, "fingerprint": relaxation_fingerprint(key),
        "source_sha256": source_sha256(), "grid": grid.to_json(), "stats": stats}
    _write_json(manifest_path, manifest)


def stale_tables(directory: Path | str | None = None) -> dict[str, str]:
    """Key -> reason for every table in ``directory`` that is stale or unreadable."""
    points = BranchPoints(directory, fingerprint=relaxation_fingerprint)
    stale = {}
    for key in points.keys():
        try:
            points.table(key)
        except (TableError, OSError, ValueError) as error:
            stale[key] = str(error)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genbab.lut.build",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("signatures", nargs="*", help=f"table keys (default: {' '.join(SHIPPED)})")
    parser.add_argument("--step", type=float, default=STEP_1D, help="grid step, 1-D tables")
    parser.add_argument("--step-2d", type=float, default=STEP_2D, help="grid step, 2-D tables")
    parser.add_argument("--refine", type=int, default=REFINE,
                        help="candidates on a grid this many times finer (even)")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="table directory")
    parser.add_argument("--check", action="store_true", help="only report stale tables")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_tables(args.out)
        for key, reason in stale.items():
            print(f"STALE {key}: {reason}")
        print(f"{len(stale)} stale table(s) in {args.out}")
        return 1 if stale else 0
    total = time.perf_counter()
    for key in args.signatures or SHIPPED:
        grid = default_grid(key, args.step, args.step_2d, args.refine)
        offsets, stats = build_table(key, grid)
        write_table(args.out, key, grid, offsets, stats)
        print(f"{canonical_key(key):12s} {stats['boxes']:>9d} boxes  "
              f"{stats['build_seconds']:7.1f} s  loss/midpoint "
              f"{stats['mean_loss_ratio_vs_midpoint']:.4f}", flush=True)
    print(f"total {time.perf_counter() - total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
