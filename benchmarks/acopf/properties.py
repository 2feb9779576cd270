"""Engineering properties of an ml4acopf model as ``vnnlib.Property`` objects.

Each builder returns the set of *violations* (vnnlib/property.py): the property is violated
(``sat``) iff some load in the box makes the model output satisfy one clause.  The conditions
are those of algorithms.md section 9 and of the VNN-COMP 2023 files (docs/acopf_properties.md):

========================  ===================================================================
builder                   violation (one clause per line, any clause suffices)
========================  ===================================================================
power_balance(bus=k)      p_balance_k >= tol;  p_balance_k <= -tol  (tol = max(1e-2, 1% pd_k))
power_balance_all         the same for every bus, P then Q, tol = max(1e-3, 1% bus load)
thermal_limit(line=l)     thrm_l >= max(1e-2, 1% rate_a_l)          (a single clause)
generator_limits          pg_g >= pmax + 1e-6;  pg_g <= pmin - 1e-6;  then qg likewise
voltage_limits            vm_i >= vmax + 1e-6;  vm_i <= vmin - 1e-6
========================  ===================================================================

The input box (``load_box``) scales each load ``v`` to ``[v min_perc, v max_perc]`` (the two ends
swapped when ``v < 0``) and optionally multiplies both ends by ``1 + jitter_l``, one jitter per load
shared by its ``pd`` and ``qd``, which is how the benchmark files were made.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from benchmarks.acopf.grid import Grid, GridError, default_data_dir
from genbab.vnnlib.property import Clause, Property

BALANCE_FLOOR = 1e-2        # single-bus balance tolerance floor (p.u.)
BALANCE_ALL_FLOOR = 1e-3    # all-bus balance tolerance floor (p.u.)
LOAD_FRACTION = 1e-2        # balance tolerance as a fraction of the bus load
THERMAL_FLOOR = 1e-2
RATING_FRACTION = 1e-2      # thermal threshold as a fraction of rate_a (as in the files)
LIMIT_EPSILON = 1e-6        # slack beyond generator / voltage limits


@dataclass(frozen=True)
class BoxParams:
    """A load box: loads scaled by ``[min_perc, max_perc]``, centre jittered by up to
    ``random_perc`` (relative), as in ml4acopf's ``vnnlib_params.csv``."""

    min_perc: float
    max_perc: float
    random_perc: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_perc <= self.max_perc:
            raise ValueError(f"need 0 <= min_perc <= max_perc, got {self.min_perc}, "
                             f"{self.max_perc}")
        if not 0 <= self.random_perc < 1:
            raise ValueError(f"random_perc must be in [0, 1), got {self.random_perc}")

    @classmethod
    def symmetric(cls, pct: float, random_perc: float = 0.0) -> "BoxParams":
        """``±pct`` around the loads, e.g. ``symmetric(0.05)`` is [0.95, 1.05]."""
        return cls(1.0 - pct, 1.0 + pct, random_perc)


def read_box_params(path: str | os.PathLike | None = None) -> dict[tuple[str, str], BoxParams]:
    """``vnnlib_params.csv`` as {(property number, grid name): BoxParams}.  The number is the
    file's ``Property`` column: "1".."4", and "5" for every single-bus balance property."""
    path = Path(path) if path is not None else default_data_dir() / "vnnlib_params.csv"
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        return {(row["Property"], row["Network"]):
                BoxParams(float(row["min_perc"]), float(row["max_perc"]), float(row["random_perc"]))
                for row in rows}
    except FileNotFoundError as err:
        raise GridError(f"{path}: no such file") from err
    except (KeyError, ValueError) as err:
        raise GridError(f"{path}: needs columns Property, Network, min_perc, max_perc, "
                        f"random_perc with numbers ({err})") from err


