"""Parse every .vnnlib / .vnnlib.gz under a folder and report the count and the parse times.

    python -m benchmarks.parse_all_vnnlib [ROOT]     (default: ../shared/benchmarks)

Prints one summary: number of files, total parse time, the largest file with its parse time,
and the slowest file.  Exits 1 if any file fails to parse, after listing the failures.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from genbab.verifier.errors import VnnlibError
from genbab.vnnlib.parser import parse_vnnlib

DEFAULT_ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks"


def time_parses(root: Path) -> tuple[list[tuple[Path, int, float]], list[str]]:
    """(path, size in bytes, seconds) for each file that parsed, and the error messages."""
    files = sorted(root.rglob("*.vnnlib")) + sorted(root.rglob("*.vnnlib.gz"))
    timings, failures = [], []
    for path in files:
        start = time.perf_counter()
        try:
            parse_vnnlib(path)
        except VnnlibError as err:
            failures.append(str(err))
            continue
        timings.append((path, path.stat().st_size, time.perf_counter() - start))
    return timings, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=DEFAULT_ROOT,
                        help="folder searched recursively (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"{args.root} is not a folder")
    timings, failures = time_parses(args.root)
    for message in failures:
        print(f"FAILED {message}")
    print(f"parsed {len(timings)} files ({len(failures)} failed) under {args.root}")
    if timings:
        total_s = sum(seconds for _, _, seconds in timings)
        total_mb = sum(size for _, size, _ in timings) / 1e6
        print(f"total parse time: {total_s:.2f} s for {total_mb:.1f} MB")
        path, size, seconds = max(timings, key=lambda t: t[1])
        print(f"largest file: {path.relative_to(args.root)} ({size / 1e3:.0f} KB) "
              f"in {seconds:.3f} s")
        path, size, seconds = max(timings, key=lambda t: t[2])
        print(f"slowest file: {path.relative_to(args.root)} ({size / 1e3:.0f} KB) "
              f"in {seconds:.3f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
