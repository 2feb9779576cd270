"""One property of each kind, in power-system terms, ready for ``verify()`` and VNN-LIB.

``one_of_each_kind(grid, pct)`` builds, over the load box ``±pct`` around a reference load:

- **power balance** at one bus: the proxy's active-power mismatch stays below its tolerance;
- **thermal limit** of one line: the line is not overloaded;
- **generator limits**: every ``pg``, ``qg`` within its capability;
- **voltage limits**: every ``vm`` within ``[vmin, vmax]``.

Each comes as a ``CaseProperty`` with a one-line meaning for tables; ``describe_violation``
turns a confirmed counterexample into the violated quantity.  examples/acopf_14bus.py uses both,
and docs/acopf.md explains the properties.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.acopf import properties as props
from benchmarks.acopf.grid import OUTPUT_FIELDS, Grid
from genbab.vnnlib.property import Property

THERMAL_RANK = 5        # the benchmark's prop2 watches the line with the 5th-largest rating
KINDS = ("power balance", "thermal limit", "generator limits", "voltage limits")


@dataclass(frozen=True)
class CaseProperty:
    """A property with the words a power engineer needs to read its result."""

    kind: str          # "power balance", "thermal limit", "generator limits", "voltage limits"
    name: str          # short file-name-like label, e.g. "14_ieee_balance_bus3"
    meaning: str       # what "unsat" (holds) means, for a table
    prop: Property


def one_of_each_kind(grid: Grid, pct: float | dict[str, float] = 0.05, *,
                     bus: int | None = None, line: int | None = None,
                     loads: np.ndarray | None = None) -> list[CaseProperty]:
    """The four kinds of property over loads within ``±pct`` of ``loads`` (default: the grid's
    reference loads).

    pct: one fraction for all kinds, or {kind: fraction} with a value for each of
        "power balance", "thermal limit", "generator limits", "voltage limits".
    bus: model bus index for the balance property (default: the bus with the largest load).
    line: model branch index for the thermal property (default: the 5th-largest rating, as in
        the benchmark).
    """
    widths = pct if isinstance(pct, dict) else dict.fromkeys(KINDS, pct)
    missing = set(KINDS) - set(widths)
    if missing:
        raise ValueError(f"pct has no width for {', '.join(sorted(missing))}")
    bus = props.bus_by_load_rank(grid, 1, loads) if bus is None else bus
    line = props.line_by_rating_rank(grid, THERMAL_RANK) if line is None else line

    def box(kind: str) -> props.LoadBox:
        return props.load_box(grid, widths[kind], loads=loads)

    def pm(kind: str) -> str:
        return f"±{100 * widths[kind]:g}% load"

    balance = props.power_balance(grid, box("power balance"), bus, loads=loads)
    tolerance = -float(balance.disjuncts[0].clauses[1].thresholds[0])
    key, f_key, t_key = (int(grid.bus_ids[bus]), int(grid.bus_ids[grid.f_bus[line]]),
                         int(grid.bus_ids[grid.t_bus[line]]))
    thermal = props.thermal_limit(grid, box("thermal limit"), line)
    return [
        CaseProperty("power balance", f"{grid.name}_balance_bus{key}",
                     f"|P mismatch at bus {key}| < {tolerance:g} p.u. ({pm('power balance')})",
                     balance),
        CaseProperty("thermal limit", f"{grid.name}_thermal_line{line}",
                     f"line {f_key}-{t_key} within its rating {grid.rate_a[line]:g} p.u. "
                     f"({pm('thermal limit')})", thermal),
        CaseProperty("generator limits", f"{grid.name}_generator_limits",
                     f"all {grid.num_generators} generators within [pmin, pmax], [qmin, qmax] "
                     f"({pm('generator limits')})",
                     props.generator_limits(grid, box("generator limits"))),
        CaseProperty("voltage limits", f"{grid.name}_voltage_limits",
                     f"all {grid.num_buses} bus voltages within [vmin, vmax] "
                     f"({pm('voltage limits')})",
                     props.voltage_limits(grid, box("voltage limits"))),
    ]


def describe_violation(grid: Grid, case: CaseProperty, y: np.ndarray, disjunct: int,
                       clause: int) -> str:
    """The output that breaks ``case`` at the model output ``y`` of a counterexample, e.g.
    "p_balance[bus 4] = 0.0213 >= 0.01"."""
    row = case.prop.disjuncts[disjunct].clauses[clause]
    column = int(np.flatnonzero(row.coeffs[0])[0])
    sign = float(row.coeffs[0, column])
    name = _output_name(grid, column)
    value = float(np.asarray(y).reshape(-1)[column])
    bound = float(row.thresholds[0]) / sign
    return f"{name} = {value:.6g} {'<=' if sign > 0 else '>='} {bound:.6g}"


def _output_name(grid: Grid, column: int) -> str:
    """``field[item]`` for an output column, buses named by their PowerModels keys."""
    for field in OUTPUT_FIELDS:
        part = grid.output_slice(field)
        if part.start <= column < part.stop:
            item = column - part.start
            if field in ("vm", "va", "p_balance", "q_balance"):
                return f"{field}[bus {int(grid.bus_ids[item])}]"
            if field in ("pg", "qg"):
                return f"{field}[gen {item}]"
            return f"{field}[line {item}]"
    raise ValueError(f"column {column} is not an output of {grid.name}")
