"""Operations on a day's data: is it landed, do its counts add up, which old photos must go.

Used by the daily DAG's sensor, data-quality and retention tasks (through `jobs.cli.ops`). No Spark:
these read the small `run_quality` row, a few Parquet columns and the landing directory listing with
pyarrow, whose file systems cover a local data root and `s3a://` alike. Dates are the run's logical
date, never the wall clock, so a rerun or a backfill does exactly what the original run did.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.dataset as pads
import pyarrow.fs as pafs

from jobs.contract import (
    COMPLETE_MARKER,
    PHOTO_QUARANTINE,
    PHOTO_SCORES,
    PRODUCT_QUARANTINE,
    PURGED_MARKER,
    RECEIPT_AGES,
    RECEIPT_QUARANTINE,
    RUN_QUALITY,
    RUN_QUALITY_IDENTITIES,
    landing_relpath,
    parse_date,
    partition_relpath,
)
from model.config import Settings
from model.errors import UserError

log = logging.getLogger(__name__)



# -- file systems ---------------------------------------------------------------------------------


def open_root(root: str) -> tuple[pafs.FileSystem, str]:
    """The file system and base path of a data root (local path, `s3a://` or `s3://` URI)."""
    if root.startswith("s3a://"):
        root = "s3://" + root[len("s3a://") :]
    if "://" in root:
        fs, path = pafs.FileSystem.from_uri(root)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), str(Path(root).resolve())


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _read_json(fs: pafs.FileSystem, path: str) -> dict:
    with fs.open_input_stream(path) as stream:
        raw = stream.read().decode("utf-8")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object")
    return value


# -- landing ---------------------------------------------------------------------------------------


def landing_ready(root: str, run_date: str) -> bool:
    """True when the day's `_COMPLETE` marker exists; False while it has not landed yet.

    Raises UserError when the day can never be processed again: retention already deleted its photos
    (rerunning it would replace good reports with empty ones).
    """
    fs, base = open_root(root)
    day = f"{base}/{landing_relpath(parse_date(run_date).isoformat())}"
    if _exists(fs, f"{day}/{PURGED_MARKER}"):
        purge = _read_json(fs, f"{day}/{PURGED_MARKER}")
        raise UserError(
            f"{day}: photos were deleted by retention (run date {purge.get('run_date')}); "
            "its reports stay as they are and the day cannot be scored again"
        )
    return _exists(fs, f"{day}/{COMPLETE_MARKER}")


# -- data quality ----------------------------------------------------------------------------------


# Row counts a landing `_COMPLETE` marker carries (docs/data-contract.md).
_MARKER_COUNTS = ("products", "receipts", "receipt_lines", "photos", "photo_files")


@dataclass
class QualityResult:
    """Outcome of `check_quality`: `problems` is empty when the day passes."""

    run_date: str
    run_quality: dict
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def find_quality_problems(
    quality: dict,
    table_counts: dict[str, int],
    marker: dict | None,
    min_match_rate: float,
    model_versions: set[str],
    expected_model: str | None = None,
    max_no_face_rate: float = Settings.max_no_face_rate,
) -> list[str]:
    """Every reason the day's figures are not trustworthy, as short sentences (empty when fine).

    Args:
        quality: the day's `run_quality` row.
        table_counts: rows actually written: photo_scores, photo_quarantine, receipt_ages,
            receipts_matched (receipt_ages rows with a photo), receipt_quarantine_receipts,
            receipt_quarantine_lines, product_quarantine.
        marker: the landing `_COMPLETE` JSON (row counts of the landing files), if present.
        min_match_rate: floor for `receipts_matched / receipts_valid`.
        model_versions: distinct `model_version` values in `photo_scores`.
        expected_model: the version the run resolved before scoring, if known.
        max_no_face_rate: ceiling for the share of frames without a face (Settings).
    """
    return [
        *_identity_problems(quality),
        *_table_count_problems(quality, table_counts),
        *_landing_problems(quality, marker),
        *_match_rate_problems(quality, min_match_rate),
        *_model_problems(quality, model_versions, expected_model),
        *_no_face_problems(quality, max_no_face_rate),
    ]


def _no_face_problems(quality: dict, max_no_face_rate: float) -> list[str]:
    """A camera that sees no face in most frames (pointing at the floor, covered, dark)."""
    rate = quality.get("no_face_rate")
    if rate is not None and rate > max_no_face_rate:
        return [f"no face found in {rate:.1%} of the day's frames (more than "
                f"{max_no_face_rate:.0%}): is a camera pointing away from the till?"]
    return []


def _identity_problems(quality: dict) -> list[str]:
    """`total = part + part` for every identity of the contract (a NULL count is a problem too)."""
    problems = []
    for total, part_a, part_b in RUN_QUALITY_IDENTITIES:
        values = (quality.get(total), quality.get(part_a), quality.get(part_b))
        if None in values or values[0] != values[1] + values[2]:
            problems.append(f"{total} {values[0]} != {part_a} {values[1]} + {part_b} {values[2]}")
    return problems


def _table_count_problems(quality: dict, table_counts: dict[str, int]) -> list[str]:
    """run_quality's counts against the rows the report tables really hold."""
    written = {
        "photos_scored": table_counts[PHOTO_SCORES],
        "photos_quarantined": table_counts[PHOTO_QUARANTINE],
        "receipts_valid": table_counts[RECEIPT_AGES],
        "receipts_matched": table_counts["receipts_matched"],
        "receipts_quarantined": table_counts["receipt_quarantine_receipts"],
        "lines_quarantined": table_counts["receipt_quarantine_lines"],
        "products_quarantined": table_counts[PRODUCT_QUARANTINE],
    }
    return [
        f"run_quality says {column} {quality.get(column)} but the tables hold {rows}"
        for column, rows in written.items() if quality.get(column) != rows
    ]


