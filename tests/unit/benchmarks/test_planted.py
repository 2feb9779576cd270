"""benchmarks/soundness/planted.py: the float64 interval arithmetic that makes the safe twins
safe is itself sound (sampled, on sub-boxes of every family, degenerate ones included), the
spike is where it is said to be, and the hidden-region check means what it says."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from benchmarks.soundness.planted import (FAMILIES, PlantedModule, PlantedSpec,
                                          hidden_check, interval_output0, plant)
from genbab.api import export_module


def _output0(net, x: np.ndarray) -> np.ndarray:
    module = PlantedModule(net).double().eval()
    with torch.no_grad():
        return module(torch.from_numpy(x))[:, 0].numpy()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("with_spike", [False, True])
def test_interval_bounds_hold_on_samples_of_sub_boxes(family, with_spike):
    net, _, _ = plant(PlantedSpec(family, 3, 0.2, seed=1))   # a wide spike: samples reach it
    rng = np.random.default_rng(0)
    lo_box, hi_box = net.lower.astype(np.float64), net.upper.astype(np.float64)
    for trial in range(30):
        a, b = rng.uniform(lo_box, hi_box), rng.uniform(lo_box, hi_box)
        lower, upper = np.minimum(a, b), np.maximum(a, b)
        if trial % 10 == 0:
            upper = lower.copy()                               # a degenerate box
        if trial % 10 == 1:
            lower, upper = lo_box, hi_box                      # the whole box
        if trial % 10 == 2:                                     # a box around the centre
            c = net.centre.astype(np.float64)
            lower, upper = np.maximum(c - 0.05, lo_box), np.minimum(c + 0.05, hi_box)
        low, high = interval_output0(net, with_spike, lower, upper)
        x = rng.uniform(lower, upper, (400, 3))
        x = np.concatenate([x, lower[None], upper[None]])
        y = _output0(net if with_spike else dataclasses.replace(net, amp=0.0), x)
        assert np.all(y >= low) and np.all(y <= high), (family, trial, low, high, y.min(), y.max())


@pytest.mark.parametrize("family", FAMILIES)
def test_the_centre_violates_and_the_safe_threshold_holds(family):
    net, t_planted, t_safe = plant(PlantedSpec(family, 4, 1e-4, seed=2))
    y_centre = _output0(net, net.centre.astype(np.float64)[None])[0]
    assert y_centre >= t_planted + (0.0 if family == "softmax" else 0.99)
    assert t_safe > t_planted
    # outside the L1 ball the spike is off: output 0 stays below T_planted
    x = net.centre.astype(np.float64)[None] + np.diag(2.5 * net.radii.astype(np.float64))
    assert np.all(_output0(net, x) < t_planted)


def test_hidden_check_sees_a_region_too_big_to_hide():
    net, t_planted, _ = plant(PlantedSpec("sigmoid", 2, 0.3, seed=0))
    onnx_bytes = export_module(PlantedModule(net), (2,))
    check = hidden_check(net, onnx_bytes, t_planted, samples=20_000, restarts=8, steps=20)
    assert check.witness_margin >= 0 and check.sample_best >= 0 and not check.hidden
    net, t_planted, _ = plant(PlantedSpec("sigmoid", 2, 1e-5, seed=0))
    onnx_bytes = export_module(PlantedModule(net), (2,))
    check = hidden_check(net, onnx_bytes, t_planted, samples=20_000, restarts=8, steps=20)
    assert check.hidden