@dataclass(frozen=True, eq=False)   # numpy fields: compare explicitly, not with ==
class LoadBox:
    """An input box over the model input ``[pd, qd]``: lower, upper (2L,)."""

    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self) -> None:
        lower = np.array(self.lower, dtype=np.float64).reshape(-1)
        upper = np.array(self.upper, dtype=np.float64).reshape(-1)
        if lower.shape != upper.shape or np.any(lower > upper):
            raise ValueError("a load box needs lower <= upper of equal shapes")
        lower.setflags(write=False)
        upper.setflags(write=False)
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` uniform points of the box: (count, 2L)."""
        return rng.uniform(self.lower, self.upper, size=(count, self.lower.shape[0]))


def load_box(grid: Grid, pct: float | BoxParams = 0.05, *, jitter: np.ndarray | None = None,
             loads: np.ndarray | None = None, decimals: int | None = None) -> LoadBox:
    """The box of loads within ``±pct`` (or ``BoxParams``' factors) of ``loads`` (default: the
    grid's reference loads), each end times ``1 + jitter[l]`` for load l (pd_l and qd_l alike).

    jitter: (L,) relative centre perturbation, e.g. from ``random_jitter``; ``None``: none.
    decimals: round the ends as the benchmark files do (9); ``None``: exact.
    """
    params = pct if isinstance(pct, BoxParams) else BoxParams.symmetric(pct)
    centre = _loads(grid, loads)
    low = np.where(centre >= 0, centre * params.min_perc, centre * params.max_perc)
    high = np.where(centre >= 0, centre * params.max_perc, centre * params.min_perc)
    if jitter is not None:
        jitter = np.asarray(jitter, dtype=np.float64)
        if jitter.shape != (grid.num_loads,):
            raise GridError(f"{grid.name}: jitter needs one value per load, shape "
                            f"({grid.num_loads},), got {jitter.shape}")
        scale = 1.0 + np.concatenate([jitter, jitter])
        low, high = low * scale, high * scale
    if decimals is not None:
        low, high = np.round(low, decimals), np.round(high, decimals)
    return LoadBox(low, high)


def random_jitter(grid: Grid, size: float, rng: np.random.Generator) -> np.ndarray:
    """One relative perturbation per load, uniform in ``[-size, size]``: (L,)."""
    return rng.uniform(-size, size, size=grid.num_loads)


def recover_jitter(grid: Grid, box: LoadBox, params: BoxParams,
                   loads: np.ndarray | None = None) -> np.ndarray:
    """The per-load jitter that best explains a box made by ``load_box``: (L,).

    Least squares over the four ends (pd and qd, lower and upper) of each load against the
    unjittered box; 0 for a load whose pd and qd are both zero (its jitter leaves no trace).
    """
    plain = load_box(grid, BoxParams(params.min_perc, params.max_perc), loads=loads)
    length = grid.num_loads

    def per_load(values: np.ndarray) -> np.ndarray:     # (2L,) -> (L,) summed over pd, qd
        return values[:length] + values[length:]

    base_sq = per_load(plain.lower ** 2 + plain.upper ** 2)
    cross = per_load(box.lower * plain.lower + box.upper * plain.upper)
    return np.divide(cross, base_sq, out=np.ones(length), where=base_sq > 0) - 1.0


def _loads(grid: Grid, loads: np.ndarray | None) -> np.ndarray:
    x = grid.reference_loads if loads is None else np.asarray(loads, dtype=np.float64)
    if x.shape != (grid.num_inputs,):
        raise GridError(f"{grid.name}: loads must be [pd, qd] of shape ({grid.num_inputs},), "
                        f"got {x.shape}")
    return x


# -- output rows ---------------------------------------------------------------------------

def _row(grid: Grid, column: int, sign: float, value: float) -> Clause:
    """One-row clause ``sign * y[column] <= sign * value`` (sign +1: y <= v; -1: y >= v)."""
    coeffs = np.zeros((1, grid.num_outputs))
    coeffs[0, column] = sign
    return Clause(coeffs, np.array([sign * value]))


def at_least(grid: Grid, column: int, value: float) -> Clause:
    """The clause ``y[column] >= value``."""
    return _row(grid, column, -1.0, value)


def at_most(grid: Grid, column: int, value: float) -> Clause:
    """The clause ``y[column] <= value``."""
    return _row(grid, column, 1.0, value)


def _property(box: LoadBox, clauses: list[Clause], grid: Grid, what: str) -> Property:
    if box.lower.shape[0] != grid.num_inputs:
        raise GridError(f"{grid.name}: the box has {box.lower.shape[0]} inputs, the model "
                        f"takes {grid.num_inputs} ([pd, qd])")
    return Property.from_box(box.lower, box.upper, clauses, source=f"{grid.name}: {what}")


# -- builders ------------------------------------------------------------------------------

def power_balance(grid: Grid, box: LoadBox, bus: int, *, tolerance: float | None = None,
                  loads: np.ndarray | None = None, reactive: bool = False) -> Property:
    """Violated iff ``|p_balance[bus]| >= tolerance`` (``q_balance`` if ``reactive``).

    bus: 0-based model bus index (``grid.bus_index(key)`` converts a PowerModels key).
    tolerance: default ``max(1e-2, 1% of the bus load)`` at ``loads`` (default: reference).
    """
    field = "q_balance" if reactive else "p_balance"
    column = grid.output_index(field, bus)
    if tolerance is None:
        p_bus, q_bus = grid.bus_loads(loads)
        tolerance = max(BALANCE_FLOOR, LOAD_FRACTION * float((q_bus if reactive else p_bus)[bus]))
    if tolerance <= 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance}")
    return _property(box, [at_least(grid, column, tolerance), at_most(grid, column, -tolerance)],
                     grid, f"|{field}[{bus}]| >= {tolerance:g}")


def power_balance_all(grid: Grid, box: LoadBox, *, floor: float = BALANCE_ALL_FLOOR,
                      fraction: float = LOAD_FRACTION,
                      loads: np.ndarray | None = None) -> Property:
    """Violated iff some bus has ``|p_balance| >= max(floor, fraction * pd_bus)`` or
    ``|q_balance| >= max(floor, fraction * qd_bus)`` (bus loads at ``loads``); 4N clauses in
    the order P bus 0 (>=, <=), P bus 1, ..., Q bus 0, ..."""
    clauses = []
    for field, bus_load in zip(("p_balance", "q_balance"), grid.bus_loads(loads)):
        for bus in range(grid.num_buses):
            tolerance = max(floor, fraction * float(bus_load[bus]))
            column = grid.output_index(field, bus)
            clauses += [at_least(grid, column, tolerance), at_most(grid, column, -tolerance)]
    return _property(box, clauses, grid, "power balance at every bus")


def thermal_limit(grid: Grid, box: LoadBox, line: int, *,
                  side: Literal["from", "to"] = "from",
                  tolerance: float | None = None) -> Property:
    """Violated iff the thermal residual ``pf² + qf² - rate_a²`` of branch ``line`` (0-based;
    ``side="to"``: pt, qt) is ``>= tolerance``, default ``max(1e-2, 1% of rate_a)``."""
    if side not in ("from", "to"):
        raise ValueError(f"side must be 'from' or 'to', got {side!r}")
    column = grid.output_index(f"thrm_{side}", line)
    if tolerance is None:
        tolerance = max(THERMAL_FLOOR, RATING_FRACTION * float(grid.rate_a[line]))
    return _property(box, [at_least(grid, column, tolerance)], grid,
                     f"thrm_{side}[{line}] >= {tolerance:g}")


def generator_limits(grid: Grid, box: LoadBox, *, epsilon: float = LIMIT_EPSILON) -> Property:
    """Violated iff some ``pg`` or ``qg`` leaves its limits by more than ``epsilon``; 4G clauses:
    pg_0 >= pmax_0 + eps, pg_0 <= pmin_0 - eps, pg_1 ..., then qg alike."""
    clauses = []
    for field, low, high in (("pg", grid.pmin, grid.pmax), ("qg", grid.qmin, grid.qmax)):
        for g in range(grid.num_generators):
            column = grid.output_index(field, g)
            clauses += [at_least(grid, column, float(high[g]) + epsilon),
                        at_most(grid, column, float(low[g]) - epsilon)]
    return _property(box, clauses, grid, "generator limits")


def voltage_limits(grid: Grid, box: LoadBox, *, epsilon: float = LIMIT_EPSILON) -> Property:
    """Violated iff some ``vm`` leaves ``[vmin, vmax]`` by more than ``epsilon``; 2N clauses:
    vm_0 >= vmax_0 + eps, vm_0 <= vmin_0 - eps, vm_1 ..."""
    clauses = []
    for bus in range(grid.num_buses):
        column = grid.output_index("vm", bus)
        clauses += [at_least(grid, column, float(grid.vmax[bus]) + epsilon),
                    at_most(grid, column, float(grid.vmin[bus]) - epsilon)]
    return _property(box, clauses, grid, "voltage-magnitude limits")


# -- how the benchmark picked its bus and line ---------------------------------------------

def line_by_rating_rank(grid: Grid, rank: int) -> int:
    """The first branch whose ``rate_a`` equals the ``rank``-th largest rating (rank 1: the
    largest; ties count separately, as in a sorted list)."""
    return _first_with_rank(grid.rate_a, rank, "branch ratings")


def bus_by_load_rank(grid: Grid, rank: int, loads: np.ndarray | None = None) -> int:
    """The first bus whose active load equals the ``rank``-th largest bus load at ``loads``.
    rank counts from 1 (largest); rank 0 is the smallest, -1 the second smallest (Python
    indexing of the descending list at ``rank - 1``, which the benchmark's prop5 relied on)."""
    return _first_with_rank(grid.bus_loads(loads)[0], rank, "bus loads")


def _first_with_rank(values: np.ndarray, rank: int, what: str) -> int:
    ordered = sorted(values.tolist(), reverse=True)
    if not -len(ordered) < rank <= len(ordered):
        raise GridError(f"rank {rank} is out of range for {len(ordered)} {what}")
    return int(values.tolist().index(ordered[rank - 1]))
