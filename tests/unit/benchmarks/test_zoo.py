"""The model zoo (benchmarks/zoo): the tiny zoo builds in seconds, and every family's model
loads, agrees with onnxruntime, has a property genbab proves and one it refutes; the suite CSV
and every VNN-LIB file parse."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.zoo.build import BuildOptions, ModelRecord, build_zoo, parse_options
from benchmarks.zoo.families import FAMILIES
from genbab import Status, verify
from genbab.model_check import compare_with_onnxruntime
from genbab.verifier.onnx_loader import load_model
from genbab.vnnlib.parser import parse_vnnlib

pytestmark = pytest.mark.usefixtures("one_thread")

BUILD_LIMIT_S = 60.0
VERIFY_TIMEOUT_S = 20.0
MAX_REL_ERROR = 1e-4


class Zoo:
    """The tiny zoo built once for this module."""

    def __init__(self, out: Path, records: list[ModelRecord], build_s: float):
        self.out, self.records, self.build_s = out, records, build_s
        with open(out / "properties.csv", newline="") as handle:
            self.properties = list(csv.DictReader(handle))

    def record(self, family: str) -> ModelRecord:
        (record,) = [r for r in self.records if r.spec.family == family]
        return record

    def onnx(self, family: str) -> Path:
        return self.out / family / self.record(family).onnx

    def vnnlib(self, family: str, role: str) -> Path:
        (row,) = [r for r in self.properties if r["benchmark"] == family and r["role"] == role]
        return self.out / family / row["vnnlib"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, one_thread) -> Zoo:
    out = tmp_path_factory.mktemp("zoo_tiny")
    start = time.monotonic()
    records = build_zoo(BuildOptions(out=out, tiny=True, timeout_s=VERIFY_TIMEOUT_S))
    return Zoo(out, records, time.monotonic() - start)


def test_tiny_zoo_builds_every_family_quickly(zoo):
    assert [r.spec.family for r in zoo.records] == list(FAMILIES)
    assert zoo.build_s < BUILD_LIMIT_S
    for record in zoo.records:
        chance = 1 / (4 if record.spec.kind == "rnn" else 10)
        assert record.test_accuracy > 2 * chance, record.spec.name
        assert [i.role for i in record.instances] == ["robust", "attackable"]
        assert record.instances[1].outcome.confirmed


@pytest.mark.parametrize("family", FAMILIES)
def test_zoo_model_loads_and_agrees_with_onnxruntime(zoo, family):
    graph = load_model(zoo.onnx(family))
    prop = parse_vnnlib(zoo.vnnlib(family, "attackable"))
    box = prop.disjuncts[0]
    for lower, upper in ((None, None), (box.lower, box.upper)):
        check = compare_with_onnxruntime(zoo.onnx(family), graph, lower=lower, upper=upper)
        assert check.finite
        assert check.max_rel_error <= MAX_REL_ERROR


@pytest.mark.parametrize("family", FAMILIES)
def test_zoo_robust_property_is_verified(zoo, family):
    result = verify(zoo.onnx(family), zoo.vnnlib(family, "robust"), timeout=VERIFY_TIMEOUT_S)
    assert result.status is Status.VERIFIED, result.message


@pytest.mark.parametrize("family", FAMILIES)
def test_zoo_attackable_property_is_falsified(zoo, family):
    path = zoo.vnnlib(family, "attackable")
    result = verify(zoo.onnx(family), path, timeout=VERIFY_TIMEOUT_S)
    assert result.status is Status.FALSIFIED, result.message
    cex = result.counterexample
    assert cex is not None
    assert parse_vnnlib(path).violated_by(np.ravel(cex.x), np.ravel(cex.y), tol=0.0)


def test_zoo_suite_csv_and_every_vnnlib_parse(zoo):
    with open(zoo.out / "instances.csv", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == ["benchmark", "onnx", "vnnlib", "timeout"]
        rows = list(reader)
    assert len(rows) == 2 * len(FAMILIES) == len(zoo.properties)
    for benchmark, onnx_rel, vnnlib_rel, timeout in rows:
        assert benchmark in FAMILIES and float(timeout) == VERIFY_TIMEOUT_S
        graph = load_model(zoo.out / benchmark / onnx_rel)
        prop = parse_vnnlib(zoo.out / benchmark / vnnlib_rel, num_inputs=graph.input_size,
                            num_outputs=graph.output_size)
        (box,) = prop.disjuncts
        assert (0.0 <= box.lower).all() and (box.lower <= box.upper).all()
        assert (box.upper <= 1.0).all()
        assert len(box.clauses) == graph.output_size - 1
    with open(zoo.out / "expected_results.csv", newline="") as handle:
        expected = list(csv.DictReader(handle))
    assert {r["verdict"] for r in expected} == {"sat"}
    assert len(expected) == len(FAMILIES)


def test_zoo_build_is_deterministic(zoo, tmp_path):
    again = build_zoo(BuildOptions(out=tmp_path, families=("zoo_tanh",), tiny=True))
    (record,) = again
    assert (tmp_path / "zoo_tanh" / record.onnx).read_bytes() == zoo.onnx("zoo_tanh").read_bytes()
    for first, second in zip(record.instances, zoo.record("zoo_tanh").instances):
        assert (tmp_path / "zoo_tanh" / first.vnnlib).read_text() == (
            zoo.out / "zoo_tanh" / second.vnnlib).read_text()


def test_zoo_build_rejects_an_unknown_family(tmp_path):
    with pytest.raises(ValueError, match="unknown families"):
        build_zoo(BuildOptions(out=tmp_path, families=("zoo_relu",), tiny=True))


def test_zoo_command_line_defaults():
    full, tiny = parse_options([]), parse_options(["--tiny", "--families", "zoo_lstm"])
    assert full.families == FAMILIES and not full.tiny and full.timeout_s > 0
    assert tiny.tiny and tiny.families == ("zoo_lstm",) and tiny.out != full.out


@pytest.mark.parametrize("family", ["zoo_sigmoid", "zoo_lstm"])
def test_crosscheck_refutes_a_false_unsat_and_keeps_a_true_one(zoo, family, tmp_path):
    from benchmarks.zoo.crosscheck import SearchOptions, crosscheck
    results = tmp_path / "results.csv"
    with open(results, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["benchmark", "onnx", "vnnlib", "result"])
        for role in ("robust", "attackable"):     # both claimed unsat; the second is false
            writer.writerow([family, zoo.record(family).onnx,
                             zoo.vnnlib(family, role).relative_to(zoo.out / family), "unsat"])
    checks = crosscheck(results, zoo.out, SearchOptions(samples=2000, restarts=50, steps=50))
    assert [c.refuted for c in checks] == [False, True]
    assert checks[0].best_margin > 0 >= checks[1].best_margin
