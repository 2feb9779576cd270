"""A run the watchdog has to end still reports the statistics gathered so far (--json)."""
import json
import time

from genbab import api, cli
from genbab.verifier.result import Stats


def test_watchdog_report_carries_the_running_stats(monkeypatch):
    stats = Stats(bab_rounds=7, domains_visited=120)
    stats.add_splits("relu", 59)
    stats.best_bound_history.append((1.5, -88.0))
    monkeypatch.setattr(api, "_CURRENT_STATS", stats)
    report = cli._watchdog_report(time.monotonic() - 3.0)
    assert report["result"] == "timeout" and report["time_s"] >= 3.0
    assert report["stats"]["bab_rounds"] == 7
    assert report["stats"]["splits_by_kind"] == {"relu": 59}
    assert report["stats"]["best_bound_history"] == [[1.5, -88.0]]
    json.dumps(report)


def test_watchdog_report_without_a_run(monkeypatch):
    monkeypatch.setattr(api, "_CURRENT_STATS", None)
    report = cli._watchdog_report(time.monotonic())
    assert report["result"] == "timeout" and "stats" not in report
