"""benchmarks/acopf/report.py on a small fake run-suite output (CSV + per-instance JSON)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from benchmarks.acopf import report

COLUMNS = ["benchmark", "onnx", "vnnlib", "timeout_s", "result", "time_s", "expected", "correct",
           "result_file", "message"]


def fake_run(folder: Path, rows: list[tuple[str, str, float, dict | None]]) -> Path:
    """A results CSV like run-suite's, with ``results/<name>.json`` next to it; rows are
    (property file stem, result, seconds, stats or None for a missing JSON)."""
    out = folder / "results.csv"
    result_dir = folder / "results"
    result_dir.mkdir(parents=True)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for k, (stem, result, seconds, stats) in enumerate(rows, 1):
            result_file = result_dir / f"{k:03d}_ml4acopf_2023_14_ieee_ml4acopf_{stem}.txt"
            result_file.write_text(result + "\n")
            if stats is not None:
                message = ("proved by branch-and-bound" if stats.get("bab_rounds")
                           else "proved by alpha bound propagation")
                result_file.with_suffix(".json").write_text(json.dumps(
                    {"result": result, "message": message, "stats": stats}))
            writer.writerow({"benchmark": "ml4acopf_2023", "onnx": "onnx/14_ieee_ml4acopf.onnx",
                             "vnnlib": f"vnnlib/{stem}.vnnlib", "timeout_s": 60, "result": result,
                             "time_s": seconds, "expected": "unsat", "correct": "",
                             "result_file": str(result_file), "message": ""})
    return out


def stats(rounds: int, splits: dict[str, int], history: list[list[float]]) -> dict:
    return {"bab_rounds": rounds, "domains_visited": 4 * rounds, "splits_by_kind": splits,
            "best_bound_history": history, "seconds": {"bab": 1.0}}


@pytest.fixture
def runs(tmp_path):
    default = fake_run(tmp_path / "default", [
        ("14_ieee_prop1", "unsat", 30.5, stats(5, {"relu": 7, "sin": 2, "cos": 1, "mul": 3},
                                               [[100.0, -1e-3], [101.0, -1e-5], [102.5, 1e-6]])),
        ("14_ieee_prop2", "unsat", 6.2, stats(0, {}, [])),
        ("14_ieee_prop7", "timeout", 61.0, None),
    ])
    relu = fake_run(tmp_path / "relu", [
        ("14_ieee_prop1", "timeout", 62.0, stats(9, {"relu": 40}, [[5.0, -1e-3], [9.0, -5e-4]])),
        ("14_ieee_prop2", "unsat", 6.0, stats(0, {}, [])),
        ("14_ieee_prop7", "timeout", 61.0, stats(0, {}, [])),
    ])
    return default, relu


def test_read_run_joins_the_json_reports_and_tolerates_missing_ones(runs):
    default = report.read_run(runs[0])
    assert [r.name for r in default] == ["14_ieee_prop1", "14_ieee_prop2", "14_ieee_prop7"]
    assert default[0].splits == {"ReLU": 7, "sin/cos": 3, "product": 3}
    assert default[0].bound_history == [(0.0, -1e-3), (1.0, -1e-5), (2.5, 1e-6)]
    assert default[2].report is None and default[2].splits == {}


def test_read_run_finds_the_json_after_the_run_folder_moved(runs, tmp_path):
    moved = tmp_path / "moved"
    runs[0].parent.rename(moved)
    assert report.read_run(moved / "results.csv")[0].splits["ReLU"] == 7


def test_tables_list_every_instance_with_its_kind_and_work(runs):
    default = report.read_run(runs[0])
    table = report.results_table(default)
    assert "| 14_ieee_prop1 | power balance, all buses | unsat | unsat | BaB | 30.5 | 5 | 20 | " \
           "ReLU 7, sin/cos 3, product 3 |" in table
    assert "| 14_ieee_prop2 | thermal limit of one line | unsat | unsat | alpha bounds | 6.2 |" \
        in table
    assert ("| 14_ieee_prop7 | power balance at one bus | unsat | timeout | - | 61.0 | - | - | - |"
            in table)
    assert report.summary_line(default).startswith(
        "Time limit 60 s per instance: 2 of 3 solved (2 unsat, 0 sat)")
    assert report.hardest(default).name == "14_ieee_prop1"


def test_comparison_and_splits_tables_put_variants_side_by_side(runs):
    variants = {"default": report.read_run(runs[0]), "relu-only": report.read_run(runs[1])}
    comparison = report.comparison_table(variants)
    assert "| 14_ieee_prop1 | unsat 30.5 s | timeout 62.0 s (bound -0.0005) |" in comparison
    assert "| **solved** | **2 / 3** | **1 / 3** |" in comparison
    splits = report.splits_table(variants)
    assert "| run | ReLU | sin/cos | product |" in splits
    assert "| relu-only | 40 | 0 | 0 |" in splits


def test_no_recorded_splits_is_said_not_guessed(runs):
    only_empty = {"default": report.read_run(runs[0])[1:]}
    assert report.splits_table(only_empty).startswith("No splits recorded")


def test_main_updates_the_marked_part_of_the_doc(runs, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(f"intro\n{report.BEGIN_MARK}\nold\n{report.END_MARK}\noutro\n")
    code = report.main([str(runs[0]), "--relu-only", str(runs[1]), "--doc", str(doc),
                        "--out", str(tmp_path), "--no-plots", "--note", "fake runs"])
    text = doc.read_text()
    assert code == 0 and "old" not in text and text.startswith("intro\n")
    assert "fake runs" in text and "| 14_ieee_prop1 |" in text and text.endswith("outro\n")
    with pytest.raises(ValueError):
        report.replace_marked("no markers here", "x")


def test_plots_are_small_pngs(runs, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "docs"
    report.main([str(runs[0]), "--relu-only", str(runs[1]), "--out", str(out)])
    for name in (report.BOUND_PLOT, report.SPLITS_PLOT):
        data = (out / "img" / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) < 200_000


def test_a_variant_may_come_in_several_csvs(runs):
    both = report._read_all([str(runs[0]), str(runs[1])])
    assert len(both) == 6 and both[3].result == "timeout"


def test_proof_time_is_the_infinite_bound_record():
    run = report.InstanceRun("m.onnx", "p_prop1.vnnlib", "unsat", 10.0,
                             report={"stats": {"best_bound_history": [[50.0, -1.0], [52.0, -0.5],
                                                                      [53.5, float("inf")]]}})
    assert run.bound_history == [(0.0, -1.0), (2.0, -0.5)] and run.proved_at == 3.5


def test_split_kinds_of_neurons_feeding_several_ops():
    assert report.split_family("sin/cos") == "sin/cos"
    assert report.split_family("pow/mul") == "square/product"
    assert report.split_family("Relu") == "ReLU"


def test_named_sections_are_filled_separately():
    begin, end = report.markers("closer")
    text = f"{report.BEGIN_MARK}\nA\n{report.END_MARK}\n{begin}\nB\n{end}\n"
    out = report.replace_marked(text, "new\n", "closer")
    assert "A" in out and "B" not in out and "new" in out


@pytest.mark.parametrize("message, expected", [
    ("proved by alpha bound propagation", "alpha bounds"),
    ("proved by ibp (float64) bound propagation", "ibp (float64) bounds"),
    ("proved by branch-and-bound", "BaB"),
    ("counterexample found by the attack, confirmed by onnxruntime", "attack")])
def test_decided_by_reads_the_message(message, expected):
    run = report.InstanceRun("m.onnx", "p_prop2.vnnlib", "unsat", 1.0,
                             report={"message": message, "stats": {}})
    assert report.decided_by(run) == expected
