"""Every VNN-LIB property of the shared benchmarks parses, fast, and fits its model's sizes."""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import pytest

from genbab.vnnlib.parser import parse_vnnlib

pytestmark = pytest.mark.slow

# generous: the largest files parse in well under a second on a laptop
_MAX_SECONDS_PER_FILE = 5.0


def _flat_size(value_info) -> int | None:
    """Elements of a tensor with a batch dimension 0 / symbolic counted as 1 (vnncomp.md 1.1);
    None when the shape is not recorded."""
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
            for d in tensor_type.shape.dim]
    return math.prod(dims)


def _model_sizes(path: Path) -> tuple[int, int | None]:
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in initializers]
    assert len(inputs) == 1 and len(model.graph.output) == 1, path
    return _flat_size(inputs[0]), _flat_size(model.graph.output[0])


def _instances(root: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for listing in sorted(root.glob("*/instances.csv")):
        with open(listing, newline="") as handle:
            for row in csv.reader(handle):
                if row:
                    pairs.append((listing.parent / row[0].strip(), listing.parent / row[1].strip()))
    return pairs


def test_every_vnnlib_file_parses(benchmarks):
    files = sorted(benchmarks.rglob("*.vnnlib")) + sorted(benchmarks.rglob("*.vnnlib.gz"))
    assert files, f"no .vnnlib files under {benchmarks}"
    slowest = (0.0, None)
    for path in files:
        start = time.perf_counter()
        prop = parse_vnnlib(path)
        elapsed_s = time.perf_counter() - start
        slowest = max(slowest, (elapsed_s, path), key=lambda pair: pair[0])
        assert prop.disjuncts and all(d.clauses for d in prop.disjuncts), path
        for disjunct in prop.disjuncts:
            assert (disjunct.lower <= disjunct.upper).all(), path
    assert slowest[0] < _MAX_SECONDS_PER_FILE, f"{slowest[1]} took {slowest[0]:.2f} s"


def test_vnnlib_sizes_match_models(benchmarks):
    instances = _instances(benchmarks)
    assert instances, f"no instances.csv under {benchmarks}"
    sizes: dict[Path, tuple[int, int | None]] = {}
    parsed: dict[Path, tuple[int, int]] = {}
    for onnx_path, vnnlib_path in instances:
        if onnx_path not in sizes:
            sizes[onnx_path] = _model_sizes(onnx_path)
        num_inputs, num_outputs = sizes[onnx_path]
        if vnnlib_path not in parsed:
            prop = parse_vnnlib(vnnlib_path, num_inputs=num_inputs)
            parsed[vnnlib_path] = (prop.num_inputs, prop.num_outputs)
        assert parsed[vnnlib_path][0] == num_inputs, (onnx_path, vnnlib_path)
        if num_outputs is not None:
            assert parsed[vnnlib_path][1] == num_outputs, (onnx_path, vnnlib_path)
