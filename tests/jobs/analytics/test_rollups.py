"""Monthly rollups: every query answers the same from rollups as from the day partitions, a
changed day makes its month stale (read from the days) until it is rebuilt, Spark reads them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from contract_writer import segment_row, write_day
from report_samples import DAY1, DAY2, write_samples

from jobs.analytics import rollups
from jobs.analytics.query import DuckDBEngine, make_filters, run_query
from jobs.contract import COMPACTED, ROLLUP_SCHEMAS, SEGMENT_CATEGORY, TABLES

# Days copied from the two sample days: March is whole-month (rollup), April partly.
COPIES = {"2026-03-15": DAY1, "2026-03-31": DAY2, "2026-04-01": DAY1, "2026-04-02": DAY2,
          "2026-02-28": DAY2}
QUERIES = [
    ("segments", {}, {}), ("segments", {"store": "S002"}, {}),
    ("segments", {"age_group": "65+"}, {}), ("segments", {}, {"by_store": True}),
    ("recommendations", {}, {"min_support": 0.01, "top_n": 10}),
    ("recommendations", {"store": "S001"}, {"min_support": 0.0, "top_n": 3}),
    ("compliance", {}, {}), ("compliance", {"cashier": "S001-C01"}, {}),
    ("flags", {}, {}), ("flags", {"store": "S001"}, {}),
    ("quality", {}, {}), ("quality", {}, {"by_lane": True}),
]
RANGES = [("2026-03-01", "2026-03-31"), ("2026-02-01", "2026-04-30"),
          ("2026-02-28", "2026-04-01"), ("2026-03-02", "2026-03-31")]


def _copy_day(root: Path, day: str, source: str) -> None:
    for table in TABLES:
        src = root / "reports" / table / f"date={source}"
        if src.exists():
            shutil.copytree(src, root / "reports" / table / f"date={day}")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    data = write_samples(tmp_path / "data")
    for day, source in COPIES.items():
        _copy_day(data, day, source)
    return data


def _same(got, want) -> None:
    assert got.columns == want.columns
    assert len(got.rows) == len(want.rows)
    for a, b in zip(got.rows, want.rows, strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(y, float):  # summed in another order: the last bits may differ
                assert x == pytest.approx(y, rel=1e-12, abs=1e-12), (a, b)
            else:
                assert x == y, (a, b)


def _answers(root: Path, date_from: str, date_to: str, use_rollups: bool) -> dict:
    engine = DuckDBEngine(root, use_rollups=use_rollups)
    return {(name, str(f), str(o)): run_query(engine, name, make_filters(date_from, date_to, **f),
                                             **o)
            for name, f, o in QUERIES}


def test_every_query_answers_the_same_from_rollups_and_from_the_days(root):
    runs = rollups.refresh(str(root), *make_filters("2026-02-01", "2026-04-30").span)
    assert {(r.table, r.month, r.action) for r in runs} >= {
        (SEGMENT_CATEGORY, "2026-03", "built"), ("compliance", "2026-04", "built")}
    march = rollups.plan_table(str(root), SEGMENT_CATEGORY, *make_filters(*RANGES[0]).span)
    assert (march.months, march.day_files) == (["2026-03"], [])  # really served by the rollup
    for date_from, date_to in RANGES:
        daily = _answers(root, date_from, date_to, use_rollups=False)
        rolled = _answers(root, date_from, date_to, use_rollups=True)
        for key, want in daily.items():
            _same(rolled[key], want)
            assert not rolled[key].notes or rolled[key].notes == want.notes


def test_a_segment_rollup_holds_the_months_deduplicated_totals(root):
    rollups.refresh(str(root), *make_filters("2026-03-01", "2026-03-31").span)
    import pyarrow.parquet as pq

    rows = pq.read_table(root / "rollups" / "segment_category_month" / "month=2026-03" /
                         "part-0.parquet").to_pylist()
    assert pq.read_schema(root / "rollups" / "segment_category_month" / "month=2026-03" /
                          "part-0.parquet") == ROLLUP_SCHEMAS["segment_category_month"]
    s001 = {(r["age_group"], r["category"]): r for r in rows if r["store_id"] == "S001"}
    # March S001: DAY1 twice (1st, 15th), DAY2 twice (2nd, 31st): all 10+10+8+8, 18-24 4+4+2+2,
    # snacks 5+5+2+2, cell 18-24/snacks 3+3+2+2.
    snacks = s001[("18-24", "snacks")]
    assert (snacks["receipts"], snacks["segment_receipts"], snacks["category_receipts"],
            snacks["all_receipts"]) == (10, 12, 14, 36)
    assert str(snacks["date"]) == "2026-03-01"


def test_a_rerun_day_makes_its_month_stale_until_rebuilt(root):
    span = make_filters("2026-03-01", "2026-03-31").span
    rollups.refresh(str(root), *span)
    before = run_query(DuckDBEngine(root), "segments", make_filters(*RANGES[0]))
    # Day 2 rerun with different counts: the rollup is now older than the day's partition.
    write_day(root, "segment_category", DAY2, [
        segment_row("S001", "18-24", "snacks", 7, 9, 300.0, 7, 300.0, 7, 9)])
    plan = rollups.plan_table(str(root), SEGMENT_CATEGORY, *span)
    assert (plan.months, plan.stale) == ([], ["2026-03"])
    stale = run_query(DuckDBEngine(root), "segments", make_filters(*RANGES[0]))
    daily = run_query(DuckDBEngine(root, use_rollups=False), "segments",
                      make_filters(*RANGES[0]))
    _same(stale, daily)
    assert stale.rows != before.rows
    assert any("older than its day partitions" in note for note in stale.notes)
    runs = {(r.table, r.month): r.action for r in rollups.refresh(str(root), *span)}
    assert runs[(SEGMENT_CATEGORY, "2026-03")] == "built"
    assert runs[("compliance", "2026-03")] == "fresh"  # its days did not change
    assert rollups.plan_table(str(root), SEGMENT_CATEGORY, *span).months == ["2026-03"]
    _same(run_query(DuckDBEngine(root), "segments", make_filters(*RANGES[0])), daily)


def test_a_deleted_day_and_an_added_day_make_the_month_stale(root):
    span = make_filters("2026-03-01", "2026-03-31").span
    rollups.refresh(str(root), *span)
    shutil.rmtree(root / "reports" / "compliance" / "date=2026-03-15")
    assert rollups.plan_table(str(root), "compliance", *span).stale == ["2026-03"]
    rollups.refresh(str(root), *span)
    _copy_day(root, "2026-03-20", DAY1)
    assert rollups.plan_table(str(root), "compliance", *span).stale == ["2026-03"]
    _same(run_query(DuckDBEngine(root), "compliance", make_filters(*RANGES[0])),
          run_query(DuckDBEngine(root, use_rollups=False), "compliance",
                    make_filters(*RANGES[0])))


def test_a_range_without_data_is_still_explained(root):
    rollups.refresh(str(root), *make_filters("2026-03-01", "2026-03-31").span)
    from model.errors import UserError

    with pytest.raises(UserError, match="no segment_category data for 2027-01-01..2027-01-31"):
        run_query(DuckDBEngine(root), "segments", make_filters("2027-01-01", "2027-01-31"))


@pytest.mark.slow
def test_spark_reads_the_rollup_layout(root, spark):
    rollups.refresh(str(root), *make_filters("2026-02-01", "2026-04-30").span)
    for rollup in ("segment_category_month", "segment_days", *COMPACTED):
        frame = spark.read.parquet(str(root / "rollups" / rollup))
        assert "month" in frame.columns and "date" in frame.columns, rollup
        months = {row["month"] for row in frame.select("month").distinct().collect()}
        assert months == {"2026-02", "2026-03", "2026-04"}, rollup
    flags = spark.read.parquet(str(root / "rollups" / "compliance_flags"))
    # Flags: DAY1 has 3, DAY2 2; Feb = one DAY2, March = 2 x DAY1 + 2 x DAY2, April = both.
    assert flags.where("month = '2026-03'").count() == 10
    assert flags.count() == 2 + 10 + 5


def test_days_without_data_in_a_range_are_reported(root, capsys):
    from jobs.cli.main import main

    result = run_query(DuckDBEngine(root), "compliance", make_filters("2026-03-01", "2026-03-05"))
    # March 1 and 2 have reports; 3, 4 and 5 do not.
    assert ("3 of 5 days have no compliance data (not counted): 2026-03-03, 2026-03-04, "
            "2026-03-05") in result.notes
    assert main(["query", "quality", "--from", "2026-03-01", "--to", "2026-03-03", "--root",
                 str(root), "--format", "csv"]) == 0
    assert ("note: 1 of 3 days have no run_quality data (not counted): 2026-03-03"
            in capsys.readouterr().err)


def test_the_rollup_command_rebuilds_stale_months_only(root, capsys):
    from jobs.cli.main import main

    assert main(["rollup", "--date", "2026-03-15", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "built segment_category 2026-03\n" in out and "2026-04" not in out
    assert out.endswith("rollups for 2026-03-15: 5 rebuilt, 0 fresh\n")  # 5 source tables
    assert main(["rollup", "--from", "2026-03-01", "--to", "2026-04-30", "--root",
                 str(root)]) == 0
    assert capsys.readouterr().out.endswith("rollups for 2026-03-01..2026-04-30: 5 rebuilt, "
                                            "5 fresh\n")  # April built, March untouched
    assert main(["rollup", "--root", str(root)]) == 2
    assert "give --date D (its month) or --from D1" in capsys.readouterr().err
    assert main(["rollup", "--from", "2026-04-30", "--to", "2026-03-01", "--root",
                 str(root)]) == 2
    assert "--to 2026-03-01 is before --from 2026-04-30" in capsys.readouterr().err
