"""The model-family tables: per family and configuration, verified / falsified / open counts and
median times, from ``run-suite`` result CSVs of the same instances.

    python -m benchmarks.zoo.tables --write-suite results/table_suite.csv \\
        --properties benchmarks/zoo/generated/properties.csv
    python -m benchmarks.zoo.tables none=results/none.csv genbab=results/default.csv \\
        midpoint-babsr=results/midpoint_babsr.csv --fill-from none

``--write-suite``: the instances the tables are made of, the ``role=boundary`` properties
(just past what bound propagation alone proves, where branching decides) of every model, of
only the first correctly classified sample for the MLPs (24 of the 29 models: all their samples
would make the MLP families outweigh the rest five to one and the run take hours).

``--fill-from NAME``: a configuration run only on the instances ``NAME`` left open takes
``NAME``'s rows for the others.  That is exact for the branch-and-bound configurations against
``--split none``: they share everything before branching (attack, bound propagation), so an
instance those decide is decided the same way.  Conflicts (``sat`` in one configuration,
``unsat`` in another) are listed: every ``sat`` is confirmed by onnxruntime, so the ``unsat``
would be wrong.
"""
from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

Key = tuple[str, str, str]


def read(path: Path) -> dict[Key, dict]:
    with open(path, newline="") as handle:
        return {(r["benchmark"], r["onnx"], r["vnnlib"]): r for r in csv.DictReader(handle)}


def fill(partial: dict[Key, dict], source: dict[Key, dict]) -> dict[Key, dict]:
    """``source``'s rows for the instances ``partial`` lacks."""
    return {**{k: v for k, v in source.items() if k not in partial}, **partial}


def conflicts(runs: dict[str, dict[Key, dict]]) -> list[Key]:
    seen: dict[Key, set[str]] = {}
    for rows in runs.values():
        for key, row in rows.items():
            if row["result"] in ("sat", "unsat"):
                seen.setdefault(key, set()).add(row["result"])
    return sorted(k for k, results in seen.items() if len(results) > 1)


def table_suite(properties: Path, timeout: float) -> list[dict]:
    """The ``role=boundary`` rows of the zoo's ``properties.csv`` (see the module docstring)
    as suite rows ``benchmark, onnx, vnnlib, timeout``."""
    with open(properties, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["role"] == "boundary"]
    first: dict[str, str] = {}
    for row in rows:
        first.setdefault(row["onnx"], row["sample"])
    return [{"benchmark": r["benchmark"], "onnx": r["onnx"], "vnnlib": r["vnnlib"],
             "timeout": f"{timeout:g}"} for r in rows
            if "/mlp_" not in "/" + r["onnx"] or r["sample"] == first[r["onnx"]]]


def write_suite(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["benchmark", "onnx", "vnnlib", "timeout"])
        writer.writeheader()
        writer.writerows(rows)


def _group(key: Key, by: str) -> str:
    """The row a result belongs to: its family (benchmark) or its model (ONNX file stem)."""
    return key[0] if by == "family" else Path(key[1]).stem


def family_table(runs: dict[str, dict[Key, dict]], by: str = "family") -> str:
    """Markdown: a row per family (``by="model"``: per model), per configuration
    ``unsat / sat / open`` and the median wall time of its decided instances."""
    names = list(runs)
    families = sorted({_group(k, by) for rows in runs.values() for k in rows})
    head = f"| {by} | n | " + " | ".join(f"{n}: unsat / sat / open (median s)" for n in names)
    lines = [head + " |", "|---|---|" + "---|" * len(names)]
    for family in [*families, "TOTAL"]:
        cells = []
        n = 0
        for name in names:
            rows = [r for k, r in runs[name].items() if family in ("TOTAL", _group(k, by))]
            n = len(rows)
            unsat = sum(r["result"] == "unsat" for r in rows)
            sat = sum(r["result"] == "sat" for r in rows)
            times = [float(r["time_s"]) for r in rows if r["result"] in ("sat", "unsat")]
            median = f"{statistics.median(times):.1f}" if times else "-"
            cells.append(f"{unsat} / {sat} / {n - unsat - sat} ({median})")
        label = f"**{family}**" if family == "TOTAL" else family
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", help="NAME=RESULTS.csv, in column order")
    parser.add_argument("--fill-from", help="a NAME whose rows complete the other runs")
    parser.add_argument("--by", choices=("family", "model"), default="family",
                        help="one row per family (default) or per model")
    parser.add_argument("--write-suite", type=Path, metavar="OUT.csv",
                        help="write the tables' instances as a suite CSV instead")
    parser.add_argument("--properties", type=Path,
                        default=Path(__file__).parent / "generated" / "properties.csv",
                        help="the zoo's properties.csv (for --write-suite)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="timeout column of --write-suite (default 30)")
    args = parser.parse_args(argv)
    if args.write_suite:
        rows = table_suite(args.properties, args.timeout)
        write_suite(rows, args.write_suite)
        print(f"{len(rows)} instances -> {args.write_suite}")
        return 0
    if not args.runs:
        parser.error("give NAME=RESULTS.csv runs, or --write-suite")
    runs = {}
    for item in args.runs:
        name, _, path = item.partition("=")
        runs[name] = read(Path(path))
    if args.fill_from:
        source = runs[args.fill_from]
        runs = {name: rows if name == args.fill_from else fill(rows, source)
                for name, rows in runs.items()}
    sizes = {len(rows) for rows in runs.values()}
    if len(sizes) != 1:
        parser.error(f"the runs cover different instances: {sorted(sizes)} rows")
    print(family_table(runs, args.by))
    clashes = conflicts(runs)
    print(f"\nsat/unsat conflicts: {len(clashes)}")
    for key in clashes:
        print("- " + " ".join(key) + ": " + ", ".join(f"{n} {runs[n][key]['result']}"
                                                        for n in runs if key in runs[n]))
    return 1 if clashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
