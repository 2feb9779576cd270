"""Parse a VNN-LIB 1.0 property into the normal form of ``vnnlib.property`` (vnncomp.md 1.2-1.4).

Supported, exactly as the VNN-COMP benchmarks use it:

- ``(declare-const X_i Real)`` / ``(declare-const Y_j Real)``, declared before use, indices
  contiguous from 0;
- atoms ``(<= a b)`` and ``(>= a b)`` where a and b are variables or finite constants;
- ``(assert ATOM)``, ``(assert (and ATOM ...))`` and ``(assert (or (and ATOM ...) ...))``.

Meaning (section 1.4): the property is a list of entries (input box, output rows), starting with
one entry with an unbounded box and no rows.  A top-level atom on an input tightens every box; a
top-level atom on outputs adds a row to every entry; a top-level ``or`` replaces each entry by one
copy per branch (a cross product), each copy tightened by the branch's input atoms and extended
by its output rows.  Finally entries with identical boxes become one ``Disjunct`` whose clauses
are the entries' rows, in order of first appearance.

Rows, ``coeffs @ y <= threshold``: ``(<= Y_a c)`` -> ``e_a``, c; ``(>= Y_a c)`` -> ``-e_a``, -c;
``(<= Y_a Y_b)`` -> ``e_a - e_b``, 0; ``(<= c Y_a)`` -> ``-e_a``, -c (``>=`` swaps the sides).

The text is tokenised in one streaming pass (``vnnlib.lexer``); each statement is interpreted
as soon as it is closed, so nothing recurses per branch and the work is linear in the file size
plus the size of the result (one ``rows x num_outputs`` matrix per clause).
"""
from __future__ import annotations

import gzip
import math
import os
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from genbab.verifier.errors import VnnlibError
from genbab.vnnlib.lexer import Node, SourceText, shorten, statements
from genbab.vnnlib.property import Clause, Disjunct, Property

SUPPORTED = ("genbab supports (declare-const X_i Real), (declare-const Y_j Real) and asserts of "
             "<= / >= atoms over variables and constants, combined as (and ATOM ...) or a "
             "top-level (or (and ATOM ...) ...)")
# SMT-LIB commands that carry no constraint; accepted and ignored.
_IGNORED_COMMANDS = frozenset({"check-sat", "exit", "set-logic", "set-info", "set-option",
                               "get-model"})
_VARIABLE = re.compile(r"([XY])_([0-9]+)\Z")
_GZIP_MAGIC = b"\x1f\x8b"
# A cross product of `or`s beyond this many entries is refused rather than exhausting memory.
MAX_ENTRIES = 1_000_000
_NO_VAR = -1  # row slot without a variable


def parse_vnnlib(source: str | os.PathLike, *, num_inputs: int | None = None,
                 num_outputs: int | None = None, text: str | None = None) -> Property:
    """Parse a ``.vnnlib`` or ``.vnnlib.gz`` file (or ``text``, named ``source`` in messages).

    num_inputs / num_outputs: the model's flattened input / output sizes; when given, the
    declared X_ / Y_ counts must match them.
    Raises VnnlibError (with file, line and column where there is one) for anything malformed
    or outside the supported subset.
    """
    name = os.fspath(source)
    if text is None:
        text = _read_text(name)
    src = SourceText(name, text)
    builder = _Builder(src)
    for statement in statements(src):
        builder.statement(statement)
    return builder.finish(num_inputs, num_outputs)


def _read_text(path: str) -> str:
    """The decoded text of a plain or gzipped file (detected by its magic bytes)."""
    if os.path.isdir(path):
        raise VnnlibError(path, "is a directory, not a .vnnlib file")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as err:
        raise VnnlibError(path, "no such file") from err
    except OSError as err:
        raise VnnlibError(path, f"cannot read the file: {err.strerror or err}") from err
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise VnnlibError(path, f"corrupt or truncated gzip data: {err}") from err
    elif path.endswith(".gz"):
        raise VnnlibError(path, "the name ends in .gz but the file is not gzip data")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise VnnlibError(path, f"the file is not UTF-8 text (byte {err.start}: "
                                f"{err.reason})") from err