def _landing_problems(quality: dict, marker: dict | None) -> list[str]:
    """run_quality's input counts against the row counts the landing `_COMPLETE` marker states."""
    if marker is None:
        return []
    problems = _marker_value_problems(marker)
    if problems:
        return problems
    for column, key in (("receipts_in", "receipts"), ("lines_in", "receipt_lines"),
                        ("products_in", "products")):
        if key in marker and quality.get(column) != marker[key]:
            problems.append(f"{column} {quality.get(column)} != {marker[key]} rows landed")
    low, high = marker.get("photos"), None
    if low is not None and "photo_files" in marker:
        high = low + marker["photo_files"]
    if low is not None and quality["photos_in"] < low:
        problems.append(f"photos_in {quality['photos_in']} < {low} photo rows landed")
    if high is not None and quality["photos_in"] > high:
        problems.append(f"photos_in {quality['photos_in']} > {high} photo rows + files landed")
    return problems


def _marker_value_problems(marker: dict) -> list[str]:
    """The marker's row counts must be whole numbers >= 0 (JSON allows NaN, 1e999, -3, "7")."""
    return [
        f"{COMPLETE_MARKER} {key} {value!r} is not a row count"
        for key, value in marker.items()
        if key in _MARKER_COUNTS and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0)
    ]


def _model_problems(quality: dict, model_versions: set[str],
                    expected_model: str | None) -> list[str]:
    """One model scored the day, run_quality names it, and it is the version the run pinned."""
    problems = []
    if len(model_versions) > 1:
        problems.append(f"photo_scores mixes model versions {sorted(model_versions)}")
    if model_versions and quality.get("model_version") not in model_versions:
        problems.append(
            f"run_quality model_version {quality.get('model_version')} is not the one that scored "
            f"the photos ({sorted(model_versions)[0]})"
        )
    if expected_model and quality.get("model_version") not in (None, expected_model):
        problems.append(
            f"scored with model {quality.get('model_version')}, the run resolved {expected_model}"
        )
    return problems


def _match_rate_problems(quality: dict, min_match_rate: float) -> list[str]:
    valid, matched, rate = quality["receipts_valid"], quality["receipts_matched"], quality["match_rate"]
    if valid == 0:
        return ["no valid receipts that day"]
    if rate is None or abs(rate - matched / valid) > 1e-9:
        return [f"match_rate {rate} != receipts_matched / receipts_valid ({matched}/{valid})"]
    if rate < min_match_rate:
        return [
            f"match rate {rate:.3f} ({matched}/{valid} receipts) is below the floor {min_match_rate:.3f}"
        ]
    return []


