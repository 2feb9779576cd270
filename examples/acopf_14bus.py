"""ACOPF case study: verify one property of each kind on the IEEE 14-bus ml4acopf proxy.

    python examples/acopf_14bus.py [--pct 0.05] [--timeout 20] [--out acopf_14bus_vnnlib]

Builds, over the loads within ±pct of the grid's reference loads (docs/acopf.md):

    power balance at the most loaded bus, thermal limit of one line,
    generator limits, voltage-magnitude limits

checks each with ``genbab.verify`` (no VNN-LIB file involved), prints a table (property,
meaning, result, time) and writes the four properties as VNN-LIB files for other verifiers.

Result words: unsat = the property HOLDS for every load in the box (proved); sat = a load in the
box violates it (counterexample confirmed with onnxruntime, printed below the table); timeout /
unknown = neither within the time limit.

The model and grid data come from the VNN-COMP benchmark folder ml4acopf_2023: by default
``$GENBAB_BENCHMARKS`` or ``../shared/benchmarks`` next to the repository (``--benchmarks``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

# The property builder lives in benchmarks/acopf, which is not installed (only genbab is): the
# example runs from a checkout, with the repository root on the path as `python -m` would put it
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.acopf.case_study import describe_violation, one_of_each_kind
from benchmarks.acopf.grid import GridError, default_data_dir, load_grid
from benchmarks.acopf.vnnlib_writer import write_vnnlib
from genbab import verify
from genbab.verifier.onnx_loader import load_model

GRID = "14_ieee"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="verify one ACOPF property of each kind")
    parser.add_argument("--pct", type=float, default=0.05,
                        help="load box half-width as a fraction of the reference loads (0.05)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per property")
    parser.add_argument("--out", default="acopf_14bus_vnnlib", help="folder for the VNN-LIB files")
    parser.add_argument("--benchmarks", help="folder holding ml4acopf_2023/ (default: "
                                             "$GENBAB_BENCHMARKS or ../shared/benchmarks)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)      # small shared machines: one thread is fastest
    folder = (Path(args.benchmarks) / "ml4acopf_2023" if args.benchmarks
              else default_data_dir().parent)
    try:
        grid = load_grid(GRID, folder / "data")
    except GridError as err:
        print(f"cannot find the 14-bus grid data: {err}", file=sys.stderr)
        return 2
    model = load_model(folder / "onnx" / f"{GRID}_ml4acopf.onnx")
    print(f"{GRID}: {grid.num_buses} buses, {grid.num_generators} generators, "
          f"{grid.num_loads} loads, {grid.num_branches} branches; "
          f"model input {model.input_size}, output {model.output_size}\n")

    cases = one_of_each_kind(grid, args.pct)
    rows, violations = [], []
    for case in cases:
        start = time.monotonic()
        result = verify(model, case.prop, timeout=args.timeout)
        rows.append((case.kind, case.meaning, result.vnncomp_word, time.monotonic() - start))
        if result.counterexample is not None:
            cex = result.counterexample
            violations.append(f"{case.kind}: {describe_violation(grid, case, cex.y, cex.disjunct, cex.clause)}")
    print_table(rows)
    for line in violations:
        print("violated - " + line)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for case in cases:
        path = write_vnnlib(case.prop, out / f"{case.name}.vnnlib",
                            comment=f"{case.kind}: {case.meaning}")
        print(f"wrote {path}")
    return 0


def print_table(rows: list[tuple[str, str, str, float]]) -> None:
    """property | meaning | result | time, in aligned columns."""
    header = ("property", "meaning (holds if unsat)", "result", "time (s)")
    widths = [max(len(header[k]), *(len(row[k]) for row in rows)) for k in range(3)]
    print(f"{header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]:<{widths[2]}}  {header[3]}")
    print("-" * (sum(widths) + 6 + len(header[3])))
    for kind, meaning, word, seconds in rows:
        print(f"{kind:<{widths[0]}}  {meaning:<{widths[1]}}  {word:<{widths[2]}}  {seconds:8.1f}")
    print()


if __name__ == "__main__":
    raise SystemExit(main())
