"""ACOPF property builder (benchmarks/acopf): the grid layout is checked against the real ml4acopf
models, every VNN-COMP 2023 ml4acopf file is rebuilt from its parameters and compared with the
parsed file, the builders are checked against model evaluations, and VNN-LIB export round-trips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from benchmarks.acopf import ml4acopf
from benchmarks.acopf import properties as props
from benchmarks.acopf.grid import OUTPUT_FIELDS, Grid, GridError, load_grid, load_sample
from benchmarks.acopf.vnnlib_writer import format_vnnlib, write_vnnlib
from genbab.verifier.forward import evaluate
from genbab.verifier.onnx_loader import load_model
from genbab.vnnlib.parser import parse_vnnlib
from genbab.vnnlib.property import Clause, Disjunct, Property

GRIDS = ("14_ieee", "118_ieee", "300_ieee")
# file -> (kind, model bus index or branch index or None), as recovered from the files
FILES = {
    ("14_ieee", 1): ("power_balance_all", None), ("14_ieee", 2): ("thermal_limit", 12),
    ("14_ieee", 3): ("generator_limits", None), ("14_ieee", 4): ("voltage_limits", None),
    ("14_ieee", 5): ("power_balance", 0), ("14_ieee", 6): ("power_balance", 2),
    ("14_ieee", 7): ("power_balance", 3), ("14_ieee", 8): ("power_balance", 8),
    ("14_ieee", 9): ("power_balance", 1), ("14_ieee", 10): ("power_balance", 13),
    ("14_ieee", 11): ("power_balance", 12), ("14_ieee", 12): ("power_balance", 5),
    ("14_ieee", 13): ("power_balance", 9), ("14_ieee", 14): ("power_balance", 4),
    ("118_ieee", 2): ("thermal_limit", 101), ("118_ieee", 3): ("generator_limits", None),
    ("118_ieee", 4): ("voltage_limits", None), ("118_ieee", 5): ("power_balance", 4),
    ("118_ieee", 6): ("power_balance", 58),
    ("300_ieee", 2): ("thermal_limit", 0), ("300_ieee", 3): ("generator_limits", None),
    ("300_ieee", 4): ("voltage_limits", None), ("300_ieee", 105): ("power_balance", 40),
}
ROUNDING = 1e-9        # the files print numbers with 9 decimals (half of it, plus float noise)


_GRIDS: dict[str, Grid] = {}


def grid_of(folder: Path, name: str) -> Grid:
    if name not in _GRIDS:
        _GRIDS[name] = load_grid(name, folder / "data")
    return _GRIDS[name]


def run_onnx(folder: Path, name: str, x: np.ndarray) -> np.ndarray:
    """onnxruntime on loads x: (batch, 2L) -> (batch, outputs), one row at a time (batch 1)."""
    session = ort.InferenceSession(str(folder / "onnx" / f"{name}_ml4acopf.onnx"),
                                   providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    return np.stack([session.run(None, {feed: row[None].astype(np.float32)})[0][0]
                     for row in x]).astype(np.float64)


# -- the grid and the model layout ---------------------------------------------------------

@pytest.mark.parametrize("name", GRIDS)
def test_grid_sizes_match_the_onnx_model(folder, name):
    grid = grid_of(folder, name)
    graph = onnx.load(str(folder / "onnx" / f"{name}_ml4acopf.onnx")).graph
    (model_input,) = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    dims = [d.dim_value for d in model_input.type.tensor_type.shape.dim]
    out_dims = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, grid.num_inputs] and out_dims == [1, grid.num_outputs]
    sizes = {"14_ieee": (14, 5, 11, 20), "118_ieee": (118, 54, 99, 186),
             "300_ieee": (300, 69, 201, 411)}[name]
    assert (grid.num_buses, grid.num_generators, grid.num_loads, grid.num_branches) == sizes
    assert sum(s.stop - s.start for s in map(grid.output_slice, OUTPUT_FIELDS)) == grid.num_outputs


def physics_residuals(grid: Grid, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Model outputs minus the physics they must equal (grid.py docstring), per field."""
    parts = grid.split_output(y)
    length, buses = grid.num_loads, grid.num_buses

    def to_bus(index: np.ndarray, values: np.ndarray) -> np.ndarray:   # (batch, k) -> (batch, N)
        out = np.zeros((values.shape[0], buses))
        np.add.at(out, (slice(None), index), values)
        return out

    vm2 = parts["vm"] ** 2
    p = (to_bus(grid.gen_bus, parts["pg"]) - to_bus(grid.load_bus, x[:, :length])
         - to_bus(grid.f_bus, parts["pf"]) - to_bus(grid.t_bus, parts["pt"]) - grid.gs * vm2)
    q = (to_bus(grid.gen_bus, parts["qg"]) - to_bus(grid.load_bus, x[:, length:])
         - to_bus(grid.f_bus, parts["qf"]) - to_bus(grid.t_bus, parts["qt"]) + grid.bs * vm2)
    rating2 = grid.rate_a ** 2
    return {"p_balance": parts["p_balance"] - p, "q_balance": parts["q_balance"] - q,
            "thrm_from": (parts["thrm_from"] - parts["pf"] ** 2 - parts["qf"] ** 2 + rating2)
            / (1 + rating2),
            "thrm_to": (parts["thrm_to"] - parts["pt"] ** 2 - parts["qt"] ** 2 + rating2)
            / (1 + rating2)}


