"""The normal form of a VNN-LIB property (vnncomp.md section 1.4).

A property describes the *counterexamples*: it is violated (answer ``sat``) iff for some
disjunct some ``x`` in its input box gives an output ``y`` that satisfies every row of one of
its clauses, ``coeffs @ y <= thresholds``.  It holds (``unsat``) iff no such ``x`` exists.

This module is a leaf: it imports nothing else from the project.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)   # numpy fields: compare explicitly, not with ==
class Clause:
    """A conjunction of output rows: violated iff ``coeffs @ y <= thresholds`` row-wise.

    coeffs: (rows, num_outputs) float64; thresholds: (rows,) float64.
    """

    coeffs: np.ndarray
    thresholds: np.ndarray

    def __post_init__(self) -> None:
        coeffs = np.asarray(self.coeffs, dtype=np.float64)
        thresholds = np.asarray(self.thresholds, dtype=np.float64).reshape(-1)
        if coeffs.ndim != 2 or coeffs.shape[0] != thresholds.shape[0]:
            raise ValueError(f"clause needs coeffs (rows, m) and thresholds (rows,), got "
                             f"{coeffs.shape} and {thresholds.shape}")
        coeffs.setflags(write=False)
        thresholds.setflags(write=False)
        object.__setattr__(self, "coeffs", coeffs)
        object.__setattr__(self, "thresholds", thresholds)

    @property
    def num_rows(self) -> int:
        return self.coeffs.shape[0]

    def margins(self, y: np.ndarray) -> np.ndarray:
        """Per row ``coeffs @ y - thresholds`` for y of shape (..., m): (..., rows).
        The clause is satisfied (a violation of the property) iff all margins are <= 0."""
        return np.asarray(y, dtype=np.float64) @ self.coeffs.T - self.thresholds

    def is_satisfied(self, y: np.ndarray, tol: float = 0.0) -> bool | np.ndarray:
        return np.all(self.margins(y) <= tol, axis=-1)


@dataclass(frozen=True, eq=False)   # numpy fields: compare explicitly, not with ==
class Disjunct:
    """One input box with the clauses that are checked on it (any clause suffices)."""

    lower: np.ndarray
    upper: np.ndarray
    clauses: tuple[Clause, ...]

    def __post_init__(self) -> None:
        lower = np.asarray(self.lower, dtype=np.float64).reshape(-1)
        upper = np.asarray(self.upper, dtype=np.float64).reshape(-1)
        if lower.shape != upper.shape:
            raise ValueError(f"box bounds differ in size: {lower.shape} vs {upper.shape}")
        lower.setflags(write=False)
        upper.setflags(write=False)
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        object.__setattr__(self, "clauses", tuple(self.clauses))

    def contains(self, x: np.ndarray, tol: float = 0.0) -> bool:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        return bool(np.all(x >= self.lower - tol) and np.all(x <= self.upper + tol))


@dataclass(frozen=True, eq=False)   # numpy fields: compare explicitly, not with ==
class Property:
    """A disjunction of (input box, clauses) pairs over ``num_inputs`` X_ and ``num_outputs`` Y_."""

    disjuncts: tuple[Disjunct, ...]
    num_inputs: int
    num_outputs: int
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "disjuncts", tuple(self.disjuncts))
        for d in self.disjuncts:
            if d.lower.shape[0] != self.num_inputs:
                raise ValueError(f"box has {d.lower.shape[0]} inputs, property declares "
                                 f"{self.num_inputs}")
            for c in d.clauses:
                if c.coeffs.shape[1] != self.num_outputs:
                    raise ValueError(f"clause has {c.coeffs.shape[1]} output columns, property "
                                     f"declares {self.num_outputs}")

    def violated_by(self, x: np.ndarray, y: np.ndarray, tol: float = 1e-4) -> bool:
        """The official check (vnncomp.md 2.1): x in some box (abs tol) and y satisfies some
        clause of that box with ``coeffs @ y <= thresholds + tol``."""
        return any(d.contains(x, tol) and any(bool(c.is_satisfied(y, tol)) for c in d.clauses)
                   for d in self.disjuncts)

    @classmethod
    def from_box(cls, lower, upper, clauses: list[tuple[np.ndarray, np.ndarray]] | list[Clause],
                 source: str | None = None) -> "Property":
        """Build a one-box property in Python: ``clauses`` are Clause objects or (coeffs,
        thresholds) pairs; the property is violated iff some clause holds."""
        built = tuple(c if isinstance(c, Clause) else Clause(*c) for c in clauses)
        if not built:
            raise ValueError("a property needs at least one clause")
        lower = np.asarray(lower, dtype=np.float64).reshape(-1)
        return cls((Disjunct(lower, upper, built),), lower.shape[0],
                   built[0].coeffs.shape[1], source)
