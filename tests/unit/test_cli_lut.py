"""`genbab lut build` is the offline table builder behind one CLI word."""
from genbab.cli import main


def test_lut_build_check_reports_fresh_tables(capsys):
    assert main(["lut", "build", "--check"]) == 0
    assert "0 stale table(s)" in capsys.readouterr().out


def test_lut_without_build_prints_usage(capsys):
    assert main(["lut"]) == 2
    assert "genbab lut build" in capsys.readouterr().err
