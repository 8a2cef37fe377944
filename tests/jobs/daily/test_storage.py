"""Atomic day-partition replacement and data-root paths."""

from __future__ import annotations

import pytest

from jobs.contract import check_date, normalise_root, partition_dir
from jobs.daily.storage import replace_partition, require_complete_day, write_partition
from model.errors import UserError


def _rows(root, table, day):
    import pandas as pd

    return pd.read_parquet(partition_dir(root, table, day)).sort_values("n")["n"].tolist()


def test_rerun_replaces_the_day_and_leaves_other_days(spark, tmp_path):
    root = str(tmp_path)
    write_partition(spark.createDataFrame([(1,), (2,)], "n int"), root, "t", "2026-03-14")
    write_partition(spark.createDataFrame([(9,)], "n int"), root, "t", "2026-03-15")
    write_partition(spark.createDataFrame([(3,), (4,), (5,)], "n int"), root, "t", "2026-03-14")
    assert _rows(root, "t", "2026-03-14") == [3, 4, 5]  # replaced, not appended
    assert _rows(root, "t", "2026-03-15") == [9]
    assert sorted(p.name for p in (tmp_path / "reports" / "t").iterdir()) == [
        "date=2026-03-14", "date=2026-03-15"]


def test_leftovers_of_a_crashed_run_are_removed(spark, tmp_path):
    table = tmp_path / "reports" / "t"
    (table / "_tmp-2026-03-14-dead").mkdir(parents=True)
    (table / "_old-2026-03-14-dead").mkdir()
    (table / "_tmp-2026-03-15-other").mkdir()  # another day's run in flight: untouched
    write_partition(spark.createDataFrame([(1,)], "n int"), str(tmp_path), "t", "2026-03-14")
    assert sorted(p.name for p in table.iterdir()) == ["_tmp-2026-03-15-other", "date=2026-03-14"]


def test_failed_swap_keeps_the_old_partition(spark, tmp_path):
    root = str(tmp_path)
    write_partition(spark.createDataFrame([(1,)], "n int"), root, "t", "2026-03-14")
    with pytest.raises(OSError, match="could not rename"):
        replace_partition(spark, f"{tmp_path}/reports/t/_tmp-missing",
                          partition_dir(root, "t", "2026-03-14"))
    assert _rows(root, "t", "2026-03-14") == [1]


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
