"""run-suite keeps the JSON report of ``genbab verify --json``, which is printed indented."""
import json

from genbab.suite import _json_report


def test_json_report_reads_an_indented_object_after_log_lines():
    report = {"result": "unsat", "message": "proved", "stats": {"best_bound_history": [[0.5, -1e-6]]}}
    stdout = "some log line\n3.5\n" + json.dumps(report, indent=1) + "\n"
    assert _json_report(stdout) == report


def test_json_report_is_none_without_an_object():
    assert _json_report("unsat\n1.0\n") is None