def check_quality(
    root: str, run_date: str, min_match_rate: float, expected_model: str | None = None,
    max_no_face_rate: float = Settings.max_no_face_rate,
) -> QualityResult:
    """Read the day's `run_quality` row, the report tables and the landing marker, and judge them."""
    fs, base = open_root(root)
    day = parse_date(run_date).isoformat()
    rows = _partition(fs, base, RUN_QUALITY, day).to_table().to_pylist()
    if len(rows) != 1:
        raise UserError(f"{base}/{partition_relpath(RUN_QUALITY, day)}: expected 1 row, found {len(rows)}")
    quality = rows[0]
    scores = _partition(fs, base, PHOTO_SCORES, day)
    versions = {v for v in scores.to_table(columns=["model_version"]).column(0).to_pylist() if v}
    receipts = _partition(fs, base, RECEIPT_AGES, day)
    quarantine = _partition(fs, base, RECEIPT_QUARANTINE, day)
    products = _partition(fs, base, PRODUCT_QUARANTINE, day)
    source_files = quarantine.to_table(columns=["source_file"]).column(0).to_pylist()
    counts = {
        PHOTO_SCORES: scores.count_rows(),
        PHOTO_QUARANTINE: _partition(fs, base, PHOTO_QUARANTINE, day).count_rows(),
        RECEIPT_AGES: receipts.count_rows(),
        "receipts_matched": receipts.count_rows(filter=pads.field("photo_id").is_valid()),
        "receipt_quarantine_receipts": source_files.count("receipts.csv"),
        "receipt_quarantine_lines": source_files.count("receipt_lines.csv"),
        PRODUCT_QUARANTINE: products.count_rows(),
    }
    marker_path = f"{base}/{landing_relpath(day)}/{COMPLETE_MARKER}"
    marker = _read_json(fs, marker_path) if _exists(fs, marker_path) else None
    problems = find_quality_problems(
        quality, counts, marker, min_match_rate, versions, expected_model, max_no_face_rate
    )
    return QualityResult(day, quality, problems)


def _partition(fs: pafs.FileSystem, base: str, table: str, day: str) -> pads.Dataset:
    path = f"{base}/{partition_relpath(table, day)}"
    if not _exists(fs, path):
        raise UserError(f"{path}: partition missing (did the score and reports jobs run for {day}?)")
    return pads.dataset(path, format="parquet", filesystem=fs)


# -- retention -------------------------------------------------------------------------------------


@dataclass
class PurgedDay:
    """Photos deleted from one landing day."""

    date: str
    files: int
    had_reports: bool


def purge_old_photos(root: str, run_date: str, keep_days: int) -> tuple[str, list[PurgedDay]]:
    """Delete the landing photos of every day older than `keep_days` before `run_date`.

    A day strictly before `run_date - keep_days` loses its `photos/` folder; its CSV files stay and a
    `_PHOTOS_PURGED` marker records the deletion. Days already purged are skipped, so a rerun deletes
    nothing more. Returns the cut-off date (the oldest day kept) and what was deleted.
    """
    if keep_days < 0:
        raise UserError(f"retention days must be >= 0, got {keep_days}")
    cutoff = parse_date(run_date) - dt.timedelta(days=keep_days)
    fs, base = open_root(root)
    landing = f"{base}/landing"
    if not _exists(fs, landing):
        return cutoff.isoformat(), []
    purged = []
    for info in fs.get_file_info(pafs.FileSelector(landing)):
        day = _day_of(info)
        if day is None or day >= cutoff or not _exists(fs, f"{info.path}/photos"):
            continue
        photos = f"{info.path}/photos"
        files = [
            f for f in fs.get_file_info(pafs.FileSelector(photos, recursive=True))
            if f.type == pafs.FileType.File
        ]
        had_reports = _exists(fs, f"{base}/{partition_relpath(RUN_QUALITY, day.isoformat())}")
        if not had_reports:
            log.warning("deleting photos of %s, which was never scored", day)
        marker = json.dumps({"run_date": run_date, "keep_days": keep_days, "files": len(files)})
        # Marker first: a crash between the two steps leaves a day marked and half deleted, which
        # the next run finishes, never a day with fewer photos and no record of why.
        if not _exists(fs, f"{info.path}/{PURGED_MARKER}"):
            with fs.open_output_stream(f"{info.path}/{PURGED_MARKER}") as out:
                out.write(marker.encode("utf-8"))
        fs.delete_dir(photos)
        purged.append(PurgedDay(day.isoformat(), len(files), had_reports))
    return cutoff.isoformat(), sorted(purged, key=lambda p: p.date)


def _day_of(info: pafs.FileInfo) -> dt.date | None:
    if info.type != pafs.FileType.Directory or not info.base_name.startswith("date="):
        return None
    try:
        return dt.date.fromisoformat(info.base_name[len("date=") :])
    except ValueError:
        log.warning("ignoring landing folder with a bad date: %s", info.path)
        return None
