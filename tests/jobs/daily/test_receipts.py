"""Reading the till export with line numbers and quarantining bad rows with reasons."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs.contract import PRODUCT_QUARANTINE, check_columns
from jobs.daily.csv_lines import read_csv_lines
from jobs.daily.receipts import (
    LINE_COLUMNS,
    RECEIPT_COLUMNS,
    catalogue,
    check_lines,
    check_products,
    check_receipts,
    product_quarantine,
    receipt_quarantine,
)
from jobs.daily.reports import read_products
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


PRODUCTS_CSV = """product_id,name,category,age_restricted
P1,Milk,dairy,false
P2,Beer,beer,TRUE
,Ghost,dairy,false
P3,Odd,dairy,maybe
P4,"Crisps, salted",snacks
P1,Milk again,dairy,false
P5,"<b>Cola</b>, 1 l",drinks,false
"""


@pytest.fixture()
def products_csv(tmp_path):
    path = tmp_path / "products.csv"
    path.write_text(PRODUCTS_CSV)
    return path


def _products(spark, path):
    return catalogue(check_products(read_products(spark, str(path))))


def test_products_keep_only_usable_rows(spark, products_csv):
    expected = spark.createDataFrame(
        [("P1", "Milk", "dairy", False), ("P2", "Beer", "beer", True),
         ("P5", "<b>Cola</b>, 1 l", "drinks", False)],
        "product_id string, name string, category string, age_restricted boolean",
    )
    assertDataFrameEqual(_products(spark, products_csv), expected)


def test_rejected_products_never_vanish(spark, products_csv):
    checked = check_products(read_products(spark, str(products_csv)))
    expected = spark.createDataFrame([
        (None, "Ghost", "dairy", "false", "missing_field", "empty product_id"),
        ("P3", "Odd", "dairy", "maybe", "bad_flag", "age_restricted maybe is not true/false"),
        ("P4", "Crisps, salted", "snacks", None, "malformed_row",
         'not 4 fields: P4,"Crisps, salted",snacks'),
        ("P1", "Milk again", "dairy", "false", "duplicate_product_id",
         "product_id P1 already listed"),
    ], "product_id string, name string, category string, age_restricted string, reason string, "
       "detail string")
    quarantine = product_quarantine(checked)
    assertDataFrameEqual(quarantine, expected)
    check_columns(PRODUCT_QUARANTINE,
                  [(f.name, f.dataType.simpleString()) for f in quarantine.schema.fields])
    assert checked.count() == PRODUCTS_CSV.count("\n") - 1  # rows in = usable + quarantined


def test_receipts_checked_in_contract_order(spark, landing):
    raw = read_csv_lines(spark, str(landing / "receipts.csv"), RECEIPT_COLUMNS)
    checked = check_receipts(raw, DAY).select("line_no", "receipt_id", "reason", "detail")
    expected = spark.createDataFrame([
        (2, "R1", None, None),
        (3, "R2", None, None),
        (4, "R1", "duplicate_receipt_id", "receipt_id already on line 2"),
        (5, "R3", "bad_timestamp", "closed_at 14/03/2026 10:07"),
        (6, "R4", "wrong_date", "closed_at 2026-03-15T00:00:01Z is not on 2026-03-14"),
        (7, "R5", "bad_lane", "lane_id x is not a lane number in [1, 999]"),
        (8, "R6", "missing_field", "empty cashier_id"),
        (9, "R7", "malformed_row", "5 fields, expected 6"),
        (10, "R8", "bad_amount", "total_rub -5 is outside [0, 1e+08]"),
    ], "line_no int, receipt_id string, reason string, detail string")
    assertDataFrameEqual(checked, expected)
    valid = check_receipts(raw, DAY).where("reason IS NULL").select(
        F.date_format("closed_at", "yyyy-MM-dd HH:mm:ss.SSS").alias("closed_at"), "total_rub"
    )
    assertDataFrameEqual(valid, spark.createDataFrame(
        [("2026-03-14 10:00:00.250", 150.0), ("2026-03-14 10:05:00.000", 80.5)],
        "closed_at string, total_rub double",
    ))


def test_lines_quarantined_with_first_reason(spark, landing, products_csv):
    receipts = check_receipts(
        read_csv_lines(spark, str(landing / "receipts.csv"), RECEIPT_COLUMNS), DAY
    )
    lines = check_lines(
        read_csv_lines(spark, str(landing / "receipt_lines.csv"), LINE_COLUMNS),
        receipts, _products(spark, products_csv),
    )
    quarantine = receipt_quarantine(receipts, lines).where("source_file = 'receipt_lines.csv'")
    expected = spark.createDataFrame([
        ("receipt_lines.csv", 4, "R2", "P1", "non_positive_quantity", "quantity 0"),
        ("receipt_lines.csv", 5, "R2", "P9", "unknown_product", "product_id P9 not in products.csv"),
        ("receipt_lines.csv", 6, "R3", "P1", "receipt_quarantined", "receipt R3 was quarantined"),
        ("receipt_lines.csv", 7, "R9", "P1", "unknown_receipt", "no receipt R9 in receipts.csv"),
        ("receipt_lines.csv", 8, "R2", "P2", "bad_quantity", "quantity 1.5 is not a whole number"),
        ("receipt_lines.csv", 9, "R2", "P2", "bad_price", "price_rub abc is not a number"),
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


# Every value a till could not have produced, with the reason and the text as written.
HOSTILE_RECEIPTS = """receipt_id,store_id,lane_id,cashier_id,closed_at,total_rub
R1,S1,1,S1-C1,2026-03-14T10:00:00Z,NaN
R2,S1,1,S1-C1,2026-03-14T10:01:00Z,Infinity
R3,S1,1,S1-C1,2026-03-14T10:02:00Z,1e400
R4,S1,1,S1-C1,2026-03-14T10:03:00Z,-inf
R5,S1,1,S1-C1,2026-03-14T10:04:00Z,100000000.01
R6,S1,0,S1-C1,2026-03-14T10:05:00Z,1.00
R7,S1,1000,S1-C1,2026-03-14T10:06:00Z,1.00
R8,S1,99999999999,S1-C1,2026-03-14T10:07:00Z,1.00
R9,S1,1,S1-C1,2026-03-14T10:08:00Z,0.00
"""
HOSTILE_LINES = """receipt_id,product_id,quantity,price_rub
R9,P1,1,nan
R9,P1,1,+Infinity
R9,P1,1,1e309
R9,P1,1,10000000.5
R9,P1,10000,1.00
R9,P1,99999999999,1.00
R9,P1,1,-0.01
R9,P1,9999,10000000
R9,P1,1,0
"""


def test_non_finite_and_impossible_numbers_are_quarantined(spark, tmp_path, products_csv):
    (tmp_path / "receipts.csv").write_text(HOSTILE_RECEIPTS)
    (tmp_path / "receipt_lines.csv").write_text(HOSTILE_LINES)
    receipts = check_receipts(
        read_csv_lines(spark, str(tmp_path / "receipts.csv"), RECEIPT_COLUMNS), DAY)
    lines = check_lines(read_csv_lines(spark, str(tmp_path / "receipt_lines.csv"), LINE_COLUMNS),
                        receipts, _products(spark, products_csv))
    got = {(r.source_file, r.line_no): (r.reason, r.detail)
           for r in receipt_quarantine(receipts, lines).collect()}
    assert got == {
        ("receipts.csv", 2): ("bad_amount", "total_rub NaN is not a finite number"),
        ("receipts.csv", 3): ("bad_amount", "total_rub Infinity is not a finite number"),
        ("receipts.csv", 4): ("bad_amount", "total_rub 1e400 is not a finite number"),
        ("receipts.csv", 5): ("bad_amount", "total_rub -inf is not a finite number"),
        ("receipts.csv", 6): ("bad_amount", "total_rub 100000000.01 is outside [0, 1e+08]"),
        ("receipts.csv", 7): ("bad_lane", "lane_id 0 is not a lane number in [1, 999]"),
        ("receipts.csv", 8): ("bad_lane", "lane_id 1000 is not a lane number in [1, 999]"),
        ("receipts.csv", 9): ("bad_lane", "lane_id 99999999999 is not a lane number in [1, 999]"),
        ("receipt_lines.csv", 2): ("bad_price", "price_rub nan is not a finite number"),
        ("receipt_lines.csv", 3): ("bad_price", "price_rub +Infinity is not a finite number"),
        ("receipt_lines.csv", 4): ("bad_price", "price_rub 1e309 is not a finite number"),
        ("receipt_lines.csv", 5): ("bad_price", "price_rub 10000000.5 is outside [0, 1e+07]"),
        ("receipt_lines.csv", 6): ("bad_quantity", "quantity 10000 is above the maximum 9999"),
        ("receipt_lines.csv", 7): ("bad_quantity",
                                   "quantity 99999999999 is above the maximum 9999"),
        ("receipt_lines.csv", 8): ("bad_price", "price_rub -0.01 is outside [0, 1e+07]"),
    }
    # The largest legal values and a free item pass, and their sum stays finite.
    valid = lines.where("reason IS NULL").select("quantity", "price_rub").collect()
    assert sorted((r.quantity, r.price_rub) for r in valid) == [(1, 0.0), (9999, 1e7)]


def test_photo_metadata_lanes_no_camera_could_have(spark, tmp_path):
    from jobs.daily.photos import PHOTO_META_COLUMNS, check_photo_metadata

    (tmp_path / "photos.csv").write_text(
        "photo_id,store_id,lane_id,captured_at\n"
        "p1,S1,0,2026-03-14T10:00:00Z\np2,S1,1000,2026-03-14T10:00:00Z\n"
        "p3,S1,NaN,2026-03-14T10:00:00Z\np4,S1,999,2026-03-14T10:00:00Z\n")
    checked = check_photo_metadata(
        read_csv_lines(spark, str(tmp_path / "photos.csv"), PHOTO_META_COLUMNS))
    got = {r.photo_id: (r.reason, r.detail) for r in checked.collect()}
    assert got == {
        "p1": ("bad_metadata", "photos.csv line 2: lane_id 0 is outside [1, 999]"),
        "p2": ("bad_metadata", "photos.csv line 3: lane_id 1000 is outside [1, 999]"),
        "p3": ("bad_metadata", "photos.csv line 4: lane_id NaN"),
        "p4": (None, None),
    }
