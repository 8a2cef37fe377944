"""Pure transforms: what each age segment buys (segment_category) and buys more than average
(recommendations). Formulas: docs/data-contract.md.

Only matched receipts count (they are the ones with an age); the baseline for lift is all
matched receipts of the same scope (the store for segment_category, the chain for
recommendations) that day.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column, Window
from pyspark.sql import functions as F

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def receipt_items(lines: DataFrame, products: DataFrame) -> DataFrame:
    """Valid lines with their product's category and restriction, and line revenue."""
    return lines.join(products, "product_id").select(
        "receipt_id", "product_id", F.col("name").alias("product_name"), "category",
        "age_restricted", F.col("quantity").cast("long").alias("quantity"),
        F.round(F.col("quantity") * F.col("price_rub"), 2).alias("revenue_rub"),
    )


def _ratio(num: str | Column, den: str | Column) -> Column:
    num = F.col(num) if isinstance(num, str) else num
    den = F.col(den) if isinstance(den, str) else den
    return F.when(den > 0, num / den)


def segment_category(receipt_ages: DataFrame, items: DataFrame) -> DataFrame:
    """Per store, age group and category: receipts, units, revenue, shares, support, lift."""
    matched = receipt_ages.where(F.col("age_group").isNotNull()).select(
        "receipt_id", "store_id", "age_group"
    )
    bought = items.join(matched, "receipt_id")
    cells = bought.groupBy("store_id", "age_group", "category").agg(
        F.countDistinct("receipt_id").alias("receipts"),
        F.sum("quantity").alias("units"),
        F.round(F.sum("revenue_rub"), 2).alias("revenue_rub"),
    )
    segments = matched.groupBy("store_id", "age_group").agg(
        F.count("*").alias("segment_receipts")
    ).join(
        bought.groupBy("store_id", "age_group").agg(
            F.round(F.sum("revenue_rub"), 2).alias("segment_revenue_rub")
        ),
        ["store_id", "age_group"], "left",
    )
    categories = bought.groupBy("store_id", "category").agg(
        F.countDistinct("receipt_id").alias("category_receipts")
    )
    stores = matched.groupBy("store_id").agg(F.count("*").alias("all_receipts"))
    return (
        cells.join(segments, ["store_id", "age_group"])
        .join(categories, ["store_id", "category"])
        .join(stores, "store_id")
        .select(
            "store_id", "age_group", "category", "receipts", "units", "revenue_rub",
            "segment_receipts", "segment_revenue_rub", "category_receipts", "all_receipts",
            _ratio("revenue_rub", "segment_revenue_rub").alias("revenue_share"),
            _ratio("receipts", "all_receipts").alias("support"),
            _ratio("receipts", "segment_receipts").alias("confidence"),
            _ratio(_ratio("receipts", "segment_receipts"),
                   _ratio("category_receipts", "all_receipts")).alias("lift"),
        )
    )


def _item_table(matched: DataFrame, bought: DataFrame, kind: str, item: Column,
                name: Column) -> DataFrame:
    """Receipt counts of one item kind (category or product) per age group."""
    per_item = bought.select("receipt_id", "age_group", "category", item.alias("item_id"),
                             name.alias("item_name")).distinct()
    cells = per_item.groupBy("age_group", "item_id", "item_name", "category").agg(
        F.count("*").alias("receipts")
    )
    items = per_item.groupBy("item_id").agg(F.count("*").alias("item_receipts"))
    segments = matched.groupBy("age_group").agg(F.count("*").alias("segment_receipts"))
    return (
        cells.join(segments, "age_group").join(items, "item_id").withColumn("kind", F.lit(kind))
    )


def recommendations(receipt_ages: DataFrame, items: DataFrame, min_support: float,
                    top_n: int = 10) -> DataFrame:
    """Per age group, the categories and products with the highest lift (support >= minimum).

    Args:
        receipt_ages: `match_receipts` output.
        items: `receipt_items` output.
        min_support: smallest receipts / all_receipts for an item to be listed (stability).
        top_n: items per age group and kind.
    """
    matched = receipt_ages.where(F.col("age_group").isNotNull()).select("receipt_id", "age_group")
    bought = items.join(matched, "receipt_id")
    total = matched.agg(F.count("*").alias("all_receipts"))
    both = _item_table(matched, bought, "category", F.col("category"), F.col("category")).unionByName(
        _item_table(matched, bought, "product", F.col("product_id"), F.col("product_name"))
    ).crossJoin(total)
    scored = both.select(
        "age_group", "kind", "item_id", "item_name", "category", "receipts", "segment_receipts",
        "item_receipts", "all_receipts",
        _ratio("receipts", "all_receipts").alias("support"),
        _ratio("receipts", "segment_receipts").alias("confidence"),
        _ratio(_ratio("receipts", "segment_receipts"),
               _ratio("item_receipts", "all_receipts")).alias("lift"),
    ).where((F.col("support") >= F.lit(float(min_support))) & (F.col("lift") > 1))
    order = Window.partitionBy("age_group", "kind").orderBy(
        F.desc("lift"), F.desc("receipts"), F.asc("item_id")
    )
    return scored.withColumn("rank", F.row_number().over(order)).where(
        F.col("rank") <= top_n
    )
