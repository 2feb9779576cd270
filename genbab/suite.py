"""The suite runner: one ``genbab verify`` process per instance, with its timeout enforced.

Each instance runs in a fresh process (as in VNN-COMP, start-up included in the wall time) and
is killed if it overruns its timeout by more than a grace period.  Results go to a CSV that the
reports and plots read; a per-benchmark summary is printed at the end, compared with the known
answers when ``expected_results.csv`` is available.
"""
from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

_KILL_GRACE_S = 15.0
RESULT_COLUMNS = ["benchmark", "onnx", "vnnlib", "timeout_s", "result", "time_s", "expected",
                  "correct", "result_file", "message"]


@dataclass(frozen=True)
class SuiteOptions:
    suite: Path
    root: Path
    timeout_s: float | None = None         # override every row's timeout
    out: Path | None = None
    device: str = "cpu"
    expected: Path | None = None           # default: ROOT/expected_results.csv when present
    filter: str | None = None
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Instance:
    benchmark: str
    onnx: str
    vnnlib: str
    timeout_s: float


def is_instances_csv(path: Path) -> bool:
    """A VNN-COMP benchmark's own ``instances.csv``: no header, rows onnx,vnnlib,timeout."""
    with open(path, newline="") as handle:
        first = next(csv.reader(handle), [])
    return bool(first) and first[0].strip().endswith((".onnx", ".onnx.gz"))


def read_suite(path: Path, timeout_s: float | None = None) -> list[Instance]:
    if is_instances_csv(path):
        with open(path, newline="") as handle:
            return [Instance(path.parent.name, r[0].strip(), r[1].strip(),
                             timeout_s or float(r[2] if len(r) > 2 and r[2].strip() else 60))
                    for r in csv.reader(handle) if r]
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"benchmark", "onnx", "vnnlib"} - set(rows[0] if rows else {})
    if missing:
        raise ValueError(f"{path}: suite CSV needs the columns benchmark,onnx,vnnlib,timeout "
                         f"(missing {', '.join(sorted(missing))})")
    return [Instance(r["benchmark"], r["onnx"], r["vnnlib"],
                     timeout_s or float(r.get("timeout") or 60)) for r in rows]


def read_expected(path: Path | None) -> dict[tuple[str, str, str], str]:
    if path is None or not path.exists():
        return {}
    with open(path, newline="") as handle:
        return {(r["benchmark"], _norm(r["onnx"]), _norm(r["vnnlib"])): r["verdict"]
                for r in csv.DictReader(handle)}


def _norm(path: str) -> str:
    return path[2:] if path.startswith("./") else path


def judge(result: str, expected: str | None) -> str:
    """'yes' (solved and agrees), 'WRONG' (contradicts a known verdict), '' otherwise."""
    if result not in ("sat", "unsat") or expected not in ("sat", "unsat"):
        return ""
    return "yes" if result == expected else "WRONG"


def run_instance(inst: Instance, options: SuiteOptions, result_file: Path) -> dict:
    folder = options.root / inst.benchmark
    cmd = [sys.executable, "-m", "genbab.cli", "verify", str(folder / inst.onnx),
           str(folder / inst.vnnlib), "--timeout", str(inst.timeout_s), "--device",
           options.device, "--result-file", str(result_file), "--json", "-q",
           *options.extra_args]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=inst.timeout_s + _KILL_GRACE_S)
        elapsed = time.monotonic() - start
        result, message = _parse_output(proc, result_file)
        _save_stats(proc, result_file.with_suffix(".json"))
    except subprocess.TimeoutExpired:
        elapsed = time.monotonic() - start
        result, message = "timeout", "killed: ran past its timeout"
        result_file.write_text("timeout\n")
    return {"result": result, "time_s": round(elapsed, 3), "message": message}


def _save_stats(proc: subprocess.CompletedProcess, path: Path) -> None:
    """Keep the instance's JSON report (stats, bound history, splits by kind) for plots."""
    report = _json_report(proc.stdout)
    if report is not None:
        path.write_text(json.dumps(report) + "\n")


