"""Shipped branching-point tables: load and look up (algorithms.md section 6).

A *split node* ``h`` is keyed by its **signature**: its nonlinear consumers, each described by
``Consumer(op_type, num_inputs, slot, input_range, exponent)``.  ``signature_key`` turns them
into a canonical string such as ``"Sigmoid"``, ``"Cos+Sin"`` (an ACOPF angle feeding both),
``"Pow2"`` or ``"Mul@0"`` (``h`` is input 0 of a two-input Mul; the other factor's interval is
the table's second variable).  Nodes with no table (a ReLU consumer: split at 0; a
non-elementwise consumer: midpoint) get ``None``.

``BranchPoints`` reads ``data/manifest.json`` at construction (about a millisecond) and each
table's ``.npz`` lazily on first use.  ``lookup`` is vectorised over any number of neurons: the
largest grid box inside each real box is found in O(1), the stored point's fraction of that
grid box read and the point at the same fraction of the real box returned (identical on grid
boxes; measured better than reusing the absolute point on off-grid boxes), clamped strictly
inside; off the grid (or without a usable table) the midpoint.

Versioning: every table records ``format_version`` and a ``fingerprint`` of the default
relaxations it was optimised against.  This module imports nothing from the project (STYLE.md
section 2), so it cannot compute the current fingerprint; the caller passes a function that
does (``lut.build.relaxation_fingerprint``).  A table whose format or fingerprint differs is
refused with ``StaleTableError`` naming the rebuild command, or, with ``on_stale="warn"``,
replaced by the midpoint after one logged warning.  Soundness never depends on the table: any
point strictly inside the box is a valid split.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Literal

import numpy as np
import torch
from torch import Tensor

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
DATA_DIR = Path(__file__).resolve().parent / "data"
MANIFEST_NAME = "manifest.json"
INSIDE_FRACTION = 1e-4     # looked-up points stay this fraction of the width inside the box
_INDEX_TOLERANCE = 1e-3    # in grid steps: bounds this close to a grid value (float32) are on it

# Consumers split elsewhere (ReLU-like kinks at 0): no table.
KINK_OPS = frozenset({"Relu", "LeakyRelu", "Abs"})
# Elementwise smooth ops with a relaxation in bounds/ops; only these can be in a signature.
TABLE_OPS = frozenset({"Sigmoid", "Tanh", "Sin", "Cos", "Exp", "Log", "Reciprocal", "Sqrt",
                       "Pow", "Mul", "Erf", "Softplus", "Gelu", "SiLU", "Atan", "Softsign",
                       "LogSigmoid", "Celu", "Mish"})


class TableError(Exception):
    """A branching-point table cannot be used."""


class StaleTableError(TableError):
    """A table was built for another format or other relaxations; rebuild it."""


def rebuild_command(key: str) -> str:
    return f"python -m genbab.lut.build {key}"


@dataclass(frozen=True)
class Consumer:
    """One nonlinear consumer of a split node, as algorithms.md section 6 describes it.

    ``op_type``: the ONNX op type; ``num_inputs``: how many *perturbed* inputs it has (a Mul by
    a constant is linear and is not a consumer); ``slot``: which of them the split node is;
    ``input_range``: the op's valid input range (``OpRule.input_range``); ``exponent``: Pow's
    constant exponent (``node.attrs["exponent"]``, default 2); ``approximate``: Gelu's
    ``node.attrs["approximate"]`` (``"tanh"`` is another curve, key ``GeluTanh``; default
    ``"none"``).  The range is a function of the op and its exponent, so it does not enter the
    key; each table stores the grid range it covers and boxes outside it fall back to the
    midpoint.  Other attributes do not enter the key: a ``Celu`` with alpha != 1 gets the
    alpha = 1 table's point (sound, only less well placed)."""

    op_type: str
    num_inputs: int = 1
    slot: int = 0
    input_range: tuple[float, float] = (-math.inf, math.inf)
    exponent: float | None = None
    approximate: str | bytes | None = None


