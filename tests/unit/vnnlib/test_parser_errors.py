"""Bad VNN-LIB input raises VnnlibError naming the file, line and column, never a bare error."""
from __future__ import annotations

import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genbab.verifier.errors import VnnlibError
from genbab.vnnlib.parser import parse_vnnlib

# lines 1-4; a body starts on line 5
HEADER = ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
          "(assert (>= X_0 0))\n(assert (<= X_0 1))\n")


def expect_error(text: str, line: int, *fragments: str, **kwargs) -> VnnlibError:
    with pytest.raises(VnnlibError) as info:
        parse_vnnlib("bad.vnnlib", text=text, **kwargs)
    err = info.value
    assert str(err).startswith(f"bad.vnnlib:{line}:"), str(err)
    assert err.path == "bad.vnnlib" and err.line == line and err.column is not None
    for fragment in fragments:
        assert fragment in err.problem, err.problem
    return err


def test_parser_rejects_empty_text():
    expect_error("", 1, "empty")
    expect_error("  ; only a comment\n\n", 1, "empty")


def test_parser_rejects_unclosed_paren_naming_where_it_opened():
    err = expect_error(HEADER + "(assert (or\n  (and (<= Y_0 1))\n", 5, "line 5, column 1",
                       "never closed")
    assert err.column == 1


def test_parser_rejects_extra_closing_paren():
    err = expect_error(HEADER + "(assert (<= Y_0 1)))\n", 5, "')'")
    assert err.column == 20


def test_parser_rejects_token_outside_parens():
    expect_error(HEADER + "assert\n", 5, "'assert'", "outside parentheses")


@pytest.mark.parametrize("operand", ["abc", "1_0", "0x10", "#b101"])
def test_parser_rejects_unexpected_operand(operand):
    err = expect_error(HEADER + f"(assert (<= Y_0 {operand}))", 5, f"'{operand}'",
                       "unexpected token")
    assert err.column == 17


def test_parser_rejects_undeclared_variable():
    expect_error(HEADER + "(assert (<= Y_1 0))", 5, "undeclared variable Y_1")
    expect_error("(declare-const Y_0 Real)\n(assert (>= X_0 0))\n(declare-const X_0 Real)", 2,
                 "undeclared variable X_0")


def test_parser_rejects_duplicate_declaration():
    expect_error(HEADER + "(declare-const X_0 Real)", 5, "duplicate declaration of X_0",
                 "line 1")


def test_parser_rejects_non_real_type():
    expect_error("(declare-const X_0 Int)", 1, "X_0", "'Int'", "Real")


@pytest.mark.parametrize("text, fragment", [
    ("(declare-const X_0)", "malformed declaration"),
    ("(declare-const Z_0 Real)", "unsupported variable name 'Z_0'"),
    ("(declare-const X_01 Real)", "leading zero"),
    ("(declare-fun X_0 () Real)", "unsupported VNN-LIB construct 'declare-fun'"),
    ("()", "unexpected statement"),
])
def test_parser_rejects_bad_declarations(text, fragment):
    expect_error(text, 1, fragment)


def test_parser_rejects_input_without_lower_bound():
    text = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n" \
           "(assert (>= X_0 0)) (assert (<= X_0 1)) (assert (<= X_1 1))\n(assert (<= Y_0 0))"
    expect_error(text, 2, "X_1 has no lower bound")


def test_parser_rejects_input_without_upper_bound():
    text = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 0))\n" \
           "(assert (<= Y_0 0))"
    expect_error(text, 1, "X_0 has no upper bound")


def test_parser_rejects_branch_without_input_bound():
    text = ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (or\n"
            "  (and (>= X_0 0) (<= X_0 1) (<= Y_0 0))\n  (and (>= X_0 0) (<= Y_0 0))))")
    expect_error(text, 5, "X_0 has no upper bound", "branch at line 5")


def test_parser_rejects_crossed_bounds_naming_both_values():
    text = HEADER + "(assert (>= X_0 1.5))\n(assert (<= Y_0 0))"
    expect_error(text, 5, "input X_0 has lower bound 1.5 above its upper bound 1.0")


@pytest.mark.parametrize("constant", ["nan", "inf", "-inf", "Infinity", "NaN"])
def test_parser_rejects_non_finite_constants(constant):
    expect_error(HEADER + f"(assert (<= Y_0 {constant}))", 5, "not a finite number",
                 repr(constant))


@pytest.mark.parametrize("term, construct", [
    ("(not (<= Y_0 1))", "'not'"),
    ("(= Y_0 1)", "'='"),
    ("(< Y_0 1)", "'<'"),
    ("(> Y_0 1)", "'>'"),
    ("(<= (+ Y_0 Y_0) 1)", "'+'"),
    ("(<= (* 2 Y_0) 1)", "'*'"),
    ("(=> (<= Y_0 1) (<= Y_0 2))", "'=>'"),
    ("(ite (<= Y_0 1) (<= Y_0 2) (<= Y_0 3))", "'ite'"),
    ("(and (or (and (<= Y_0 1))))", "(or ...) inside (and ...)"),
    ("(and (and (<= Y_0 1)))", "(and ...) inside (and ...)"),
    ("(or (and (or (and (<= Y_0 1)))))", "(or ...) inside (and ...)"),
    ("(or (or (<= Y_0 1)))", "(or ...) as a branch of (or ...)"),
    ("(or (not (<= Y_0 1)))", "'not'"),
    ("(<= X_0 Y_0)", "comparison of X_0 and Y_0"),
    ("(>= X_0 X_0)", "comparison of X_0 and X_0"),
])
def test_parser_rejects_unsupported_construct(term, construct):
    err = expect_error(HEADER + f"(assert {term})", 5, "unsupported VNN-LIB construct",
                       construct, "genbab supports")
    assert err.column > 1


