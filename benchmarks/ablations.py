"""Ablations of GenBaB's choices on a subset of a suite: which heuristic, which branching
points, which neurons may be split.

    python -m benchmarks.ablations ../shared/benchmarks/suites/dev.csv \
        --root ../shared/benchmarks --benchmarks eran_2021 ml4acopf_2023 lsnc_2024 \
        --timeout 60 --out results/ablations [--baseline results/dev.csv]

Runs ``genbab run-suite`` once per variant (each instance in a fresh process, as the suite
runner always does) and writes ``ablations.md``: per benchmark and variant, the correct
answers and the median wall time of the solved instances, plus the median over the instances
that every variant solved (the fair speed comparison).  ``--baseline`` reuses a run-suite
CSV of the default configuration instead of running it again.
"""
from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

from genbab.suite import SuiteOptions, run_suite

# name -> extra `genbab verify` arguments; the first one is the default configuration
VARIANTS: dict[str, tuple[str, ...]] = {
    "default (bbps, lut, all)": (),
    "none": ("--split", "none"),                     # bound propagation only
    "midpoint-babsr": ("--branch-points", "midpoint", "--branching", "babsr"),
    "babsr": ("--branching", "babsr"),
    "midpoint": ("--branch-points", "midpoint"),
    "relu-only": ("--split", "relu-only"),
    "no-clip": ("--no-clip",),
}
SOLVED = ("sat", "unsat")


def _subset(suite: Path, benchmarks: list[str], out: Path) -> Path:
    with open(suite, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [r for r in reader if r["benchmark"] in benchmarks or benchmarks == ["all"]]
        fields = reader.fieldnames or []
    path = out / "suite.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _correct(row: dict) -> bool:
    return row["result"] in SOLVED and row.get("correct", "") != "WRONG"


def conflicts(runs: dict[str, list[dict]]) -> list[tuple[str, str]]:
    """Instances one variant answers ``sat`` and another ``unsat``: at least one is wrong
    (every ``sat`` is confirmed by onnxruntime, so it is the ``unsat``)."""
    answers: dict[tuple[str, str], set[str]] = {}
    for rows in runs.values():
        for r in rows:
            if r["result"] in SOLVED:
                answers.setdefault((r["onnx"], r["vnnlib"]), set()).add(r["result"])
    return sorted(key for key, seen in answers.items() if len(seen) > 1)


def table(runs: dict[str, list[dict]], benchmarks: list[str]) -> str:
    """Markdown: one row per (benchmark, variant)."""
    lines = ["| benchmark | variant | correct / n | wrong | median s (solved) | "
             "median s (solved by all variants) |", "|---|---|---|---|---|---|"]
    for bench in [*benchmarks, "TOTAL"]:
        picked = {name: [r for r in rows if bench == "TOTAL" or r["benchmark"] == bench]
                  for name, rows in runs.items()}
        keys = [{(r["onnx"], r["vnnlib"]) for r in rows if _correct(r)}
                for rows in picked.values()]
        common = set.intersection(*keys) if keys else set()
        for name, rows in picked.items():
            solved = [float(r["time_s"]) for r in rows if _correct(r)]
            shared = [float(r["time_s"]) for r in rows if (r["onnx"], r["vnnlib"]) in common
                      and _correct(r)]
            wrong = sum(r.get("correct") == "WRONG" for r in rows)
            lines.append(f"| {bench} | {name} | {len(solved)} / {len(rows)} | {wrong} | "
                         f"{_median(solved)} | {_median(shared)} ({len(shared)}) |")
    return "\n".join(lines)


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--benchmarks", nargs="+", default=["eran_2021", "ml4acopf_2023",
                                                             "lsnc_2024"],
                        help="benchmark names of the suite, or 'all'")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("results/ablations"))
    parser.add_argument("--baseline", type=Path, help="run-suite CSV of the default config")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per instance (pass 1 when runs share the machine)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    suite = _subset(args.suite, args.benchmarks, args.out)
    runs = {}
    for k, name in enumerate(args.variants):
        if k == 0 and args.baseline is not None and name == next(iter(VARIANTS)):
            runs[name] = [r for r in _read(args.baseline) if r["benchmark"] in args.benchmarks]
            continue
        csv_path = args.out / f"{_slug(name)}.csv"
        print(f"== {name}: genbab verify {' '.join(VARIANTS[name])}", flush=True)
        threads = ("--threads", str(args.threads)) if args.threads else ()
        run_suite(SuiteOptions(suite=suite, root=args.root, timeout_s=args.timeout, out=csv_path,
                               extra_args=VARIANTS[name] + threads))
        runs[name] = _read(csv_path)
    benchmarks = args.benchmarks if args.benchmarks != ["all"] else sorted(
        {r["benchmark"] for rows in runs.values() for r in rows})
    text = table(runs, benchmarks)
    clashes = conflicts(runs)
    text += (f"\n\nsat/unsat conflicts between variants: {len(clashes)}"
             + "".join(f"\n- {onnx} {vnnlib}" for onnx, vnnlib in clashes))
    (args.out / "ablations.md").write_text(text + "\n")
    print(text)
    return 0


def _slug(name: str) -> str:
    return name.split(" ")[0].replace("-", "_")


if __name__ == "__main__":
    raise SystemExit(main())
