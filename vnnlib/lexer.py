"""Tokens and s-expressions of a VNN-LIB file (vnncomp.md section 1.1).

A token is ``(``, ``)`` or an atom (a maximal run of characters other than whitespace, ``;`` and
parentheses); whitespace of any kind separates tokens and ``;`` starts a comment that runs to
the end of the line.  Tokens are numbered 0, 1, 2, ... in file order.

Two tokenisers produce the same sequence:

- ``statements`` (the fast path) works through the text in chunks of whole lines, each split
  by C string methods, and groups the tokens into top-level s-expressions with an explicit
  stack (no recursion however deep or long the nesting).  A list is a ``Node``; an atom inside
  it is a plain ``str``.  Nodes know the numbers of their ``(`` and ``)`` tokens, so every token
  has a number.
- ``tokenize`` yields ``Token(text, offset)`` with character offsets.  ``SourceText`` uses it
  only when an error is reported, to turn a token number into a line and a column.

This module is a leaf: it imports only ``verifier.errors``.
"""
from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from typing import NamedTuple

from genbab.verifier.errors import VnnlibError

_COMMENT = re.compile(r";[^\n\r]*")
# One alternative per kind; whitespace, which no alternative matches, is skipped by finditer.
_TOKEN = re.compile(r";[^\n\r]*|[()]|[^\s();]+")
_CHUNK_CHARS = 1 << 20  # the fast path splits this much text (rounded to a line) at a time


class Token(NamedTuple):
    """One atom or parenthesis: its text and its character offset in the source."""

    text: str
    offset: int


class Node:
    """A parenthesised list: ``items`` are atoms (str) and Nodes; ``start`` and ``end`` are the
    numbers of its ``(`` and ``)`` tokens."""

    __slots__ = ("items", "start", "end")

    def __init__(self, start: int):
        self.items: list[str | Node] = []
        self.start = start
        self.end = start

    @property
    def head(self) -> str | None:
        """The first item when it is an atom (the operator), else None."""
        if self.items and isinstance(self.items[0], str):
            return self.items[0]
        return None

    def token_index(self, position: int) -> int:
        """The token number of ``items[position]`` (its ``(`` for a Node)."""
        index = self.start + 1
        for item in self.items[:position]:
            index = item.end + 1 if isinstance(item, Node) else index + 1
        return index


class SourceText:
    """The decoded text of one file with its name, for locating tokens in error messages."""

    def __init__(self, name: str | None, text: str):
        self.name = name
        self.text = text
        self._offsets: list[int] | None = None
        self._line_starts: list[int] | None = None

    def offset(self, token_index: int) -> int:
        """Character offset of token number ``token_index`` (the end of text if past it)."""
        if self._offsets is None:
            self._offsets = [token.offset for token in tokenize(self.text)]
        if 0 <= token_index < len(self._offsets):
            return self._offsets[token_index]
        return len(self.text)

    def location(self, token_index: int) -> tuple[int, int]:
        """1-based (line, column) of token number ``token_index``."""
        offset = self.offset(token_index)
        if self._line_starts is None:
            self._line_starts = [0] + [m.end() for m in re.finditer(r"\r\n|\n|\r", self.text)]
        line = bisect.bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def line(self, token_index: int) -> int:
        return self.location(token_index)[0]

    def error(self, problem: str, token_index: int | None) -> VnnlibError:
        """A VnnlibError at a token; ``token_index`` None gives no line (whole-file problems)."""
        if token_index is None:
            return VnnlibError(self.name, problem)
        line, column = self.location(token_index)
        return VnnlibError(self.name, problem, line, column)


def tokenize(text: str) -> Iterator[Token]:
    """Yield the atoms and parentheses of ``text`` with their offsets, skipping whitespace
    and comments (the reference tokeniser; ``statements`` yields the same sequence)."""
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] != ";":
            yield Token(token, match.start())


def _token_chunks(text: str) -> Iterator[list[str]]:
    """The tokens of ``text``, a list per chunk of whole lines (a token never spans a line)."""
    start = 0
    while start < len(text):
        stop = start + _CHUNK_CHARS
        if stop < len(text):
            newline = text.find("\n", stop)
            stop = len(text) if newline < 0 else newline + 1
        chunk = _COMMENT.sub(" ", text[start:stop])
        yield chunk.replace("(", " ( ").replace(")", " ) ").split()
        start = stop


def statements(source: SourceText) -> Iterator[Node]:
    """Yield the top-level s-expressions of ``source`` one at a time.

    Raises VnnlibError for a ``)`` without a matching ``(``, for an atom outside any
    parentheses, and at the end of the text for a ``(`` that was never closed (naming where it
    opened).
    """
    stack: list[Node] = []
    current: Node | None = None
    items: list = []  # current.items
    base = 0
    for tokens in _token_chunks(source.text):
        for index, token in enumerate(tokens, base):
            if token == "(":
                node = Node(index)
                if current is not None:
                    items.append(node)
                    stack.append(current)
                current = node
                items = node.items
            elif token == ")":
                if current is None:
                    raise source.error("unexpected ')' with no matching '('", index)
                current.end = index
                if stack:
                    current = stack.pop()
                    items = current.items
                else:
                    yield current
                    current = None
            elif current is None:
                raise source.error(f"unexpected token {shorten(token)!r} outside parentheses; "
                                   f"every statement must be a parenthesised command", index)
            else:
                items.append(token)
        base += len(tokens)
    if current is not None:
        opened = (stack[0] if stack else current).start
        line, column = source.location(opened)
        raise source.error(f"unbalanced parentheses: the '(' opened at line {line}, column "
                           f"{column} is never closed", opened)


def shorten(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters for an error message."""
    return text if len(text) <= limit else text[:limit] + "..."
