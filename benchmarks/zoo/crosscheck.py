"""Cross-check ``unsat`` answers with a search that shares no code with genbab's own attack.

For every ``unsat`` row of a ``run-suite`` results CSV, dense uniform sampling of the input box
plus a plain projected-gradient descent from many random starts (torch autograd through our
graph, which agrees with onnxruntime) minimise the property's margin: the smallest, over the
clauses, of the largest ``c_i . y - d_i``.  A margin <= 0 is a counterexample to the ``unsat``
(re-run through onnxruntime before it is reported as one).

    python -m benchmarks.zoo.crosscheck results/zoo_tiny.csv --root benchmarks/zoo/generated/tiny

Prints one line per instance and a summary; exit status 1 if any ``unsat`` is refuted.
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genbab.verifier.forward import evaluate
from genbab.verifier.graph import Graph
from genbab.verifier.onnx_loader import load_model
from genbab.witness import confirm
from genbab.vnnlib.parser import parse_vnnlib
from genbab.vnnlib.property import Property


@dataclass(frozen=True)
class SearchOptions:
    samples: int = 20_000       # uniform points per disjunct
    restarts: int = 200         # PGD starts per disjunct
    steps: int = 100
    seed: int = 0


@dataclass(frozen=True)
class Check:
    onnx: str
    vnnlib: str
    best_margin: float          # > 0: nothing found
    refuted: bool               # a point with margin <= 0 that onnxruntime confirms


def property_margin(prop_rows: list[tuple[torch.Tensor, torch.Tensor]], y: torch.Tensor) -> torch.Tensor:
    """(batch,) min over clauses of max over rows of ``C y - d``."""
    per_clause = [(y @ c.T - d).amax(dim=1) for c, d in prop_rows]
    return torch.stack(per_clause, dim=1).amin(dim=1)


def search(graph: Graph, prop: Property, options: SearchOptions) -> tuple[float, np.ndarray]:
    """The smallest margin found over every disjunct and the point reaching it."""
    gen = torch.Generator().manual_seed(options.seed)
    best, best_x = float("inf"), None
    for disjunct in prop.disjuncts:
        lower = torch.tensor(disjunct.lower, dtype=torch.float64)
        upper = torch.tensor(disjunct.upper, dtype=torch.float64)
        rows = [(torch.tensor(c.coeffs), torch.tensor(c.thresholds)) for c in disjunct.clauses]
        for x in (_uniform(lower, upper, options.samples, gen),
                  _descend(graph, rows, lower, upper, options, gen)):
            with torch.no_grad():
                margin = property_margin(rows, evaluate(graph, x).reshape(len(x), -1))
            i = int(margin.argmin())
            if float(margin[i]) < best:
                best, best_x = float(margin[i]), x[i].numpy()
    return best, best_x


def _uniform(lower: torch.Tensor, upper: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    x = lower + (upper - lower) * torch.rand(n, lower.numel(), generator=gen, dtype=torch.float64)
    return torch.cat([x, lower.unsqueeze(0), upper.unsqueeze(0)])


def _descend(graph, rows, lower, upper, options: SearchOptions, gen) -> torch.Tensor:
    """Signed-gradient descent on the margin, step shrinking from 1/4 of the box to 1/400."""
    x = _uniform(lower, upper, options.restarts, gen)
    width = (upper - lower).clamp_min(0)
    for k in range(options.steps):
        x = x.detach().requires_grad_(True)
        margin = property_margin(rows, evaluate(graph, x).reshape(len(x), -1))
        (grad,) = torch.autograd.grad(margin.sum(), x)
        step = 0.25 * (0.01 ** (k / max(1, options.steps - 1)))
        x = torch.minimum(torch.maximum(x - step * width * grad.sign(), lower), upper)
    return x.detach()


def crosscheck(results: Path, root: Path, options: SearchOptions) -> list[Check]:
    checks = []
    with open(results, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["result"] == "unsat"]
    for row in rows:
        folder = root / row["benchmark"] if (root / row["benchmark"]).is_dir() else root
        onnx_path, vnnlib_path = folder / row["onnx"], folder / row["vnnlib"]
        graph = load_model(onnx_path)
        prop = parse_vnnlib(vnnlib_path, num_inputs=graph.input_size,
                            num_outputs=graph.output_size)
        best, x = search(graph, prop, options)
        refuted = best <= 0 and confirm(str(onnx_path), prop, x,
                                        tuple(graph.onnx_input_shape)) is not None
        checks.append(Check(row["onnx"], row["vnnlib"], best, refuted))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a run-suite results CSV")
    parser.add_argument("--root", type=Path, required=True, help="the suite's --root")
    parser.add_argument("--samples", type=int, default=SearchOptions.samples)
    parser.add_argument("--restarts", type=int, default=SearchOptions.restarts)
    parser.add_argument("--steps", type=int, default=SearchOptions.steps)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    checks = crosscheck(args.results, args.root,
                        SearchOptions(args.samples, args.restarts, args.steps))
    for c in checks:
        print(f"{'REFUTED' if c.refuted else 'ok':<8} best margin {c.best_margin:+.4g}  "
              f"{c.onnx} {c.vnnlib}")
    refuted = sum(c.refuted for c in checks)
    print(f"{len(checks)} unsat answers cross-checked ({args.samples} samples and "
          f"{args.restarts} PGD restarts x {args.steps} steps each): {refuted} refuted")
    return 1 if refuted else 0


if __name__ == "__main__":
    sys.exit(main())
