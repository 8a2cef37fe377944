"""A small contract-shaped day-partition writer for tests and benchmarks (no Spark).

The Spark jobs write the real tables; this module lets the query layer's tests and benchmark write
contract-shaped partitions without Spark: `ROOT/reports/<table>/date=D/part-0.parquet`, the date
only in the directory name, written to a `_tmp-*` sibling and renamed in (like `jobs.daily.storage`).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.contract import SCHEMAS


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
