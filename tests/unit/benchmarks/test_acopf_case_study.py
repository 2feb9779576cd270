"""benchmarks/acopf/case_study.py: the four kinds of property in power-system terms, and the
model summary of docs/acopf.md (op counts of the 14-bus ONNX graph)."""
from __future__ import annotations


import numpy as np
import pytest

from benchmarks.acopf import model_summary
from benchmarks.acopf import properties as props
from benchmarks.acopf.case_study import KINDS, describe_violation, one_of_each_kind
from benchmarks.acopf.grid import load_grid
from benchmarks.acopf.vnnlib_writer import format_vnnlib
from genbab.verifier.onnx_loader import load_model
from genbab.vnnlib.parser import parse_vnnlib


@pytest.fixture(scope="module")
def grid(folder):
    return load_grid("14_ieee", folder / "data")


def test_one_of_each_kind_builds_the_documented_properties(grid):
    cases = one_of_each_kind(grid, 0.05)
    assert [c.kind for c in cases] == list(KINDS)
    box = props.load_box(grid, 0.05)
    for case in cases:
        np.testing.assert_array_equal(case.prop.disjuncts[0].lower, box.lower)
        np.testing.assert_array_equal(case.prop.disjuncts[0].upper, box.upper)
    bus = props.bus_by_load_rank(grid, 1)
    expected = props.power_balance(grid, box, bus)
    for got, want in zip(cases[0].prop.disjuncts[0].clauses, expected.disjuncts[0].clauses):
        np.testing.assert_array_equal(got.coeffs, want.coeffs)
    # the thermal property watches the benchmark's line (5th-largest rating): prop2's line 12
    assert cases[1].name == "14_ieee_thermal_line12"
    assert len(cases[2].prop.disjuncts[0].clauses) == 4 * grid.num_generators
    assert len(cases[3].prop.disjuncts[0].clauses) == 2 * grid.num_buses


def test_widths_per_kind_and_their_check(grid):
    widths = {"power balance": 0.005, "thermal limit": 0.1, "generator limits": 0.05,
              "voltage limits": 0.05}
    cases = one_of_each_kind(grid, widths)
    assert "±0.5% load" in cases[0].meaning and "±10% load" in cases[1].meaning
    with pytest.raises(ValueError):
        one_of_each_kind(grid, {"power balance": 0.01})


def test_exported_cases_parse_back(grid):
    for case in one_of_each_kind(grid, 0.05):
        back = parse_vnnlib(case.name, text=format_vnnlib(case.prop), num_inputs=grid.num_inputs,
                            num_outputs=grid.num_outputs)
        np.testing.assert_array_equal(back.disjuncts[0].lower, case.prop.disjuncts[0].lower)
        assert len(back.disjuncts[0].clauses) == len(case.prop.disjuncts[0].clauses)


def test_describe_violation_names_the_output_in_grid_terms(grid):
    case = one_of_each_kind(grid, 0.05)[0]
    y = np.zeros(grid.num_outputs)
    column = int(np.flatnonzero(case.prop.disjuncts[0].clauses[1].coeffs[0])[0])
    y[column] = -0.5
    text = describe_violation(grid, case, y, 0, 1)
    key = int(grid.bus_ids[props.bus_by_load_rank(grid, 1)])
    assert text == f"p_balance[bus {key}] = -0.5 <= -0.01"


def test_model_summary_counts_the_proxy_and_the_physics_layer(folder):
    rows = model_summary.op_table(load_model(folder / "onnx" / "14_ieee_ml4acopf.onnx"))
    totals = model_summary.family_totals(rows)
    # 3 ReLU layers of 32; sigmoid on pg, qg, vm (2G + N = 24); sin and cos per branch (E = 20);
    # products vm_i vm_j, (.)cos, (.)sin per branch; squares vm_i², vm_j², 4 flows², vm² per bus
    assert totals == {"ReLU": 96, "sigmoid": 24, "sin/cos": 40, "product": 60,
                      "square": 6 * 20 + 14}
    parts = {row.part for row in rows}
    assert parts == {"proxy network", "physics layer"}
    assert "| proxy network | Relu | 3 | 96 | ReLU |" in model_summary.markdown_table(rows)
