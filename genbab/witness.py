"""Counterexample confirmation on the *original* model with onnxruntime, and the VNN-COMP
counterexample text.

A candidate from the attack (or from branch-and-bound) becomes ``sat`` only here: the input is
cast to the model's float type exactly as the official checker does, run through onnxruntime,
and the property is re-evaluated on that output *without* tolerance on the output rows (the
checker allows 1e-4; we keep that slack for ourselves).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from genbab.verifier.result import Counterexample
from genbab.vnnlib.property import Property

_BOX_TOLERANCE = 1e-6   # float32 rounding of the box bounds; the official checker allows 1e-4


@functools.lru_cache(maxsize=8)
def _session(model: str | bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def _resolve(model: str | Path | bytes) -> str | bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    path = Path(model)
    if path.suffix == ".gz":
        import gzip
        return gzip.decompress(path.read_bytes())
    return str(path)


def run_onnxruntime(model: str | Path | bytes, x: np.ndarray) -> np.ndarray:
    """Run one flat input through onnxruntime; returns the flat output (float64)."""
    session = _session(_resolve(model))
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    dtype = np.float64 if inp.type == "tensor(double)" else np.float32
    out = session.run(None, {inp.name: np.asarray(x).astype(dtype).reshape(shape)})[0]
    return np.asarray(out, dtype=np.float64).reshape(-1)


def input_dtype(model: str | Path | bytes) -> type:
    inp = _session(_resolve(model)).get_inputs()[0]
    return np.float64 if inp.type == "tensor(double)" else np.float32


def confirm(model: str | Path | bytes, prop: Property, x: np.ndarray,
            input_shape: tuple[int, ...]) -> Counterexample | None:
    """Return a confirmed counterexample for flat input ``x``, or None if onnxruntime disagrees."""
    x_model = np.asarray(x, dtype=np.float64).reshape(-1).astype(input_dtype(model))
    x64 = x_model.astype(np.float64)
    y = run_onnxruntime(model, x_model)
    if not np.all(np.isfinite(y)) or y.shape[0] != prop.num_outputs:
        return None
    for i, disjunct in enumerate(prop.disjuncts):
        if not disjunct.contains(x64, _BOX_TOLERANCE):
            continue
        for j, clause in enumerate(disjunct.clauses):
            if bool(clause.is_satisfied(y, 0.0)):
                return Counterexample(x=x64.reshape(input_shape), y=y, disjunct=i, clause=j,
                                      margin=float(clause.margins(y).max()))
    return None


def format_counterexample(cex: Counterexample) -> str:
    """VNN-COMP counterexample text (vnncomp.md 2.1): every X_i then every Y_j, full precision."""
    lines = [f"(X_{i} {float(v)!r})" for i, v in enumerate(np.asarray(cex.x).reshape(-1))]
    lines += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(np.asarray(cex.y).reshape(-1))]
    return "(" + "\n".join(lines) + ")\n"
