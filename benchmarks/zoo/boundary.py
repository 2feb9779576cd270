"""Boundary radii: where bound propagation alone just stops proving robustness.

A fixed radius ladder puts most properties either where CROWN alone proves them or far
beyond anything a 30 s search can close (on the 6x100 sigmoid MLP, sample 1 is certified up
to 0.0285 while the next rung, 0.05, leaves a margin of -10 after 15 rounds of
branch-and-bound).  The instances that tell whether general branching helps sit just past
the certified radius, and how far past depends on the family: on that sigmoid MLP the root
margin is -0.04 at 1.02 times the certified radius (closed by branch-and-bound in 20 s) but
-1.6 at 1.1 times it (not closed in 60 s), while tanh MLPs are still proved at 1.1 times.

So the radii are placed by CROWN's worst clause margin, not by a factor:
``certified_radius`` finds where it crosses 0 and ``radius_at_margin`` where it reaches
``-share * clean margin`` for each of ``MARGIN_SHARES`` (bisection with genbab's own bounds).
Some of these alpha-CROWN still proves, some only branch-and-bound, some nothing within the
timeout.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from genbab.bounds.engine import spec_bounds
from genbab.verifier.onnx_loader import load_model

MARGIN_SHARES = (0.01, 0.05, 0.25)   # CROWN's worst margin at the boundary radii, -share * clean
BISECTION_STEPS = 10          # in log-space between the ends: a factor of 1.4% or better
SMALLEST_RADIUS = 1e-4


def crown_margin(graph, centre: np.ndarray, label: int, num_classes: int):
    """``radius -> CROWN's lower bound of min_j (y_label - y_j)`` over the L-inf ball around
    the flat input ``centre``, clipped to the data range [0, 1]."""
    coeffs = torch.zeros(num_classes - 1, num_classes)
    others = [j for j in range(num_classes) if j != label]
    coeffs[:, label] = 1.0
    coeffs[range(num_classes - 1), others] = -1.0

    def margin(radius: float) -> float:
        lower = torch.tensor(np.clip(centre - radius, 0.0, 1.0), dtype=torch.float32)
        upper = torch.tensor(np.clip(centre + radius, 0.0, 1.0), dtype=torch.float32)
        result = spec_bounds(graph, lower.reshape(1, -1), upper.reshape(1, -1), coeffs,
                             method="crown")
        return float(result.lower.min())
    return margin


def radius_at_margin(margin, target: float, low: float, high: float) -> float:
    """Bisection (log-space) for the radius in ``[low, high]`` where ``margin`` (decreasing
    in the radius) crosses ``target``: the largest radius found with ``margin >= target``."""
    if margin(low) < target:
        return low
    for _ in range(BISECTION_STEPS):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if margin(mid) >= target else (low, mid)
    return low


def boundary_radii(onnx_path: Path, centre: np.ndarray, label: int, num_classes: int,
                   clean_margin: float, largest: float) -> list[float]:
    """The radii at which CROWN's worst margin is ``-share * clean_margin`` for each share of
    ``MARGIN_SHARES``, rounded to 3 significant digits (the certified radius bounds them
    below)."""
    margin = crown_margin(load_model(onnx_path), centre, label, num_classes)
    certified = radius_at_margin(margin, 0.0, SMALLEST_RADIUS, largest)
    return [float(f"{radius_at_margin(margin, -share * clean_margin, certified, largest):.3g}")
            for share in MARGIN_SHARES]
