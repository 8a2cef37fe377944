"""Arrow schemas of the report tables (docs/data-contract.md) and a small day-partition writer.

The Spark jobs write the real tables; this module lets the query layer's tests and benchmark write
contract-shaped partitions without Spark: `ROOT/reports/<table>/date=D/part-0.parquet`, the date
only in the directory name, written to a `_tmp-*` sibling and renamed in (like `jobs.storage`).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_S, _I, _L, _D = pa.string(), pa.int32(), pa.int64(), pa.float64()
_TS = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "photo_scores": pa.schema([
        ("photo_id", _S), ("store_id", _S), ("lane_id", _I), ("captured_at", _TS),
        ("age_pred_years", _D), ("age_group", _S), ("model_version", _S),
    ]),
    "photo_quarantine": pa.schema([
        ("photo_id", _S), ("store_id", _S), ("lane_id", _I), ("captured_at", _TS),
        ("reason", _S), ("detail", _S),
    ]),
    "receipt_quarantine": pa.schema([
        ("source_file", _S), ("line_no", _I), ("receipt_id", _S), ("product_id", _S),
        ("reason", _S), ("detail", _S),
    ]),
    "receipt_ages": pa.schema([
        ("receipt_id", _S), ("store_id", _S), ("lane_id", _I), ("cashier_id", _S),
        ("closed_at", _TS), ("total_rub", _D), ("photo_id", _S), ("captured_at", _TS),
        ("time_diff_s", _D), ("age_pred_years", _D), ("age_group", _S), ("model_version", _S),
    ]),
    "segment_category": pa.schema([
        ("store_id", _S), ("age_group", _S), ("category", _S), ("receipts", _L), ("units", _L),
        ("revenue_rub", _D), ("segment_receipts", _L), ("segment_revenue_rub", _D),
        ("category_receipts", _L), ("all_receipts", _L), ("revenue_share", _D),
        ("support", _D), ("confidence", _D), ("lift", _D),
    ]),
    "recommendations": pa.schema([
        ("age_group", _S), ("kind", _S), ("item_id", _S), ("item_name", _S), ("category", _S),
        ("receipts", _L), ("segment_receipts", _L), ("item_receipts", _L),
        ("all_receipts", _L), ("support", _D), ("confidence", _D), ("lift", _D), ("rank", _I),
    ]),
    "compliance": pa.schema([
        ("store_id", _S), ("cashier_id", _S), ("receipts", _L), ("restricted_receipts", _L),
        ("with_photo", _L), ("flagged", _L), ("flag_rate", _D), ("no_photo", _L),
        ("challenge_age", _I),
    ]),
    "compliance_flags": pa.schema([
        ("receipt_id", _S), ("store_id", _S), ("lane_id", _I), ("cashier_id", _S),
        ("closed_at", _TS), ("photo_id", _S), ("age_pred_years", _D), ("model_version", _S),
        ("restricted_units", _L), ("restricted_revenue_rub", _D), ("challenge_age", _I),
    ]),
    "run_quality": pa.schema([
        *[(name, _L) for name in (
            "photos_in", "photos_scored", "photos_quarantined", "photos_matched",
            "photos_unmatched", "receipts_in", "receipts_valid", "receipts_quarantined",
            "receipts_matched", "receipts_unmatched", "lines_in", "lines_valid",
            "lines_quarantined",
        )],
        ("match_rate", _D), ("age_pred_p10", _D), ("age_pred_p50", _D), ("age_pred_p90", _D),
        ("age_group_counts", _S), ("model_version", _S), ("match_window_s", _I),
        ("challenge_age", _I),
    ]),
}


def ratio(numerator: float, denominator: float) -> float | None:
    """`numerator / denominator`, None (NULL) for a zero denominator, as the contract says."""
    return numerator / denominator if denominator else None


def segment_row(store_id: str, age_group: str, category: str, receipts: int, units: int,
                revenue_rub: float, segment_receipts: int, segment_revenue_rub: float,
                category_receipts: int, all_receipts: int) -> dict[str, Any]:
    """A `segment_category` row with its ratio columns derived from the counts."""
    confidence = ratio(receipts, segment_receipts)
    base_rate = ratio(category_receipts, all_receipts)
    return {
        "store_id": store_id, "age_group": age_group, "category": category,
        "receipts": receipts, "units": units, "revenue_rub": revenue_rub,
        "segment_receipts": segment_receipts, "segment_revenue_rub": segment_revenue_rub,
        "category_receipts": category_receipts, "all_receipts": all_receipts,
        "revenue_share": ratio(revenue_rub, segment_revenue_rub),
        "support": ratio(receipts, all_receipts), "confidence": confidence,
        "lift": ratio(confidence, base_rate) if confidence is not None and base_rate else None,
    }


def write_day(root: str | Path, table: str, run_date: str,
              rows: list[dict[str, Any]] | pa.Table) -> Path:
    """Write `rows` as `ROOT/reports/<table>/date=<run_date>/part-0.parquet`, replacing the day.

    Args:
        root: local data root.
        table: a key of SCHEMAS.
        run_date: YYYY-MM-DD (directory name only; no `date` column is written).
        rows: records (missing keys are NULL) or an Arrow table with the table's schema.
    """
    schema = SCHEMAS[table]
    data = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
    base = Path(root) / "reports" / table
    final = base / f"date={run_date}"
    staged = base / f"_tmp-{run_date}-{uuid.uuid4().hex[:8]}"
    staged.mkdir(parents=True)
    pq.write_table(data.cast(schema), staged / "part-0.parquet")
    aside = None
    if final.exists():
        aside = base / f"_old-{run_date}-{uuid.uuid4().hex[:8]}"
        os.replace(final, aside)
    os.replace(staged, final)
    if aside is not None:
        shutil.rmtree(aside)
    return final
