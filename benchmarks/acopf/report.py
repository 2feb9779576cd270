"""Tables and plots for docs/acopf.md from ``genbab run-suite`` outputs.

    python -m benchmarks.acopf.report RESULTS.csv [--relu-only CSV] [--midpoint CSV] \\
        --out docs/ [--doc docs/acopf.md] [--note "how the runs were made"]

Each variant may be given as several CSVs (a suite run in pieces): their rows are concatenated.

Reads each results CSV and, next to it, the per-instance JSON reports that run-suite keeps
(``<results dir>/<name>.json``: seconds, bab_rounds, domains_visited, splits_by_kind,
best_bound_history).  Prints a markdown snippet with

- the results of every instance (kind of property, expected answer, answer, time, BaB work);
- the split neurons by kind (ReLU, sigmoid, sin/cos, product, square, input);
- with ``--relu-only`` / ``--midpoint``: the same instances under each variant side by side;

writes two PNGs to ``OUT/img/`` (the BaB lower bound over time of a hard instance, and the
splits by kind; matplotlib is the optional ``plots`` extra, without it the tables are still made)
and, with ``--doc``, replaces the text between the two report markers of that file.

Missing JSON files or empty ``splits_by_kind`` are reported as such, never guessed.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BEGIN_MARK = "<!-- acopf-report:begin -->"
END_MARK = "<!-- acopf-report:end -->"
BOUND_PLOT = "acopf_bound_history.png"
SPLITS_PLOT = "acopf_splits_by_kind.png"
SOLVED = ("sat", "unsat")
# how run-suite's splits_by_kind keys (op names, lower case) group for a power engineer
SPLIT_FAMILIES = {"relu": "ReLU", "sigmoid": "sigmoid", "tanh": "tanh", "sin": "sin/cos",
                  "cos": "sin/cos", "mul": "product", "pow": "square", "input": "input"}
FAMILY_ORDER = ("ReLU", "sigmoid", "tanh", "sin/cos", "product", "square", "input")
_PROPERTY_KINDS = {1: "power balance, all buses", 2: "thermal limit of one line",
                   3: "generator limits", 4: "voltage-magnitude limits"}


@dataclass
class InstanceRun:
    """One row of a run-suite CSV with the JSON report of that instance (None if absent)."""

    onnx: str
    vnnlib: str
    result: str
    time_s: float
    expected: str = ""
    report: dict | None = None
    timeout_s: float | None = None
    stats: dict = field(init=False)

    def __post_init__(self) -> None:
        self.stats = (self.report or {}).get("stats") or {}

    @property
    def name(self) -> str:
        return Path(self.vnnlib).name.removesuffix(".gz").removesuffix(".vnnlib")

    @property
    def solved(self) -> bool:
        return self.result in SOLVED

    @property
    def bound_history(self) -> list[tuple[float, float]]:
        """(seconds, worst lower bound of the margin) pairs with finite values, the time
        counted from the first record (run-suite stores monotonic clock readings)."""
        points = self._history()
        return [(t, b) for t, b in points if math.isfinite(b)]

    @property
    def proved_at(self) -> float | None:
        """When BaB closed its last domain, on the bound_history clock: the +inf record, or
        for an unsat run without one the last record (BaB records at most every 0.5 s, so the
        proof came less than 0.5 s later); None if not proved by BaB."""
        history = self._history()
        closed = next((t for t, b in history if b == math.inf), None)
        if closed is None and self.result == "unsat" and history:
            return history[-1][0]
        return closed

    def _history(self) -> list[tuple[float, float]]:
        points = [(float(t), float(b)) for t, b in self.stats.get("best_bound_history") or []]
        start = next((t for t, b in points if math.isfinite(b)), None)
        return [] if start is None else [(t - start, b) for t, b in points]

    @property
    def splits(self) -> Counter:
        """Split counts by family (``SPLIT_FAMILIES``); empty if none were recorded."""
        out: Counter = Counter()
        for kind, count in (self.stats.get("splits_by_kind") or {}).items():
            out[split_family(kind)] += int(count)
        return out


def split_family(kind: str) -> str:
    """``SPLIT_FAMILIES`` name of a splits_by_kind key; a neuron feeding several ops is named
    by all of them ("pow/mul" -> "square/product", "sin/cos" -> "sin/cos")."""
    parts = [SPLIT_FAMILIES.get(op, op) for op in kind.lower().split("/")]
    return "/".join(dict.fromkeys(parts))


def decided_by(run: InstanceRun) -> str:
    """Which stage gave the answer, from the instance's message: "alpha bounds" (bound
    propagation alone), "BaB", "attack"; "-" when unsolved or unknown."""
    message = (run.report or {}).get("message", "")
    bounds = re.search(r"proved by (\w+(?: \(float64\))?) bound propagation", message)
    if not run.solved:
        return "-"
    if bounds:
        return f"{bounds.group(1)} bounds"
    if "branch-and-bound" in message or "in BaB" in message:
        return "BaB"
    if "attack" in message:
        return "attack"
    return "-"


def property_kind(name: str) -> str:
    """The kind of an ml4acopf property from its file name ``{grid}_prop{n}``."""
    match = re.search(r"_prop(\d+)$", name)
    if not match:
        return "?"
    number = int(match.group(1))
    return _PROPERTY_KINDS.get(number, "power balance at one bus")


def read_run(path: str | Path) -> list[InstanceRun]:
    """The rows of a run-suite results CSV with their JSON reports."""
    path = Path(path)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [InstanceRun(row["onnx"], row["vnnlib"], row["result"], float(row["time_s"]),
                        row.get("expected", ""), _read_report(path, row.get("result_file", "")),
                        float(row["timeout_s"]) if row.get("timeout_s") else None)
            for row in rows]


def _read_report(csv_path: Path, result_file: str) -> dict | None:
    """``<result file>.json``, found where run-suite wrote it or in the results folder next to
    the CSV (``RESULTS/`` for ``RESULTS.csv``), so a moved run still reads."""
    if not result_file:
        return None
    candidates = [Path(result_file).with_suffix(".json"),
                  csv_path.with_suffix("") / Path(result_file).with_suffix(".json").name]
    for candidate in candidates:
        if candidate.exists():
            try:
                return json.loads(candidate.read_text())
            except ValueError:
                return None
    return None


# -- tables -----------------------------------------------------------------------------------

def _format_splits(splits: Counter) -> str:
    if not splits:
        return "-"
    return ", ".join(f"{family} {splits[family]}" for family in _ordered(splits))


def _ordered(families) -> list[str]:
    known = [f for f in FAMILY_ORDER if f in families]
    return known + sorted(f for f in families if f not in FAMILY_ORDER)


def _count(value) -> str:
    return str(value) if value not in (None, "") else "-"


def results_table(runs: list[InstanceRun]) -> str:
    """One row per instance: property kind, expected and obtained answer, time, BaB work."""
    lines = ["| instance | property | expected | result | decided by | time (s) | BaB rounds | "
             "domains | splits by kind |",
             "|---|---|---|---|---|---:|---:|---:|---|"]
    for run in runs:
        stats = run.stats
        lines.append(f"| {run.name} | {property_kind(run.name)} | {run.expected or '-'} | "
                     f"{run.result} | {decided_by(run)} | {run.time_s:.1f} | "
                     f"{_count(stats.get('bab_rounds'))} | "
                     f"{_count(stats.get('domains_visited'))} | {_format_splits(run.splits)} |")
    return "\n".join(lines)


def summary_line(runs: list[InstanceRun]) -> str:
    """Time limit, solved count and median time of the solved instances."""
    solved = [run.time_s for run in runs if run.solved]
    limits = sorted({f"{run.timeout_s:g} s" for run in runs if run.timeout_s})
    wrong = sum(run.solved and run.expected in SOLVED and run.result != run.expected
                for run in runs)
    median = f"{statistics.median(solved):.1f} s" if solved else "-"
    return (f"Time limit {' / '.join(limits) or 'unknown'} per instance: "
            f"{len(solved)} of {len(runs)} solved ({sum(r.result == 'unsat' for r in runs)} unsat, "
            f"{sum(r.result == 'sat' for r in runs)} sat), median time of the solved ones "
            f"{median}, {wrong} wrong.")


def splits_table(variants: dict[str, list[InstanceRun]]) -> str:
    """Splits by kind summed over the instances of each variant."""
    totals = {label: sum((run.splits for run in runs), Counter())
              for label, runs in variants.items()}
    families = _ordered({f for total in totals.values() for f in total})
    if not families:
        return "No splits recorded (the JSON reports have no `splits_by_kind` counts)."
    lines = ["| run | " + " | ".join(families) + " |",
             "|---|" + "---:|" * len(families)]
    for label, total in totals.items():
        lines.append(f"| {label} | " + " | ".join(str(total.get(f, 0)) for f in families) + " |")
    return "\n".join(lines)


def comparison_table(variants: dict[str, list[InstanceRun]]) -> str:
    """The same instances under each variant: answer and time side by side, then totals."""
    labels = list(variants)
    by_name = [{run.name: run for run in runs} for runs in variants.values()]
    names = list(dict.fromkeys(name for table in by_name for name in table))
    lines = ["| instance | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for name in names:
        cells = [_comparison_cell(t[name]) if name in t else "-" for t in by_name]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    solved = [sum(run.solved for run in runs) for runs in variants.values()]
    lines.append("| **solved** | " + " | ".join(f"**{n} / {len(runs)}**" for n, runs in
                                                 zip(solved, variants.values())) + " |")
    return "\n".join(lines)


def _comparison_cell(run: InstanceRun) -> str:
    """Answer and time; for an unsolved BaB, also the last lower bound (closer to 0 is
    closer to a proof), so variants that all time out can still be compared."""
    cell = f"{run.result} {run.time_s:.1f} s"
    if not run.solved and run.bound_history:
        cell += f" (bound {run.bound_history[-1][1]:.2g})"
    return cell


def hardest(runs: list[InstanceRun]) -> InstanceRun | None:
    """The instance whose BaB ran longest (most bound-history records), preferring solved ones:
    the bound of a proved instance climbs to 0, which is what the plot should show."""
    with_history = [run for run in runs if len(run.bound_history) >= 2]
    if not with_history:
        return None
    return max(with_history, key=lambda run: (run.solved, len(run.bound_history), run.time_s))


def snippet(variants: dict[str, list[InstanceRun]], images: dict[str, str],
            note: str = "") -> str:
    """The markdown that goes between the report markers of docs/acopf.md."""
    main_label, main = next(iter(variants.items()))
    parts = []
    if note:
        parts.append(note)
    parts += [f"**Results, {main_label}.** " + summary_line(main), results_table(main),
              "**Split neurons by kind** (summed over the instances):", splits_table(variants)]
    if len(variants) > 1:
        parts += ["**What general branching buys** (answer and wall time per instance; for "
                  "an unsolved BaB the last lower bound of the margin, proved at 0):",
                  comparison_table(variants)]
    for caption, image in images.items():
        parts.append(f"![{caption}]({image})")
    return "\n\n".join(parts) + "\n"


def markers(section: str = "") -> tuple[str, str]:
    """The begin / end comments of a generated section (``section``: "" for the main one)."""
    if not section:
        return BEGIN_MARK, END_MARK
    return f"<!-- acopf-report:{section}:begin -->", f"<!-- acopf-report:{section}:end -->"


def replace_marked(text: str, new: str, section: str = "") -> str:
    """``text`` with the part between the section's markers replaced by ``new``."""
    begin_mark, end_mark = markers(section)
    begin, end = text.find(begin_mark), text.find(end_mark)
    if begin < 0 or end < begin:
        raise ValueError(f"the document needs the markers {begin_mark} and {end_mark}")
    return text[:begin + len(begin_mark)] + "\n" + new + text[end:]


