"""Pure transforms: check the till export's rows and keep every rejected row with its reason.

Each check function returns every input row with typed columns plus `reason`/`detail` (NULL when
the row is usable): the caller filters usable rows and turns the rest into `receipt_quarantine`
rows, so rows in = usable + quarantined always. Reason codes: docs/data-contract.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column, Window
from pyspark.sql import functions as F

from jobs.contract import MAX_LANE_ID, MAX_PRICE_RUB, MAX_QUANTITY, MAX_TOTAL_RUB
from jobs.daily.photos import parse_timestamp

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

RECEIPT_COLUMNS = ["receipt_id", "store_id", "lane_id", "cashier_id", "closed_at", "total_rub"]
LINE_COLUMNS = ["receipt_id", "product_id", "quantity", "price_rub"]
PRODUCT_COLUMNS = ["product_id", "name", "category", "age_restricted"]


def _first_reason(checks: list[tuple[Column, str, Column]]) -> tuple[Column, Column]:
    """(reason, detail) of the first failing check; each check is (failed, reason, detail)."""
    reason = detail = None
    for failed, code, text in checks:
        reason = F.when(failed, F.lit(code)) if reason is None else reason.when(failed, code)
        detail = F.when(failed, text) if detail is None else detail.when(failed, text)
    return reason, detail


def _missing(columns: list[str]) -> tuple[Column, Column]:
    failed = F.lit(False)
    names = []
    for name in columns:
        failed = failed | F.col(name).isNull()
        names.append(F.when(F.col(name).isNull(), F.lit(name)))
    return failed, F.concat(F.lit("empty "), F.concat_ws(", ", *names))


def _out_of_range(raw: str, value: Column, low: float, high: float) -> tuple[Column, Column]:
    """(failed, detail) for a parsed number that is NULL, non-finite or outside [low, high].

    `try_cast` accepts `NaN`, `Infinity` and `1e400` (= Infinity): all are rejected here, with
    the text as written in the file.
    """
    finite = ~F.isnan(value) & (F.abs(value) != F.lit(float("inf")))
    failed = value.isNull() | ~finite | (value < low) | (value > high)
    detail = (
        F.when(value.isNull(), F.format_string(f"{raw} %s is not a number", raw))
        .when(~finite, F.format_string(f"{raw} %s is not a finite number", raw))
        .otherwise(F.format_string(f"{raw} %s is outside [{low:g}, {high:g}]", raw))
    )
    return failed, detail


def check_receipts(raw: DataFrame, run_date: str) -> DataFrame:
    """`receipts.csv` rows (from `read_csv_lines`) checked, in contract order.

    Returns:
        line_no, receipt_id, store_id, lane_id (int), cashier_id, closed_at (timestamp),
        total_rub (double), reason, detail. Of rows sharing a receipt id that pass every other
        check, the first by line number is kept and later ones get `duplicate_receipt_id`.
    """
    lane = F.col("lane_id").try_cast("int")
    closed = parse_timestamp("closed_at")
    total = F.col("total_rub").try_cast("double")
    total_bad, total_detail = _out_of_range("total_rub", total, 0.0, MAX_TOTAL_RUB)
    missing, missing_text = _missing(RECEIPT_COLUMNS)
    reason, detail = _first_reason([
        (F.col("field_count") != len(RECEIPT_COLUMNS), "malformed_row",
         F.format_string("%d fields, expected %d", "field_count", F.lit(len(RECEIPT_COLUMNS)))),
        (missing, "missing_field", missing_text),
        (lane.isNull() | (lane < 1) | (lane > MAX_LANE_ID), "bad_lane",
         F.format_string(f"lane_id %s is not a lane number in [1, {MAX_LANE_ID}]", "lane_id")),
        (closed.isNull(), "bad_timestamp", F.format_string("closed_at %s", "closed_at")),
        (F.to_date(closed) != F.lit(run_date).cast("date"), "wrong_date",
         F.format_string("closed_at %s is not on %s", "closed_at", F.lit(run_date))),
        (total_bad, "bad_amount", total_detail),
    ])
    checked = raw.select(
        "line_no", "receipt_id", "store_id", lane.alias("lane_id"), "cashier_id",
        closed.alias("closed_at"), total.alias("total_rub"),
        reason.alias("reason"), detail.alias("detail"),
    )
    first = Window.partitionBy("receipt_id", F.col("reason").isNull()).orderBy("line_no")
    rank = F.row_number().over(first)
    duplicate = F.col("reason").isNull() & (rank > 1)
    first_line = F.min("line_no").over(first)
    return checked.select(
        *[c for c in checked.columns if c not in ("reason", "detail")],
        F.when(duplicate, F.lit("duplicate_receipt_id")).otherwise(F.col("reason")).alias("reason"),
        F.when(duplicate, F.format_string("receipt_id already on line %d", first_line))
        .otherwise(F.col("detail")).alias("detail"),
    )


def check_products(raw: DataFrame) -> DataFrame:
    """`products.csv` rows (`read_products`: strings, `_corrupt_record`, `_row`) checked.

    Returns:
        Every row: product_id, name, category, age_restricted (as written), restricted (bool),
        reason, detail. Reasons in order: `malformed_row` (not 4 fields), `missing_field` (no id
        or category), `bad_flag` (age_restricted not true/false), `duplicate_product_id` (a
        usable row whose id is on an earlier usable row; the first in file order is kept).
    """
    flag = F.lower(F.trim("age_restricted"))
    missing, missing_text = _missing(["product_id", "category"])
    reason, detail = _first_reason([
        (F.col("_corrupt_record").isNotNull(), "malformed_row",
         F.concat(F.lit(f"not {len(PRODUCT_COLUMNS)} fields: "),
                  F.substring("_corrupt_record", 1, 200))),
        (missing, "missing_field", missing_text),
        (~flag.isin("true", "false") | flag.isNull(), "bad_flag",
         F.format_string("age_restricted %s is not true/false", "age_restricted")),
    ])
    checked = raw.select(
        "_row", F.trim("product_id").alias("product_id"), "name",
        F.trim("category").alias("category"), "age_restricted",
        (flag == "true").alias("restricted"), reason.alias("reason"), detail.alias("detail"),
    )
    first = Window.partitionBy("product_id", F.col("reason").isNull()).orderBy("_row")
    duplicate = F.col("reason").isNull() & (F.row_number().over(first) > 1)
    return checked.select(
        "product_id", "name", "category", "age_restricted", "restricted",
        F.when(duplicate, F.lit("duplicate_product_id")).otherwise(F.col("reason")).alias("reason"),
        F.when(duplicate, F.format_string("product_id %s already listed", "product_id"))
        .otherwise(F.col("detail")).alias("detail"),
    )


def catalogue(products: DataFrame) -> DataFrame:
    """The day's usable catalogue from `check_products`: one row per product id."""
    return products.where("reason IS NULL").select(
        "product_id", F.coalesce("name", F.lit("")).alias("name"), "category",
        F.col("restricted").alias("age_restricted"),
    )