@dataclass
class _Group:
    """The atoms of one ``or`` branch, or (the global group) of all top-level asserts.

    Input atoms tighten a bound: ``lower_*`` / ``upper_*`` hold index, value and the token
    number of the atom.  Output atoms are rows ``(positive index, negative index, threshold)``
    with -1 for no variable.  ``at`` is the token number of the branch (None for global).
    """

    at: int | None
    lower_index: list[int] = field(default_factory=list)
    lower_value: list[float] = field(default_factory=list)
    lower_at: list[int] = field(default_factory=list)
    upper_index: list[int] = field(default_factory=list)
    upper_value: list[float] = field(default_factory=list)
    upper_at: list[int] = field(default_factory=list)
    rows: list[tuple[int, int, float]] = field(default_factory=list)


_Var = tuple[bool, int, int]  # (is_output, index, token number of its declaration)
_Entry = tuple[tuple[int, int], ...]  # ((group id, global rows when it joined), ...)


class _Builder:
    """Interprets statements one at a time and assembles the Property at the end.

    An entry is a tuple of ``(group id, number of global rows when the group joined)``; the
    global rows are shared and interleaved on output, so a top-level assert costs O(1) however
    many entries exist.
    """

    def __init__(self, src: SourceText):
        self.src = src
        self.declared: dict[str, _Var] = {}
        self.inputs: dict[int, int] = {}   # index -> token number of the declaration
        self.outputs: dict[int, int] = {}
        self.glob = _Group(None)
        self.groups: list[_Group] = []
        self.entries: list[_Entry] = [()]
        self.last_at = 0
        self.seen_statement = False

    # -- statements -------------------------------------------------------------------------

    def statement(self, node: Node) -> None:
        self.seen_statement = True
        self.last_at = node.start
        items = node.items
        head = items[0] if items else None
        if head == "assert":
            self._assert(node)
        elif head == "declare-const":
            self._declare(node)
        elif not isinstance(head, str):
            raise self.src.error("unexpected statement: expected a command such as "
                                 "(declare-const ...) or (assert ...)", node.start)
        elif head not in _IGNORED_COMMANDS:
            raise self._unsupported(head, node.start + 1)

    def _declare(self, node: Node) -> None:
        items = node.items
        if len(items) != 3 or type(items[1]) is not str or type(items[2]) is not str:
            raise self.src.error("malformed declaration: expected (declare-const NAME Real)",
                                 node.start)
        name, sort = items[1], items[2]
        at = node.start + 2
        match = _VARIABLE.match(name)
        if match is None:
            raise self.src.error(f"unsupported variable name {shorten(name)!r}: genbab "
                                 f"expects X_i for inputs and Y_j for outputs", at)
        digits = match.group(2)
        if len(digits) > 1 and digits[0] == "0":
            raise self.src.error(f"variable name {name!r} has a leading zero in its index", at)
        if name in self.declared:
            first = self.src.line(self.declared[name][2])
            raise self.src.error(f"duplicate declaration of {name} (first declared at line "
                                 f"{first})", at)
        if sort != "Real":
            raise self.src.error(f"{name} is declared with type {shorten(sort)!r}; genbab "
                                 f"supports only Real variables", at + 1)
        is_output = match.group(1) == "Y"
        index = int(digits)
        self.declared[name] = (is_output, index, at)
        (self.outputs if is_output else self.inputs)[index] = at

    def _assert(self, node: Node) -> None:
        if len(node.items) != 2:
            raise self.src.error(f"assert takes exactly one term, got {len(node.items) - 1}",
                                 node.start)
        term = node.items[1]
        if isinstance(term, str):
            raise self._unexpected(term, node.start + 2, "a parenthesised term")
        head = term.items[0] if term.items else None
        if head == "<=" or head == ">=":
            self._atom(term, self.glob)
        elif head == "and":
            self._conjunction(term, self.glob)
        elif head == "or":
            self._disjunction(term)
        else:
            raise self._term_error(term, "as an assertion")

    def _conjunction(self, node: Node, group: _Group) -> None:
        if len(node.items) == 1:
            raise self.src.error("empty (and): it needs at least one atom", node.start)
        for position, child in enumerate(node.items[1:], start=1):
            if isinstance(child, str):
                raise self._unexpected(child, node.token_index(position),
                                       "an atom such as (<= Y_0 1.5)")
            head = child.head
            if head == "<=" or head == ">=":
                self._atom(child, group)
            else:
                raise self._term_error(child, "inside (and ...)")

    def _disjunction(self, node: Node) -> None:
        if len(node.items) == 1:
            raise self.src.error("empty (or): it needs at least one branch", node.start)
        first_id = len(self.groups)
        for position, child in enumerate(node.items[1:], start=1):
            if isinstance(child, str):
                raise self._unexpected(child, node.token_index(position),
                                       "a branch such as (and (<= Y_0 1.5))")
            group = _Group(child.start)
            head = child.head
            if head == "and":
                self._conjunction(child, group)
            elif head == "<=" or head == ">=":
                self._atom(child, group)
            else:
                raise self._term_error(child, "as a branch of (or ...)")
            self.groups.append(group)
        new_ids = range(first_id, len(self.groups))
        total = len(self.entries) * len(new_ids)
        if total > MAX_ENTRIES:
            raise self.src.error(f"this (or ...) multiplies the property into {total} "
                                 f"disjuncts, more than genbab's limit of {MAX_ENTRIES}",
                                 node.start)
        joined = len(self.glob.rows)
        self.entries = [entry + ((gid, joined),) for entry in self.entries for gid in new_ids]

    def _atom(self, node: Node, group: _Group) -> None:
        """Add ``(<= a b)`` / ``(>= a b)`` to ``group`` as an input bound or an output row."""
        items = node.items
        if len(items) != 3:
            raise self.src.error(f"({items[0]} ...) needs exactly two operands, got "
                                 f"{len(items) - 1}; chained comparisons are not supported",
                                 node.start)
        get = self.declared.get
        left = get(items[1]) or self._constant(node, 1)
        right = get(items[2]) or self._constant(node, 2)
        if items[0] == ">=":  # normalise to: left <= right
            left, right = right, left
        if isinstance(left, float):
            if isinstance(right, float):
                raise self.src.error("a comparison of two constants constrains no variable",
                                     node.start)
            is_output, index, _ = right  # c <= var
            if is_output:
                group.rows.append((_NO_VAR, index, -left + 0.0))
            else:
                group.lower_index.append(index)
                group.lower_value.append(left)
                group.lower_at.append(node.start)
        elif isinstance(right, float):  # var <= c
            is_output, index, _ = left
            if is_output:
                group.rows.append((index, _NO_VAR, right))
            else:
                group.upper_index.append(index)
                group.upper_value.append(right)
                group.upper_at.append(node.start)
        elif left[0] and right[0]:  # Y_a <= Y_b
            group.rows.append((left[1], right[1], 0.0))
        else:
            names = " and ".join(f"{'Y' if var[0] else 'X'}_{var[1]}" for var in (left, right))
            raise self.src.error(f"unsupported VNN-LIB construct: a comparison of {names}; "
                                 f"inputs may only be compared with constants ({SUPPORTED})",
                                 node.start)

    def _constant(self, node: Node, position: int) -> float:
        """The value of operand ``position``, which is not a declared variable: a finite
        constant, else an error."""
        item = node.items[position]
        if isinstance(item, Node):
            raise self._term_error(item, "as an operand of a comparison")
        try:
            value = float(item)
        except ValueError:
            value = None
        if value is None or "_" in item:
            at = node.token_index(position)
            if _VARIABLE.match(item):
                raise self.src.error(f"undeclared variable {item}: declare it with "
                                     f"(declare-const {item} Real) before use", at)
            raise self._unexpected(item, at, "a variable or a number")
        if not math.isfinite(value):
            raise self.src.error(f"the constant {item!r} is not a finite number",
                                 node.token_index(position))
        return value + 0.0  # turns -0.0 into 0.0

    # -- errors -----------------------------------------------------------------------------

    def _unsupported(self, construct: str, at: int) -> VnnlibError:
        return self.src.error(f"unsupported VNN-LIB construct {shorten(construct)!r} "
                              f"({SUPPORTED})", at)

    def _unexpected(self, token: str, at: int, expected: str) -> VnnlibError:
        return self.src.error(f"unexpected token {shorten(token)!r}: expected {expected}", at)

    def _term_error(self, node: Node, context: str) -> VnnlibError:
        head = node.head
        if head is None:
            return self.src.error(f"unexpected parenthesised list {context}: a term must start "
                                  f"with an operator", node.start)
        if head in ("and", "or"):
            return self.src.error(f"unsupported VNN-LIB construct: ({head} ...) {context}; only "
                                  f"a top-level (or (and ATOM ...) ...) is supported "
                                  f"({SUPPORTED})", node.start)
        return self._unsupported(head, node.start + 1)

    # -- assembling the Property ------------------------------------------------------------

    def finish(self, num_inputs: int | None, num_outputs: int | None) -> Property:
        if not self.seen_statement:
            raise VnnlibError(self.src.name, "the file is empty: no declarations or assertions",
                              1, 1)
        n = self._check_indices(self.inputs, "X", "inputs", num_inputs)
        m = self._check_indices(self.outputs, "Y", "outputs", num_outputs)
        if not self.glob.rows and not any(group.rows for group in self.groups):
            raise self.src.error("the property has no output constraint: no assert compares "
                                 "a Y_ variable", self.last_at)
        with_inputs = [group.lower_index or group.upper_index for group in self.groups]
        with_rows = [bool(group.rows) for group in self.groups]
        box_ids: dict[tuple[int, ...], int] = {}
        clause_ids: dict[_Entry, int] = {}
        pairs = []  # per entry: (box number, clause number)
        for entry in self.entries:
            box_key = tuple(gid for gid, _ in entry if with_inputs[gid])
            clause_key = tuple(item for item in entry if with_rows[item[0]])
            box = box_ids.setdefault(box_key, len(box_ids))
            pairs.append((box, clause_ids.setdefault(clause_key, len(clause_ids))))
        lower, upper = self._boxes(list(box_ids), n)
        clauses = self._clauses(list(clause_ids), m)
        merged: dict[bytes, tuple[int, list[Clause]]] = {}
        box_to_disjunct = [merged.setdefault(lower[b].tobytes() + upper[b].tobytes(), (b, []))
                           for b in range(len(box_ids))]
        for box, clause in pairs:
            box_to_disjunct[box][1].append(clauses[clause])
        disjuncts = tuple(Disjunct(lower[b], upper[b], tuple(cls)) for b, cls in merged.values())
        return Property(disjuncts, n, m, self.src.name)

    def _check_indices(self, declared: dict[int, int], letter: str, kind: str,
                       expected: int | None) -> int:
        count = len(declared)
        if count == 0:
            raise self.src.error(f"the property declares no {kind} ({letter}_0, {letter}_1, "
                                 f"...)", self.last_at)
        highest = max(declared)
        if highest != count - 1:
            missing = next(i for i in range(count) if i not in declared)
            raise self.src.error(f"{kind} must be numbered {letter}_0, {letter}_1, ... without "
                                 f"gaps: {letter}_{highest} is declared but {letter}_{missing} "
                                 f"is not", declared[highest])
        if expected is not None and expected != count:
            raise self.src.error(f"the property declares {count} {kind} {letter}_0..{letter}_"
                                 f"{count - 1} but the model has {expected} "
                                 f"{kind[:-1]} elements", declared[highest])
        return count

    def _boxes(self, box_keys: list[tuple[int, ...]], n: int) -> tuple[np.ndarray, np.ndarray]:
        """(boxes, n) lower and upper bounds: the global box tightened by each key's groups."""
        glob_lower, glob_upper = _tightened(np.full(n, -np.inf), np.full(n, np.inf), self.glob)
        lower = np.tile(glob_lower, (len(box_keys), 1))
        upper = np.tile(glob_upper, (len(box_keys), 1))
        branch = _Group(None)  # all branches' atoms, their box number in lower_at / upper_at
        for box, key in enumerate(box_keys):
            for gid in key:
                group = self.groups[gid]
                branch.lower_index += group.lower_index
                branch.lower_value += group.lower_value
                branch.lower_at += [box] * len(group.lower_index)
                branch.upper_index += group.upper_index
                branch.upper_value += group.upper_value
                branch.upper_at += [box] * len(group.upper_index)
        np.maximum.at(lower, (np.asarray(branch.lower_at, dtype=np.intp),
                              np.asarray(branch.lower_index, dtype=np.intp)),
                      np.asarray(branch.lower_value, dtype=np.float64))
        np.minimum.at(upper, (np.asarray(branch.upper_at, dtype=np.intp),
                              np.asarray(branch.upper_index, dtype=np.intp)),
                      np.asarray(branch.upper_value, dtype=np.float64))
        self._check_boxes(lower, upper, box_keys)
        return lower + 0.0, upper + 0.0

    def _check_boxes(self, lower: np.ndarray, upper: np.ndarray,
                     box_keys: list[tuple[int, ...]]) -> None:
        for bounds, side in ((lower, "lower"), (upper, "upper")):
            unbounded = np.argwhere(np.isinf(bounds))
            if unbounded.size:
                box, i = (int(v) for v in unbounded[0])
                branch = self._branch(box_keys[box])
                at = self.inputs[i] if branch is None else branch.at
                raise self.src.error(f"input X_{i} has no {side} bound{self._where(branch)}; "
                                     f"every input needs (>= X_{i} lo) and (<= X_{i} hi)", at)
        crossed = np.argwhere(lower > upper)
        if crossed.size:
            box, i = (int(v) for v in crossed[0])
            branch = self._branch(box_keys[box])
            low, high = float(lower[box, i]), float(upper[box, i])
            at = self._lower_bound_at(i, low, box_keys[box])
            raise self.src.error(f"input X_{i} has lower bound {low!r} above its upper bound "
                                 f"{high!r}{self._where(branch)}", at)

    def _branch(self, box_key: tuple[int, ...]) -> _Group | None:
        return self.groups[box_key[-1]] if box_key else None

    def _where(self, branch: _Group | None) -> str:
        if branch is None:
            return ""
        return f" in the (or ...) branch at line {self.src.line(branch.at)}"

    def _lower_bound_at(self, index: int, value: float, box_key: tuple[int, ...]) -> int:
        """The token number of the atom that set X_index's lower bound to ``value``."""
        for group in [self.glob] + [self.groups[gid] for gid in box_key]:
            for i, v, at in zip(group.lower_index, group.lower_value, group.lower_at):
                if i == index and v == value:
                    return at
        return self.inputs[index]

    def _clauses(self, clause_keys: list[_Entry], m: int) -> list[Clause]:
        """One Clause per key: its rows are the global rows interleaved with the key's groups'
        rows in assert order.  All clauses are slices of one matrix built at once."""
        global_rows = self.glob.rows
        rows: list[tuple[int, int, float]] = []
        bounds = [0]
        for key in clause_keys:
            done = 0
            for gid, joined in key:
                rows += global_rows[done:joined]
                done = joined
                rows += self.groups[gid].rows
            rows += global_rows[done:]
            if len(rows) == bounds[-1]:
                raise self._no_output_error(key)
            bounds.append(len(rows))
        table = np.array(rows, dtype=np.float64).reshape(len(rows), 3)
        coeffs = np.zeros((len(rows), m))
        row_ids = np.arange(len(rows))
        for column, sign in ((0, 1.0), (1, -1.0)):
            variables = table[:, column].astype(np.intp)
            has = variables != _NO_VAR
            coeffs[row_ids[has], variables[has]] += sign
        thresholds = table[:, 2] + 0.0
        return [Clause(coeffs[start:stop], thresholds[start:stop])
                for start, stop in zip(bounds[:-1], bounds[1:])]

    def _no_output_error(self, clause_key: _Entry) -> VnnlibError:
        entry = next(entry for entry in self.entries
                     if tuple(item for item in entry if self.groups[item[0]].rows) == clause_key)
        at = self.groups[entry[-1][0]].at if entry else self.last_at
        return self.src.error("this branch of the property constrains no output (Y_ "
                              "variable), so every input in its box would be a "
                              "counterexample; genbab refuses such a branch", at)


def _tightened(lower: np.ndarray, upper: np.ndarray,
               group: _Group) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the bounds tightened by ``group``'s input atoms (max of lowers, min of uppers)."""
    lower, upper = lower.copy(), upper.copy()
    np.maximum.at(lower, np.asarray(group.lower_index, dtype=np.intp),
                  np.asarray(group.lower_value, dtype=np.float64))
    np.minimum.at(upper, np.asarray(group.upper_index, dtype=np.intp),
                  np.asarray(group.upper_value, dtype=np.float64))
    return lower, upper
