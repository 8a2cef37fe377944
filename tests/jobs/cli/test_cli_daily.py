"""`checkout-age simulate | score | reports` wiring (the Spark runs are in test_daily_e2e)."""

from __future__ import annotations

import json
import sys

from jobs.cli.daily import spark_submit_command
from jobs.cli.main import main


def test_spark_submit_command_uses_this_venv():
    command = spark_submit_command("score_photos.py", "local[2]", ["--date", "2026-03-14"])
    assert command[0].endswith("/bin/spark-submit")
    assert command[1:3] == ["--master", "local[2]"]
    assert f"spark.pyspark.python={sys.executable}" in command
    assert command[-3].endswith("jobs/daily/score_photos.py")
    assert command[-2:] == ["--date", "2026-03-14"]


def test_simulate_command_writes_a_day(faces_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CHECKOUT_AGE_HOME", str(tmp_path / "home"))
    root = tmp_path / "data"
    status = main(["simulate", "--date", "2026-03-14", "--stores", "2", "--receipts-per-store",
                   "20", "--faces", str(faces_dir), "--root", str(root), "--seed", "3", "--json"])
    assert status == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    landing = root / "landing" / "date=2026-03-14"
    assert result["landing"] == str(landing)
    assert json.loads((landing / "_COMPLETE").read_text())["receipts"] >= result["receipts"]


def test_bad_date_is_one_line_user_error(tmp_path, capsys):
    for command in ("score", "reports"):
        assert main([command, "--date", "2026-02-30", "--root", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.strip() == "checkout-age: error: date '2026-02-30' is not a calendar date"
