"""Validation of a labelled face set (`labels.csv` + `final_files/`).

`validate_dataset` checks every label row and every image once and returns a
`DatasetReport`: the usable rows, every rejected row with a stable reason code, and counts
that add up to the rows read. Checks run in this order and a row gets the first reason it
hits: malformed line, empty or unsafe file name, repeated file name, age, the file itself
(missing, not an image, unreadable, absurd dimensions), then byte-identical duplicates among
the rows still standing. The caller decides whether too few usable rows is fatal.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import posixpath
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from model.config import EVAL_BANDS, band_of
from model.data.file_checks import MISSING_FILE, check_files
from model.data.labels import IMAGES_DIR, MALFORMED_ROW, load_labels
from model.errors import UserError
from model.serving.images import ABSURD_DIMENSIONS, NOT_AN_IMAGE, UNREADABLE_IMAGE

__all__ = ["REASONS", "DatasetReport", "load_labels", "validate_dataset"]

log = logging.getLogger(__name__)

EMPTY_FILE_NAME = "empty_file_name"
UNSAFE_PATH = "unsafe_path"
DUPLICATE_ROW = "duplicate_row"
AGE_NOT_A_NUMBER = "age_not_a_number"
AGE_OUT_OF_RANGE = "age_out_of_range"
CONFLICTING_DUPLICATE = "conflicting_duplicate"
DUPLICATE_IMAGE = "duplicate_image"

# Every reason a row can be rejected for, in the order the checks run.
REASONS = (
    MALFORMED_ROW,
    EMPTY_FILE_NAME,
    UNSAFE_PATH,
    DUPLICATE_ROW,
    AGE_NOT_A_NUMBER,
    AGE_OUT_OF_RANGE,
    MISSING_FILE,
    NOT_AN_IMAGE,
    UNREADABLE_IMAGE,
    ABSURD_DIMENSIONS,
    CONFLICTING_DUPLICATE,
    DUPLICATE_IMAGE,
)
REJECTED_COLUMNS = ["row", "file_name", "reason", "detail"]
_DRIVE = re.compile(r"^[A-Za-z]:")  # a Windows drive letter makes a name absolute
_SEPARATORS = re.compile(r"[\\/]")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass
class DatasetReport:
    """What validation found; `usable` + `rejected` account for every data row."""

    faces_dir: Path
    usable: pd.DataFrame
    rejected: pd.DataFrame
    rows: int
    duplicate_groups: int
    conflicting_duplicate_groups: int
    fingerprint: str

    def summary(self) -> dict:
        """JSON-ready counts; `usable + sum(rejected.values()) == rows`."""
        counts = self.rejected["reason"].value_counts()
        bands = self.usable["real_age"].map(band_of).value_counts()
        return {
            "faces_dir": str(self.faces_dir),
            "rows": self.rows,
            "usable": len(self.usable),
            "rejected": {reason: int(counts.get(reason, 0)) for reason in REASONS},
            "duplicate_groups": self.duplicate_groups,
            "conflicting_duplicate_groups": self.conflicting_duplicate_groups,
            "usable_by_band": {name: int(bands.get(name, 0)) for name, _, _ in EVAL_BANDS},
            "fingerprint": self.fingerprint,
        }


def _name_problem(name: str, images_dir: str, images_root: str) -> tuple[str, str] | None:
    """Reason and detail when `name` cannot safely name a file inside the images folder."""
    if not name:
        return EMPTY_FILE_NAME, "file name is empty"
    if "\x00" in name:
        return UNSAFE_PATH, "file name contains a NUL byte"
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return UNSAFE_PATH, "absolute path"
    if ".." in _SEPARATORS.split(name):
        return UNSAFE_PATH, "'..' leaves the images folder"
    path = os.path.join(images_dir, name)
    if "/" not in name:  # fast path: a direct entry that is not a symlink stays inside
        try:
            if not stat.S_ISLNK(os.lstat(path).st_mode):
                return None
        except OSError:
            return None  # absent: the file check names it
    resolved = os.path.realpath(path)
    if not resolved.startswith(images_root + os.sep):
        return UNSAFE_PATH, f"symlink points outside the images folder (to {resolved})"
    return None


def _parse_age(text: str, min_age: int, max_age: int) -> tuple[float, tuple[str, str] | None]:
    """(age, problem); age is NaN unless the text is a plain decimal number."""
    if not _DECIMAL.fullmatch(text):  # also refuses nan, inf and Python's 1_000
        return math.nan, (AGE_NOT_A_NUMBER, f"real_age {text!r} is not a number")
    age = float(text)
    if not min_age <= age <= max_age:
        return age, (AGE_OUT_OF_RANGE, f"real_age {text} outside {min_age}..{max_age}")
    return age, None


def _check_rows(labels: pd.DataFrame, images_dir: Path, min_age: int, max_age: int) -> pd.DataFrame:
    """Name, repeat and age checks, row by row: `reason`, `detail` (None where fine), `age`."""
    folder, images_root = str(images_dir), os.path.realpath(images_dir)
    checks: list[tuple[str | None, str | None, float]] = []
    first_row: dict[str, int] = {}
    for row, name, text in zip(labels["row"], labels["file_name"], labels["real_age"], strict=True):
        age = math.nan
        problem = _name_problem(name, folder, images_root)
        if problem is None:
            key = posixpath.normpath(name)
            if key in first_row:
                problem = DUPLICATE_ROW, f"file name repeats row {first_row[key]}"
            else:
                first_row[key] = row
                age, problem = _parse_age(text, min_age, max_age)
        checks.append((*(problem or (None, None)), age))
    return pd.DataFrame(checks, columns=["reason", "detail", "age"], index=labels.index)


def _mark_duplicates(checked: pd.DataFrame) -> tuple[int, int]:
    """Set reason/detail on byte-identical copies; returns (groups, conflicting groups)."""
    standing = checked[checked["reason"].isna()]
    repeated = standing[standing.duplicated("sha256", keep=False)].sort_values("row")
    marks: dict[int, tuple[str, str]] = {}
    conflicting = 0
    for _, group in repeated.groupby("sha256", sort=False):
        rows = ", ".join(str(r) for r in group["row"])
        if group["age"].nunique() > 1:
            conflicting += 1
            ages = ", ".join(f"{a:g}" for a in group["age"])
            detail = f"identical image in rows {rows} with ages {ages}"
            marks.update((index, (CONFLICTING_DUPLICATE, detail)) for index in group.index)
        else:
            keep_row, keep_name = group["row"].iloc[0], group["file_name"].iloc[0]
            detail = f"identical to row {keep_row} ({keep_name}) with the same age"
            marks.update((index, (DUPLICATE_IMAGE, detail)) for index in group.index[1:])
    if marks:
        index = list(marks)
        checked.loc[index, "reason"] = [reason for reason, _ in marks.values()]
        checked.loc[index, "detail"] = [detail for _, detail in marks.values()]
    return repeated["sha256"].nunique(), conflicting


def dataset_fingerprint(usable: pd.DataFrame) -> str:
    """Stable hash of the usable set: file names, ages and content hashes, order-free."""
    lines = sorted(
        f"{name}\t{age!r}\t{sha}"
        for name, age, sha in zip(
            usable["file_name"], usable["real_age"], usable["sha256"], strict=True
        )
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def validate_dataset(
    faces_dir: Path,
    *,
    min_age: int = 1,
    max_age: int = 100,
    min_side: int = 32,
    max_side: int = 8000,
    max_pixels: int = 40_000_000,
    cache_dir: Path | None = None,
) -> DatasetReport:
    """Check every label row and image of `faces_dir`; see the module docstring.

    Per-file results (content hash, decode outcome) are cached under `cache_dir`, keyed by
    path, size, mtime and inode, so a rerun on an unchanged set reads no image.
    """
    started = time.perf_counter()
    faces_dir = Path(faces_dir)
    if not faces_dir.is_dir():
        raise UserError(f"{faces_dir}: face set folder not found")
    images_dir = faces_dir / IMAGES_DIR
    if not images_dir.is_dir():
        raise UserError(f"{images_dir}: images folder not found")
    labels, malformed = load_labels(faces_dir)

    checked = labels.join(_check_rows(labels, images_dir, min_age, max_age))
    checked["reason"] = checked["reason"].astype(object)
    checked["detail"] = checked["detail"].astype(object)
    absolute = str(images_dir.absolute())
    checked["path"] = [os.path.join(absolute, name) for name in checked["file_name"]]
    pending = checked["reason"].isna()
    limits = {"min_side": min_side, "max_side": max_side, "max_pixels": max_pixels}
    paths = sorted(set(checked.loc[pending, "path"]))
    results = check_files(paths, limits, cache_dir, cache_key=str(images_dir.resolve()))
    checked["sha256"] = [results[p].sha256 if p in results else None for p in checked["path"]]
    for index in checked.index[pending]:
        result = results[checked.at[index, "path"]]
        if result.reason is not None:
            checked.at[index, "reason"] = result.reason
            checked.at[index, "detail"] = result.detail
    duplicate_groups, conflicting_groups = _mark_duplicates(checked)

    ok = checked["reason"].isna()
    columns = ["row", "file_name", "real_age"]
    columns += ["gender"] if "gender" in labels.columns else []
    usable = checked.loc[ok, columns + ["path", "sha256"]].reset_index(drop=True)
    usable["real_age"] = checked.loc[ok, "age"].astype(float).to_numpy()
    parts = [checked.loc[~ok, REJECTED_COLUMNS]]
    if len(malformed):  # concatenating an empty frame would upset dtypes
        parts.append(malformed)
    rejected = pd.concat(parts, ignore_index=True).sort_values("row", ignore_index=True)
    report = DatasetReport(
        faces_dir=faces_dir,
        usable=usable,
        rejected=rejected,
        rows=len(labels) + len(malformed),
        duplicate_groups=int(duplicate_groups),
        conflicting_duplicate_groups=conflicting_groups,
        fingerprint=dataset_fingerprint(usable),
    )
    log.info(
        "validated %s: %d rows, %d usable, %d rejected in %.1f s",
        faces_dir,
        report.rows,
        len(usable),
        len(rejected),
        time.perf_counter() - started,
    )
    return report
