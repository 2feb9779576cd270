"""Compare a run-suite results CSV with the reference verifier's results on the same suite.

    python -m benchmarks.compare_reference results/dev.csv \
        ../shared/benchmarks/reference/abcrown_cpu_dev.csv [--markdown]

Prints, per instance, both answers and wall times, then per benchmark the correct answers of
each tool, wrong answers, and the median over instances both solve of (our time / theirs).
Correct means: sat/unsat and not contradicting expected_results.csv (our CSV's ``expected``).
"""
from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

SOLVED = ("sat", "unsat")


def _key(row: dict) -> tuple[str, str, str]:
    strip = lambda p: p[2:] if p.startswith("./") else p  # noqa: E731
    return row["benchmark"], strip(row["onnx"]), strip(row["vnnlib"])


def load(path: Path) -> dict:
    with open(path, newline="") as handle:
        return {_key(r): r for r in csv.DictReader(handle)}


def _correct(result: str, expected: str) -> bool:
    return result in SOLVED and (expected not in SOLVED or result == expected)


def compare(ours: dict, theirs: dict) -> tuple[list[dict], dict]:
    rows, groups = [], defaultdict(list)
    for key, mine in ours.items():
        ref = theirs.get(key, {})
        expected = mine.get("expected", "")
        row = {"benchmark": key[0], "instance": f"{Path(key[1]).stem} / {Path(key[2]).stem}",
               "ours": mine["result"], "ours_s": float(mine["time_s"]),
               "ref": ref.get("result", "-"), "ref_s": float(ref["wall_s"]) if ref else None,
               "expected": expected,
               "wrong": mine["result"] in SOLVED and expected in SOLVED
               and mine["result"] != expected}
        rows.append(row)
        groups[key[0]].append(row)
    groups["TOTAL"] = rows
    return rows, groups


def summary(groups: dict) -> list[str]:
    lines = ["| benchmark | n | ours correct | ref correct | ours wrong | median ratio ours/ref "
             "(both solved) |", "|---|---|---|---|---|---|"]
    for name, group in groups.items():
        ours = sum(_correct(r["ours"], r["expected"]) for r in group)
        ref = sum(_correct(r["ref"], r["expected"]) for r in group)
        both = [r["ours_s"] / r["ref_s"] for r in group
                if _correct(r["ours"], r["expected"]) and _correct(r["ref"], r["expected"])
                and r["ref_s"]]
        ratio = f"{statistics.median(both):.2f} ({len(both)})" if both else "-"
        wrong = sum(r["wrong"] for r in group)
        lines.append(f"| {name} | {len(group)} | {ours} | {ref} | {wrong} | {ratio} |")
    return lines


def per_instance(rows: list[dict]) -> list[str]:
    lines = ["| benchmark | instance | expected | ours | ours s | ref | ref s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ref_s = f"{r['ref_s']:.1f}" if r["ref_s"] is not None else "-"
        flag = " **WRONG**" if r["wrong"] else ""
        lines.append(f"| {r['benchmark']} | {r['instance']} | {r['expected']} | {r['ours']}{flag} "
                     f"| {r['ours_s']:.1f} | {r['ref']} | {ref_s} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ours", type=Path)
    parser.add_argument("reference", type=Path)
    parser.add_argument("--instances", action="store_true", help="also the per-instance table")
    args = parser.parse_args()
    rows, groups = compare(load(args.ours), load(args.reference))
    print("\n".join(summary(groups)))
    if args.instances:
        print()
        print("\n".join(per_instance(rows)))


if __name__ == "__main__":
    main()
