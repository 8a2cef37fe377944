"""Operations commands: landing-ready, check-quality and retention on hand-made days."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.cli.main import main
from jobs.daily.ops import find_quality_problems

DAY = "2026-03-14"

# A consistent day: 10 photos in (8 scored, 2 quarantined), 7 receipts in (1 quarantined),
# 6 valid receipts of which 4 matched a photo, 20 lines (1 quarantined).
GOOD_QUALITY = {
    "photos_in": 10,
    "photos_scored": 8,
    "photos_quarantined": 2,
    "photos_matched": 4,
    "photos_unmatched": 4,
    "receipts_in": 7,
    "receipts_valid": 6,
    "receipts_quarantined": 1,
    "receipts_matched": 4,
    "receipts_unmatched": 2,
    "lines_in": 20,
    "lines_valid": 19,
    "lines_quarantined": 1,
    "products_in": 200,
    "products_valid": 198,
    "products_quarantined": 2,
    "match_rate": 4 / 6,
    "age_pred_p10": 20.0,
    "age_pred_p50": 35.0,
    "age_pred_p90": 60.0,
    "age_group_counts": json.dumps({"25-34": 8}),
    "model_version": "v0003",
    "match_window_s": 10,
    "challenge_age": 25,
}
GOOD_COUNTS = {
    "photo_scores": 8,
    "photo_quarantine": 2,
    "receipt_ages": 6,
    "receipts_matched": 4,
    "receipt_quarantine_receipts": 1,
    "receipt_quarantine_lines": 1,
    "product_quarantine": 2,
}
MARKER = {"date": DAY, "products": 200, "receipts": 7, "receipt_lines": 20, "photos": 9,
          "photo_files": 9}


def _problems(quality=None, counts=None, marker=MARKER, floor=0.5, versions=None, expected=None):
    return find_quality_problems(
        {**GOOD_QUALITY, **(quality or {})},
        {**GOOD_COUNTS, **(counts or {})},
        marker,
        floor,
        {"v0003"} if versions is None else versions,
        expected,
    )


def test_consistent_day_has_no_problems():
    assert _problems(expected="v0003") == []


def test_photos_that_do_not_add_up_are_named():
    assert _problems(quality={"photos_quarantined": 1}) == [
        "photos_in 10 != photos_scored 8 + photos_quarantined 1",
        "run_quality says photos_quarantined 1 but the tables hold 2",
    ]


def test_receipts_that_do_not_add_up_are_named():
    problems = _problems(quality={"receipts_in": 8}, marker=None)
    assert problems == ["receipts_in 8 != receipts_valid 6 + receipts_quarantined 1"]


def test_rows_written_must_match_the_counts():
    assert _problems(counts={"receipts_matched": 3}) == [
        "run_quality says receipts_matched 4 but the tables hold 3"
    ]


def test_landing_marker_bounds_the_counts():
    assert _problems(marker={**MARKER, "receipt_lines": 21}) == ["lines_in 20 != 21 rows landed"]
    # photos_in lies between the metadata rows and metadata rows + files (9 .. 18).
    assert _problems(marker={**MARKER, "photos": 11}) == ["photos_in 10 < 11 photo rows landed"]
    assert _problems(marker={**MARKER, "photos": 4, "photo_files": 5}) == [
        "photos_in 10 > 9 photo rows + files landed"
    ]


def test_rejected_products_are_counted_and_must_be_in_their_table():
    assert _problems(quality={"products_valid": 199}) == [
        "products_in 200 != products_valid 199 + products_quarantined 2"
    ]
    assert _problems(counts={"product_quarantine": 0}) == [
        "run_quality says products_quarantined 2 but the tables hold 0"
    ]
    assert _problems(marker={**MARKER, "products": 201}) == ["products_in 200 != 201 rows landed"]
    # A run_quality row written before products were counted fails instead of passing blindly.
    assert _problems(quality={"products_in": None}) == [
        "products_in None != products_valid 198 + products_quarantined 2",
        "products_in None != 200 rows landed",
    ]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -3, 2.5, "7", True])
def test_a_marker_count_that_is_no_row_count_is_named(value):
    assert _problems(marker={**MARKER, "receipts": value}) == [
        f"_COMPLETE receipts {value!r} is not a row count"
    ]


def test_match_rate_below_the_floor_fails():
    assert _problems(floor=0.7) == [
        "match rate 0.667 (4/6 receipts) is below the floor 0.700"
    ]
    assert _problems(floor=4 / 6) == []


def test_a_day_without_valid_receipts_fails():
    empty = {"receipts_in": 1, "receipts_valid": 0, "receipts_quarantined": 1,
             "receipts_matched": 0, "receipts_unmatched": 0, "match_rate": None}
    assert _problems(quality=empty, counts={"receipt_ages": 0, "receipts_matched": 0},
                     marker=None) == ["no valid receipts that day"]


def test_model_versions_must_agree():
    assert _problems(versions={"v0003", "v0004"}) == [
        "photo_scores mixes model versions ['v0003', 'v0004']"
    ]
    assert _problems(expected="v0004") == ["scored with model v0003, the run resolved v0004"]


# -- the commands on real files ---------------------------------------------------------------------


def _write(root: Path, table: str, rows: list[dict], schema: pa.Schema) -> None:
    folder = root / "reports" / table / f"date={DAY}"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "part-00000.parquet")


def _write_day(root: Path, quality: dict) -> None:
    """A day's report partitions holding exactly the rows GOOD_QUALITY counts."""
    _write(root, "run_quality", [quality], None)
    _write(root, "photo_scores",
           [{"photo_id": f"p{i}", "model_version": "v0003"} for i in range(8)],
           pa.schema([("photo_id", pa.string()), ("model_version", pa.string())]))
    _write(root, "photo_quarantine", [{"photo_id": "q1"}, {"photo_id": "q2"}],
           pa.schema([("photo_id", pa.string())]))
    _write(root, "receipt_ages",
           [{"receipt_id": f"r{i}", "photo_id": f"p{i}" if i < 4 else None} for i in range(6)],
           pa.schema([("receipt_id", pa.string()), ("photo_id", pa.string())]))
    _write(root, "receipt_quarantine",
           [{"source_file": "receipts.csv"}, {"source_file": "receipt_lines.csv"}],
           pa.schema([("source_file", pa.string())]))
    _write(root, "product_quarantine", [{"product_id": "P1"}, {"product_id": None}],
           pa.schema([("product_id", pa.string())]))
    landing = root / "landing" / f"date={DAY}"
    landing.mkdir(parents=True)
    (landing / "_COMPLETE").write_text(json.dumps(MARKER))