@pytest.mark.parametrize("name", GRIDS)
def test_output_layout_satisfies_the_grid_physics(folder, name):
    """Input [pd, qd] and output [pg, qg, vm, va, pf, pt, qf, qt, thrm_from, thrm_to, p_balance,
    q_balance] in sorted-key order: the model's residual outputs equal the balance and thermal
    formulas recomputed from its other outputs and the grid data (float32 accuracy)."""
    grid = grid_of(folder, name)
    sample = load_sample(name, folder / "data")
    box = props.load_box(grid, 0.05)
    x = np.vstack([grid.reference_loads, sample, box.sample(2, np.random.default_rng(0))])
    y = run_onnx(folder, name, x)
    for field, residual in physics_residuals(grid, x, y).items():
        assert np.abs(residual).max() < 1e-4, field
    # the residuals are not trivially small: swapping pd and qd breaks the balance identity
    swapped = np.hstack([x[:, grid.num_loads:], x[:, :grid.num_loads]])
    assert np.abs(physics_residuals(grid, swapped, y)["p_balance"]).max() > 1e-3
    parts = grid.split_output(y)
    assert np.all(parts["pg"] >= grid.pmin - 1e-6) and np.all(parts["pg"] <= grid.pmax + 1e-6)
    assert np.all(parts["vm"] >= grid.vmin - 1e-6) and np.all(parts["vm"] <= grid.vmax + 1e-6)
    # the proxy approximates the file's reference solution at the reference loads
    assert np.abs(parts["vm"][0] - grid.reference.vm).max() < 1e-2


def test_grid_maps_powermodels_keys_to_model_indices(folder):
    grid = grid_of(folder, "300_ieee")
    assert grid.bus_ids.tolist() == list(range(1, 301))
    assert grid.bus_index(100) == 99
    p_bus, _ = grid.bus_loads()
    assert p_bus.sum() == pytest.approx(grid.pd.sum())
    assert p_bus[grid.load_bus[0]] == grid.pd[0]
    with pytest.raises(GridError, match="no bus with key 301"):
        grid.bus_index(301)
    with pytest.raises(GridError, match="no entry 411"):
        grid.output_index("thrm_from", 411)
    with pytest.raises(GridError, match="unknown output field"):
        grid.output_slice("pd")


def test_load_grid_reports_a_missing_file(tmp_path):
    with pytest.raises(GridError, match="no such grid file"):
        load_grid("57_ieee", tmp_path)


# -- the 23 benchmark files ----------------------------------------------------------------

