"""Reading the till export with line numbers and quarantining bad rows with reasons."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs.daily.csv_lines import read_csv_lines
from jobs.daily.receipts import (
    LINE_COLUMNS,
    RECEIPT_COLUMNS,
    check_lines,
    check_products,
    check_receipts,
    receipt_quarantine,
)
from model.errors import UserError

DAY = "2026-03-14"

RECEIPTS_CSV = """receipt_id,store_id,lane_id,cashier_id,closed_at,total_rub
R1,S1,1,S1-C1,2026-03-14T10:00:00.250Z,150.00
R2,S1,2,S1-C2,2026-03-14T10:05:00Z,80.50
R1,S1,1,S1-C1,2026-03-14T10:00:00.250Z,150.00
R3,S1,1,S1-C1,14/03/2026 10:07,10.00
R4,S1,1,S1-C1,2026-03-15T00:00:01Z,10.00
R5,S1,x,S1-C1,2026-03-14T10:09:00Z,10.00
R6,S1,1,,2026-03-14T10:10:00Z,10.00
R7,S1,1,S1-C1,2026-03-14T10:11:00Z
R8,S1,1,S1-C1,2026-03-14T10:12:00Z,-5
"""

LINES_CSV = """receipt_id,product_id,quantity,price_rub
R1,P1,2,50.00
R1,P2,1,50.00
R2,P1,0,50.00
R2,P9,1,30.00
R3,P1,1,10.00
R9,P1,1,10.00
R2,P2,1.5,10.00
R2,P2,1,abc
R2,P2
R2,P2,1,30.50
"""


@pytest.fixture()
def landing(tmp_path):
    (tmp_path / "receipts.csv").write_text(RECEIPTS_CSV)
    (tmp_path / "receipt_lines.csv").write_text(LINES_CSV)
    return tmp_path


def _products(spark):
    raw = spark.createDataFrame(
        [("P1", "Milk", "dairy", "false"), ("P2", "Beer", "beer", "TRUE"),
         (None, "Ghost", "dairy", "false"), ("P3", "Odd", "dairy", "maybe")],
        "product_id string, name string, category string, age_restricted string",
    )
    return check_products(raw)


def test_products_keep_only_usable_rows(spark):
    expected = spark.createDataFrame(
        [("P1", "Milk", "dairy", False), ("P2", "Beer", "beer", True)],
        "product_id string, name string, category string, age_restricted boolean",
    )
    assertDataFrameEqual(_products(spark), expected)


def test_receipts_checked_in_contract_order(spark, landing):
    raw = read_csv_lines(spark, str(landing / "receipts.csv"), RECEIPT_COLUMNS)
    checked = check_receipts(raw, DAY).select("line_no", "receipt_id", "reason", "detail")
    expected = spark.createDataFrame([
        (2, "R1", None, None),
        (3, "R2", None, None),
        (4, "R1", "duplicate_receipt_id", "receipt_id already on line 2"),
        (5, "R3", "bad_timestamp", "closed_at 14/03/2026 10:07"),
        (6, "R4", "wrong_date", "closed_at 2026-03-15T00:00:01Z is not on 2026-03-14"),
        (7, "R5", "bad_lane", "lane_id x"),
        (8, "R6", "missing_field", "empty cashier_id"),
        (9, "R7", "malformed_row", "5 fields, expected 6"),
        (10, "R8", "bad_amount", "total_rub -5"),
    ], "line_no int, receipt_id string, reason string, detail string")
    assertDataFrameEqual(checked, expected)
    valid = check_receipts(raw, DAY).where("reason IS NULL").select(
        F.date_format("closed_at", "yyyy-MM-dd HH:mm:ss.SSS").alias("closed_at"), "total_rub"
    )
    assertDataFrameEqual(valid, spark.createDataFrame(
        [("2026-03-14 10:00:00.250", 150.0), ("2026-03-14 10:05:00.000", 80.5)],
        "closed_at string, total_rub double",
    ))


def test_lines_quarantined_with_first_reason(spark, landing):
    receipts = check_receipts(
        read_csv_lines(spark, str(landing / "receipts.csv"), RECEIPT_COLUMNS), DAY
    )
    lines = check_lines(
        read_csv_lines(spark, str(landing / "receipt_lines.csv"), LINE_COLUMNS),
        receipts, _products(spark),
    )
    quarantine = receipt_quarantine(receipts, lines).where("source_file = 'receipt_lines.csv'")
    expected = spark.createDataFrame([
        ("receipt_lines.csv", 4, "R2", "P1", "non_positive_quantity", "quantity 0"),
        ("receipt_lines.csv", 5, "R2", "P9", "unknown_product", "product_id P9 not in products.csv"),
        ("receipt_lines.csv", 6, "R3", "P1", "receipt_quarantined", "receipt R3 was quarantined"),
        ("receipt_lines.csv", 7, "R9", "P1", "unknown_receipt", "no receipt R9 in receipts.csv"),
        ("receipt_lines.csv", 8, "R2", "P2", "bad_quantity", "quantity 1.5"),
        ("receipt_lines.csv", 9, "R2", "P2", "bad_price", "price_rub abc"),
        ("receipt_lines.csv", 10, "R2", "P2", "malformed_row", "2 fields, expected 4"),
    ], "source_file string, line_no int, receipt_id string, product_id string, reason string, "
       "detail string")
    assertDataFrameEqual(quarantine, expected)
    valid = lines.where("reason IS NULL").select("line_no", "receipt_id", "quantity", "price_rub")
    assertDataFrameEqual(valid, spark.createDataFrame(
        [(2, "R1", 2, 50.0), (3, "R1", 1, 50.0), (11, "R2", 1, 30.5)],
        "line_no int, receipt_id string, quantity int, price_rub double",
    ))
    assert lines.count() == LINES_CSV.count("\n") - 1  # rows in = valid + quarantined


def test_line_numbers_survive_file_splits(spark, tmp_path):
    path = tmp_path / "receipt_lines.csv"
    rows = [f"R{i},P{i % 7},{i % 3 + 1},{i}.00" for i in range(1, 3001)]
    path.write_text("receipt_id,product_id,quantity,price_rub\n" + "\n".join(rows) + "\n")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "8k")  # ~8 splits of one file
    try:
        frame = read_csv_lines(spark, str(path), LINE_COLUMNS)
        assert frame.rdd.getNumPartitions() > 4
        got = {(r.line_no, r.receipt_id) for r in frame.select("line_no", "receipt_id").collect()}
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert got == {(i + 1, f"R{i}") for i in range(1, 3001)}


def test_wrong_header_is_a_user_error(spark, tmp_path):
    path = tmp_path / "receipts.csv"
    path.write_text("id,store\nR1,S1\n")
    with pytest.raises(UserError, match="receipts.csv: header is 'id,store'"):
        read_csv_lines(spark, str(path), RECEIPT_COLUMNS)
