"""Write the planted-counterexample set: ONNX models, VNN-LIB properties and a suite.

    python -m benchmarks.soundness.build [--out DIR] [--tiny] [--timeout S] [--samples N]

For every (family, input dimension, radius) of the set, one random network with a spike
planted around a random centre (``benchmarks.soundness.planted``), and two properties on it:

* ``*_planted.vnnlib``: ``Y_0 >= T`` is reachable only inside the spike's L1 ball, whose
  centre onnxruntime confirms; expected ``sat``.  Before it is written, 1e5 uniform samples and
  PGD from random starts must both miss the region, else the instance is dropped (printed);
* ``*_safe.vnnlib``: the same network with ``T`` above a float64 interval bound of the whole
  output 0; expected ``unsat``.

``DIR/planted/`` holds ``onnx/`` and ``vnnlib/``; ``DIR/instances.csv`` and
``DIR/expected_results.csv`` run it with ``genbab run-suite DIR/instances.csv --root DIR``, and
``DIR/manifest.csv`` records each instance's centre distance to the faces, thresholds, spike
height and the check figures.  ``--tiny`` writes the CI set (2 and 5 inputs, every family).
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.soundness.planted import (FAMILIES, PlantedModule, PlantedNet, PlantedSpec,
                                          hidden_check, plant)
from genbab.api import export_module

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "generated"
BENCHMARK = "planted"
SMALL_DIMS = (2, 3, 5, 8)          # input splitting must find these (issue 14, item 2)
LARGE_DIMS = (24, 96, 256)
SMALL_RADII = (1e-4, 1e-5)         # 1e-3 at 2 inputs is a 2e-6 share of the box: 1e5
LARGE_RADII = (1e-3,)              # samples hit it; at 24+ inputs 1e-3 is far out of reach
TINY_DIMS, TINY_RADII = (2, 5), (1e-4,)
DEFAULT_TIMEOUT_S = 60.0
TINY_TIMEOUT_S = 30.0


def full_specs(seed: int = 0) -> list[PlantedSpec]:
    specs = [PlantedSpec(f, d, r, seed) for f in FAMILIES for d in SMALL_DIMS for r in SMALL_RADII]
    return specs + [PlantedSpec(f, d, r, seed) for f in FAMILIES for d in LARGE_DIMS
                    for r in LARGE_RADII]


def tiny_specs(seed: int = 0) -> list[PlantedSpec]:
    return [PlantedSpec(f, d, r, seed) for f in FAMILIES for d in TINY_DIMS for r in TINY_RADII]


def vnnlib_text(net: PlantedNet, threshold: float, comment: str) -> str:
    lines = [f"; {line}" for line in comment.splitlines()]
    lines += [f"(declare-const X_{i} Real)" for i in range(net.dims)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(net.weights[-1][0].shape[0])]
    for i, (lo, hi) in enumerate(zip(net.lower, net.upper)):
        lines += [f"(assert (>= X_{i} {float(lo)!r}))", f"(assert (<= X_{i} {float(hi)!r}))"]
    lines.append(f"(assert (>= Y_0 {threshold!r}))")
    return "\n".join(lines) + "\n"


def build_one(spec: PlantedSpec, out: Path, samples: int) -> dict | None:
    """Write one network and its two properties; None if sampling or PGD finds the region."""
    net, t_planted, t_safe = plant(spec)
    onnx_bytes = export_module(PlantedModule(net), (spec.dims,))
    check = hidden_check(net, onnx_bytes, t_planted, samples=samples, seed=spec.seed)
    if not check.hidden:
        print(f"  dropped {spec.name}: sample best {check.sample_best:.3g}, PGD best "
              f"{check.pgd_best:.3g}, witness {check.witness_margin:.3g}", file=sys.stderr)
        return None
    folder = out / BENCHMARK
    (folder / "onnx").mkdir(parents=True, exist_ok=True)
    (folder / "vnnlib").mkdir(parents=True, exist_ok=True)
    (folder / "onnx" / f"{spec.name}.onnx").write_bytes(onnx_bytes)
    centre = ", ".join(f"{float(c)!r}" for c in net.centre)
    planted = (f"planted counterexample ({spec.family}, {spec.dims} inputs, relative radius "
               f"{spec.radius:g}): expected sat\nwitness: X = [{centre}]")
    safe = (f"safe twin of {spec.name}: T above a float64 interval bound of Y_0 over the box; "
            "expected unsat")
    (folder / "vnnlib" / f"{spec.name}_planted.vnnlib").write_text(
        vnnlib_text(net, t_planted, planted))
    (folder / "vnnlib" / f"{spec.name}_safe.vnnlib").write_text(vnnlib_text(net, t_safe, safe))
    return {"name": spec.name, "family": spec.family, "dims": spec.dims, "radius": spec.radius,
            "seed": spec.seed, "threshold_planted": t_planted, "threshold_safe": t_safe,
            "amplitude": net.amp, "samples": check.samples,
            "sample_best_margin": round(check.sample_best, 6), "pgd_restarts": check.pgd_restarts,
            "pgd_best_margin": round(check.pgd_best, 6),
            "witness_margin_onnxruntime": round(check.witness_margin, 6),
            "log10_box_share": round(_log10_share(net), 2)}


def _log10_share(net: PlantedNet) -> float:
    """log10 of the L1 ball's share of the box: prod(2 r_i / w_i) / n!."""
    ratio = 2 * net.radii.astype(np.float64) / (net.upper.astype(np.float64) - net.lower)
    return float(np.log10(ratio).sum() - math.lgamma(net.dims + 1) / math.log(10))


