"""Atomic day-partition replacement and data-root paths."""

from __future__ import annotations

import pytest

from jobs.contract import check_date, normalise_root, partition_dir
from jobs.daily.storage import replace_partition, require_complete_day, write_partition
from model.errors import UserError

TABLE = "photo_quarantine"  # any contract table: write_partition checks the columns


def _frame(spark, ids):
    """A contract-shaped `photo_quarantine` frame whose photo ids are `ids`."""
    from jobs.contract import spark_columns

    ddl = ", ".join(f"{name} {kind}" for name, kind in spark_columns(TABLE))
    return spark.createDataFrame([(str(i), "S1", 1, None, "test", None) for i in ids], ddl)


def _rows(root, table, day):
    import pandas as pd

    frame = pd.read_parquet(partition_dir(root, table, day))
    return sorted(int(i) for i in frame["photo_id"])


def test_rerun_replaces_the_day_and_leaves_other_days(spark, tmp_path):
    root = str(tmp_path)
    write_partition(_frame(spark, [1, 2]), root, TABLE, "2026-03-14")
    write_partition(_frame(spark, [9]), root, TABLE, "2026-03-15")
    write_partition(_frame(spark, [3, 4, 5]), root, TABLE, "2026-03-14")
    assert _rows(root, TABLE, "2026-03-14") == [3, 4, 5]  # replaced, not appended
    assert _rows(root, TABLE, "2026-03-15") == [9]
    assert sorted(p.name for p in (tmp_path / "reports" / TABLE).iterdir()) == [
        "date=2026-03-14", "date=2026-03-15"]


def test_leftovers_of_a_crashed_run_are_removed(spark, tmp_path):
    table = tmp_path / "reports" / TABLE
    (table / "_tmp-2026-03-14-dead").mkdir(parents=True)
    (table / "_old-2026-03-14-dead").mkdir()
    (table / "_tmp-2026-03-15-other").mkdir()  # another day's run in flight: untouched
    write_partition(_frame(spark, [1]), str(tmp_path), TABLE, "2026-03-14")
    assert sorted(p.name for p in table.iterdir()) == ["_tmp-2026-03-15-other", "date=2026-03-14"]


def test_failed_swap_keeps_the_old_partition(spark, tmp_path):
    root = str(tmp_path)
    write_partition(_frame(spark, [1]), root, TABLE, "2026-03-14")
    with pytest.raises(OSError, match="could not rename"):
        replace_partition(spark, f"{tmp_path}/reports/{TABLE}/_tmp-missing",
                          partition_dir(root, TABLE, "2026-03-14"))
    assert _rows(root, TABLE, "2026-03-14") == [1]


def test_paths_dates_and_markers(spark, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalise_root("data") == str(tmp_path / "data")
    assert normalise_root("s3a://bucket/prefix/") == "s3a://bucket/prefix"
    assert partition_dir("s3a://b/p", "compliance", "2026-03-14") == (
        "s3a://b/p/reports/compliance/date=2026-03-14")
    assert check_date("2024-02-29") == "2024-02-29"
    for bad in ("2026-02-30", "14.03.2026", ""):
        with pytest.raises(UserError):
            check_date(bad)
    with pytest.raises(UserError, match="no _COMPLETE marker"):
        require_complete_day(spark, str(tmp_path), "2026-03-14")
    day = tmp_path / "landing" / "date=2026-03-14"
    day.mkdir(parents=True)
    (day / "_COMPLETE").write_text("{}")
    assert require_complete_day(spark, str(tmp_path), "2026-03-14").endswith("date=2026-03-14")


def test_a_frame_off_contract_is_never_written(spark, tmp_path):
    frame = _frame(spark, [1]).drop("detail")
    with pytest.raises(ValueError, match="missing detail"):
        write_partition(frame, str(tmp_path), TABLE, "2026-03-14")
    with pytest.raises(ValueError, match="not in the data contract"):
        write_partition(_frame(spark, [1]), str(tmp_path), "no_such_table", "2026-03-14")
    assert not (tmp_path / "reports" / TABLE / "date=2026-03-14").exists()