# -- command line -----------------------------------------------------------------------------

def _variants(args) -> dict[str, list[InstanceRun]]:
    variants = {"general branching (default)": _read_all(args.results)}
    if args.relu_only:
        variants["--split relu-only"] = _read_all(args.relu_only)
    if args.midpoint:
        variants["--branch-points midpoint"] = _read_all(args.midpoint)
    return variants


def _read_all(paths: list[str]) -> list[InstanceRun]:
    return [run for path in paths for run in read_run(path)]


def _make_plots(variants: dict[str, list[InstanceRun]], out: Path, hard: str | None,
                doc_dir: Path) -> dict[str, str]:
    """The PNGs (caption -> path relative to the doc); {} with a message if matplotlib is
    missing or there is nothing to plot."""
    from benchmarks.acopf import plots

    main = next(iter(variants.values()))
    chosen = next((run for run in main if run.name == hard), None) if hard else hardest(main)
    images: dict[str, str] = {}
    img_dir = out / "img"
    try:
        if chosen is not None and len(chosen.bound_history) >= 2:
            path = plots.bound_history_plot({label: next((r for r in runs if r.name == chosen.name),
                                                         None) for label, runs in variants.items()},
                                            chosen.name, img_dir / BOUND_PLOT)
            images[f"BaB lower bound over time, {chosen.name}"] = _relative(path, doc_dir)
        else:
            print("no BaB bound history to plot", file=sys.stderr)
        totals = {label: sum((run.splits for run in runs), Counter())
                  for label, runs in variants.items()}
        if any(totals.values()):
            path = plots.splits_plot(totals, img_dir / SPLITS_PLOT, _ordered)
            images["split neurons by kind"] = _relative(path, doc_dir)
        else:
            print("no splits recorded: no splits plot", file=sys.stderr)
    except plots.PlotsUnavailable as err:
        print(err, file=sys.stderr)
    return images