def _format_exponent(exponent: float | None) -> str:
    e = 2.0 if exponent is None else float(exponent)
    return str(int(e)) if e == round(e) and abs(e) < 1e15 else repr(e)


def consumer_key(consumer: Consumer) -> str | None:
    """The key part of one consumer (``"Sigmoid"``, ``"Pow3"``, ``"Mul@1"``); ``None`` if no
    table can describe it."""
    op = consumer.op_type
    if op in KINK_OPS or op not in TABLE_OPS:
        return None
    if op == "Mul":
        if consumer.num_inputs != 2 or consumer.slot not in (0, 1):
            return None
        return f"Mul@{consumer.slot}"
    if consumer.num_inputs != 1:
        return None
    if op == "Pow":
        return f"Pow{_format_exponent(consumer.exponent)}"
    approximate = consumer.approximate
    if op == "Gelu" and (approximate.decode() if isinstance(approximate, bytes)
                         else approximate) == "tanh":
        return "GeluTanh"
    return op


def canonical_key(key: str) -> str:
    """Parts sorted alphabetically, duplicates removed: ``"Sin+Cos"`` -> ``"Cos+Sin"``."""
    return "+".join(sorted(set(key.split("+"))))


def signature_key(consumers: Iterable[Consumer]) -> str | None:
    """Canonical table key of a split node from its nonlinear consumers (any order).

    Parts are joined with ``+`` in alphabetical order; identical unary consumers count once
    (they scale the objective, not its argmin).  Returns ``None`` (caller: ReLU-like consumers
    split at 0, others at the midpoint) when there is no consumer, when any consumer is ReLU,
    LeakyReLU, Abs or an op outside ``TABLE_OPS`` (non-elementwise ones such as MatMul), or
    when more than one Mul input is involved (a table of dimension > 2)."""
    parts = []
    for consumer in consumers:
        part = consumer_key(consumer)
        if part is None:
            return None
        parts.append(part)
    if not parts:
        return None
    if sum(part.startswith("Mul@") for part in parts) > 1:
        return None
    return canonical_key("+".join(parts))


def key_dimension(key: str) -> int:
    """Table variables: the split node plus the other factor of a Mul consumer."""
    return 1 + sum(part.startswith("Mul@") for part in key.split("+"))


def table_file_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in key) + ".npz"


