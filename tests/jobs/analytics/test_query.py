"""The DuckDB query layer over hand-made report partitions (tests/jobs/report_samples.py).

Expected figures are worked out by hand from the sample's counts; see the comments there.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from report_samples import DAY1, DAY2, write_samples

from jobs.analytics import query_sql
from jobs.analytics.query import DuckDBEngine, check_root, make_filters, run_query
from model.errors import UserError


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_samples(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def engine(root: Path) -> DuckDBEngine:
    return DuckDBEngine(root)


def _rows(result, *keys: str) -> dict[tuple, dict]:
    return {tuple(r[k] for k in keys): r for r in result.records()}


def test_segments_roll_up_recomputes_ratios_from_deduplicated_counts(engine):
    rows = _rows(run_query(engine, "segments", make_filters(DAY1, DAY2)), "age_group", "category")
    assert set(rows) == {("18-24", "snacks"), ("18-24", "dairy"), ("65+", "snacks"),
                         ("65+", "dairy")}
    snacks = rows[("18-24", "snacks")]
    # all receipts 10 + 5 + 8; 18-24 segment 4 + 5 + 2; snacks 5 + 4 + 2; cell 3 + 4 + 2.
    assert (snacks["receipts"], snacks["units"], snacks["revenue_rub"]) == (9, 14, 450.0)
    assert (snacks["all_receipts"], snacks["segment_receipts"], snacks["category_receipts"]) == (
        23, 11, 11)
    assert snacks["segment_revenue_rub"] == 1000.0
    assert snacks["support"] == pytest.approx(9 / 23)
    assert snacks["confidence"] == pytest.approx(9 / 11)
    assert snacks["lift"] == pytest.approx((9 / 11) / (11 / 23))
    assert snacks["revenue_share"] == pytest.approx(0.45)
    assert (snacks["days"], snacks["stores"]) == (2, 2)
    # 18-24 dairy has no row on day 2, yet day 2's 18-24 receipts still count in its denominator.
    dairy = rows[("18-24", "dairy")]
    assert (dairy["receipts"], dairy["segment_receipts"], dairy["category_receipts"]) == (3, 11, 15)
    assert dairy["lift"] == pytest.approx(3 * 23 / (11 * 15))
    old_dairy = rows[("65+", "dairy")]
    assert (old_dairy["receipts"], old_dairy["segment_receipts"]) == (12, 12)
    assert old_dairy["confidence"] == 1.0
    assert old_dairy["lift"] == pytest.approx(23 / 15)
    assert old_dairy["revenue_share"] == pytest.approx(980 / 1500)


def test_segments_age_group_filter_keeps_store_totals(engine):
    result = run_query(engine, "segments", make_filters(DAY1, DAY2, age_group="65+"))
    rows = _rows(result, "category")
    assert [r["age_group"] for r in result.records()] == ["65+", "65+"]
    # Still all 23 receipts of both stores, though only S001 has 65+ customers.
    assert rows[("snacks",)]["all_receipts"] == 23
    assert rows[("snacks",)]["lift"] == pytest.approx(2 * 23 / (12 * 11))


def test_segments_for_one_store_and_per_store(engine):
    rows = _rows(run_query(engine, "segments", make_filters(DAY1, DAY2, store="S002")),
                 "age_group", "category")
    assert set(rows) == {("18-24", "snacks"), ("18-24", "dairy")}
    assert rows[("18-24", "snacks")]["lift"] == pytest.approx(1.0)  # 4*5 / (5*4)
    assert (rows[("18-24", "snacks")]["days"], rows[("18-24", "snacks")]["all_receipts"]) == (1, 5)

    per_store = _rows(run_query(engine, "segments", make_filters(DAY1, DAY2), by_store=True),
                      "store_id", "age_group", "category")
    s001 = per_store[("S001", "18-24", "snacks")]
    # S001: all 10 + 8, 18-24 4 + 2, snacks 5 + 2, cell 3 + 2.
    assert (s001["receipts"], s001["segment_receipts"], s001["category_receipts"],
            s001["all_receipts"]) == (5, 6, 7, 18)
    assert s001["lift"] == pytest.approx(5 * 18 / (6 * 7))
    assert per_store[("S002", "18-24", "dairy")]["lift"] == pytest.approx(1.0)


def test_in_flight_and_old_partitions_are_ignored(engine):
    # The sample holds _tmp-*/_old-* directories of day 2 with 999-receipt rows.
    rows = _rows(run_query(engine, "segments", make_filters(DAY2)), "age_group", "category")
    assert rows[("18-24", "snacks")]["receipts"] == 2
    assert rows[("18-24", "snacks")]["lift"] == pytest.approx(4.0)  # 2*8 / (2*2)


def test_recommendations_categories_exact_and_products_pooled(engine):
    result = run_query(engine, "recommendations", make_filters(DAY1, DAY2),
                       min_support=0.01, top_n=10)
    rows = _rows(result, "age_group", "kind", "item_id")
    # Only lift > 1 survives: 18-24 snacks and 65+ dairy among categories.
    assert {k for k in rows if k[1] == "category"} == {("18-24", "category", "snacks"),
                                                       ("65+", "category", "dairy")}
    assert rows[("18-24", "category", "snacks")]["lift"] == pytest.approx(207 / 121)
    # P001 listed on both days: pooled 4+2 of 9+2 segment, 5+3 item, 15+8 all receipts.
    chips = rows[("18-24", "product", "P001")]
    assert (chips["receipts"], chips["segment_receipts"], chips["item_receipts"],
            chips["all_receipts"], chips["days_listed"], chips["days"]) == (6, 11, 8, 23, 2, 2)
    assert chips["lift"] == pytest.approx(6 * 23 / (11 * 8))
    gummies = rows[("18-24", "product", "P002")]
    assert (gummies["lift"], gummies["days_listed"]) == (pytest.approx(15 / 9), 1)
    assert (gummies["rank"], chips["rank"]) == (1, 2)  # 1.667 > 1.568
    assert any("pool" in note for note in result.notes)


def test_recommendations_rule_min_support_and_top_n(engine):
    strict = run_query(engine, "recommendations", make_filters(DAY1, DAY2),
                       min_support=0.5, top_n=10)
    # Support: 65+ dairy 12/23 = 0.52 passes; 18-24 snacks 9/23 and every product fail.
    assert [(r["age_group"], r["item_id"]) for r in strict.records()] == [("65+", "dairy")]
    top1 = run_query(engine, "recommendations", make_filters(DAY1, DAY2),
                     min_support=0.01, top_n=1, kinds=("product",))
    assert [(r["age_group"], r["item_id"]) for r in top1.records()] == [
        ("18-24", "P002"), ("65+", "P003")]


def test_recommendations_for_a_store_are_categories_only(engine):
    result = run_query(engine, "recommendations", make_filters(DAY1, store="S001"),
                       min_support=0.01, top_n=10)
    assert {r["kind"] for r in result.records()} == {"category"}
    with pytest.raises(UserError, match="chain-wide"):
        run_query(engine, "recommendations", make_filters(DAY1, store="S001"),
                  min_support=0.01, top_n=10, kinds=("product",))


def test_compliance_flag_rate_from_sums_not_mean_of_days(engine):
    result = run_query(engine, "compliance", make_filters(DAY1, DAY2))
    assert [r["cashier_id"] for r in result.records()] == ["S001-C01", "S002-C01", "S001-C02"]
    rows = _rows(result, "cashier_id")
    c01 = rows[("S001-C01",)]
    assert (c01["receipts"], c01["restricted_receipts"], c01["with_photo"], c01["flagged"],
            c01["no_photo"], c01["days"], c01["challenge_age"]) == (35, 8, 6, 3, 2, 2, 25)
    assert c01["flag_rate"] == 0.5  # 3/6; the mean of daily rates would be 0.625
    assert rows[("S001-C02",)]["flag_rate"] is None  # no restricted sale had a photo
    # Most expected sales to minors first: 1.02, 0.80, then NULL (no photo, no expectation).
    assert c01["expected_minor_sales"] == pytest.approx(1.02)
    assert (c01["with_probability"], rows[("S002-C01",)]["with_probability"]) == (5, 4)
    assert c01["expected_minor_share"] == pytest.approx(1.02 / 5)  # from the sums
    assert rows[("S002-C01",)]["expected_minor_sales"] == pytest.approx(0.80)
    assert rows[("S001-C02",)]["expected_minor_sales"] is None


def test_expected_minor_sales_roll_up_as_sums_over_days_and_stores(engine):
    def expected(filters):
        return {r["cashier_id"]: r["expected_minor_sales"]
                for r in run_query(engine, "compliance", filters).records()}

    day1, day2 = expected(make_filters(DAY1)), expected(make_filters(DAY2))
    both = expected(make_filters(DAY1, DAY2))
    assert both["S001-C01"] == pytest.approx(day1["S001-C01"] + day2["S001-C01"])
    assert both["S002-C01"] == pytest.approx(day1["S002-C01"] + day2["S002-C01"])
    assert (day1["S001-C01"], day2["S001-C01"]) == (pytest.approx(0.9), pytest.approx(0.12))
    # A store's expected count is the sum over its cashiers (NULL adds nothing).
    s001 = expected(make_filters(DAY1, DAY2, store="S001"))
    assert sum(v for v in s001.values() if v is not None) == pytest.approx(1.02)


def test_flags_most_likely_minor_first_with_tiers(engine):
    records = run_query(engine, "flags", make_filters(DAY1, DAY2)).records()
    assert [(r["photo_id"], r["p_under_legal_age"], r["minor_tier"]) for r in records] == [
        ("<script>alert(1)</script>", 0.72, "likely minor"),
        ("ph-0001", 0.31, "possible minor"),
        ("ph-1003", 0.12, "probably adult"),
        ("ph-0009", 0.04, "probably adult"),
        ("ph-1004", None, "no calibration"),
    ]
    stricter = run_query(engine, "flags", make_filters(DAY1, DAY2), likely_p=0.3,
                         possible_p=0.1).records()
    assert [r["minor_tier"] for r in stricter][:3] == ["likely minor", "likely minor",
                                                       "possible minor"]
    with pytest.raises(UserError, match="minor tiers need"):
        query_sql.flags_query(make_filters(DAY1), likely_p=0.2, possible_p=0.5)


def test_flags_filtered_by_cashier(engine):
    result = run_query(engine, "flags", make_filters(DAY1, DAY2, cashier="S002-C01"))
    records = result.records()
    assert [r["receipt_id"] for r in records] == ["R-20260301-S002-000007",
                                                  "R-20260301-S002-000009"]
    assert records[0]["closed_at"] == dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
    assert records[0]["date"] == dt.date(2026, 3, 1)


def test_quality_per_day_rows_and_total(engine):
    result = run_query(engine, "quality", make_filters(DAY1, DAY2))
    rows = {r["date"]: r for r in result.records()}
    assert list(rows) == [DAY1, DAY2, "total"]
    total = rows["total"]
    assert (total["photos_in"], total["photos_scored"], total["photos_quarantined"],
            total["receipts_valid"], total["receipts_matched"], total["lines_in"]) == (
        50, 47, 3, 41, 34, 100)
    assert total["match_rate"] == pytest.approx(34 / 41)  # not (0.8 + 0.875) / 2
    assert total["age_pred_p50"] is None
    assert rows[DAY1]["age_pred_p50"] == 38.0
    assert total["age_group_counts"] == '{"18-24": 14, "65+": 33}'
    assert total["model_version"] == "v0003"


def test_empty_but_valid_selection_is_an_empty_result(engine):
    result = run_query(engine, "flags", make_filters(DAY2, cashier="S002-C01"))
    assert result.rows == []
    assert result.notes == [f"no rows match {DAY2}, cashier S002-C01"]


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("segments", {"date_from": "2026-04-01", "date_to": "2026-04-30"},
         "no segment_category data for 2026-04-01..2026-04-30 .*2 days, 2026-03-01 to 2026-03-02"),
        ("segments", {"date_from": DAY1, "store": "S999"}, "unknown store 'S999'"),
        ("segments", {"date_from": DAY2, "store": "S002"}, "store S002 has no segment_category"),
        ("compliance", {"date_from": DAY1, "cashier": "S001-C09"}, "unknown cashier 'S001-C09'"),
        ("flags", {"date_from": DAY1, "cashier": "S009-C01"}, "unknown cashier"),
        ("compliance", {"date_from": DAY1, "store": "S002", "cashier": "S001-C01"},
         "never worked in store S002"),
        ("quality", {"date_from": "2025-12-31"}, "no run_quality data"),
        # An injection attempt is just an unknown store: the value is a bound parameter.
        ("segments", {"date_from": DAY1, "store": "S001' OR '1'='1"}, "unknown store"),
    ],
)
def test_no_data_and_unknown_ids_are_user_errors(engine, name, kwargs, message):
    filters = make_filters(kwargs.pop("date_from"), kwargs.pop("date_to", None), **kwargs)
    with pytest.raises(UserError, match=message):
        run_query(engine, name, filters, min_support=0.01, top_n=10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("2026-3-1",), "bad --from"),
        (("20260301",), "bad --from"),
        (("2026-02-30",), "bad --from"),
        (("yesterday",), "bad --from"),
        ((DAY1, "2026-13-01"), "bad --to"),
        ((DAY2, DAY1), "before --from"),
    ],
)
def test_bad_dates_are_user_errors(args, message):
    with pytest.raises(UserError, match=message):
        make_filters(*args)


def test_unknown_age_group_and_empty_ids_are_user_errors():
    with pytest.raises(UserError, match="unknown age group '25-35'.*25-34"):
        make_filters(DAY1, age_group="25-35")
    with pytest.raises(UserError, match="--store is empty"):
        make_filters(DAY1, store=" ")


def test_user_values_never_enter_sql_text():
    hostile = "S1'; DROP TABLE x; --"
    filters = make_filters(DAY1, DAY2, store=hostile, age_group="18-24", cashier=hostile)
    for query in (query_sql.segments_query(filters), query_sql.compliance_query(filters),
                  query_sql.recommendations_query(filters, min_support=0.01, top_n=10),
                  query_sql.flags_query(filters), query_sql.quality_query(filters)):
        assert hostile not in query.sql and DAY1 not in query.sql and "18-24'" not in (
            query.sql.replace("WHEN '18-24'", ""))
    assert query_sql.segments_query(filters).params["store"] == hostile


def test_root_checks(tmp_path):
    with pytest.raises(UserError, match="is not a directory"):
        check_root(tmp_path / "missing")
    with pytest.raises(UserError, match="glob characters"):
        check_root(str(tmp_path) + "/*")
    with pytest.raises(UserError, match="only local directories and s3"):
        check_root("gs://bucket/data")
    assert check_root("s3a://bucket/data/") == "s3://bucket/data"
    with pytest.raises(UserError, match="has no date=\\* partitions"):
        run_query(DuckDBEngine(tmp_path), "compliance", make_filters(DAY1))


def test_segments_by_store_keep_one_block_per_store(engine):
    result = run_query(engine, "segments", make_filters(DAY1, DAY2), by_store=True)
    assert result.columns[:3] == ["store_id", "age_group", "category"]
    assert len(result.rows) == 6
    assert sum(r["receipts"] for r in result.records()) == 9 + 3 + 2 + 12


@pytest.mark.parametrize(
    ("name", "options"),
    [("segments", {}), ("segments", {"by_store": True}), ("compliance", {}),
     ("quality", {"by_lane": True}), ("flags", {})],
)
def test_csv_written_by_duckdb_is_the_csv_of_the_rows(engine, name, options):
    from jobs.analytics.query_format import to_csv

    filters = make_filters(DAY1, DAY2)
    direct = run_query(engine, name, filters, as_csv=True, **options)
    rows = run_query(engine, name, filters, **options)
    assert rows.rows and rows.csv is None
    if name == "flags":  # timestamps print differently in DuckDB: the rows path serves them
        assert direct.csv is None and direct.rows == rows.rows
    else:
        assert direct.rows == [] and direct.row_count == len(rows.rows)
        assert direct.csv == to_csv(rows) and direct.notes == rows.notes


def test_csv_of_awkward_values_is_the_same_from_duckdb_and_python(engine):
    from jobs.analytics.query_format import to_csv

    # Shortest round-trip doubles, huge and tiny ones, integer-valued ones, NULL, and the strings
    # Python's csv module would leave bare but DuckDB quotes (empty, carriage return).
    values = ", ".join(f"({v}, {s}, {i}, DATE '2026-03-0{k % 9 + 1}')" for k, (v, s, i) in enumerate([
        ("0.1", "'plain'", "0"), ("1.0/3", "''", "-7"), ("1e16", "'a,b'", "NULL"),
        ("1e-05", "'say \"hi\"'", "123456789012"), ("2.0", "'two' || chr(10) || 'lines'", "1"),
        ("NULL", "'cr' || chr(13)", "2"), ("123456.5", "NULL", "3"), ("5e-324", "' sp '", "4"),
        ("-0.0", "'кириллица'", "5"),
    ]))
    query = query_sql.Query("awkward", f"SELECT * FROM (VALUES {values}) AS t(v, s, i, d)")
    direct = engine.run_csv(query)
    assert direct is not None and direct.row_count == 9
    assert direct.csv == to_csv(engine.run(query))
    assert '3333,"",-7,' in direct.csv and '"cr\r"' in direct.csv and "e+16,\"a,b\",," in direct.csv


def test_csv_from_duckdb_explains_missing_data_like_rows(engine):
    with pytest.raises(UserError, match="no segment_category data for 2026-05-01"):
        run_query(engine, "segments", make_filters("2026-05-01"), as_csv=True)


@pytest.mark.slow
def test_spark_engine_gives_the_same_answers(root, engine, tmp_path):
    from jobs.analytics.query_format import plain
    from jobs.analytics.query_spark import SparkEngine
    from jobs.daily.spark import build_spark

    spark = build_spark("test-query-spark", "local[1]", shuffle_partitions=1)
    spark_engine = SparkEngine(spark, root)
    cases = [
        ("segments", make_filters(DAY1, DAY2), {}),
        ("segments", make_filters(DAY1, DAY2, age_group="65+"), {"by_store": True}),
        ("recommendations", make_filters(DAY1, DAY2), {"min_support": 0.01, "top_n": 10}),
        ("compliance", make_filters(DAY1, DAY2, store="S001"), {}),
        ("flags", make_filters(DAY1, DAY2), {}),
        ("quality", make_filters(DAY1, DAY2), {}),
    ]
    for name, filters, options in cases:
        expected = run_query(engine, name, filters, **options)
        got = run_query(spark_engine, name, filters, **options)
        assert got.columns == expected.columns, name
        assert len(got.rows) == len(expected.rows), name
        for got_row, want_row in zip(got.rows, expected.rows, strict=True):
            for column, g, w in zip(got.columns, got_row, want_row, strict=True):
                g, w = plain(g), plain(w)
                if isinstance(w, float):
                    assert g == pytest.approx(w), (name, column)
                else:
                    assert g == w, (name, column)
    with pytest.raises(UserError, match="unknown store 'S999'"):
        run_query(spark_engine, "segments", make_filters(DAY1, store="S999"))
    with pytest.raises(UserError, match="has no date=\\* partitions"):
        run_query(SparkEngine(spark, tmp_path), "compliance", make_filters(DAY1))


def test_days_written_before_calibration_read_as_null(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = write_samples(tmp_path)
    old_day = root / "reports" / "compliance" / "date=2026-02-28"
    old_day.mkdir()
    # The compliance table as written before calibration: no probability columns.
    pq.write_table(pa.Table.from_pylist([{
        "store_id": "S001", "cashier_id": "S001-C01", "receipts": 7, "restricted_receipts": 2,
        "with_photo": 2, "flagged": 1, "flag_rate": 0.5, "no_photo": 0, "challenge_age": 25,
    }]), old_day / "part-0.parquet")
    result = run_query(DuckDBEngine(root), "compliance", make_filters("2026-02-28", DAY2))
    c01 = _rows(result, "cashier_id")[("S001-C01",)]
    assert (c01["receipts"], c01["flagged"], c01["days"]) == (42, 4, 3)
    assert (c01["expected_minor_sales"], c01["with_probability"]) == (pytest.approx(1.02), 5)


def test_a_root_written_before_new_columns_existed_still_answers(tmp_path):
    """No file has the newer columns (a root from an older release): they read as NULL."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    day = tmp_path / "reports" / "compliance" / "date=2026-02-28"
    day.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{
        "store_id": "S001", "cashier_id": "S001-C01", "receipts": 7, "restricted_receipts": 2,
        "with_photo": 2, "flagged": 1, "flag_rate": 0.5, "no_photo": 0, "challenge_age": 25,
    }]), day / "part-0.parquet")
    result = run_query(DuckDBEngine(tmp_path), "compliance", make_filters("2026-02-28"))
    c01 = _rows(result, "cashier_id")[("S001-C01",)]
    assert (c01["receipts"], c01["flagged"]) == (7, 1)
    assert c01["expected_minor_sales"] is None
