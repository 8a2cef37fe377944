"""`checkout-age simulate | score | reports`: the commands run the real Spark jobs with the flags
they were given (the full day's counts are checked in test_daily_e2e)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from daily_run import REPORTED_DAY, run_cli

from jobs.cli.main import build_parser, main
from jobs.daily import reports, score_photos
from jobs.daily.arguments import job_argv


@pytest.mark.parametrize(("command", "job", "flags"), [
    ("score", score_photos, ["--model", "v0007", "--batch-size", "8", "--partitions", "3",
                             "--registry", "/srv/registry", "--to", "2026-03-20"]),
    ("reports", reports, ["--top-n", "4", "--challenge-age", "21", "--min-support", "0.2",
                          "--match-window-s", "5", "--to", "2026-03-15"]),
])
def test_a_command_hands_its_job_flags_to_the_job_unchanged(command, job, flags):
    cli = build_parser().parse_args([command, "--date", REPORTED_DAY, *flags])
    job_args = job.parse_args(["--date", REPORTED_DAY, *job_argv(cli.job_actions, cli)])
    given = {action.dest for action in cli.job_actions}
    assert given == {{"to": "date_to"}.get(name, name)
                     for name in (flag.lstrip("-").replace("-", "_") for flag in flags[::2])}
    for dest in given:
        assert getattr(job_args, dest) == getattr(cli, dest), dest
    assert str(getattr(job_args, flags[0].lstrip("-").replace("-", "_"))) == flags[1]


def test_job_defaults_come_from_the_settings(monkeypatch):
    monkeypatch.setenv("CHECKOUT_AGE_TOP_N", "3")
    monkeypatch.setenv("CHECKOUT_AGE_CHALLENGE_AGE", "21")
    job_args = reports.parse_args(["--date", REPORTED_DAY])
    cli = build_parser().parse_args(["reports", "--date", REPORTED_DAY])
    assert (job_args.top_n, job_args.challenge_age) == (cli.top_n, cli.challenge_age) == (3, 21)


@pytest.mark.slow
def test_reports_command_runs_the_job_with_the_flags_given(reported_day, tmp_path):
    """`checkout-age reports` again on a copy of the scored day, with non-default flags."""
    root = tmp_path / "data"
    shutil.copytree(reported_day.root / "landing", root / "landing")
    for table in ("photo_scores", "photo_quarantine"):
        shutil.copytree(reported_day.root / "reports" / table, root / "reports" / table)
    result = run_cli("reports", "--date", REPORTED_DAY, "--root", str(root), "--master",
                     "local[1]", "--top-n", "2", "--challenge-age", "30")

    def table(base, name):
        return pd.read_parquet(base / "reports" / name / f"date={REPORTED_DAY}")

    assert result["challenge_age"] == 30
    assert result["receipts_matched"] == reported_day.reported["receipts_matched"]
    per_group = ["age_group", "kind"]
    assert table(reported_day.root, "recommendations").groupby(per_group).size().max() > 2
    assert table(root, "recommendations").groupby(per_group).size().max() == 2
    flags, flags_at_25 = table(root, "compliance_flags"), table(reported_day.root, "compliance_flags")
    assert (flags.challenge_age == 30).all() and (flags.age_pred_years < 30).all()
    assert set(flags.receipt_id) >= set(flags_at_25.receipt_id)  # same matches, higher bar
    assert len(flags) == len(flags_at_25) + (flags.age_pred_years >= 25).sum()


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


@pytest.mark.slow
def test_a_failing_job_shows_its_own_error_to_the_user(tmp_path):
    """The driver's log (spark-submit merges it into the job's stdout) reaches our stderr."""
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "checkout-age"
    done = subprocess.run(
        [str(cli), "score", "--date", REPORTED_DAY, "--root", str(tmp_path / "data"),
         "--registry", str(tmp_path / "no-registry"), "--model", "v0042", "--master", "local[1]"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "ERROR jobs.daily.score_photos" in done.stderr, done.stderr[-2000:]
    assert "v0042" in done.stderr and done.stdout == ""
