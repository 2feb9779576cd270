"""Cross-check our torch evaluation of a loaded model against onnxruntime.

Also the onnxruntime helpers other stages reuse (the falsifier re-checks every counterexample
with ``run_onnxruntime``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from genbab.verifier.errors import ModelError
from genbab.verifier.forward import evaluate
from genbab.verifier.graph import Graph
from genbab.verifier.onnx_loader import load_model

_SESSIONS: dict[str, ort.InferenceSession] = {}
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
               "tensor(float16)": np.float16}


@dataclass(frozen=True)
class ModelCheck:
    """How far our evaluation is from onnxruntime's on ``samples`` random inputs.

    ``max_rel_error`` is, over all samples, ``max_i |ours_i - ort_i| / max(1, max_i |ort_i|)``
    (per sample, the worst output error relative to that sample's largest output magnitude, or
    absolute when outputs are below 1).  ``finite`` is False if either side produced NaN/inf.
    """

    path: str
    samples: int
    max_abs_error: float
    max_rel_error: float
    max_output: float           # max |ort| over all samples and outputs
    finite: bool
    op_types: tuple[str, ...]   # op types of our normalised graph


def onnxruntime_session(path: str | Path) -> ort.InferenceSession:
    """A CPU onnxruntime session for ``path``, cached per path."""
    key = str(Path(path).resolve())
    session = _SESSIONS.get(key)
    if session is None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(key, options, providers=["CPUExecutionProvider"])
        except (RuntimeError, ort.capi.onnxruntime_pybind11_state.Fail) as err:
            raise ModelError(key, f"onnxruntime cannot load the model: {err}") from err
        _SESSIONS[key] = session
    return session


def _session_input_shape(session: ort.InferenceSession) -> list[int]:
    shape = session.get_inputs()[0].shape
    return [d if isinstance(d, int) and d > 0 else 1 for d in shape]


def run_onnxruntime(session: ort.InferenceSession, x_flat: np.ndarray) -> np.ndarray:
    """Run ``x_flat: (n, input_size)`` (or one flat point) through onnxruntime, one sample per
    call, each reshaped to the declared input shape (symbolic dims = 1).  Returns
    ``(n, output_size)`` in onnxruntime's output dtype."""
    info = session.get_inputs()[0]
    shape = _session_input_shape(session)
    dtype = _ORT_DTYPES.get(info.type, np.float32)
    points = np.asarray(x_flat).reshape(-1, int(np.prod(shape)))
    outputs = []
    for point in points:
        out = session.run(None, {info.name: point.astype(dtype).reshape(shape)})[0]
        outputs.append(np.asarray(out).reshape(-1))
    return np.stack(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


def _random_inputs(n: int, size: int, lower: np.ndarray | None, upper: np.ndarray | None,
                   seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if lower is None or upper is None:
        return rng.standard_normal((n, size)).astype(np.float32)
    lo = np.broadcast_to(np.asarray(lower, dtype=np.float64).reshape(-1), (size,))
    hi = np.broadcast_to(np.asarray(upper, dtype=np.float64).reshape(-1), (size,))
    return (lo + rng.random((n, size)) * (hi - lo)).astype(np.float32)


def compare_with_onnxruntime(model_path: str | Path, graph: Graph | None = None, *,
                             samples: int = 16, lower: np.ndarray | None = None,
                             upper: np.ndarray | None = None, seed: int = 0,
                             dtype: torch.dtype = torch.float32) -> ModelCheck:
    """Evaluate ``samples`` random inputs (uniform in the flat box ``[lower, upper]`` when given,
    else standard normal) with onnxruntime and with ``verifier.forward.evaluate``."""
    graph = graph if graph is not None else load_model(model_path)
    x = _random_inputs(samples, graph.input_size, lower, upper, seed)
    theirs = run_onnxruntime(onnxruntime_session(model_path), x).astype(np.float64)
    with torch.no_grad():
        ours = evaluate(graph, torch.from_numpy(x).to(dtype)).reshape(samples, -1)
    ours_np = ours.double().numpy()
    if ours_np.shape != theirs.shape:
        raise ModelError(str(model_path), f"output shape {ours_np.shape[1:]} differs from "
                                          f"onnxruntime's {theirs.shape[1:]}")
    finite = bool(np.isfinite(theirs).all() and np.isfinite(ours_np).all())
    diff = np.abs(ours_np - theirs)
    scale = np.maximum(1.0, np.abs(theirs).max(axis=1, initial=0.0))
    return ModelCheck(
        path=str(model_path), samples=samples,
        max_abs_error=float(diff.max(initial=0.0)),
        max_rel_error=float((diff.max(axis=1, initial=0.0) / scale).max(initial=0.0)),
        max_output=float(np.abs(theirs).max(initial=0.0)), finite=finite,
        op_types=tuple(graph.op_types()))
