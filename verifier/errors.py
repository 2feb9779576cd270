"""Errors the user can fix in their inputs or options.

Every error message says what is wrong, where (file, line, node name) and, when we know,
what to do about it.  Anything that is *not* a ``VerifierError`` is a bug in genbab.
"""
from __future__ import annotations


class VerifierError(Exception):
    """Something the user can fix in their inputs or options."""


class ModelError(VerifierError):
    """Malformed or unsupported ONNX model (several inputs, dynamic shapes, NaN weights, ...)."""

    def __init__(self, path: str | None, problem: str):
        self.path = path
        self.problem = problem
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{problem}")


class UnsupportedOpError(ModelError):
    """The model uses operators genbab has no implementation for; lists all of them at once."""

    def __init__(self, path: str | None, unsupported: dict[str, list[str]], supported: list[str]):
        self.unsupported = unsupported
        lines = [f"  {op} (e.g. node {nodes[0]!r}; {len(nodes)} node{'s' if len(nodes) > 1 else ''})"
                 for op, nodes in sorted(unsupported.items())]
        problem = ("the model uses operators genbab does not support:\n" + "\n".join(lines)
                   + f"\nsupported: {', '.join(sorted(supported))}")
        super().__init__(path, problem)


class VnnlibError(VerifierError):
    """Malformed or unsupported VNN-LIB property; carries the file, line and column."""

    def __init__(self, path: str | None, problem: str, line: int | None = None,
                 column: int | None = None):
        self.path = path
        self.problem = problem
        self.line = line
        self.column = column
        where = path or "<vnnlib>"
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {problem}")


class SpecMismatchError(VerifierError):
    """The property does not fit the model (wrong number of inputs or outputs)."""
