"""Per-op timings of the relaxation registry (``bounds.ops.RULES``), single-threaded.

    python -m benchmarks.bench_relaxations                     # this checkout
    python -m benchmarks.bench_relaxations --compare /path/to/other/checkout
    python -m benchmarks.bench_relaxations --ops Sigmoid Sin --n 300000 --repeats 9

For each op: the median wall time (ms) of ``relax(lower, upper, None)`` ("default"),
``relax(lower, upper, params)`` with params from ``init_params`` ("params") and
``interval(lower, upper)``, on ``n`` float32 boxes (a mix of narrow, wide, straddling and
offset boxes; positive for ops defined on x >= 0).  ``--compare`` runs the same measurement
in a subprocess against another checkout (e.g. a ``git worktree`` of the previous commit)
and prints both side by side, so before/after figures come from one run on the same
(possibly noisy) machine.  Medians of ``--repeats`` runs after one warm-up call (which also
builds any lazily cached tables), by default in thread CPU time (``--clock wall`` for
elapsed time; on a shared machine CPU time is far less noisy).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

DEFAULT_OPS = ["Relu", "LeakyRelu", "Sigmoid", "Tanh", "Sin", "Cos", "Exp", "Pow", "Reciprocal",
               "Mul", "Log", "Sqrt", "Abs", "Erf", "Gelu", "SiLU", "Softplus"]


def _boxes(n: int, positive: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    centre = torch.cat([torch.randn(n // 2, generator=gen) * 3,
                        (torch.rand(n - n // 2, generator=gen) * 2 - 1) * 40])
    width = 10 ** (torch.rand(n, generator=gen) * 5 - 4)          # 1e-4 .. 10
    lower, upper = centre - width / 2, centre + width / 2
    if positive:
        lower, upper = lower.abs(), upper.abs()
        lower, upper = torch.minimum(lower, upper) + 1e-3, torch.maximum(lower, upper) + 1e-3
    return lower.float(), upper.float()


_CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}
_clock = _CLOCKS["cpu"]


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = _clock()
        fn()
        times.append(_clock() - start)
    return 1e3 * statistics.median(times)


def measure(ops: list[str], n: int, repeats: int) -> dict[str, dict[str, float]]:
    from genbab.bounds.ops import RULES
    torch.set_num_threads(1)
    results: dict[str, dict[str, float]] = {}
    for op in ops:
        rule = RULES.get(op)
        if rule is None:
            continue
        positive = rule.input_range[0] >= 0 or op == "Reciprocal"
        if rule.num_inputs == 2:
            xl, xu = _boxes(n, False, 1)
            yl, yu = _boxes(n, False, 2)
            lower, upper = (xl, yl), (xu, yu)
        else:
            lower, upper = _boxes(n, positive, 1)
        row = {"default": _median_ms(lambda: rule.relax(lower, upper, None), repeats),
               "interval": _median_ms(lambda: rule.interval(lower, upper), repeats)}
        if rule.num_params:
            params = rule.init_params(lower, upper)
            row["params"] = _median_ms(lambda: rule.relax(lower, upper, params), repeats)
        results[op] = row
    return results


def _print(results: dict, other: dict | None, other_name: str) -> None:
    cols = ["default", "params", "interval"]
    head = f"{'op':12s}" + "".join(f"{c:>12s}" for c in cols)
    if other is not None:
        head += "   |" + "".join(f"{(c + '@' + other_name)[:14]:>15s}" for c in cols)
    print(head)
    for op, row in results.items():
        line = f"{op:12s}" + "".join(f"{row[c]:12.2f}" if c in row else f"{'-':>12s}"
                                     for c in cols)
        if other is not None and op in other:
            line += "   |" + "".join(f"{other[op][c]:15.2f}" if c in other[op] else f"{'-':>15s}"
                                     for c in cols)
        print(line)
    print("(median ms per call, float32, one thread)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", nargs="*", default=DEFAULT_OPS)
    parser.add_argument("--n", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compare", default=None, help="another checkout to time as well")
    parser.add_argument("--clock", choices=sorted(_CLOCKS), default="cpu",
                        help="cpu: this thread's CPU time (robust on a shared, loaded machine;"
                             " includes page-fault time); wall: elapsed time")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global _clock
    _clock = _CLOCKS[args.clock]
    if args.json:
        print(json.dumps(measure(args.ops, args.n, args.repeats)))
        return
    other = None
    if args.compare:
        cmd = [sys.executable, "-c",
               f"import runpy, sys; sys.argv = ['bench'] + sys.argv[1:];"
               f" runpy.run_path({__file__!r}, run_name='__main__')",
               "--json", "--clock", args.clock, "--n", str(args.n), "--repeats", str(args.repeats), "--ops", *args.ops]
        env = dict(os.environ, PYTHONPATH=os.path.abspath(args.compare))
        out = subprocess.run(cmd, env=env, cwd=os.path.abspath(args.compare), check=True,
                             capture_output=True, text=True).stdout
        other = json.loads(out.strip().splitlines()[-1])
    _print(measure(args.ops, args.n, args.repeats), other, "other")
    print(f"clock: {args.clock}")


if __name__ == "__main__":
    main()
