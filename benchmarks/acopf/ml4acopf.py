"""The VNN-COMP 2023 ml4acopf property files, rebuilt with ``benchmarks.acopf.properties``.

``{grid}_prop{n}.vnnlib`` is property kind ``n`` for ``n <= 4`` and a single-bus power balance
for ``n >= 5`` (docs/acopf_properties.md has the table).  Everything in a file follows from the
grid, ``vnnlib_params.csv`` and ``{grid}_sample.json`` except the random jitter of the box centre,
whose seed is not known; pass the jitter (for example ``recover_jitter`` of the parsed file) to
rebuild a file, or leave it out for the unjittered box.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

from benchmarks.acopf import properties as props
from benchmarks.acopf.grid import Grid, GridError, load_sample
from genbab.vnnlib.property import Property

Kind = Literal["power_balance_all", "thermal_limit", "generator_limits", "voltage_limits",
               "power_balance"]
THERMAL_LINE_RANK = 5        # prop2 watches the line with the 5th-largest rating
FIRST_SINGLE_BUS = 5         # prop{5 + k} is the single-bus balance with load rank k
_KINDS: dict[int, Kind] = {1: "power_balance_all", 2: "thermal_limit", 3: "generator_limits",
                           4: "voltage_limits"}


@dataclass(frozen=True, eq=False)   # numpy field: compare explicitly, not with ==
class BenchmarkSpec:
    """What ``{grid}_prop{number}.vnnlib`` checks and how its box was made."""

    number: int
    kind: Kind
    box: props.BoxParams
    loads: np.ndarray               # (2L,) box centre: reference loads (1-4) or the sample (5+)
    bus: int | None = None          # model bus index (power_balance)
    line: int | None = None         # model branch index (thermal_limit)
    rank: int | None = None         # load rank (power_balance) or rating rank (thermal_limit)


def benchmark_spec(grid: Grid, number: int,
                   data_dir: str | os.PathLike | None = None) -> BenchmarkSpec:
    """The kind and parameters of property ``number`` of the benchmark on ``grid``."""
    if number < 1:
        raise GridError(f"ml4acopf properties are numbered from 1, got {number}")
    params = props.read_box_params(None if data_dir is None else
                                   os.path.join(data_dir, "vnnlib_params.csv"))
    key = (str(min(number, FIRST_SINGLE_BUS)), grid.name)
    if key not in params:
        raise GridError(f"vnnlib_params.csv has no row for property {key[0]} of {grid.name}")
    if number < FIRST_SINGLE_BUS:
        line = (props.line_by_rating_rank(grid, THERMAL_LINE_RANK) if number == 2 else None)
        return BenchmarkSpec(number, _KINDS[number], params[key], grid.reference_loads,
                             line=line, rank=THERMAL_LINE_RANK if number == 2 else None)
    sample = load_sample(grid.name, data_dir)
    rank = number - FIRST_SINGLE_BUS
    return BenchmarkSpec(number, "power_balance", params[key], sample,
                         bus=props.bus_by_load_rank(grid, rank, sample), rank=rank)


def spec_property(grid: Grid, spec: BenchmarkSpec, jitter: np.ndarray | None = None,
                  decimals: int | None = None) -> Property:
    """The property of ``spec``, its box jittered by ``jitter`` (L,) if given."""
    box = props.load_box(grid, spec.box, jitter=jitter, loads=spec.loads, decimals=decimals)
    if spec.kind == "power_balance_all":
        return props.power_balance_all(grid, box, loads=spec.loads)
    if spec.kind == "thermal_limit":
        return props.thermal_limit(grid, box, spec.line)
    if spec.kind == "generator_limits":
        return props.generator_limits(grid, box)
    if spec.kind == "voltage_limits":
        return props.voltage_limits(grid, box)
    return props.power_balance(grid, box, spec.bus, loads=spec.loads)


def benchmark_property(grid: Grid, number: int, jitter: np.ndarray | None = None,
                       data_dir: str | os.PathLike | None = None) -> Property:
    """``{grid}_prop{number}.vnnlib`` rebuilt (box unjittered unless ``jitter`` is given)."""
    return spec_property(grid, benchmark_spec(grid, number, data_dir), jitter)
