"""The VNN-LIB parser on every assertion form of vnncomp.md section 1.2, with exact matrices."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genbab import vnnlib
from genbab.vnnlib import lexer
from genbab.vnnlib.lexer import SourceText, statements, tokenize
from genbab.vnnlib.parser import parse_vnnlib


def declare(n: int, m: int) -> str:
    return ("".join(f"(declare-const X_{i} Real)\n" for i in range(n))
            + "".join(f"(declare-const Y_{j} Real)\n" for j in range(m)))


def box_text(lower, upper) -> str:
    return "".join(f"(assert (>= X_{i} {lo!r}))\n(assert (<= X_{i} {hi!r}))\n"
                   for i, (lo, hi) in enumerate(zip(lower, upper)))


def parse(body: str, n: int = 2, m: int = 3, box: bool = True, **kwargs) -> vnnlib.Property:
    text = declare(n, m) + (box_text([0.0] * n, [1.0] * n) if box else "") + body
    return parse_vnnlib("spec.vnnlib", text=text, **kwargs)


def only_clauses(prop: vnnlib.Property) -> list[tuple[list, list]]:
    assert len(prop.disjuncts) == 1
    return [(c.coeffs.tolist(), c.thresholds.tolist()) for c in prop.disjuncts[0].clauses]


def test_parser_reads_input_box():
    prop = parse("(assert (>= X_0 -0.5))\n(assert (<= X_0 0.5))\n(assert (<= X_1 1.0))\n"
                 "(assert (>= X_1 0))\n(assert (<= Y_0 1))", n=2, m=1, box=False)
    (disjunct,) = prop.disjuncts
    assert disjunct.lower.tolist() == [-0.5, 0.0]
    assert disjunct.upper.tolist() == [0.5, 1.0]
    assert prop.num_inputs == 2 and prop.num_outputs == 1
    assert prop.source == "spec.vnnlib"


def test_parser_reads_single_output_bound():
    assert only_clauses(parse("(assert (>= Y_0 3.991125645861615))")) == [
        ([[-1.0, 0.0, 0.0]], [-3.991125645861615])]
    assert only_clauses(parse("(assert (<= Y_2 4))")) == [([[0.0, 0.0, 1.0]], [4.0])]


def test_parser_reads_constant_on_the_left():
    assert only_clauses(parse("(assert (<= 2.5 Y_1))")) == [([[0.0, -1.0, 0.0]], [-2.5])]
    assert only_clauses(parse("(assert (>= 2.5 Y_1))")) == [([[0.0, 1.0, 0.0]], [2.5])]


def test_parser_reads_output_vs_output():
    assert only_clauses(parse("(assert (<= Y_0 Y_1))")) == [([[1.0, -1.0, 0.0]], [0.0])]
    assert only_clauses(parse("(assert (>= Y_0 Y_2))")) == [([[-1.0, 0.0, 1.0]], [0.0])]
    assert only_clauses(parse("(assert (<= Y_1 Y_1))")) == [([[0.0, 0.0, 0.0]], [0.0])]


def test_parser_conjoins_top_level_output_asserts():
    clauses = only_clauses(parse("(assert (<= Y_2 -2.28))\n(assert (>= Y_0 -0.0))"))
    assert clauses == [([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]], [-2.28, 0.0])]
    assert not np.signbit(parse("(assert (>= Y_0 -0.0))").disjuncts[0].clauses[0].thresholds[0])


def test_parser_reads_dnf_over_outputs():
    prop = parse("(assert (or (and (>= Y_0 Y_2)) (and (>= Y_1 Y_2))))")
    assert only_clauses(prop) == [([[-1.0, 0.0, 1.0]], [0.0]), ([[0.0, -1.0, 1.0]], [0.0])]


def test_parser_reads_dnf_with_multi_term_clauses():
    prop = parse("(assert (or (and (>= Y_0 41) (<= Y_0 236)) (and (<= Y_1 0))))")
    assert only_clauses(prop) == [([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], [-41.0, 236.0]),
                                  ([[0.0, 1.0, 0.0]], [0.0])]


def test_parser_accepts_bare_atoms_as_or_branches():
    prop = parse("(assert (or (<= Y_0 1) (and (<= Y_1 2))))")
    assert only_clauses(prop) == [([[1.0, 0.0, 0.0]], [1.0]), ([[0.0, 1.0, 0.0]], [2.0])]


def test_parser_reads_top_level_and():
    prop = parse("(assert (and (<= Y_0 1) (>= Y_1 2)))")
    assert only_clauses(prop) == [([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], [1.0, -2.0])]


def test_parser_gives_branches_with_inputs_their_own_boxes():
    text = declare(1, 1) + """(assert (or
        (and (>= X_0 -1) (<= X_0 1) (>= Y_0 100))
        (and (>= X_0 2) (<= X_0 3) (<= Y_0 5))
        (and (>= X_0 -1) (<= X_0 1) (<= Y_0 -7))
    ))"""
    prop = parse_vnnlib("nn4sys.vnnlib", text=text)
    assert [(d.lower.tolist(), d.upper.tolist()) for d in prop.disjuncts] == [([-1.0], [1.0]),
                                                                              ([2.0], [3.0])]
    first, second = prop.disjuncts
    assert [(c.coeffs.tolist(), c.thresholds.tolist()) for c in first.clauses] == [
        ([[-1.0]], [-100.0]), ([[1.0]], [-7.0])]
    assert [(c.coeffs.tolist(), c.thresholds.tolist()) for c in second.clauses] == [
        ([[1.0]], [5.0])]


def test_parser_branch_bounds_tighten_the_global_box():
    text = declare(2, 1) + box_text([0.0, 0.0], [1.0, 1.0]) + """(assert (or
        (and (>= X_0 0.5) (<= Y_0 1))
        (and (<= X_1 0.25) (<= Y_0 2))))"""
    prop = parse_vnnlib("spec.vnnlib", text=text)
    assert [(d.lower.tolist(), d.upper.tolist()) for d in prop.disjuncts] == [
        ([0.5, 0.0], [1.0, 1.0]), ([0.0, 0.0], [1.0, 0.25])]


def test_parser_multiplies_two_or_asserts():
    # ACAS Xu property 6: an input-only `or` of two boxes and an output `or` of two clauses
    text = declare(2, 3) + """(assert (or
        (and (<= X_0 0.7) (>= X_0 -0.1) (<= X_1 0.5) (>= X_1 0.1))
        (and (<= X_0 0.7) (>= X_0 -0.1) (<= X_1 -0.1) (>= X_1 -0.5))))
        (assert (or (and (<= Y_1 Y_0)) (and (<= Y_2 Y_0))))"""
    prop = parse_vnnlib("prop_6.vnnlib", text=text, num_inputs=2, num_outputs=3)
    assert [(d.lower.tolist(), d.upper.tolist()) for d in prop.disjuncts] == [
        ([-0.1, 0.1], [0.7, 0.5]), ([-0.1, -0.5], [0.7, -0.1])]
    for disjunct in prop.disjuncts:
        assert [(c.coeffs.tolist(), c.thresholds.tolist()) for c in disjunct.clauses] == [
            ([[-1.0, 1.0, 0.0]], [0.0]), ([[-1.0, 0.0, 1.0]], [0.0])]


def test_parser_adds_top_level_output_assert_to_every_clause_in_order():
    # lsnc: an `or` and then a simple assert; and a simple assert before the `or`
    prop = parse("(assert (>= Y_2 0))\n(assert (or (and (<= Y_0 -1e-06)) (and (>= Y_1 0.1))))\n"
                 "(assert (<= Y_1 0.045))")
    assert only_clauses(prop) == [
        ([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [0.0, -1e-06, 0.045]),
        ([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [0.0, 1.0, 0.0]], [0.0, -0.1, 0.045])]


def test_parser_accepts_degenerate_box_and_tightens_repeated_bounds():
    text = declare(2, 1) + """(assert (>= X_0 1.0)) (assert (<= X_0 1.0))
        (assert (>= X_1 0)) (assert (>= X_1 0.25)) (assert (<= X_1 2)) (assert (<= X_1 0.75))
        (assert (<= 0.5 X_1)) (assert (>= 0.6 X_1)) (assert (<= Y_0 0))"""
    (disjunct,) = parse_vnnlib("spec.vnnlib", text=text).disjuncts
    assert disjunct.lower.tolist() == [1.0, 0.5]
    assert disjunct.upper.tolist() == [1.0, 0.6]


def test_parser_handles_comments_whitespace_and_number_forms():
    text = ("; header comment\n(declare-const X_0 Real) ; trailing comment (with parens)\n"
            "(declare-const\tY_0\r\n  Real)\n( declare-const Y_1 Real )\n"
            "(assert (>= X_0 -1e-06)) (assert (<= X_0 +2.5E+1))\n"
            "(assert\n  (or\n    (and (<= Y_0 .5))\n    ; a comment between branches\n"
            "    (and (>= Y_1 -3.))\n  )\n)\n; the end")
    prop = parse_vnnlib("spec.vnnlib", text=text)
    (disjunct,) = prop.disjuncts
    assert disjunct.lower.tolist() == [-1e-06] and disjunct.upper.tolist() == [25.0]
    assert [c.thresholds.tolist() for c in disjunct.clauses] == [[0.5], [3.0]]


def test_parser_ignores_check_sat():
    assert only_clauses(parse("(assert (<= Y_0 1))\n(check-sat)\n(exit)")) == [
        ([[1.0, 0.0, 0.0]], [1.0])]


def test_parser_accepts_matching_model_sizes():
    prop = parse("(assert (<= Y_0 1))", n=2, m=3, num_inputs=2, num_outputs=3)
    assert (prop.num_inputs, prop.num_outputs) == (2, 3)


def test_parser_reads_plain_and_gzipped_files(tmp_path):
    text = declare(1, 1) + box_text([0.0], [1.0]) + "(assert (<= Y_0 0.5))\n"
    plain = tmp_path / "p.vnnlib"
    plain.write_text(text)
    zipped = tmp_path / "p.vnnlib.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    from_plain, from_gzip = parse_vnnlib(plain), parse_vnnlib(str(zipped))
    assert only_clauses(from_plain) == only_clauses(from_gzip)
    assert from_plain.disjuncts[0].lower.tolist() == from_gzip.disjuncts[0].lower.tolist()
    assert from_gzip.source == str(zipped)
    assert only_clauses(from_gzip) == [([[1.0]], [0.5])]


def test_parser_is_exported_lazily():
    assert vnnlib.parse_vnnlib is parse_vnnlib


def test_clause_matrices_are_read_only():
    clause = parse("(assert (<= Y_0 1))").disjuncts[0].clauses[0]
    with pytest.raises(ValueError):
        clause.coeffs[0, 0] = 2.0


def test_fast_tokens_match_reference_tokenizer(monkeypatch):
    text = "(; c (\n(a\t(b 1e-3);x)\r\n)c_1 (  ) )\n; end )\n"
    reference = [t.text for t in tokenize(text)]
    assert reference == ["(", "(", "a", "(", "b", "1e-3", ")", ")", "c_1", "(", ")", ")"]
    monkeypatch.setattr(lexer, "_CHUNK_CHARS", 7)  # many chunk boundaries
    assert [t for chunk in lexer._token_chunks(text) for t in chunk] == reference
    src = SourceText("t", text)
    (node,) = statements(src)
    assert (node.start, node.end) == (0, len(reference) - 1)
    assert node.items[0].items[0] == "a" and node.items[1] == "c_1"
    assert src.location(2) == (2, 2)  # 'a'
    assert src.location(8) == (3, 2)  # 'c_1'
    assert node.token_index(1) == 8


# -- round trip: random box + DNF -> VNN-LIB text -> Property ------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def properties(draw):
    """(text, expected disjuncts as [(lower, upper, [(coeffs, thresholds), ...])], n, m)."""
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    num_boxes = draw(st.integers(1, 3))
    boxes = []
    for _ in range(num_boxes):
        lower = [draw(finite) for _ in range(n)]
        upper = [lo + draw(st.floats(0, 10)) for lo in lower]
        boxes.append((lower, upper))
    branches = []
    for _ in range(draw(st.integers(1, 5))):
        box = draw(st.integers(0, num_boxes - 1))
        atoms, rows = [], []
        for _ in range(draw(st.integers(1, 3))):
            kind, a, b, c = (draw(st.integers(0, 4)), draw(st.integers(0, m - 1)),
                             draw(st.integers(0, m - 1)), draw(finite))
            row = np.zeros(m)
            if kind == 0:
                atoms.append(f"(<= Y_{a} {c!r})"); row[a] += 1; rows.append((row, c))
            elif kind == 1:
                atoms.append(f"(>= Y_{a} {c!r})"); row[a] -= 1; rows.append((row, -c))
            elif kind == 2:
                atoms.append(f"(<= {c!r} Y_{a})"); row[a] -= 1; rows.append((row, -c))
            elif kind == 3:
                atoms.append(f"(<= Y_{a} Y_{b})"); row[a] += 1; row[b] -= 1; rows.append((row, 0))
            else:
                atoms.append(f"(>= Y_{a} Y_{b})"); row[b] += 1; row[a] -= 1; rows.append((row, 0))
        branches.append((box, atoms, rows))
    lines = [declare(n, m), "(assert (or"]
    for box, atoms, _ in branches:
        lower, upper = boxes[box]
        bounds = [f"(>= X_{i} {lo!r}) (<= X_{i} {hi!r})" for i, (lo, hi)
                  in enumerate(zip(lower, upper))]
        lines.append(f"  (and {' '.join(bounds)} {' '.join(atoms)})")
    lines.append("))")
    expected: dict[tuple, tuple] = {}
    for box, _, rows in branches:
        lower, upper = boxes[box]
        entry = expected.setdefault(tuple(lower) + tuple(upper), (lower, upper, []))
        entry[2].append((np.array([r for r, _ in rows]), np.array([t for _, t in rows])))
    return "\n".join(lines), list(expected.values()), n, m


@settings(max_examples=40, deadline=None)
@given(properties())
def test_parser_round_trips_random_box_and_dnf(case):
    text, expected, n, m = case
    prop = parse_vnnlib("random.vnnlib", text=text, num_inputs=n, num_outputs=m)
    assert len(prop.disjuncts) == len(expected)
    for disjunct, (lower, upper, clauses) in zip(prop.disjuncts, expected):
        assert np.array_equal(disjunct.lower, lower) and np.array_equal(disjunct.upper, upper)
        assert len(disjunct.clauses) == len(clauses)
        for clause, (coeffs, thresholds) in zip(disjunct.clauses, clauses):
            assert np.array_equal(clause.coeffs, coeffs)
            assert np.array_equal(clause.thresholds, thresholds)
