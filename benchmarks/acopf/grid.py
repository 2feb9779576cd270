"""The power grid behind an ml4acopf model: read a PowerModels-layout ``*.ref.json`` file.

The ml4acopf models (algorithms.md section 9) take the loads ``x = [pd, qd]`` (2L values) and
return ``y = [pg, qg, vm, va, pf, pt, qf, qt, thrm_from, thrm_to, p_balance, q_balance]``
(2G + 4N + 6E values).  Buses, generators, loads and branches appear in these vectors in the
order of their PowerModels keys read as integers ("1", "2", ..., not the MATPOWER bus numbers in
``source_id``), which ``tests/unit/benchmarks/test_acopf_properties.py`` checks by evaluating
the models: on any load the outputs satisfy, to float32 precision,

    thrm_from = pf**2 + qf**2 - rate_a**2            thrm_to = pt**2 + qt**2 - rate_a**2
    p_balance = Cg pg - Cl pd - Cf pf - Ct pt - gs vm**2
    q_balance = Cg qg - Cl qd - Cf qf - Ct qt + bs vm**2

with the generator / load / from-bus / to-bus incidence matrices ``Cg, Cl, Cf, Ct`` (bus x item)
and the bus shunts ``gs, bs``.  All quantities are per unit (baseMVA 100).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genbab.verifier.errors import VerifierError

OUTPUT_FIELDS = ("pg", "qg", "vm", "va", "pf", "pt", "qf", "qt", "thrm_from", "thrm_to",
                 "p_balance", "q_balance")
INPUT_FIELDS = ("pd", "qd")
# what each output field is indexed by: generators, buses or branches ("edges")
_FIELD_SET = {"pg": "G", "qg": "G", "vm": "N", "va": "N", "pf": "E", "pt": "E", "qf": "E",
              "qt": "E", "thrm_from": "E", "thrm_to": "E", "p_balance": "N", "q_balance": "N"}
BENCHMARK_FOLDER = "ml4acopf_2023"
UNLIMITED_RATING = 1e12   # PowerModels convention: rate_a == 0 means no thermal limit


class GridError(VerifierError):
    """A grid file that cannot be found or read, or a bus / line / load that does not exist."""


@dataclass(frozen=True, eq=False)   # numpy fields: compare explicitly, not with ==
class Solution:
    """A reference AC-OPF solution in model order: pg, qg (G,); vm, va (N,); pf, pt, qf, qt
    (E,)."""

    pg: np.ndarray
    qg: np.ndarray
    vm: np.ndarray
    va: np.ndarray
    pf: np.ndarray
    pt: np.ndarray
    qf: np.ndarray
    qt: np.ndarray


@dataclass(frozen=True, eq=False)   # numpy fields: compare explicitly, not with ==
class Grid:
    """One power grid in the order of the model's inputs and outputs (all arrays read-only).

    Indices (``gen_bus``, ``load_bus``, ``f_bus``, ``t_bus``) are 0-based *model* bus indices;
    ``bus_ids`` maps them back to the PowerModels bus keys of the file.
    """

    name: str
    bus_ids: np.ndarray     # (N,) int: PowerModels key of each model bus
    vmin: np.ndarray        # (N,)
    vmax: np.ndarray        # (N,)
    gs: np.ndarray          # (N,) shunt conductance per bus
    bs: np.ndarray          # (N,) shunt susceptance per bus
    gen_bus: np.ndarray     # (G,) int
    pmin: np.ndarray        # (G,)
    pmax: np.ndarray        # (G,)
    qmin: np.ndarray        # (G,)
    qmax: np.ndarray        # (G,)
    load_bus: np.ndarray    # (L,) int
    pd: np.ndarray          # (L,) reference active load
    qd: np.ndarray          # (L,) reference reactive load
    f_bus: np.ndarray       # (E,) int
    t_bus: np.ndarray       # (E,) int
    rate_a: np.ndarray      # (E,) thermal rating (UNLIMITED_RATING where the file has 0)
    reference: Solution | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                frozen = np.array(value)          # a copy: the caller's array stays writable
                frozen.setflags(write=False)
                object.__setattr__(self, name, frozen)

    @property
    def num_buses(self) -> int:
        return self.bus_ids.shape[0]

    @property
    def num_generators(self) -> int:
        return self.gen_bus.shape[0]

    @property
    def num_loads(self) -> int:
        return self.load_bus.shape[0]

    @property
    def num_branches(self) -> int:
        return self.f_bus.shape[0]

    @property
    def num_inputs(self) -> int:
        return 2 * self.num_loads

    @property
    def num_outputs(self) -> int:
        return 2 * self.num_generators + 4 * self.num_buses + 6 * self.num_branches

    @property
    def reference_loads(self) -> np.ndarray:
        """The file's loads as a model input ``[pd, qd]``: (2L,)."""
        return np.concatenate([self.pd, self.qd])

    def output_slice(self, field: str) -> slice:
        """Where output ``field`` (one of OUTPUT_FIELDS) lies in the model output."""
        if field not in _FIELD_SET:
            raise GridError(f"unknown output field {field!r}; the fields are "
                            f"{', '.join(OUTPUT_FIELDS)}")
        sizes = {"G": self.num_generators, "N": self.num_buses, "E": self.num_branches}
        start = 0
        for name in OUTPUT_FIELDS:
            size = sizes[_FIELD_SET[name]]
            if name == field:
                return slice(start, start + size)
            start += size
        raise AssertionError("unreachable")

    def output_index(self, field: str, item: int) -> int:
        """The output column of ``field[item]`` (item: 0-based generator / bus / branch)."""
        part = self.output_slice(field)
        if not 0 <= item < part.stop - part.start:
            raise GridError(f"{self.name}: {field} has {part.stop - part.start} entries "
                            f"(0-based), there is no entry {item}")
        return part.start + item

    def split_output(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """Name the parts of model outputs ``y: (..., num_outputs)``."""
        y = np.asarray(y)
        return {name: y[..., self.output_slice(name)] for name in OUTPUT_FIELDS}

    def bus_index(self, bus_id: int) -> int:
        """The model bus index of PowerModels bus key ``bus_id``."""
        found = np.flatnonzero(self.bus_ids == bus_id)
        if found.size == 0:
            raise GridError(f"{self.name} has no bus with key {bus_id}")
        return int(found[0])

    def bus_loads(self, loads: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Active and reactive load per bus, (N,) each, for ``loads = [pd, qd]`` (2L,) or the
        reference loads; several loads on one bus add up."""
        x = self.reference_loads if loads is None else np.asarray(loads, dtype=np.float64)
        if x.shape != (self.num_inputs,):
            raise GridError(f"{self.name}: loads must be [pd, qd] of shape "
                            f"({self.num_inputs},), got {x.shape}")
        length = self.num_loads
        p = np.bincount(self.load_bus, weights=x[:length], minlength=self.num_buses)
        q = np.bincount(self.load_bus, weights=x[length:], minlength=self.num_buses)
        return p, q


def default_data_dir() -> Path:
    """``$GENBAB_BENCHMARKS/ml4acopf_2023/data``, else ``<repo>/../shared/benchmarks/...``."""
    env = os.environ.get("GENBAB_BENCHMARKS")
    root = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "benchmarks"
    return root / BENCHMARK_FOLDER / "data"


def grid_path(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """A grid name ("14_ieee") becomes ``data_dir/14_ieee.ref.json``; a path is kept."""
    text = os.fspath(name_or_path)
    if text.endswith(".json") or os.sep in text:
        return Path(text)
    return Path(data_dir if data_dir is not None else default_data_dir()) / f"{text}.ref.json"


def load_grid(name_or_path: str | os.PathLike,
              data_dir: str | os.PathLike | None = None) -> Grid:
    """Read a grid by name ("14_ieee", "118_ieee", "300_ieee") or by ``*.ref.json`` path."""
    path = grid_path(name_or_path, data_dir)
    try:
        with open(path) as handle:
            document = json.load(handle)
    except FileNotFoundError as err:
        raise GridError(f"{path}: no such grid file; give a *.ref.json path, or a name and the "
                        f"folder holding <name>.ref.json (data_dir or $GENBAB_BENCHMARKS)") from err
    except json.JSONDecodeError as err:
        raise GridError(f"{path}: not valid JSON ({err})") from err
    name = path.name.removesuffix(".ref.json").removesuffix(".json")
    try:
        return _grid_from_document(document, name, str(path))
    except (KeyError, TypeError, ValueError) as err:
        raise GridError(f"{path}: not a PowerModels network with a 'data' section "
                        f"(missing or malformed entry {err})") from err


def _sorted_items(table: dict) -> list[dict]:
    """The active entries of a PowerModels table in the order of their integer keys."""
    items = [table[key] for key in sorted(table, key=int)]
    return [item for item in items
            if item.get("status", 1) and item.get("gen_status", 1) and item.get("br_status", 1)]


def _grid_from_document(document: dict, name: str, source: str) -> Grid:
    data = document["data"]
    bus_keys = sorted(data["bus"], key=int)
    index = {int(key): i for i, key in enumerate(bus_keys)}
    buses = [data["bus"][key] for key in bus_keys]
    gens, loads, branches = (_sorted_items(data[t]) for t in ("gen", "load", "branch"))
    gs, bs = np.zeros(len(buses)), np.zeros(len(buses))
    for shunt in _sorted_items(data.get("shunt", {})):
        gs[index[shunt["shunt_bus"]]] += shunt["gs"]
        bs[index[shunt["shunt_bus"]]] += shunt["bs"]
    rate = np.array([b.get("rate_a", 0.0) for b in branches], dtype=np.float64)

    def column(items: list[dict], key: str, dtype: type = np.float64) -> np.ndarray:
        if key.endswith("_bus"):
            return np.array([index[item[key]] for item in items], dtype=np.int64)
        return np.array([item[key] for item in items], dtype=dtype)

    return Grid(name=name, bus_ids=np.array([int(k) for k in bus_keys], dtype=np.int64),
                vmin=column(buses, "vmin"), vmax=column(buses, "vmax"), gs=gs, bs=bs,
                gen_bus=column(gens, "gen_bus"), pmin=column(gens, "pmin"),
                pmax=column(gens, "pmax"), qmin=column(gens, "qmin"), qmax=column(gens, "qmax"),
                load_bus=column(loads, "load_bus"), pd=column(loads, "pd"),
                qd=column(loads, "qd"), f_bus=column(branches, "f_bus"),
                t_bus=column(branches, "t_bus"),
                rate_a=np.where(rate == 0.0, UNLIMITED_RATING, rate),
                reference=_solution(document, bus_keys, data), source=source)


def _solution(document: dict, bus_keys: list[str], data: dict) -> Solution | None:
    """The reference solution under ``res`` (118-bus file: ``acopf_res``), if present."""
    result = document.get("res") or document.get("acopf_res")
    if not isinstance(result, dict) or "solution" not in result:
        return None
    sol = result["solution"]
    gen_keys = [k for k in sorted(data["gen"], key=int) if data["gen"][k].get("gen_status", 1)]
    br_keys = [k for k in sorted(data["branch"], key=int) if data["branch"][k].get("br_status", 1)]

    def pick(table: str, keys: list[str], field: str) -> np.ndarray:
        return np.array([sol[table][k][field] for k in keys], dtype=np.float64)

    return Solution(pg=pick("gen", gen_keys, "pg"), qg=pick("gen", gen_keys, "qg"),
                    vm=pick("bus", bus_keys, "vm"), va=pick("bus", bus_keys, "va"),
                    pf=pick("branch", br_keys, "pf"), pt=pick("branch", br_keys, "pt"),
                    qf=pick("branch", br_keys, "qf"), qt=pick("branch", br_keys, "qt"))


def load_sample(name_or_path: str | os.PathLike,
                data_dir: str | os.PathLike | None = None) -> np.ndarray:
    """The model input ``[pd, qd]`` (2L,) of ``<name>_sample.json`` (or of a sample path)."""
    text = os.fspath(name_or_path)
    if text.endswith(".json") or os.sep in text:
        path = Path(text)
    else:
        folder = Path(data_dir if data_dir is not None else default_data_dir())
        path = folder / f"{text}_sample.json"
    try:
        with open(path) as handle:
            sample = json.load(handle)
        return np.concatenate([np.asarray(sample["pd"], dtype=np.float64),
                               np.asarray(sample["qd"], dtype=np.float64)])
    except FileNotFoundError as err:
        raise GridError(f"{path}: no such sample file") from err
    except (KeyError, TypeError, ValueError) as err:
        raise GridError(f"{path}: a sample needs lists 'pd' and 'qd' ({err})") from err
