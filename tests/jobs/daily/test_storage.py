"""Atomic day-partition replacement and data-root paths."""

from __future__ import annotations

import os

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


def test_a_reader_always_finds_the_old_or_the_new_partition(spark, tmp_path):
    import threading

    import pyarrow.parquet as pq

    root, day = str(tmp_path), "2026-03-14"
    contents = ([1, 2], [3, 4, 5])
    write_partition(_frame(spark, contents[0]), root, TABLE, day)
    final = partition_dir(root, TABLE, day)
    seen, missing, stop = [], [], threading.Event()

    def read_forever():
        while not stop.is_set():
            try:
                ids = pq.read_table(final).column("photo_id").to_pylist()
                seen.append(sorted(int(i) for i in ids))
            except FileNotFoundError as exc:  # a file listed before a swap, opened after it
                if not os.path.isdir(final):
                    missing.append(str(exc))

    reader = threading.Thread(target=read_forever)
    reader.start()
    try:
        for i in range(1, 7):
            write_partition(_frame(spark, contents[i % 2]), root, TABLE, day)
    finally:
        stop.set()
        reader.join()
    assert seen and {tuple(s) for s in seen} <= {tuple(c) for c in contents}
    assert missing == []  # the exchange leaves no moment without a partition
    assert sorted(p.name for p in (tmp_path / "reports" / TABLE).iterdir()) == [f"date={day}"]


def test_without_exchange_the_two_rename_swap_still_works(spark, tmp_path, monkeypatch):
    from jobs.daily import storage

    monkeypatch.setattr(storage, "_exchange", lambda first, second: False)  # e.g. HDFS, NFS
    root = str(tmp_path)
    write_partition(_frame(spark, [1]), root, TABLE, "2026-03-14")
    write_partition(_frame(spark, [2]), root, TABLE, "2026-03-14")
    assert _rows(root, TABLE, "2026-03-14") == [2]
    assert [p.name for p in (tmp_path / "reports" / TABLE).iterdir()] == ["date=2026-03-14"]


def test_a_partition_left_aside_by_a_killed_run_is_restored(spark, tmp_path):
    from jobs.daily.storage import _restore_aside

    root, day = str(tmp_path), "2026-03-14"
    write_partition(_frame(spark, [7]), root, TABLE, day)
    table = tmp_path / "reports" / TABLE
    # Killed between "rename the old aside" and "rename the new in" (two-rename swap).
    os.rename(table / f"date={day}", table / f"_old-{day}-dead")
    (table / f"_tmp-{day}-dead").mkdir()
    _restore_aside(spark, str(table), day)
    assert _rows(root, TABLE, day) == [7]
    write_partition(_frame(spark, [8]), root, TABLE, day)
    assert _rows(root, TABLE, day) == [8]
    assert [p.name for p in table.iterdir()] == [f"date={day}"]


def test_the_score_job_refuses_a_day_whose_photos_were_purged(spark, tmp_path):
    from jobs.daily.score_photos import run

    root, day = str(tmp_path), "2026-03-14"
    write_partition(_frame(spark, [1]), root, TABLE, day)
    landing = tmp_path / "landing" / f"date={day}"
    landing.mkdir(parents=True)
    (landing / "_COMPLETE").write_text("{}")
    (landing / "_PHOTOS_PURGED").write_text('{"run_date": "2026-04-20"}')
    with pytest.raises(UserError, match="photos were deleted by retention .* its reports stay"):
        run(spark, root=root, run_date=day, model_path="unused.keras", model_version="v0001",
            image_size=96)
    assert _rows(root, TABLE, day) == [1]


def test_the_score_job_refuses_a_day_whose_photos_were_minimised(spark, tmp_path):
    from jobs.daily.score_photos import run

    root, day = str(tmp_path), "2026-03-14"
    write_partition(_frame(spark, [1]), root, TABLE, day)
    landing = tmp_path / "landing" / f"date={day}"
    landing.mkdir(parents=True)
    (landing / "_COMPLETE").write_text("{}")
    (landing / "_PHOTOS_MINIMISED").write_text('{"kept": 1, "deleted": 9}')
    with pytest.raises(UserError, match="photo minimisation deleted its photos .* its reports "
                                        "stay as they are"):
        run(spark, root=root, run_date=day, model_path="unused.keras", model_version="v0001",
            image_size=96)
    assert _rows(root, TABLE, day) == [1]