def _relative(path: Path, doc_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(doc_dir.resolve()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tables and plots for docs/acopf.md")
    parser.add_argument("results", nargs="+", help="run-suite results CSV(s), default settings")
    parser.add_argument("--relu-only", nargs="+", help="the same suite run with --split relu-only")
    parser.add_argument("--midpoint", nargs="+",
                        help="the same suite run with --branch-points midpoint")
    parser.add_argument("--out", default="docs", help="folder for img/*.png (default docs)")
    parser.add_argument("--doc", help="markdown file whose report markers get the tables")
    parser.add_argument("--section", default="", help="fill the markers "
                        "<!-- acopf-report:SECTION:begin/end --> instead of the main ones")
    parser.add_argument("--hard", help="instance for the bound plot, e.g. 14_ieee_prop1 "
                                       "(default: the longest BaB)")
    parser.add_argument("--note", default="", help="text put above the tables (which runs)")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    variants = _variants(args)
    out = Path(args.out)
    doc_dir = Path(args.doc).parent if args.doc else out
    images = {} if args.no_plots else _make_plots(variants, out, args.hard, doc_dir)
    text = snippet(variants, images, args.note)
    print(text)
    if args.doc:
        doc = Path(args.doc)
        doc.write_text(replace_marked(doc.read_text(), text, args.section))
        print(f"updated {doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