@pytest.mark.parametrize("name, number", sorted(FILES))
def test_benchmark_file_is_the_built_property(folder, name, number):
    grid = grid_of(folder, name)
    parsed = parse_vnnlib(folder / "vnnlib" / f"{name}_prop{number}.vnnlib",
                          num_inputs=grid.num_inputs, num_outputs=grid.num_outputs)
    spec = ml4acopf.benchmark_spec(grid, number, folder / "data")
    kind, item = FILES[(name, number)]
    assert spec.kind == kind and item == (spec.line if kind == "thermal_limit" else spec.bus)
    built = ml4acopf.spec_property(grid, spec)
    (want,), (got,) = parsed.disjuncts, built.disjuncts
    # outputs: same clauses, same rows, coefficients exactly, thresholds to the printed digits
    assert len(want.clauses) == len(got.clauses)
    for a, b in zip(want.clauses, got.clauses):
        assert np.array_equal(a.coeffs, b.coeffs)
        np.testing.assert_allclose(a.thresholds, b.thresholds, rtol=0, atol=ROUNDING)
    if kind in ("power_balance", "thermal_limit"):   # the item, recovered from the file's column
        column = int(np.flatnonzero(want.clauses[0].coeffs[0])[0])
        field = "p_balance" if kind == "power_balance" else "thrm_from"
        assert column - grid.output_slice(field).start == item
    # inputs: the unjittered box up to the jitter (width and centre move by <= random_perc)
    jitter_bound = spec.box.random_perc
    width, width0 = want.upper - want.lower, got.upper - got.lower
    centre, centre0 = (want.upper + want.lower) / 2, (got.upper + got.lower) / 2
    assert np.all(np.abs(width - width0) <= jitter_bound * width0 + ROUNDING)
    assert np.all(np.abs(centre - centre0) <= jitter_bound * np.abs(centre0) + ROUNDING)
    # ... and exactly (to the printed digits) with one jitter per load, shared by pd and qd
    jitter = props.recover_jitter(grid, props.LoadBox(want.lower, want.upper), spec.box,
                                  spec.loads)
    assert np.all(np.abs(jitter) <= jitter_bound * (1 + 1e-4))
    rebuilt = ml4acopf.spec_property(grid, spec, jitter=jitter).disjuncts[0]
    np.testing.assert_allclose(rebuilt.lower, want.lower, rtol=0, atol=ROUNDING)
    np.testing.assert_allclose(rebuilt.upper, want.upper, rtol=0, atol=ROUNDING)



@pytest.mark.parametrize("name, number", sorted(FILES))
def test_exported_benchmark_property_matches_the_file(folder, tmp_path, name, number):
    """The VNN-LIB *file* we write for the same parameters equals the benchmark file: exactly
    (to the printed digits) with the file's jitter, within ``random_perc`` without it."""
    grid = grid_of(folder, name)
    original = folder / "vnnlib" / f"{name}_prop{number}.vnnlib"
    want = parse_vnnlib(original, num_inputs=grid.num_inputs,
                        num_outputs=grid.num_outputs).disjuncts[0]
    spec = ml4acopf.benchmark_spec(grid, number, folder / "data")
    jitter = props.recover_jitter(grid, props.LoadBox(want.lower, want.upper), spec.box,
                                  spec.loads)
    for jitter_used, tolerance in ((jitter, 0.0), (None, spec.box.random_perc)):
        path = write_vnnlib(ml4acopf.spec_property(grid, spec, jitter=jitter_used),
                            tmp_path / f"{name}_prop{number}.vnnlib")
        got = parse_vnnlib(path, num_inputs=grid.num_inputs,
                           num_outputs=grid.num_outputs).disjuncts[0]
        slack = tolerance * np.maximum(np.abs(want.lower), np.abs(want.upper)) + ROUNDING
        assert np.all(np.abs(got.lower - want.lower) <= slack)
        assert np.all(np.abs(got.upper - want.upper) <= slack)
        assert len(got.clauses) == len(want.clauses)
        for a, b in zip(want.clauses, got.clauses):
            assert np.array_equal(a.coeffs, b.coeffs)
            np.testing.assert_allclose(a.thresholds, b.thresholds, rtol=0, atol=ROUNDING)