@pytest.mark.parametrize("term, fragment", [
    ("(<= Y_0 1 2)", "exactly two operands"),
    ("(<= 1 2)", "two constants"),
    ("(or)", "empty (or)"),
    ("(or (and))", "empty (and)"),
    ("Y_0", "unexpected token 'Y_0'"),
    ("(or Y_0)", "unexpected token 'Y_0'"),
    ("((<= Y_0 1))", "must start with an operator"),
])
def test_parser_rejects_malformed_terms(term, fragment):
    expect_error(HEADER + f"(assert {term})", 5, fragment)


def test_parser_rejects_assert_with_two_terms():
    expect_error(HEADER + "(assert (<= Y_0 1) (<= Y_0 2))", 5, "exactly one term")


def test_parser_rejects_property_without_output_constraint():
    expect_error(HEADER, 4, "no output constraint")


def test_parser_rejects_branch_without_output_constraint():
    text = HEADER + "(assert (or (and (<= Y_0 0)) (and (>= X_0 0.5))))"
    expect_error(text, 5, "constrains no output")


def test_parser_rejects_wrong_input_count():
    text = "".join(f"(declare-const X_{i} Real)\n" for i in range(784)) + \
           "(declare-const Y_0 Real)\n(assert (<= Y_0 0))"
    expect_error(text, 784, "the property declares 784 inputs X_0..X_783 but the model has "
                 "785 input elements", num_inputs=785)


def test_parser_rejects_wrong_output_count():
    expect_error(HEADER + "(assert (<= Y_0 0))", 2, "declares 1 outputs", "has 10 output",
                 num_outputs=10)


def test_parser_rejects_gaps_in_indices():
    text = "(declare-const X_0 Real)\n(declare-const X_2 Real)\n(declare-const Y_0 Real)\n" \
           "(assert (<= Y_0 0))"
    expect_error(text, 2, "X_2 is declared but X_1 is not")


def test_parser_rejects_property_without_inputs():
    expect_error("(declare-const Y_0 Real)\n(assert (<= Y_0 0))", 2, "declares no inputs")


def test_parser_rejects_cross_product_beyond_limit(monkeypatch):
    import genbab.vnnlib.parser as parser
    monkeypatch.setattr(parser, "MAX_ENTRIES", 3)
    text = HEADER + "(assert (or (<= Y_0 0) (<= Y_0 1)))\n(assert (or (<= Y_0 0) (<= Y_0 1)))"
    expect_error(text, 6, "limit of 3")


# -- files -------------------------------------------------------------------------------------

def expect_file_error(path, fragment: str) -> VnnlibError:
    with pytest.raises(VnnlibError) as info:
        parse_vnnlib(path)
    assert str(info.value).startswith(str(path)), str(info.value)
    assert fragment in info.value.problem
    return info.value


def test_parser_rejects_missing_file(tmp_path):
    expect_file_error(tmp_path / "absent.vnnlib", "no such file")


def test_parser_rejects_directory(tmp_path):
    expect_file_error(tmp_path, "directory")


def test_parser_rejects_empty_file(tmp_path):
    path = tmp_path / "empty.vnnlib"
    path.write_text("")
    assert expect_file_error(path, "empty").line == 1


def test_parser_rejects_corrupt_gzip(tmp_path):
    path = tmp_path / "p.vnnlib.gz"
    path.write_bytes(gzip.compress(HEADER.encode())[:-12])
    expect_file_error(path, "gzip")
    path.write_bytes(b"\x1f\x8bnot really gzip")
    expect_file_error(path, "gzip")


def test_parser_rejects_gz_name_without_gzip_data(tmp_path):
    path = tmp_path / "p.vnnlib.gz"
    path.write_text(HEADER)
    expect_file_error(path, "not gzip")


def test_parser_rejects_non_utf8(tmp_path):
    path = tmp_path / "p.vnnlib"
    path.write_bytes(HEADER.encode() + b"; \xff\xfe\n")
    expect_file_error(path, "UTF-8")
    gz = tmp_path / "p2.vnnlib.gz"
    gz.write_bytes(gzip.compress(b"\xff\xfe"))
    expect_file_error(gz, "UTF-8")


# -- no input makes the parser fail with anything but VnnlibError -----------------------------

_PIECES = ["(", ")", "(", ")", " ", "\n", ";", "assert", "declare-const", "Real", "Int", "X_0",
           "X_1", "Y_0", "Y_1", "<=", ">=", "and", "or", "not", "0", "-1.5", "1e3", "nan", "_"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40))
def test_parser_raises_only_vnnlib_error_on_random_text(pieces):
    text = HEADER + " ".join(pieces)
    try:
        parse_vnnlib("fuzz.vnnlib", text=text)
    except VnnlibError as err:
        assert err.path == "fuzz.vnnlib" and err.line is not None
