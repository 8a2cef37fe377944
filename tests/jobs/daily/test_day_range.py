"""`--date D1 --to D2`: several days in one Spark application (a backfill).

The range runs of `checkout-age score` and `reports`: its days' tables are exactly what one-day runs write,
a day without a complete landing is reported by name while the others are done, and the Python
workers that scored the first day scored the next ones too (the start-up paid once).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from spark_jobs import untrained_registry

from jobs.daily.day_range import day_range, run_days
from jobs.daily.reports import REPORT_TABLES
from model.errors import UserError

FIRST, MISSING, LAST = "2026-03-14", "2026-03-15", "2026-03-16"


def test_a_range_is_every_calendar_day_from_first_to_last():
    assert day_range("2024-02-27", "2024-03-01") == [
        "2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"]
    assert day_range("2026-03-14", None) == ["2026-03-14"]
    assert day_range("2026-03-14", "2026-03-14") == ["2026-03-14"]
    assert len(day_range("2025-01-01", "2025-12-31")) == 365


@pytest.mark.parametrize(("first", "last", "message"), [
    ("2026-03-14", "2026-03-13", "--to 2026-03-13 is before --date 2026-03-14"),
    ("2026-03-14", "2026-02-30", "date '2026-02-30' is not a calendar date"),
    ("2025-01-01", "2026-01-02", "is 367 days; at most 366"),
])
def test_a_bad_range_is_refused_naming_it(first, last, message):
    with pytest.raises(UserError, match=re.escape(message)):
        day_range(first, last)


def test_a_failing_day_is_reported_and_the_next_days_still_run(caplog):
    def run_day(day):
        if day == MISSING:
            raise UserError(f"landing/date={day} is not complete")
        return {"date": day}

    result = run_days([FIRST, MISSING, LAST], run_day)
    assert result == {"date_from": FIRST, "date_to": LAST,
                      "days": [{"date": FIRST}, {"date": LAST}],
                      "failed": [{"date": MISSING,
                                  "error": f"landing/date={MISSING} is not complete"}]}
    assert f"{MISSING} not done" in caplog.text


def test_one_day_is_its_own_result_and_its_error_is_raised():
    assert run_days([FIRST], lambda day: {"date": day}) == {"date": FIRST}

    def run_day(day):
        raise UserError(f"landing/date={day} is not complete")

    with pytest.raises(UserError, match="not complete"):
        run_days([FIRST], run_day)


def test_an_engine_failure_stops_the_range():
    def run_day(day):
        raise RuntimeError("the executor died")

    with pytest.raises(RuntimeError, match="executor died"):
        run_days([FIRST, LAST], run_day)


def _cli(command: str, root: Path, *dates: str, extra: tuple[str, ...] = ()
         ) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).parent / "checkout-age"
    return subprocess.run(
        [str(cli), command, "--date", dates[0], *(["--to", dates[1]] if len(dates) > 1 else []),
         "--root", str(root), "--master", "local[2]", "--json", *extra],
        capture_output=True, text=True, timeout=600, check=False)


def _score(root: Path, registry: Path, *dates: str) -> subprocess.CompletedProcess:
    return _cli("score", root, *dates, extra=("--registry", str(registry)))


def _table(root: Path, table: str, day: str) -> pd.DataFrame:
    frame = pd.read_parquet(root / "reports" / table / f"date={day}")
    return frame.sort_values(list(frame.columns), ignore_index=True)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_range_run_scores_each_day_as_a_one_day_run_does(faces_dir, tmp_path_factory):
    from jobs.simulator.landing import load_test_faces, write_day
    from jobs.simulator.simulate import simulate_day

    ranged, single = (tmp_path_factory.mktemp(name) for name in ("ranged", "single"))
    faces = load_test_faces(faces_dir, tmp_path_factory.mktemp("face-cache"))
    for number, day in enumerate((FIRST, LAST)):  # nothing lands for MISSING
        write_day(simulate_day(faces, day, 2, 20, 5 + number), str(ranged))
    shutil.copytree(ranged / "landing", single / "landing")
    registry = untrained_registry(tmp_path_factory.mktemp("models") / "registry", artifact=True)

    done = _score(ranged, registry, FIRST, LAST)
    assert done.returncode == 1, done.stderr[-3000:]  # a day of the range was not scored
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [day["date"] for day in result["days"]] == [FIRST, LAST]
    assert [day["date"] for day in result["failed"]] == [MISSING]
    assert f"date={MISSING}" in result["failed"][0]["error"]
    for day in result["days"]:
        assert day["photos_in"] == day["photos_scored"] + day["photos_quarantined"] > 0
    # One application: the Python workers of the first day scored the last one too.
    pids = re.findall(r"score task: .* \(pid (\d+)\)", done.stderr)
    assert len(pids) == 4 and set(pids[2:]) <= set(pids[:2]), done.stderr[-3000:]
    assert done.stderr.count("phases: session") == 1  # the session started once
    assert done.stderr.count("phases: inputs") == 1  # ... and the last day had its own phases

    for day in (FIRST, LAST):
        alone = _score(single, registry, day)
        assert alone.returncode == 0, alone.stderr[-3000:]
        counts = json.loads(alone.stdout.strip().splitlines()[-1])
        assert counts == next(d for d in result["days"] if d["date"] == day)
        for table in ("photo_scores", "photo_quarantine"):
            pd.testing.assert_frame_equal(_table(ranged, table, day), _table(single, table, day),
                                          check_exact=True, obj=f"{table} {day}")
    assert not (ranged / "reports" / "photo_scores" / f"date={MISSING}").exists()

    # The reports of the range in one application, the same way.
    done = _cli("reports", ranged, FIRST, LAST)
    assert done.returncode == 1, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [day["date"] for day in result["days"]] == [FIRST, LAST]
    assert [day["date"] for day in result["failed"]] == [MISSING]
    alone = _cli("reports", single, LAST)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert json.loads(alone.stdout.strip().splitlines()[-1]) == result["days"][1]
    for table in REPORT_TABLES:
        pd.testing.assert_frame_equal(_table(ranged, table, LAST), _table(single, table, LAST),
                                      check_exact=True, obj=f"{table} {LAST}")