def test_check_quality_passes_a_consistent_day(tmp_path, capsys):
    _write_day(tmp_path, GOOD_QUALITY)
    status = main(["check-quality", "--date", DAY, "--root", str(tmp_path),
                   "--min-match-rate", "0.5", "--model-version", "v0003"])
    assert status == 0
    assert capsys.readouterr().out == (
        f"quality ok for {DAY}: 10 photos (8 scored, 2 quarantined), 6 receipts, "
        "match rate 0.667 >= 0.500, model v0003\n"
    )


def test_check_quality_fails_with_one_line_reason(tmp_path, capsys):
    _write_day(tmp_path, {**GOOD_QUALITY, "photos_in": 11})
    status = main(["check-quality", "--date", DAY, "--root", str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    assert status == 1
    assert err == (
        f"checkout-age: quality check failed for {DAY}: "
        "photos_in 11 != photos_scored 8 + photos_quarantined 2\n"
    )
    assert json.loads(out)["problems"] == ["photos_in 11 != photos_scored 8 + photos_quarantined 2"]


def test_check_quality_names_a_missing_partition(tmp_path, capsys):
    status = main(["check-quality", "--date", DAY, "--root", str(tmp_path)])
    assert status == 2
    assert f"reports/run_quality/date={DAY}: partition missing" in capsys.readouterr().err


def _landed_days(root: Path, days: list[str], photos_per_day: int = 2) -> None:
    for day in days:
        folder = root / "landing" / f"date={day}"
        lane = folder / "photos" / "store=S001" / "lane=1"
        lane.mkdir(parents=True)
        for i in range(photos_per_day):
            (lane / f"{day}-{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        (folder / "receipts.csv").write_text("receipt_id\n")
        (folder / "_COMPLETE").write_text(json.dumps({"date": day}))


def test_retention_deletes_only_photos_older_than_the_window(tmp_path, capsys):
    days = [f"2026-03-{d:02d}" for d in range(8, 15)]  # 8th .. 14th
    _landed_days(tmp_path, days)
    (tmp_path / "reports" / "run_quality" / "date=2026-03-09").mkdir(parents=True)

    assert main(["retention", "--date", DAY, "--root", str(tmp_path), "--days", "4"]) == 0
    # Keep the 4 days before the 14th (10th..13th) and the 14th itself: the 8th and 9th go.
    assert capsys.readouterr().out == (
        "deleted 2 photos of 2026-03-08 (never scored)\n"
        "deleted 2 photos of 2026-03-09\n"
        f"retention for {DAY}: deleted 4 photo files from 2 days before 2026-03-10 "
        "(keeping 4 days)\n"
    )
    for day in days:
        folder = tmp_path / "landing" / f"date={day}"
        old = day < "2026-03-10"
        assert (folder / "photos").exists() != old, day
        assert (folder / "_PHOTOS_PURGED").exists() == old, day
        assert (folder / "receipts.csv").exists(), day
    marker = json.loads((tmp_path / "landing/date=2026-03-08/_PHOTOS_PURGED").read_text())
    assert marker == {"run_date": DAY, "keep_days": 4, "files": 2}

    # A rerun of the same date deletes nothing more.
    assert main(["retention", "--date", DAY, "--root", str(tmp_path), "--days", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["deleted_files"], report["days"], report["oldest_day_kept"]) == (
        0, [], "2026-03-10"
    )


def test_retention_is_counted_from_the_run_date_not_today(tmp_path, capsys):
    _landed_days(tmp_path, ["2020-01-01", "2020-01-02"])
    # Backfilling an old date keeps photos that are recent relative to that date.
    assert main(["retention", "--date", "2020-01-02", "--root", str(tmp_path), "--days", "1"]) == 0
    assert (tmp_path / "landing/date=2020-01-01/photos").is_dir()
    capsys.readouterr()


def test_retention_with_no_landing_zone_deletes_nothing(tmp_path, capsys):
    assert main(["retention", "--date", DAY, "--root", str(tmp_path / "absent")]) == 0
    assert "deleted 0 photo files from 0 days" in capsys.readouterr().out


def test_landing_ready_waits_for_the_marker_and_refuses_purged_days(tmp_path, capsys):
    assert main(["landing-ready", "--date", DAY, "--root", str(tmp_path)]) == 3
    _landed_days(tmp_path, ["2026-03-01", DAY])
    assert main(["landing-ready", "--date", DAY, "--root", str(tmp_path)]) == 0
    assert main(["retention", "--date", DAY, "--root", str(tmp_path), "--days", "7"]) == 0
    capsys.readouterr()
    assert main(["landing-ready", "--date", "2026-03-01", "--root", str(tmp_path)]) == 2
    assert "photos were deleted by retention (run date 2026-03-14)" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["14.03.2026", "2026-02-30"])
def test_bad_dates_are_user_errors(tmp_path, capsys, bad):
    assert main(["retention", "--date", bad, "--root", str(tmp_path)]) == 2
    assert f"date '{bad}' is not" in capsys.readouterr().err


def test_a_day_of_frames_without_faces_fails_the_check():
    """A camera pointing at the floor: the no-face rate is over the ceiling (NULL = crops)."""
    assert _problems(quality={"no_face_rate": 0.08}) == []
    assert _problems(quality={"no_face_rate": None}) == []
    assert _problems(quality={"no_face_rate": 0.9}) == [
        "no face found in 90.0% of the day's frames (more than 50%): is a camera pointing "
        "away from the till?"]
