"""Timing and tightness of the bound engine.

    python -m benchmarks.bench_bounds            # speed: alpha-CROWN (20 it.) and a 256-domain CROWN batch
    python -m benchmarks.bench_bounds --widths   # mean output-bound width, IBP / CROWN / alpha, dev-suite models

Speed is measured on eran_2021's ffnnSIGMOID__Point_6x200 with a dev-suite property; each figure
is the median of ``--repeats`` runs after one warm-up.  The batch figure is given twice: with
every intermediate bound recomputed by CROWN, and the way branch-and-bound calls it (the parent's
intermediate bounds reused, only the final bound recomputed).
"""
from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from genbab.bounds.engine import output_bounds, spec_bounds
from genbab.verifier.onnx_loader import load_model
from genbab.verifier.options import BoundOptions
from genbab.vnnlib.parser import parse_vnnlib

ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks"
MODEL = "eran_2021/nets/ffnnSIGMOID__Point_6x200.onnx"
SPEC = "eran_2021/specs/mnist/mnist_spec_idx_7895_eps_0.01200.vnnlib"


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _problem(root: Path, model: str, spec: str):
    graph = load_model(root / model)
    prop = parse_vnnlib(root / spec, num_inputs=graph.input_size, num_outputs=graph.output_size)
    d = prop.disjuncts[0]
    lower = torch.tensor(d.lower, dtype=torch.float32)[None]
    upper = torch.tensor(d.upper, dtype=torch.float32)[None]
    coeffs = torch.tensor(np.concatenate([c.coeffs for c in d.clauses]), dtype=torch.float32)
    return graph, lower, upper, coeffs


def _sub_boxes(lower: torch.Tensor, upper: torch.Tensor, count: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(count, lower.shape[1], generator=gen)
    b = torch.rand(count, lower.shape[1], generator=gen)
    lo, up = torch.minimum(a, b), torch.maximum(a, b)
    width = upper - lower
    return lower + lo * width, lower + up * width


def speed(root: Path, repeats: int) -> None:
    torch.set_grad_enabled(True)
    graph, lower, upper, coeffs = _problem(root, MODEL, SPEC)
    opts = BoundOptions(method="alpha", alpha_iterations=20)
    t_alpha = _median_time(lambda: spec_bounds(graph, lower, upper, coeffs, method="alpha",
                                               options=opts), repeats)
    res = spec_bounds(graph, lower, upper, coeffs, method="alpha", options=opts)
    crown = spec_bounds(graph, lower, upper, coeffs, method="crown")
    print(f"alpha-CROWN, 20 iterations, 1 domain: {t_alpha:.3f} s   "
          f"(min row bound CROWN {crown.lower.min():.4f} -> alpha {res.lower.min():.4f})")
    sub_lo, sub_up = _sub_boxes(lower, upper, 256)
    t_full = _median_time(lambda: spec_bounds(graph, sub_lo, sub_up, coeffs, method="crown"), repeats)
    print(f"CROWN, 256 sub-domains, intermediate bounds recomputed: {t_full:.3f} s")
    parent = crown.intermediate
    interm = {k: (v[0].expand(256, *v[0].shape[1:]), v[1].expand(256, *v[1].shape[1:]))
              for k, v in parent.items()}
    t_bab = _median_time(lambda: spec_bounds(graph, sub_lo, sub_up, coeffs, method="crown",
                                             interm=interm, refresh=False), repeats)
    print(f"CROWN, 256 sub-domains, parent's intermediate bounds reused (BaB): {t_bab:.3f} s")


def widths(root: Path, deadline_s: float) -> None:
    seen: dict[str, str] = {}
    with open(root / "suites" / "dev.csv") as handle:
        for row in csv.DictReader(handle):
            seen.setdefault(f"{row['benchmark']}/{row['onnx']}", f"{row['benchmark']}/{row['vnnlib']}")
    print(f"{'model':70s} {'ibp':>12s} {'crown':>12s} {'alpha':>12s}  seconds")
    for model, spec in seen.items():
        graph, lower, upper, _ = _problem(root, model, spec)
        cells, times = [], []
        for method in ("ibp", "crown", "alpha"):
            start = time.perf_counter()
            lo, up = output_bounds(graph, lower, upper, method=method,
                                   options=BoundOptions(alpha_iterations=20),
                                   deadline=time.monotonic() + deadline_s)
            times.append(time.perf_counter() - start)
            cells.append(float((up - lo).mean()))
        print(f"{model:70s} " + " ".join(f"{c:12.4g}" for c in cells)
              + "  " + "/".join(f"{t:.1f}" for t in times), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", action="store_true", help="per-model output-bound widths")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=60.0,
                        help="seconds per bound in --widths (then IBP for the rest)")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    if args.widths:
        widths(args.root, args.deadline)
    else:
        speed(args.root, args.repeats)


if __name__ == "__main__":
    main()
