"""The engine stops *before* a chunk of intermediate rows or an alpha step that would end past
the deadline (measured by the previous one), not only once the deadline has passed: on large
conv nets one chunk takes seconds, and starting one just before the deadline overran it.

``backward`` is slowed to a fixed 0.2 s per call so the count of calls is deterministic."""
from __future__ import annotations

import time

import torch

from genbab.bounds import alpha as alpha_module
from genbab.bounds import engine as engine_module
from genbab.bounds.engine import spec_bounds
from tests.unit.bounds.test_engine import boxes, graph_of, outputs, samples
from genbab.verifier.options import BoundOptions

_STEP = 0.2


def _slowed(monkeypatch, module) -> list[float]:
    calls: list[float] = []
    real = module.backward

    def slow(*args, **kwargs):
        calls.append(time.monotonic())
        time.sleep(_STEP)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "backward", slow)
    return calls


def test_intermediate_chunks_stop_when_the_next_would_overrun(monkeypatch):
    graph = graph_of("mlp_Relu")
    lower, upper = boxes(3)
    monkeypatch.setattr(engine_module, "_ROW_BUDGET", 1)      # one row per chunk
    calls = _slowed(monkeypatch, engine_module)
    start = time.monotonic()
    coeffs = torch.eye(2)
    result = spec_bounds(graph, lower, upper, coeffs, method="crown",
                         deadline=start + 1.5 * _STEP)
    # one intermediate chunk (the next would end at 2 * _STEP), then the final pass
    assert len(calls) == 2
    y = outputs(graph, samples(lower, upper))
    rows = torch.einsum("bpm,rm->bpr", y, coeffs.to(y))
    assert bool((result.lower.unsqueeze(1) <= rows + 1e-5).all())


def test_alpha_steps_stop_when_the_next_would_overrun(monkeypatch):
    graph = graph_of("mlp_Sigmoid")
    lower, upper = boxes(3)
    start = time.monotonic()
    crown = spec_bounds(graph, lower, upper, torch.eye(2), method="crown")
    calls = _slowed(monkeypatch, alpha_module)
    deadline = time.monotonic() + 2.5 * _STEP
    result = spec_bounds(graph, lower, upper, torch.eye(2), method="alpha", deadline=deadline,
                         options=BoundOptions(method="alpha", alpha_iterations=50))
    assert 1 <= len(calls) <= 2
    assert calls[-1] + _STEP <= deadline + 0.1
    assert bool((result.lower >= crown.lower - 1e-6).all())
    assert time.monotonic() - start < 10
