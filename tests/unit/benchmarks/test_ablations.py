"""The ablation table: counts, wrong answers and medians per benchmark and variant."""
from benchmarks.ablations import table


def _row(bench, name, result, t, correct="yes"):
    return {"benchmark": bench, "onnx": "m.onnx", "vnnlib": name, "result": result,
            "time_s": str(t), "correct": correct}


def test_table_counts_medians_and_common_instances():
    runs = {
        "default": [_row("a", "p1", "unsat", 2.0), _row("a", "p2", "unsat", 10.0),
                    _row("b", "p3", "timeout", 60.0, "")],
        "babsr": [_row("a", "p1", "unsat", 4.0), _row("a", "p2", "timeout", 60.0, ""),
                  _row("b", "p3", "sat", 5.0, "WRONG")],
    }
    lines = table(runs, ["a", "b"]).splitlines()
    assert "| a | default | 2 / 2 | 0 | 6.0 | 2.0 (1) |" in lines
    assert "| a | babsr | 1 / 2 | 0 | 4.0 | 4.0 (1) |" in lines
    # a wrong answer never counts as solved, and is reported
    assert "| b | babsr | 0 / 1 | 1 | - | - (0) |" in lines
    assert "| TOTAL | default | 2 / 3 | 0 | 6.0 | 2.0 (1) |" in lines


def test_conflicting_answers_between_variants_are_listed():
    from benchmarks.ablations import conflicts
    runs = {"default": [_row("a", "p1", "unsat", 2.0), _row("a", "p2", "sat", 1.0)],
            "none": [_row("a", "p1", "sat", 2.0), _row("a", "p2", "timeout", 9.0, "")],
            "babsr": [_row("a", "p1", "unsat", 2.0), _row("a", "p2", "sat", 1.0)]}
    assert conflicts(runs) == [("m.onnx", "p1")]


def test_zoo_family_table_counts_fills_and_flags_conflicts(tmp_path):
    from benchmarks.zoo.tables import conflicts, family_table, fill, read
    rows = {"none": [("f", "p1", "unsat", 2.0), ("f", "p2", "timeout", 30.0),
                     ("g", "p3", "sat", 1.0)],
            "bab": [("f", "p2", "unsat", 9.0)]}
    runs = {}
    for name, entries in rows.items():
        path = tmp_path / f"{name}.csv"
        path.write_text("benchmark,onnx,vnnlib,result,time_s\n"
                        + "".join(f"{b},m.onnx,{v},{r},{t}\n" for b, v, r, t in entries))
        runs[name] = read(path)
    runs["bab"] = fill(runs["bab"], runs["none"])
    lines = family_table(runs).splitlines()
    assert "| f | 2 | 1 / 0 / 1 (2.0) | 2 / 0 / 0 (5.5) |" in lines
    assert "| **TOTAL** | 3 | 1 / 1 / 1 (1.5) | 2 / 1 / 0 (2.0) |" in lines
    by_model = family_table(runs, by="model").splitlines()
    assert by_model[0].startswith("| model | n |")
    assert "| m | 3 | 1 / 1 / 1 (1.5) | 2 / 1 / 0 (2.0) |" in by_model
    assert conflicts(runs) == []
    runs["bab"][("g", "m.onnx", "p3")] = {**runs["bab"][("g", "m.onnx", "p3")], "result": "unsat"}
    assert conflicts(runs) == [("g", "m.onnx", "p3")]


def test_zoo_table_suite_takes_boundary_rows_and_one_sample_per_mlp(tmp_path):
    from benchmarks.zoo.tables import table_suite
    head = "benchmark,onnx,vnnlib,sample,role\n"
    body = ["zoo_sin,onnx/mlp_sin_6x100.onnx,a.vnnlib,3,boundary",
            "zoo_sin,onnx/mlp_sin_6x100.onnx,b.vnnlib,3,ladder",
            "zoo_sin,onnx/mlp_sin_6x100.onnx,c.vnnlib,5,boundary",
            "zoo_lstm,onnx/lstm_h16.onnx,d.vnnlib,1,boundary",
            "zoo_lstm,onnx/lstm_h16.onnx,e.vnnlib,2,boundary"]
    path = tmp_path / "properties.csv"
    path.write_text(head + "\n".join(body) + "\n")
    rows = table_suite(path, 30.0)
    assert [r["vnnlib"] for r in rows] == ["a.vnnlib", "d.vnnlib", "e.vnnlib"]
    assert {r["timeout"] for r in rows} == {"30"}
