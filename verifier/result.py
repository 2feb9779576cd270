"""The typed outcome of ``verify()``.  Only ``cli.py`` turns a status into VNN-COMP words."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class Status(enum.Enum):
    VERIFIED = "verified"    # no input in the box violates the property          -> "unsat"
    FALSIFIED = "falsified"  # counterexample found AND re-checked with onnxruntime -> "sat"
    TIMEOUT = "timeout"      # time budget spent without an answer
    UNKNOWN = "unknown"      # limits reached (nothing left to split, memory) without an answer
    ERROR = "error"          # bad input; ``Result.message`` says what

    @property
    def vnncomp_word(self) -> str:
        return _VNNCOMP_WORDS[self]


_VNNCOMP_WORDS = {Status.VERIFIED: "unsat", Status.FALSIFIED: "sat", Status.TIMEOUT: "timeout",
                  Status.UNKNOWN: "unknown", Status.ERROR: "error"}


@dataclass
class Stats:
    """Where the time went and how much work was done.  Filled in by the pipeline stages."""

    seconds: dict[str, float] = field(default_factory=dict)   # stage name -> wall seconds
    attack_restarts: int = 0
    attack_steps: int = 0
    bab_rounds: int = 0
    domains_visited: int = 0
    max_queue: int = 0
    best_bound_history: list[tuple[float, float]] = field(default_factory=list)  # (t_s, bound)
    # neuron splits made by BaB, by kind of the split neuron's op ("relu", "sigmoid", "tanh",
    # "sin", "cos", "mul", ...) and "input" for input-space bisections
    splits_by_kind: dict[str, int] = field(default_factory=dict)
    extra: dict[str, float | int | str] = field(default_factory=dict)
    stage: str = "start"   # the stage running now (set by the pipeline; named in interrupt reports)

    def add_time(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def add_splits(self, kind: str, count: int) -> None:
        self.splits_by_kind[kind] = self.splits_by_kind.get(kind, 0) + int(count)


@dataclass(frozen=True)
class Counterexample:
    """A witness confirmed on the original model with onnxruntime.

    ``x`` has the ONNX input shape; ``y`` is the onnxruntime output for exactly that ``x``."""

    x: np.ndarray
    y: np.ndarray
    disjunct: int   # index of the violated disjunct in the property
    clause: int     # index of the satisfied clause within that disjunct
    # the clause's worst row ``max(c.y - d)`` (<= 0: violated) on onnxruntime's output, and on
    # genbab's own float64 evaluation of the loaded graph at the same x (a second opinion:
    # a violation that only float32 rounding makes shows up as a positive float64 margin)
    margin: float | None = None
    margin_float64: float | None = None


@dataclass(frozen=True)
class Result:
    status: Status
    counterexample: Counterexample | None = None
    time_s: float = 0.0
    stats: Stats = field(default_factory=Stats)
    message: str = ""   # why: error text, or which stage decided

    @property
    def vnncomp_word(self) -> str:
        return self.status.vnncomp_word
