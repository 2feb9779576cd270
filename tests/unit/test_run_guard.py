"""genbab/run_guard.py without a process to end: one answer only, and the word a signal gets."""
from __future__ import annotations

import os
import signal
import time

import pytest

from genbab import run_guard
from genbab.run_guard import RunGuard


@pytest.fixture
def ended(monkeypatch):
    codes: list[int] = []
    monkeypatch.setattr(run_guard.os, "_exit", codes.append)
    return codes


def _guard(timeout_s: float, elapsed_s: float, answers: list) -> RunGuard:
    return RunGuard(timeout_s, time.monotonic() - elapsed_s,
                    lambda word, message, elapsed: answers.append((word, message)))


def _signal_through_pipe(guard: RunGuard, signum: int) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, bytes([signal.SIGCHLD, signum]))   # other signals are skipped
    guard._watch_signals(read_end)


def test_a_signal_before_the_budget_is_spent_answers_unknown(ended):
    answers: list = []
    _signal_through_pipe(_guard(60.0, 1.0, answers), signal.SIGTERM)
    assert answers == [("unknown", "interrupted by SIGTERM")] and ended == [128 + 15]


def test_a_signal_after_the_budget_answers_timeout(ended):
    answers: list = []
    _signal_through_pipe(_guard(5.0, 6.0, answers), signal.SIGINT)
    assert answers == [("timeout", "interrupted by SIGINT")] and ended == [130]


def test_only_the_first_claim_answers(ended):
    answers: list = []
    guard = _guard(60.0, 0.0, answers)
    assert guard.claim()                      # the main path answered first
    guard._on_deadline()
    _signal_through_pipe(guard, signal.SIGTERM)
    assert answers == [] and ended == []
