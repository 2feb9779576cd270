"""A run the watchdog or a signal has to end still reports the statistics gathered so far and
the stage that was running (--json)."""
import json

from genbab import api, cli
from genbab.verifier.result import Stats


def test_partial_report_carries_the_running_stats_and_stage(monkeypatch):
    stats = Stats(bab_rounds=7, domains_visited=120)
    stats.add_splits("relu", 59)
    stats.best_bound_history.append((1.5, -88.0))
    stats.stage = "bab"
    monkeypatch.setattr(api, "_CURRENT_STATS", stats)
    report = cli._partial_report("timeout", "stopped by the watchdog", 3.25)
    assert report["result"] == "timeout" and report["time_s"] == 3.25
    assert report["stage"] == "bab"
    assert report["stats"]["bab_rounds"] == 7
    assert report["stats"]["splits_by_kind"] == {"relu": 59}
    assert report["stats"]["best_bound_history"] == [[1.5, -88.0]]
    json.dumps(report)


def test_partial_report_without_a_run(monkeypatch):
    monkeypatch.setattr(api, "_CURRENT_STATS", None)
    report = cli._partial_report("unknown", "interrupted by SIGTERM", 0.1)
    assert report["result"] == "unknown" and "stats" not in report
    assert report["stage"] == "start-up"


def test_timed_names_the_running_stage_and_restores_the_outer_one():
    stats = Stats()
    with api.timed(stats, "bab"):
        with api.timed(stats, "bab_attack"):
            assert stats.stage == "bab_attack"
        assert stats.stage == "bab"
    assert stats.stage == "start" and set(stats.seconds) == {"bab", "bab_attack"}