def test_benchmark_rules_pick_bus_and_line_by_rank(folder):
    grid = grid_of(folder, "14_ieee")
    assert props.line_by_rating_rank(grid, 5) == 12
    sample = load_sample("14_ieee", folder / "data")
    p_bus, _ = grid.bus_loads(sample)
    assert props.bus_by_load_rank(grid, 1, sample) == int(np.argmax(p_bus))       # prop6
    assert props.bus_by_load_rank(grid, 0, sample) == int(np.argmin(p_bus))       # prop5
    with pytest.raises(GridError, match="out of range"):
        props.bus_by_load_rank(grid, 15, sample)


# -- builders against the model -------------------------------------------------------------

def test_properties_agree_with_model_evaluations(folder):
    """One property of each kind on the 14-bus model, evaluated with genbab's forward pass on
    points of the box: each clause's margin is the physical quantity it names."""
    grid = grid_of(folder, "14_ieee")
    graph = load_model(folder / "onnx" / "14_ieee_ml4acopf.onnx")
    box = props.load_box(grid, 0.05, jitter=props.random_jitter(grid, 1e-3,
                                                                np.random.default_rng(1)))
    x = box.sample(64, np.random.default_rng(2))
    y = evaluate(graph, torch.tensor(x, dtype=torch.float64)).reshape(len(x), -1).numpy()
    np.testing.assert_allclose(y[:4], run_onnx(folder, "14_ieee", x[:4]), atol=1e-4)
    parts = grid.split_output(y)
    physics = physics_residuals(grid, x, y)
    bus, line = 3, props.line_by_rating_rank(grid, 5)

    balance = props.power_balance(grid, box, bus)
    tolerance = max(1e-2, 1e-2 * grid.bus_loads()[0][bus])
    margins = np.stack([c.margins(y)[:, 0] for c in balance.disjuncts[0].clauses])
    np.testing.assert_allclose(margins, [tolerance - parts["p_balance"][:, bus],
                                         parts["p_balance"][:, bus] + tolerance])
    assert np.abs(physics["p_balance"][:, bus]).max() < 1e-4   # the targeted output is P balance
    violated = [balance.violated_by(xi, yi, tol=0) for xi, yi in zip(x, y)]
    assert violated == list(np.abs(parts["p_balance"][:, bus]) >= tolerance)
    tight = props.power_balance(grid, box, bus, tolerance=1e-9)
    assert any(tight.violated_by(xi, yi, tol=0) for xi, yi in zip(x, y))

    thermal = props.thermal_limit(grid, box, line)
    flow = parts["pf"][:, line] ** 2 + parts["qf"][:, line] ** 2 - grid.rate_a[line] ** 2
    (clause,) = thermal.disjuncts[0].clauses
    np.testing.assert_allclose(clause.margins(y)[:, 0], max(1e-2, 1e-2 * grid.rate_a[line]) - flow,
                               atol=1e-4)

    everywhere = props.power_balance_all(grid, box)
    assert len(everywhere.disjuncts[0].clauses) == 4 * grid.num_buses
    # generator and voltage limits hold by construction (sigmoid-bounded outputs)
    for prop in (props.generator_limits(grid, box), props.voltage_limits(grid, box)):
        assert not any(prop.violated_by(xi, yi, tol=0) for xi, yi in zip(x, y))
        margins = np.stack([c.margins(y)[:, 0] for c in prop.disjuncts[0].clauses])
        assert margins.min() > 0
    for prop in (balance, thermal, everywhere):
        assert all(prop.disjuncts[0].contains(xi) for xi in x)


