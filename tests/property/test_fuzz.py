"""Fuzzing the parser, the loader and the CLI with mutated inputs (issue 14, item 4;
benchmarks/soundness/fuzz.py): only ``VerifierError`` may escape, a model that loads is one
onnxruntime runs the same way, and the CLI answers within its timeout without a traceback and
never with a verdict on a broken input.  hypothesis draws the seed input, the mutation and its
random choices, and shrinks any failure to the smallest one."""
from __future__ import annotations

import random

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.soundness import fuzz

SEEDS = fuzz.seed_inputs()
pytestmark = pytest.mark.usefixtures("one_thread")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(SEEDS) - 1), kind=st.sampled_from(fuzz.VNNLIB_KINDS),
       seed=st.integers(0, 2**32 - 1))
def test_mutated_vnnlib_only_raises_documented_errors(which, kind, seed):
    onnx_path, spec_path = SEEDS[which]
    text = fuzz.vnnlib_mutant(spec_path.read_text(), kind, random.Random(seed))
    finding = fuzz.check_vnnlib(text, kind, *fuzz._sizes(onnx_path))
    assert finding is None, finding


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(SEEDS) - 1), kind=st.sampled_from(fuzz.ONNX_KINDS),
       seed=st.integers(0, 2**32 - 1))
def test_mutated_onnx_loads_only_as_onnxruntime_runs_it(which, kind, seed):
    onnx_path, _ = SEEDS[which]
    data = fuzz.onnx_mutant(onnx.load(onnx_path), kind, random.Random(seed))
    finding, _ = fuzz.check_onnx(data, kind, seed)
    assert finding is None, finding


@pytest.mark.slow
@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, len(SEEDS) - 1),
       kind=st.sampled_from([("onnx", k) for k in fuzz.ONNX_KINDS]
                            + [("vnnlib", k) for k in fuzz.VNNLIB_KINDS]),
       seed=st.integers(0, 2**32 - 1))
def test_cli_on_mutated_inputs_answers_in_time_and_cleanly(tmp_path_factory, which, kind, seed):
    onnx_path, spec_path = SEEDS[which]
    target, mutation = kind
    rng, folder = random.Random(seed), tmp_path_factory.mktemp("fuzz")
    if target == "onnx":
        model, spec = folder / "m.onnx", spec_path
        model.write_bytes(fuzz.onnx_mutant(onnx.load(onnx_path), mutation, rng))
        finding, valid = fuzz.check_onnx(model.read_bytes(), mutation)
    else:
        model, spec = onnx_path, folder / "p.vnnlib"
        spec.write_text(fuzz.vnnlib_mutant(spec_path.read_text(), mutation, rng),
                        encoding="latin-1")
        finding, valid = None, fuzz._parses(spec.read_text(encoding="latin-1"), onnx_path)
    finding = finding or fuzz.check_cli(model, spec, mutation, may_answer=valid, timeout_s=3.0)
    assert finding is None, finding