def write_suite(rows: list[dict], out: Path, timeout_s: float) -> None:
    with open(out / "instances.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["benchmark", "onnx", "vnnlib", "timeout"])
        for row in rows:
            for kind in ("planted", "safe"):
                writer.writerow([BENCHMARK, f"onnx/{row['name']}.onnx",
                                 f"vnnlib/{row['name']}_{kind}.vnnlib", timeout_s])
    with open(out / "expected_results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["benchmark", "onnx", "vnnlib", "verdict", "note"])
        for row in rows:
            writer.writerow([BENCHMARK, f"onnx/{row['name']}.onnx",
                             f"vnnlib/{row['name']}_planted.vnnlib", "sat",
                             "planted witness confirmed by onnxruntime"])
            writer.writerow([BENCHMARK, f"onnx/{row['name']}.onnx",
                             f"vnnlib/{row['name']}_safe.vnnlib", "unsat",
                             "float64 interval arithmetic"])
    with open(out / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def build(specs: list[PlantedSpec], out: Path, timeout_s: float, samples: int) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, spec in enumerate(specs, 1):
        began = time.monotonic()
        row = build_one(spec, out, samples)
        if row is not None:
            rows.append(row)
            print(f"[{k}/{len(specs)}] {spec.name}: T {row['threshold_planted']:.4g}, safe T "
                  f"{row['threshold_safe']:.4g}, samples miss by {-row['sample_best_margin']:.3g}"
                  f", PGD by {-row['pgd_best_margin']:.3g} ({time.monotonic() - began:.1f} s)")
    if not rows:
        raise SystemExit("no instance survived the hidden-region check")
    write_suite(rows, out, timeout_s)
    print(f"{len(rows)} networks, {2 * len(rows)} instances: {out / 'instances.csv'}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--tiny", action="store_true", help="the CI set (2 and 5 inputs)")
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    specs = tiny_specs(args.seed) if args.tiny else full_specs(args.seed)
    out = args.out or (DEFAULT_OUT / "tiny" if args.tiny else DEFAULT_OUT)
    timeout = args.timeout or (TINY_TIMEOUT_S if args.tiny else DEFAULT_TIMEOUT_S)
    build(specs, out, timeout, args.samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
