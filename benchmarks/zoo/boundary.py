"""Boundary radii: where bound propagation alone just stops proving robustness.

A fixed radius ladder puts most properties either where CROWN alone proves them or far
beyond anything a 30 s search can close (on the 6x100 sigmoid MLP, sample 1 is certified up
to 0.021 while the next rung, 0.05, leaves a margin of -10 after 15 rounds of
branch-and-bound).  The instances that tell whether general branching helps sit just past
the certified radius.  ``certified_radius`` finds it by bisection with genbab's own CROWN
bounds; the zoo then adds properties at ``BOUNDARY_FACTORS`` times it (some of which
alpha-CROWN still proves, some only branch-and-bound, some nothing within the timeout).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from bounds.engine import spec_bounds
from verifier.onnx_loader import load_model

BOUNDARY_FACTORS = (1.1, 1.25)
BISECTION_STEPS = 10          # in log-space between the ends: a factor of 1.4% or better
SMALLEST_RADIUS = 1e-4


def certified_radius(onnx_path: Path, centre: np.ndarray, label: int, num_classes: int,
                     largest: float) -> float:
    """The largest radius (within 1.4% and ``[SMALLEST_RADIUS, largest]``) at which CROWN
    proves that ``label`` wins over the L-inf ball around the flat input ``centre``, clipped
    to the data range; ``SMALLEST_RADIUS`` when not even that one is proved."""
    graph = load_model(onnx_path)
    coeffs = torch.zeros(num_classes - 1, num_classes)
    others = [j for j in range(num_classes) if j != label]
    coeffs[:, label] = 1.0
    coeffs[range(num_classes - 1), others] = -1.0          # y_label - y_j > 0 for every j

    def proved(radius: float) -> bool:
        lower = torch.tensor(np.clip(centre - radius, 0.0, 1.0), dtype=torch.float32)
        upper = torch.tensor(np.clip(centre + radius, 0.0, 1.0), dtype=torch.float32)
        result = spec_bounds(graph, lower.reshape(1, -1), upper.reshape(1, -1), coeffs,
                             method="crown")
        return bool((result.lower > 0).all())

    low, high = SMALLEST_RADIUS, largest
    if not proved(low):
        return low
    for _ in range(BISECTION_STEPS):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if proved(mid) else (low, mid)
    return low


def boundary_radii(radius: float) -> list[float]:
    """The radii of the boundary properties, rounded to 3 significant digits."""
    return [float(f"{radius * factor:.3g}") for factor in BOUNDARY_FACTORS]
