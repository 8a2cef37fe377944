"""The data contract in code: every table's name, columns and types, the path layout, the markers.

`docs/data-contract.md` explains each column; this module is what the code obeys. Writers check
what they write against `SCHEMAS` (`check_columns`), readers build paths with the functions below,
and a test compares every table the Spark jobs really write with this module and with the doc.

Layout of a data root (a local path or an `s3a://` URI):

    ROOT/landing/date=D/        photos/…, photos.csv, receipts.csv, receipt_lines.csv,
                                products.csv, then _COMPLETE (written last)
    ROOT/ground_truth/date=D/   simulator only: true ages, for tests and evaluation
    ROOT/reports/<table>/date=D/part-*.parquet   one partition per table and day
    ROOT/reports/<table>/_tmp-D-*, _old-D-*      a replacement in flight (never read)
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow as pa

from model.errors import UserError

# -- markers ---------------------------------------------------------------------------------------
COMPLETE_MARKER = "_COMPLETE"  # landing day fully written (JSON with the files' row counts)
PURGED_MARKER = "_PHOTOS_PURGED"  # retention deleted this landing day's photos (receipts stay)
STAGING_PREFIX = "_tmp-"  # a partition being written: `_tmp-D-<run>`
ASIDE_PREFIX = "_old-"  # the replaced partition, deleted once the new one is in: `_old-D-<run>`

# -- tables ----------------------------------------------------------------------------------------
_S, _I, _L, _D = pa.string(), pa.int32(), pa.int64(), pa.float64()
_TS = pa.timestamp("us", tz="UTC")

PHOTO_SCORES = "photo_scores"
PHOTO_QUARANTINE = "photo_quarantine"
RECEIPT_QUARANTINE = "receipt_quarantine"
PRODUCT_QUARANTINE = "product_quarantine"
RECEIPT_AGES = "receipt_ages"
SEGMENT_CATEGORY = "segment_category"
RECOMMENDATIONS = "recommendations"
COMPLIANCE = "compliance"
COMPLIANCE_FLAGS = "compliance_flags"
RUN_QUALITY = "run_quality"

# run_quality's count columns, and the identities they obey (total = part + part).
RUN_QUALITY_COUNTS = (
    "photos_in", "photos_scored", "photos_quarantined", "photos_matched", "photos_unmatched",
    "receipts_in", "receipts_valid", "receipts_quarantined", "receipts_matched",
    "receipts_unmatched", "lines_in", "lines_valid", "lines_quarantined",
    "products_in", "products_valid", "products_quarantined",
)
RUN_QUALITY_IDENTITIES = (
    ("photos_in", "photos_scored", "photos_quarantined"),
    ("photos_scored", "photos_matched", "photos_unmatched"),
    ("receipts_in", "receipts_valid", "receipts_quarantined"),
    ("receipts_valid", "receipts_matched", "receipts_unmatched"),
    ("lines_in", "lines_valid", "lines_quarantined"),
    ("products_in", "products_valid", "products_quarantined"),
)

# -- landing bounds --------------------------------------------------------------------------------
# Numbers no till or camera could produce are rejected (quarantined with the value seen), as are
# non-finite ones (NaN, Infinity): one such value poisons every sum it reaches. Inclusive bounds.
MAX_LANE_ID = 999  # lanes per store
MAX_QUANTITY = 9_999  # items on one receipt line
MAX_PRICE_RUB = 10_000_000.0  # unit price (0 allowed: free items, promotions)
MAX_TOTAL_RUB = 100_000_000.0  # receipt total

SCHEMAS: dict[str, pa.Schema] = {
    PHOTO_SCORES: pa.schema([
        ("photo_id", _S), ("store_id", _S), ("lane_id", _I), ("captured_at", _TS),
        ("age_pred_years", _D), ("age_group", _S), ("model_version", _S), ("model_run_id", _S),
        ("age_low", _D), ("age_high", _D), ("p_under_legal_age", _D),
        ("faces_found", _I), ("face_x", _I), ("face_y", _I), ("face_w", _I), ("face_h", _I),
        ("face_confidence", _D),
    ]),
    PHOTO_QUARANTINE: pa.schema([
        ("photo_id", _S), ("store_id", _S), ("lane_id", _I), ("captured_at", _TS),
        ("reason", _S), ("detail", _S),
    ]),
    RECEIPT_QUARANTINE: pa.schema([
        ("source_file", _S), ("line_no", _I), ("receipt_id", _S), ("product_id", _S),
        ("reason", _S), ("detail", _S),
    ]),
    PRODUCT_QUARANTINE: pa.schema([
        ("product_id", _S), ("name", _S), ("category", _S), ("age_restricted", _S),
        ("reason", _S), ("detail", _S),
    ]),
    RECEIPT_AGES: pa.schema([
        ("receipt_id", _S), ("store_id", _S), ("lane_id", _I), ("cashier_id", _S),
        ("closed_at", _TS), ("total_rub", _D), ("photo_id", _S), ("captured_at", _TS),
        ("time_diff_s", _D), ("age_pred_years", _D), ("age_group", _S), ("model_version", _S),
        ("p_under_legal_age", _D),
    ]),
    SEGMENT_CATEGORY: pa.schema([
        ("store_id", _S), ("age_group", _S), ("category", _S), ("receipts", _L), ("units", _L),
        ("revenue_rub", _D), ("segment_receipts", _L), ("segment_revenue_rub", _D),
        ("category_receipts", _L), ("all_receipts", _L), ("revenue_share", _D),
        ("support", _D), ("confidence", _D), ("lift", _D),
    ]),
    RECOMMENDATIONS: pa.schema([
        ("age_group", _S), ("kind", _S), ("item_id", _S), ("item_name", _S), ("category", _S),
        ("receipts", _L), ("segment_receipts", _L), ("item_receipts", _L),
        ("all_receipts", _L), ("support", _D), ("confidence", _D), ("lift", _D), ("rank", _I),
    ]),
    COMPLIANCE: pa.schema([
        ("store_id", _S), ("cashier_id", _S), ("receipts", _L), ("restricted_receipts", _L),
        ("with_photo", _L), ("flagged", _L), ("flag_rate", _D), ("no_photo", _L),
        ("challenge_age", _I), ("with_probability", _L), ("expected_minor_sales", _D),
    ]),
    COMPLIANCE_FLAGS: pa.schema([
        ("receipt_id", _S), ("store_id", _S), ("lane_id", _I), ("cashier_id", _S),
        ("closed_at", _TS), ("photo_id", _S), ("age_pred_years", _D), ("model_version", _S),
        ("restricted_units", _L), ("restricted_revenue_rub", _D), ("challenge_age", _I),
        ("p_under_legal_age", _D),
    ]),
    RUN_QUALITY: pa.schema([
        *[(name, _L) for name in RUN_QUALITY_COUNTS],
        ("match_rate", _D), ("no_face_rate", _D), ("median_face_px", _D),
        ("age_pred_p10", _D), ("age_pred_p50", _D), ("age_pred_p90", _D),
        ("age_group_counts", _S), ("model_version", _S), ("model_run_id", _S),
        ("match_window_s", _I),
        ("challenge_age", _I),
    ]),
}
TABLES: tuple[str, ...] = tuple(SCHEMAS)

# Spark's names for the Arrow types above (`DataType.simpleString()`).
_SPARK_TYPES = {_S: "string", _I: "int", _L: "bigint", _D: "double", _TS: "timestamp"}


def spark_columns(table: str) -> list[tuple[str, str]]:
    """`(column, Spark type)` pairs of `table`, in contract order."""
    return [(field.name, _SPARK_TYPES[field.type]) for field in SCHEMAS[table]]


def check_columns(table: str, columns: list[tuple[str, str]]) -> None:
    """Raise `ValueError` unless `columns` (name, Spark type) are exactly `table`'s contract.

    Called by every writer before a partition is written, so a job never publishes a table
    whose shape the readers (queries, report, dashboards) do not expect.
    """
    if table not in SCHEMAS:
        raise ValueError(f"table {table!r} is not in the data contract (jobs/contract.py)")
    expected = spark_columns(table)
    if list(columns) != expected:
        got, want = dict(columns), dict(expected)
        problems = [f"missing {name}" for name in want if name not in got]
        problems += [f"unexpected {name}" for name in got if name not in want]
        problems += [f"{name} is {got[name]}, contract says {want[name]}"
                     for name in want if name in got and got[name] != want[name]]
        if not problems:
            problems = ["columns out of contract order"]
        raise ValueError(f"table {table} does not match the data contract: {'; '.join(problems)}")


# -- dates -----------------------------------------------------------------------------------------
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(text: str) -> dt.date:
    """A real `YYYY-MM-DD` calendar date, or a `UserError` naming the bad value."""
    if not _DATE.match(text or ""):
        raise UserError(f"date {text!r} is not YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UserError(f"date {text!r} is not a calendar date") from None


def check_date(text: str) -> str:
    """`text` itself when it is a real `YYYY-MM-DD` date (see `parse_date`)."""
    parse_date(text)
    return text


# -- paths -----------------------------------------------------------------------------------------


def normalise_root(root: str | Path) -> str:
    """A URI-ish root: `s3a://...` kept, a local path made absolute."""
    text = str(root)
    if "://" in text:
        return text.rstrip("/")
    return str(Path(text).expanduser().resolve())


def is_local(root: str) -> bool:
    """True for plain paths and `file://` URIs."""
    return "://" not in root or root.startswith("file://")


def landing_relpath(run_date: str) -> str:
    """`landing/date=D`, relative to a data root (for readers with their own file system)."""
    return f"landing/date={run_date}"


def partition_relpath(table: str, run_date: str) -> str:
    """`reports/<table>/date=D`, relative to a data root."""
    return f"reports/{table}/date={run_date}"


def landing_dir(root: str, run_date: str) -> str:
    """`ROOT/landing/date=D`."""
    return f"{normalise_root(root)}/{landing_relpath(run_date)}"


def ground_truth_dir(root: str, run_date: str) -> str:
    """`ROOT/ground_truth/date=D` (simulator output for tests and evaluation only)."""
    return f"{normalise_root(root)}/ground_truth/date={run_date}"


def table_dir(root: str, table: str) -> str:
    """`ROOT/reports/<table>`."""
    return f"{normalise_root(root)}/reports/{table}"


def partition_dir(root: str, table: str, run_date: str) -> str:
    """`ROOT/reports/<table>/date=D`."""
    return f"{normalise_root(root)}/{partition_relpath(table, run_date)}"


def partition_files_glob(root: str, table: str) -> str:
    """Parquet files of every published day of `table` (in-flight `_tmp-*`/`_old-*` never match)."""
    return f"{table_dir(root, table)}/date=*/*.parquet"
