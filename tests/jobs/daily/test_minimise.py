"""Photo minimisation on a checked day: only photos of flagged restricted sales stay, a
minimised day is never scored again, and a crash at any point leaves a day the next run finishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from test_ops import DAY, GOOD_QUALITY, _write, _write_day

from jobs.cli.main import main
from jobs.contract import MINIMISED_MARKER
from jobs.daily.pause_points import PAUSE_AT, PAUSE_DIR

FLAGGED = "p1"  # compliance_flags names this photo; p0, p2..p7 are nobody's flag


def _day(root: Path, quality: dict = GOOD_QUALITY) -> Path:
    """The consistent test_ops day, its flags and its 8 landing photos (+ one of another day)."""
    _write_day(root, quality)
    _write(root, "compliance_flags", [{"receipt_id": "r1", "photo_id": FLAGGED},
                                      {"receipt_id": "r9", "photo_id": None}],
           pa.schema([("receipt_id", pa.string()), ("photo_id", pa.string())]))
    lane = root / "landing" / f"date={DAY}" / "photos" / "store=S001" / "lane=1"
    lane.mkdir(parents=True)
    for i in range(8):
        (lane / f"p{i}.jpg").write_bytes(b"\xff\xd8 face")
    other = root / "landing" / "date=2026-03-13" / "photos" / "store=S001" / "lane=1"
    other.mkdir(parents=True)
    (other / "p0.jpg").write_bytes(b"\xff\xd8 another day")
    return lane


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_checked_day_keeps_only_the_photos_of_flagged_sales(tmp_path, capsys):
    lane = _day(tmp_path)
    assert main(["minimise-photos", "--date", DAY, "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out == (
        f"photos of {DAY}: kept 1 (photo of a flagged restricted sale (compliance_flags), kept "
        "for the audit window, until 2026-04-13), deleted 7 (not tied to a flagged restricted "
        "sale)\n")
    assert _names(lane) == ["p1.jpg"]
    assert (tmp_path / "landing" / "date=2026-03-13" / "photos" / "store=S001" / "lane=1" /
            "p0.jpg").exists()  # other days untouched
    marker = json.loads((lane.parents[2] / MINIMISED_MARKER).read_text())
    assert (marker["kept"], marker["deleted"], marker["keep_until"]) == (1, 7, "2026-04-13")
    # A rerun of the day is refused, like a purged day.
    assert main(["landing-ready", "--date", DAY, "--root", str(tmp_path)]) == 2
    assert "deleted by photo minimisation" in capsys.readouterr().err
    # Minimising again changes nothing and reports the first run's counts.
    assert main(["minimise-photos", "--date", DAY, "--root", str(tmp_path), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["kept"], again["deleted"], again["already"]) == (1, 7, True)
    # Retention still deletes the kept photo once the audit window has passed.
    assert main(["retention", "--date", "2026-04-14", "--root", str(tmp_path), "--days",
                 "30"]) == 0
    assert not lane.parents[1].exists()


def test_a_day_failing_its_checks_keeps_every_photo(tmp_path, capsys):
    lane = _day(tmp_path, {**GOOD_QUALITY, "photos_in": 11})
    assert main(["minimise-photos", "--date", DAY, "--root", str(tmp_path)]) == 1
    assert "not minimised: its reports fail check-quality (photos_in 11" in capsys.readouterr().err
    assert len(_names(lane)) == 8 and not (lane.parents[2] / MINIMISED_MARKER).exists()


def test_minimisation_off_keeps_every_photo(tmp_path, capsys, monkeypatch):
    lane = _day(tmp_path)
    monkeypatch.setenv("CHECKOUT_AGE_PHOTO_MINIMISATION", "off")
    assert main(["minimise-photos", "--date", DAY, "--root", str(tmp_path)]) == 0
    assert "photo minimisation is off" in capsys.readouterr().out
    assert len(_names(lane)) == 8


def test_a_day_without_its_reports_is_not_minimised(tmp_path, capsys):
    lane = _day(tmp_path)
    for table in ("compliance_flags",):
        import shutil

        shutil.rmtree(tmp_path / "reports" / table)
    assert main(["minimise-photos", "--date", DAY, "--root", str(tmp_path)]) == 2
    assert "compliance_flags/date=2026-03-14: partition missing" in capsys.readouterr().err
    assert len(_names(lane)) == 8


@pytest.mark.parametrize(("point", "marked"), [("minimise:marker", False),
                                                ("minimise:deleting", True)])
def test_a_crash_between_reports_and_deletion_is_finished_by_the_next_run(tmp_path, capsys,
                                                                          point, marked):
    lane = _day(tmp_path)
    pause = tmp_path / "pause"
    pause.mkdir()
    env = {**os.environ, PAUSE_AT: point, PAUSE_DIR: str(pause)}
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cli.main", "minimise-photos", "--date",
                             DAY, "--root", str(tmp_path)], env=env, start_new_session=True)
    reached = pause / f"{point.replace(':', '-')}.reached"
    deadline = time.monotonic() + 120
    while not reached.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "never reached the point"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    landing = lane.parents[2]
    assert (landing / MINIMISED_MARKER).exists() is marked
    # Killed before its record: nothing deleted, the day may still be scored again.
    # Killed while deleting: recorded first, so the day is refused and some photos are left.
    left = _names(lane)
    assert len(left) == (8 if not marked else 7)
    status = main(["landing-ready", "--date", DAY, "--root", str(tmp_path)])
    assert status == (2 if marked else 0)
    capsys.readouterr()
    assert main(["minimise-photos", "--date", DAY, "--root", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert _names(lane) == ["p1.jpg"]
    assert (result["kept"], result["deleted"], result["already"]) == (1, 7, marked)
