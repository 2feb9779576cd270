"""Write any ``vnnlib.Property`` as VNN-LIB 1.0 text that ``vnnlib.parser`` reads back unchanged.

Layout: declarations of ``X_0..`` and ``Y_0..``; with one input box, its bounds as top-level
asserts, then a single clause as top-level output asserts or several as
``(assert (or (and ROW ...) ...))``; with several boxes, one ``(or ...)`` whose branches carry
their own box and rows.  Every input must be bounded (VNN-COMP boxes are; the parser
refuses an unbounded input), so infinite box ends are refused.  Numbers are written with
``repr``, the shortest text that reads back as the same float64, so a round trip is exact.

A row ``coeffs @ y <= threshold`` must be one that VNN-LIB 1.0 can state: ``y_a <= t``
(coefficient +1), ``y_a >= -t`` (coefficient -1) or ``y_a <= y_b`` (+1, -1 and t == 0).
Round-trip caveat: the parser merges boxes that are equal, so two disjuncts with the same box
come back as one disjunct holding both clause lists (the same property).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from genbab.vnnlib.property import Clause, Property


def write_vnnlib(prop: Property, path: str | os.PathLike, comment: str | None = None) -> Path:
    """Write ``prop`` to ``path`` (with ``comment`` as ``;`` lines on top); returns the path."""
    path = Path(path)
    path.write_text(format_vnnlib(prop, comment))
    return path


def format_vnnlib(prop: Property, comment: str | None = None) -> str:
    """The VNN-LIB text of ``prop``; raises ValueError for rows VNN-LIB 1.0 cannot express."""
    lines = [f"; {text}".rstrip() for text in (comment.splitlines() if comment else [])]
    lines += [f"(declare-const X_{i} Real)" for i in range(prop.num_inputs)]
    lines.append("")
    lines += [f"(declare-const Y_{j} Real)" for j in range(prop.num_outputs)]
    lines.append("")
    disjuncts = [d for d in prop.disjuncts if d.clauses]
    if not disjuncts:
        raise ValueError("the property has no clause, so nothing can violate it; VNN-LIB "
                         "cannot state an empty disjunction")
    if len(disjuncts) == 1:
        lines += _single_box(disjuncts[0].lower, disjuncts[0].upper, disjuncts[0].clauses)
    else:
        lines.append("(assert (or")
        for d in disjuncts:
            box = _box_atoms(d.lower, d.upper)
            lines += [f"  (and {' '.join(box + _clause_atoms(c))})" for c in d.clauses]
        lines.append("))")
    return "\n".join(lines) + "\n"


def _single_box(lower: np.ndarray, upper: np.ndarray, clauses: tuple[Clause, ...]) -> list[str]:
    lines = ["; input box"] + [f"(assert {atom})" for atom in _box_atoms(lower, upper)]
    lines += ["", "; violation"]
    if len(clauses) == 1:
        return lines + [f"(assert {atom})" for atom in _clause_atoms(clauses[0])]
    lines.append("(assert (or")
    lines += [f"  (and {' '.join(_clause_atoms(c))})" for c in clauses]
    return lines + ["))"]


def _box_atoms(lower: np.ndarray, upper: np.ndarray) -> list[str]:
    atoms = []
    for i, (low, high) in enumerate(zip(lower.tolist(), upper.tolist())):
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"input X_{i} has the bounds [{low}, {high}]; VNN-LIB boxes must "
                             f"be bounded")
        atoms += [f"(>= X_{i} {_number(low)})", f"(<= X_{i} {_number(high)})"]
    return atoms


def _clause_atoms(clause: Clause) -> list[str]:
    if clause.num_rows == 0:
        raise ValueError("a clause without rows (always violated) cannot be written in VNN-LIB")
    return [_row_atom(coeffs, float(threshold))
            for coeffs, threshold in zip(clause.coeffs, clause.thresholds)]


def _row_atom(coeffs: np.ndarray, threshold: float) -> str:
    nonzero = np.flatnonzero(coeffs)
    values = coeffs[nonzero].tolist()
    if values == [1.0]:
        return f"(<= Y_{nonzero[0]} {_number(threshold)})"
    if values == [-1.0]:
        return f"(>= Y_{nonzero[0]} {_number(-threshold)})"
    if len(values) == 2 and sorted(values) == [-1.0, 1.0] and threshold == 0.0:
        a, b = (nonzero[0], nonzero[1]) if values[0] == 1.0 else (nonzero[1], nonzero[0])
        return f"(<= Y_{a} Y_{b})"
    terms = " + ".join(f"{v:g}*Y_{j}" for v, j in zip(values, nonzero.tolist())) or "0"
    raise ValueError(f"the row {terms} <= {threshold:g} cannot be written in VNN-LIB 1.0, "
                     f"which compares one output with a constant or with one other output")


def _number(value: float) -> str:
    if not np.isfinite(value):
        raise ValueError(f"VNN-LIB constants must be finite, got {value}")
    return repr(float(value))
