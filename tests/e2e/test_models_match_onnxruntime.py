"""Every benchmark model loads, and our torch evaluation agrees with onnxruntime in float32.

Inputs are random: uniform in the input box of the model's first VNN-LIB property (from its
benchmark's instances.csv) and uniform in [0, 1] (pixels, counts and masks stay meaningful, so
the nn4sys mscn divisions stay finite)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import benchmarks_root
from genbab.model_check import compare_with_onnxruntime
from genbab.verifier.onnx_loader import load_model
from genbab.vnnlib.parser import parse_vnnlib

pytestmark = pytest.mark.slow

MAX_REL_ERROR = 1e-4
SAMPLES = 16


def _models() -> list[Path]:
    root = benchmarks_root()
    return [] if root is None else sorted(root.glob("*/*/*.onnx"))


def _first_property(model: Path) -> Path | None:
    bench = model.parent.parent
    listing = bench / "instances.csv"
    if not listing.exists():
        return None
    with open(listing, newline="") as handle:
        for row in csv.reader(handle):
            if row and (bench / row[0].strip()).resolve() == model.resolve():
                return bench / row[1].strip()
    return None


@pytest.mark.parametrize("model", _models(), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_model_matches_onnxruntime(model: Path, benchmarks: Path):
    graph = load_model(model)
    assert graph.nodes and graph.source == str(model)
    boxes = [(np.zeros(graph.input_size), np.ones(graph.input_size))]
    spec = _first_property(model)
    if spec is not None:
        prop = parse_vnnlib(spec, num_inputs=graph.input_size, num_outputs=graph.output_size)
        boxes.append((prop.disjuncts[0].lower, prop.disjuncts[0].upper))
    for lower, upper in boxes:
        check = compare_with_onnxruntime(model, graph, samples=SAMPLES, lower=lower, upper=upper)
        assert check.finite, f"non-finite outputs for {model.name}"
        assert check.max_rel_error <= MAX_REL_ERROR, check


def test_every_benchmark_model_is_found(benchmarks: Path):
    models = _models()
    assert models
    assert {m.parent.parent.name for m in models} == {
        p.parent.name for p in benchmarks.glob("*/instances.csv")}
