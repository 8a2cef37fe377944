"""Pure transforms: check the till export's rows and keep every rejected row with its reason.

Each check function returns every input row with typed columns plus `reason`/`detail` (NULL when
the row is usable): the caller filters usable rows and turns the rest into `receipt_quarantine`
rows, so rows in = usable + quarantined always. Reason codes: docs/data-contract.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column, Window
from pyspark.sql import functions as F

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
    missing, missing_text = _missing(RECEIPT_COLUMNS)
    reason, detail = _first_reason([
        (F.col("field_count") != len(RECEIPT_COLUMNS), "malformed_row",
         F.format_string("%d fields, expected %d", "field_count", F.lit(len(RECEIPT_COLUMNS)))),
        (missing, "missing_field", missing_text),
        (lane.isNull() | (lane < 1), "bad_lane", F.format_string("lane_id %s", "lane_id")),
        (closed.isNull(), "bad_timestamp", F.format_string("closed_at %s", "closed_at")),
        (F.to_date(closed) != F.lit(run_date).cast("date"), "wrong_date",
         F.format_string("closed_at %s is not on %s", "closed_at", F.lit(run_date))),
        (total.isNull() | F.isnan(total) | (total < 0), "bad_amount",
         F.format_string("total_rub %s", "total_rub")),
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
    """`products.csv` rows (Spark CSV reader, strings) -> usable catalogue, one row per product.

    Rows without an id or category, or with an `age_restricted` other than true/false, are left
    out; lines naming such a product are then quarantined as `unknown_product`.
    """
    flag = F.lower(F.trim("age_restricted"))
    usable = raw.where(
        F.col("product_id").isNotNull() & F.col("category").isNotNull()
        & flag.isin("true", "false")
    )
    first = Window.partitionBy("product_id").orderBy("category", "name")
    return usable.select(
        F.trim("product_id").alias("product_id"), F.coalesce("name", F.lit("")).alias("name"),
        F.trim("category").alias("category"), (flag == "true").alias("age_restricted"),
        F.row_number().over(first).alias("_rank"),
    ).where("_rank = 1").drop("_rank")


def check_lines(raw: DataFrame, receipts: DataFrame, products: DataFrame) -> DataFrame:
    """`receipt_lines.csv` rows checked against the checked receipts and the catalogue.

    Args:
        raw: `read_csv_lines(receipt_lines.csv)` rows.
        receipts: `check_receipts` output (valid and quarantined rows).
        products: `check_products` output.

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
    quantity = F.col("quantity").try_cast("int")
    price = F.col("price_rub").try_cast("double")
    missing, missing_text = _missing(LINE_COLUMNS)
    reason, detail = _first_reason([
        (F.col("field_count") != len(LINE_COLUMNS), "malformed_row",
         F.format_string("%d fields, expected %d", "field_count", F.lit(len(LINE_COLUMNS)))),
        (missing, "missing_field", missing_text),
        (quantity.isNull(), "bad_quantity", F.format_string("quantity %s", "quantity")),
        (quantity <= 0, "non_positive_quantity", F.format_string("quantity %s", "quantity")),
        (price.isNull() | F.isnan(price) | (price < 0), "bad_price",
         F.format_string("price_rub %s", "price_rub")),
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