def _json_report(stdout: str) -> dict | None:
    """The last JSON object printed by ``genbab verify --json`` (printed indented, so it spans
    several lines: parse from the last line that opens an object)."""
    lines = stdout.strip().splitlines()
    for start in range(len(lines) - 1, -1, -1):
        if not lines[start].startswith("{"):
            continue
        try:
            report = json.loads("\n".join(lines[start:]))
        except ValueError:
            continue
        if isinstance(report, dict):
            return report
    return None


def _parse_output(proc: subprocess.CompletedProcess, result_file: Path) -> tuple[str, str]:
    word = result_file.read_text().split("\n", 1)[0].strip() if result_file.exists() else ""
    message = str((_json_report(proc.stdout) or {}).get("message", ""))
    if proc.returncode != 0 and not message:
        message = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    return (word or "error"), message[:300]


def run_suite(options: SuiteOptions) -> int:
    instances = read_suite(options.suite, options.timeout_s)
    if options.filter:
        instances = [i for i in instances
                     if options.filter in f"{i.benchmark}/{i.onnx}/{i.vnnlib}"]
    expected = read_expected(options.expected or options.root / "expected_results.csv")
    out = options.out or Path("results") / f"{options.suite.stem}_{time.strftime('%Y%m%d_%H%M%S')}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    result_dir = out.with_suffix("")
    result_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        for k, inst in enumerate(instances, 1):
            row = _run_and_record(k, len(instances), inst, options, result_dir, expected)
            writer.writerow(row)
            handle.flush()
            rows.append(row)
    print(summary_table(rows))
    print(f"results: {out}")
    return 1 if any(r["correct"] == "WRONG" for r in rows) else 0


def _run_and_record(k: int, total: int, inst: Instance, options: SuiteOptions,
                    result_dir: Path, expected: dict) -> dict:
    name = f"{k:03d}_{inst.benchmark}_{Path(inst.onnx).stem}_{Path(inst.vnnlib).stem}"
    result_file = result_dir / f"{name[:150]}.txt"
    print(f"[{k}/{total}] {inst.benchmark} {Path(inst.onnx).name} {Path(inst.vnnlib).name} ...",
          end=" ", flush=True)
    outcome = run_instance(inst, options, result_file)
    verdict = expected.get((inst.benchmark, _norm(inst.onnx), _norm(inst.vnnlib)), "")
    correct = judge(outcome["result"], verdict)
    print(f"{outcome['result']} {outcome['time_s']:.1f}s"
          + (f" (expected {verdict}){' WRONG' if correct == 'WRONG' else ''}" if verdict else ""),
          flush=True)
    return {"benchmark": inst.benchmark, "onnx": inst.onnx, "vnnlib": inst.vnnlib,
            "timeout_s": inst.timeout_s, "expected": verdict, "correct": correct,
            "result_file": str(result_file), **outcome}


def summary_table(rows: list[dict]) -> str:
    """Per benchmark: counts of each answer, wrong answers and the median time of solved ones."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["benchmark"]].append(row)
    groups["TOTAL"] = rows
    header = (f"{'benchmark':<32}{'n':>4}{'unsat':>7}{'sat':>5}{'timeout':>9}{'unknown':>9}"
              f"{'error':>7}{'wrong':>7}{'median_s':>10}")
    lines = [header, "-" * len(header)]
    for name, group in groups.items():
        count = lambda word: sum(r["result"] == word for r in group)  # noqa: E731
        solved = [float(r["time_s"]) for r in group if r["result"] in ("sat", "unsat")]
        median = f"{statistics.median(solved):.2f}" if solved else "-"
        wrong = sum(r["correct"] == "WRONG" for r in group)
        lines.append(f"{name:<32}{len(group):>4}{count('unsat'):>7}{count('sat'):>5}"
                     f"{count('timeout'):>9}{count('unknown'):>9}{count('error'):>7}{wrong:>7}"
                     f"{median:>10}")
    return "\n".join(lines)