def test_load_box_scales_loads_and_swaps_negative_ones(folder):
    grid = grid_of(folder, "14_ieee")
    box = props.load_box(grid, props.BoxParams(0.9, 1.1))
    x0 = grid.reference_loads
    negative = x0 < 0
    assert negative.any()
    np.testing.assert_allclose(box.lower[~negative], 0.9 * x0[~negative])
    np.testing.assert_allclose(box.lower[negative], 1.1 * x0[negative])
    jitter = np.full(grid.num_loads, 0.01)
    jittered = props.load_box(grid, props.BoxParams(0.9, 1.1), jitter=jitter)
    np.testing.assert_allclose(jittered.upper, box.upper * 1.01)
    with pytest.raises(GridError, match="one value per load"):
        props.load_box(grid, 0.05, jitter=np.zeros(3))
    params = props.read_box_params(folder / "data" / "vnnlib_params.csv")
    assert params[("5", "14_ieee")] == props.BoxParams(0.995, 1.005, 0.0001)


# -- VNN-LIB export ------------------------------------------------------------------------

def assert_same_property(a: Property, b: Property) -> None:
    assert (a.num_inputs, a.num_outputs, len(a.disjuncts)) == (b.num_inputs, b.num_outputs,
                                                               len(b.disjuncts))
    for da, db in zip(a.disjuncts, b.disjuncts):
        assert np.array_equal(da.lower, db.lower) and np.array_equal(da.upper, db.upper)
        assert len(da.clauses) == len(db.clauses)
        for ca, cb in zip(da.clauses, db.clauses):
            assert np.array_equal(ca.coeffs, cb.coeffs)
            assert np.array_equal(ca.thresholds, cb.thresholds)


def test_write_vnnlib_round_trips_every_kind(folder, tmp_path):
    grid = grid_of(folder, "14_ieee")
    box = props.load_box(grid, 0.05, jitter=props.random_jitter(grid, 1e-3,
                                                                np.random.default_rng(3)))
    built = [props.power_balance(grid, box, 2), props.power_balance(grid, box, 2, reactive=True),
             props.power_balance_all(grid, box), props.thermal_limit(grid, box, 7, side="to"),
             props.generator_limits(grid, box), props.voltage_limits(grid, box)]
    for i, prop in enumerate(built):
        path = write_vnnlib(prop, tmp_path / f"p{i}.vnnlib", comment=f"case {i}\nline two")
        assert path.read_text().startswith(f"; case {i}\n; line two\n")
        assert_same_property(parse_vnnlib(path, num_inputs=22, num_outputs=186), prop)


@pytest.mark.parametrize("name, number", [("14_ieee", 1), ("300_ieee", 4)])
def test_write_vnnlib_round_trips_benchmark_files(folder, tmp_path, name, number):
    parsed = parse_vnnlib(folder / "vnnlib" / f"{name}_prop{number}.vnnlib")
    again = parse_vnnlib(write_vnnlib(parsed, tmp_path / "again.vnnlib"))
    assert_same_property(again, parsed)


def test_write_vnnlib_handles_several_boxes_and_output_comparisons():
    rows = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    prop = Property((Disjunct([0.0, -5e-324], [1.0, 2.0], (Clause(rows, [0.0, -0.25]),)),
                     Disjunct([-1.0, -1.0], [0.0, 1e300],
                              (Clause(np.eye(3)[:1], [1e-7]), Clause(-np.eye(3)[2:], [-3.5])))),
                    num_inputs=2, num_outputs=3)
    text = format_vnnlib(prop)
    assert "(<= Y_0 Y_1)" in text
    assert_same_property(parse_vnnlib("again.vnnlib", text=text), prop)
    unbounded = Property.from_box([0.0], [np.inf], [(np.eye(1), np.zeros(1))])
    with pytest.raises(ValueError, match="must be bounded"):
        format_vnnlib(unbounded)


def test_write_vnnlib_rejects_rows_vnnlib_cannot_state():
    prop = Property.from_box([0.0], [1.0], [(np.array([[2.0, 0.0]]), np.array([1.0]))])
    with pytest.raises(ValueError, match="cannot be written in VNN-LIB 1.0"):
        format_vnnlib(prop)
    summed = Property.from_box([0.0], [1.0], [(np.array([[1.0, 1.0]]), np.array([0.0]))])
    with pytest.raises(ValueError, match="cannot be written"):
        format_vnnlib(summed)