@dataclass(frozen=True)
class Grid:
    """Per table variable: grid values ``lower[v] + k * step[v]`` for ``k < size[v]``.
    Variable 0 is the split node.  Candidate points were on the finer grid of step
    ``step[0] / refine``."""

    lower: tuple[float, ...]
    step: tuple[float, ...]
    size: tuple[int, ...]
    refine: int

    @property
    def upper(self) -> tuple[float, ...]:
        return tuple(lo + st * (n - 1) for lo, st, n in zip(self.lower, self.step, self.size))

    @property
    def num_boxes(self) -> int:
        return math.prod(n * (n - 1) // 2 for n in self.size)

    def to_json(self) -> dict:
        return {"lower": list(self.lower), "step": list(self.step), "size": list(self.size),
                "refine": self.refine}

    @classmethod
    def from_json(cls, data: dict) -> "Grid":
        return cls(tuple(map(float, data["lower"])), tuple(map(float, data["step"])),
                   tuple(map(int, data["size"])), int(data["refine"]))


def pair_index(i: Tensor | np.ndarray, k: Tensor | np.ndarray, n: int):
    """Position of the grid pair ``i < k`` (of ``n`` values) in row-major upper-triangle order."""
    return i * (2 * n - i - 1) // 2 + (k - i - 1)


def midpoint(lower: Tensor, upper: Tensor) -> Tensor:
    return lower / 2 + upper / 2          # no overflow for huge boxes


def strictly_inside(point: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """``point`` clamped to ``[l + f (u - l), u - f (u - l)]`` (``f = INSIDE_FRACTION``), else
    the midpoint, else a finite point for half-infinite boxes; ``l`` itself where no float lies
    strictly between ``l`` and ``u`` (in particular ``l == u``)."""
    width = upper - lower
    lo, hi = lower + INSIDE_FRACTION * width, upper - INSIDE_FRACTION * width
    point = torch.minimum(torch.maximum(point, lo), hi)
    mid = midpoint(lower, upper)
    point = torch.where((point > lower) & (point < upper), point, mid)
    finite_lo, finite_up = torch.isfinite(lower), torch.isfinite(upper)
    one = torch.ones_like(lower)
    half_inf = torch.where(finite_lo, lower + torch.maximum(one, lower.abs()),
                           upper - torch.maximum(one, upper.abs()))
    unbounded = torch.where(finite_lo | finite_up, half_inf, torch.zeros_like(lower))
    point = torch.where(finite_lo & finite_up, point, unbounded)
    return torch.where((point > lower) & (point < upper), point, lower)


@dataclass(frozen=True)
class Table:
    """One signature's table: per grid box, the best point as an offset from the box midpoint
    in fine steps (``step[0] / refine``), stored flat (variable 0's pair index major)."""

    key: str
    grid: Grid
    offsets: np.ndarray                    # (num_boxes,) integers
    fingerprint: str
    format_version: int

    def inner_boxes(self, bounds: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, list[Tensor]]:
        """(valid mask, per-variable grid indices (i_l, i_u)) of the largest inner grid box."""
        valid = None
        indices = []
        for v, (lower, upper) in enumerate(bounds):
            lo, st, n = self.grid.lower[v], self.grid.step[v], self.grid.size[v]
            a = (lower.double() - lo) / st
            b = (upper.double() - lo) / st
            ok = torch.isfinite(a) & torch.isfinite(b) & (a >= -_INDEX_TOLERANCE) & \
                (b <= n - 1 + _INDEX_TOLERANCE)
            i_l = torch.ceil(torch.where(ok, a, 0.0) - _INDEX_TOLERANCE).long().clamp(0, n - 1)
            i_u = torch.floor(torch.where(ok, b, 0.0) + _INDEX_TOLERANCE).long().clamp(0, n - 1)
            ok = ok & (i_l < i_u)
            valid = ok if valid is None else valid & ok
            indices.append((i_l, i_u))
        return valid, indices

    def fractions(self, bounds: list[tuple[Tensor, Tensor]],
                  stored: Tensor) -> tuple[Tensor, Tensor]:
        """(valid mask, float64 fraction ``t`` in (0, 1)) for broadcast bounds: the stored point
        of the inner grid box is ``g_l + t (g_u - g_l)``.  ``stored`` is ``offsets`` as a
        tensor on the bounds' device."""
        valid, indices = self.inner_boxes(bounds)
        flat = torch.zeros_like(valid, dtype=torch.long)
        for v, (i_l, i_u) in enumerate(indices):
            n = self.grid.size[v]
            pair = pair_index(torch.where(valid, i_l, 0), torch.where(valid, i_u, 1), n)
            flat = flat * (n * (n - 1) // 2) + pair
        i_l, i_u = indices[0]
        fine_steps = self.grid.refine * torch.where(valid, i_u - i_l, 1).double()
        return valid, 0.5 + stored[flat].double() / fine_steps


def _read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST_NAME
    if not path.exists():
        return {"format_version": FORMAT_VERSION, "tables": {}}
    with open(path) as handle:
        return json.load(handle)


class BranchPoints:
    """The shipped tables.  ``fingerprint(key) -> str`` (e.g. ``lut.build.relaxation_fingerprint``)
    checks each table against the current relaxations when it is first used; without it only
    the format version is checked.  ``on_stale``: ``"raise"`` (``StaleTableError``) or
    ``"warn"`` (one warning per key, then the midpoint).  Missing tables always give one
    warning and the midpoint."""

    def __init__(self, directory: Path | str | None = None,
                 fingerprint: Callable[[str], str] | None = None,
                 on_stale: Literal["raise", "warn"] = "raise") -> None:
        if on_stale not in ("raise", "warn"):
            raise ValueError(f"on_stale must be 'raise' or 'warn', got {on_stale!r}")
        self.directory = Path(directory) if directory is not None else DATA_DIR
        self.manifest = _read_manifest(self.directory)
        self._fingerprint = fingerprint
        self._on_stale = on_stale
        self._tables: dict[str, Table | None] = {}
        self._on_device: dict[tuple[str, torch.device], Tensor] = {}
        self._warned: set[str] = set()

    def keys(self) -> tuple[str, ...]:
        return tuple(sorted(self.manifest.get("tables", {})))

    def table(self, key: str) -> Table:
        """The checked table for ``key`` (canonicalised).  Raises ``KeyError`` if none is shipped
        and ``StaleTableError`` if it was built for another format or other relaxations."""
        key = canonical_key(key)
        entry = self.manifest.get("tables", {}).get(key)
        if entry is None:
            raise KeyError(f"no branching-point table for {key!r} in {self.directory}; build "
                           f"one with `{rebuild_command(key)}`")
        version = entry.get("format_version", self.manifest.get("format_version"))
        if version != FORMAT_VERSION:
            raise StaleTableError(f"branching-point table {key!r} has format version {version}, "
                                  f"this code reads {FORMAT_VERSION}; rebuild it with "
                                  f"`{rebuild_command(key)}`")
        if self._fingerprint is not None:
            current = self._fingerprint(key)
            if current != entry["fingerprint"]:
                raise StaleTableError(f"branching-point table {key!r} was built for other "
                                      f"relaxations (fingerprint {entry['fingerprint'][:12]}, "
                                      f"now {current[:12]}); rebuild it with "
                                      f"`{rebuild_command(key)}`")
        with np.load(self.directory / entry["file"]) as data:
            offsets = data["offsets"]
        grid = Grid.from_json(entry["grid"])
        if offsets.shape != (grid.num_boxes,):
            raise TableError(f"branching-point table {key!r}: {offsets.shape[0]} entries, the "
                             f"grid has {grid.num_boxes}; rebuild it with "
                             f"`{rebuild_command(key)}`")
        return Table(key, grid, offsets, entry["fingerprint"], version)

    def _usable(self, key: str) -> Table | None:
        if key in self._tables:
            return self._tables[key]
        try:
            table: Table | None = self.table(key)
        except KeyError as error:
            logger.warning("%s; splitting at the midpoint", error.args[0])
            table = None
        except StaleTableError as error:
            if self._on_stale == "raise":
                raise
            logger.warning("%s; splitting at the midpoint", error)
            table = None
        self._tables[key] = table
        return table

    def _stored(self, table: Table, device: torch.device) -> Tensor:
        cache_key = (table.key, device)
        if cache_key not in self._on_device:
            self._on_device[cache_key] = torch.from_numpy(
                table.offsets.astype(np.int32)).to(device)
        return self._on_device[cache_key]

    def lookup(self, key: str | None, lower: Tensor, upper: Tensor,
               other_lower: Tensor | None = None, other_upper: Tensor | None = None) -> Tensor:
        """Split points for neurons with bounds ``lower``/``upper`` (any shape), same dtype and
        device.  For a ``Mul@slot`` key, ``other_lower``/``other_upper`` (broadcastable) bound
        the Mul's other input.  Strictly inside ``(lower, upper)`` where ``lower < upper`` (see
        ``strictly_inside``); ``key=None`` or an unusable table gives the midpoint."""
        canonical = None if key is None else canonical_key(key)
        table = None if canonical is None else self._usable(canonical)
        if table is None:
            return strictly_inside(midpoint(lower, upper), lower, upper)
        bounds = [(lower, upper)]
        if len(table.grid.size) == 2:
            if other_lower is None or other_upper is None:
                raise ValueError(f"table {canonical!r} needs the other factor's bounds "
                                 f"(other_lower, other_upper)")
            bounds.append(tuple(torch.broadcast_tensors(other_lower, other_upper, lower)[:2]))
        valid, fraction = table.fractions(bounds, self._stored(table, lower.device))
        point = lower + fraction.to(lower.dtype) * (upper - lower)
        point = torch.where(valid, point, midpoint(lower, upper))
        return strictly_inside(point, lower, upper)
