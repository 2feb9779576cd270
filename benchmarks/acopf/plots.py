"""The two PNGs of docs/acopf.md, drawn with matplotlib (the optional ``plots`` extra).

matplotlib is imported inside each function, so the rest of ``benchmarks.acopf`` (and its
tests) works without it; a missing matplotlib raises ``PlotsUnavailable`` with the install line.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

DPI = 100             # 7 x 4 inches -> 700 x 400 pixels, well under 200 KB
SIZE = (7.0, 4.0)


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:
        raise PlotsUnavailable("the plots need matplotlib: pip install -e '.[plots]' "
                               "(the tables are made without it)") from err
    matplotlib.use("Agg")            # files only, no display
    import matplotlib.pyplot as plt
    return plt


def bound_history_plot(runs: dict, name: str, path: Path) -> Path:
    """BaB's worst lower bound of the property margin over time, one line per variant
    (``runs``: label -> InstanceRun or None).  The property is proved when it reaches 0."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    for label, run in runs.items():
        points = run.bound_history if run is not None else []
        if len(points) < 2:
            continue
        times, bounds = zip(*points)
        line, = ax.step(times, bounds, where="post",
                        label=f"{label}: {run.result} in {run.time_s:.0f} s")
        if run.proved_at is not None:       # the last domain closed: the bound crossed 0
            ax.plot([times[-1], run.proved_at, run.proved_at], [bounds[-1], bounds[-1], 0.0],
                    color=line.get_color())
            ax.plot([run.proved_at], [0.0], marker="o", color=line.get_color())
    ax.axhline(0.0, color="black", linewidth=0.8)
    _bound_scale(ax, [b for run in runs.values() if run is not None for _, b in run.bound_history])
    ax.set_xlabel("seconds since the first BaB round")
    ax.set_ylabel("worst lower bound of the margin\n(proved at 0, dot: last domain closed)")
    ax.set_title(f"{name}: BaB lower bound over time")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, plt, path)


def _bound_scale(ax, bounds: list[float]) -> None:
    """Linear when the bounds span less than two decades (typical near a proof: -2e-6 ..
    -4e-7), else symmetric-log so early large gaps do not flatten the end."""
    sizes = [abs(b) for b in bounds if b != 0.0]
    if sizes and max(sizes) / min(sizes) > 100:
        ax.set_yscale("symlog", linthresh=min(sizes))
    else:
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))


def splits_plot(totals: dict[str, Counter], path: Path,
                order: Callable[[set], list[str]]) -> Path:
    """Grouped bars: split neurons by kind (ReLU, sigmoid, sin/cos, product, ...) per variant."""
    plt = _pyplot()
    families = order({family for total in totals.values() for family in total})
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    width = 0.8 / max(len(totals), 1)
    for k, (label, total) in enumerate(totals.items()):
        xs = [i + (k - (len(totals) - 1) / 2) * width for i in range(len(families))]
        bars = ax.bar(xs, [total.get(f, 0) for f in families], width, label=label)
        ax.bar_label(bars, fontsize=7)          # small counts stay readable next to large ones
    ax.set_xticks(range(len(families)), families)
    ax.set_ylabel("splits (summed over instances)")
    ax.set_title("ml4acopf: BaB splits by kind of neuron (input: box bisections)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def _save(fig, plt, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