def product_quarantine(products: DataFrame) -> DataFrame:
    """Rejected `products.csv` rows: the `product_quarantine` table."""
    return products.where("reason IS NOT NULL").select(
        "product_id", "name", "category", "age_restricted", "reason", "detail"
    )


def check_lines(raw: DataFrame, receipts: DataFrame, products: DataFrame) -> DataFrame:
    """`receipt_lines.csv` rows checked against the checked receipts and the catalogue.

    Args:
        raw: `read_csv_lines(receipt_lines.csv)` rows.
        receipts: `check_receipts` output (valid and quarantined rows).
        products: `catalogue` output (usable products).

    Returns:
        line_no, receipt_id, product_id, quantity (int), price_rub (double), reason, detail.
    """
    valid_ids = receipts.where("reason IS NULL").select("receipt_id", F.lit(True).alias("_valid"))
    bad_ids = (
        receipts.where("reason IS NOT NULL AND receipt_id IS NOT NULL")
        .select("receipt_id").distinct().withColumn("_quarantined", F.lit(True))
    )
    known = products.select("product_id", F.lit(True).alias("_known"))
    joined = (
        raw.join(valid_ids, "receipt_id", "left")
        .join(bad_ids, "receipt_id", "left")
        .join(known, "product_id", "left")
    )
    count = F.col("quantity").try_cast("long")  # long: a 10-digit count is "too many", not "bad"
    quantity = F.col("quantity").try_cast("int")
    price = F.col("price_rub").try_cast("double")
    price_bad, price_detail = _out_of_range("price_rub", price, 0.0, MAX_PRICE_RUB)
    missing, missing_text = _missing(LINE_COLUMNS)
    reason, detail = _first_reason([
        (F.col("field_count") != len(LINE_COLUMNS), "malformed_row",
         F.format_string("%d fields, expected %d", "field_count", F.lit(len(LINE_COLUMNS)))),
        (missing, "missing_field", missing_text),
        (count.isNull(), "bad_quantity",
         F.format_string("quantity %s is not a whole number", "quantity")),
        (count <= 0, "non_positive_quantity", F.format_string("quantity %s", "quantity")),
        (count > MAX_QUANTITY, "bad_quantity",
         F.format_string(f"quantity %s is above the maximum {MAX_QUANTITY}", "quantity")),
        (price_bad, "bad_price", price_detail),
        (F.col("_known").isNull(), "unknown_product",
         F.format_string("product_id %s not in products.csv", "product_id")),
        (F.col("_valid").isNull() & F.col("_quarantined").isNotNull(), "receipt_quarantined",
         F.format_string("receipt %s was quarantined", "receipt_id")),
        (F.col("_valid").isNull(), "unknown_receipt",
         F.format_string("no receipt %s in receipts.csv", "receipt_id")),
    ])
    return joined.select(
        "line_no", "receipt_id", "product_id", quantity.alias("quantity"),
        price.alias("price_rub"), reason.alias("reason"), detail.alias("detail"),
    )


def receipt_quarantine(receipts: DataFrame, lines: DataFrame) -> DataFrame:
    """Rejected rows of both files: the `receipt_quarantine` table."""
    head = [F.lit("receipts.csv").alias("source_file"), "line_no", "receipt_id",
            F.lit(None).cast("string").alias("product_id")]
    return (
        receipts.where("reason IS NOT NULL").select(*head, "reason", "detail")
        .unionByName(
            lines.where("reason IS NOT NULL").select(
                F.lit("receipt_lines.csv").alias("source_file"), "line_no", "receipt_id",
                "product_id", "reason", "detail",
            )
        )
    )
