"""run-suite reads both our suite CSVs and a benchmark's own VNN-COMP instances.csv."""
from pathlib import Path

import pytest

from genbab.suite import is_instances_csv, read_suite


def test_instances_csv_takes_the_benchmark_from_its_folder(tmp_path: Path):
    folder = tmp_path / "my_bench"
    folder.mkdir()
    (folder / "instances.csv").write_text("onnx/a.onnx,vnnlib/p1.vnnlib,600\n"
                                          "onnx/b.onnx.gz,vnnlib/p2.vnnlib.gz,30\n\n")
    suite = read_suite(folder / "instances.csv")
    assert is_instances_csv(folder / "instances.csv")
    assert [(i.benchmark, i.onnx, i.vnnlib, i.timeout_s) for i in suite] == [
        ("my_bench", "onnx/a.onnx", "vnnlib/p1.vnnlib", 600.0),
        ("my_bench", "onnx/b.onnx.gz", "vnnlib/p2.vnnlib.gz", 30.0)]
    assert [i.timeout_s for i in read_suite(folder / "instances.csv", timeout_s=5)] == [5, 5]


def test_suite_csv_with_header(tmp_path: Path):
    path = tmp_path / "s.csv"
    path.write_text("benchmark,onnx,vnnlib,timeout\nb,onnx/a.onnx,vnnlib/p.vnnlib,60\n")
    assert not is_instances_csv(path)
    (inst,) = read_suite(path)
    assert (inst.benchmark, inst.timeout_s) == ("b", 60.0)


def test_suite_csv_missing_columns_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "s.csv"
    path.write_text("name,model\nx,y\n")
    with pytest.raises(ValueError, match="benchmark"):
        read_suite(path)
