"""Photo minimisation: a day's photos are kept only where an auditor may need them.

Face photos are biometric personal data. Once a day's report tables are written and pass
`check-quality`, every landing photo of that day that is not tied to a flagged restricted sale
(`compliance_flags.photo_id`) is deleted; the flagged ones stay until retention deletes them
after `photo_retention_days`. The day's `_PHOTOS_MINIMISED` marker is written *before* the first
deletion, so a crash in between leaves a marked, half-minimised day that the next run finishes,
never a day with fewer photos and no record of why; a marked day is never scored again (its
photo_scores would lose the deleted photos), like a purged day.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass

import pyarrow.dataset as pads
import pyarrow.fs as pafs

from jobs.contract import (
    COMPLIANCE_FLAGS,
    MINIMISED_MARKER,
    PURGED_MARKER,
    landing_relpath,
    parse_date,
    partition_relpath,
)
from jobs.daily.pause_points import pause_point
from model.errors import UserError

log = logging.getLogger(__name__)

KEPT_REASON = "photo of a flagged restricted sale (compliance_flags), kept for the audit window"
DELETED_REASON = "not tied to a flagged restricted sale"


@dataclass
class Minimised:
    """What minimisation did (or had done) to one landing day; the marker's content."""

    run_date: str
    kept: int
    deleted: int
    keep_until: str
    kept_reason: str = KEPT_REASON
    deleted_reason: str = DELETED_REASON
    already: bool = False  # the day was minimised by an earlier run


def _photo_files(fs: pafs.FileSystem, photos: str) -> list[pafs.FileInfo]:
    if fs.get_file_info(photos).type == pafs.FileType.NotFound:
        return []
    return [f for f in fs.get_file_info(pafs.FileSelector(photos, recursive=True))
            if f.type == pafs.FileType.File]


def flagged_photo_ids(fs: pafs.FileSystem, base: str, run_date: str) -> set[str]:
    """Photo ids of the day's flagged restricted sales (the photos an auditor may open)."""
    path = f"{base}/{partition_relpath(COMPLIANCE_FLAGS, run_date)}"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise UserError(f"{path}: partition missing: the day's reports must be written before "
                        "its photos are minimised")
    table = pads.dataset(path, format="parquet", filesystem=fs).to_table(columns=["photo_id"])
    return {photo for photo in table.column(0).to_pylist() if photo}


def split_photos(files: list[str], flagged: set[str]) -> tuple[list[str], list[str]]:
    """`(kept, deleted)` paths: a file is kept when its name (less the extension) is flagged."""
    kept, deleted = [], []
    for path in files:
        name = path.rsplit("/", 1)[-1]
        (kept if name.rsplit(".", 1)[0] in flagged else deleted).append(path)
    return kept, deleted


def minimise_photos(root: str, run_date: str, retention_days: int) -> Minimised:
    """Delete day `run_date`'s landing photos that no flagged restricted sale points to.

    The caller has checked the day's reports (`check-quality` passed). Idempotent: a second
    run deletes what a crashed first run left and reports the first run's counts.
    """
    from jobs.daily.ops import _read_json, open_root

    day = parse_date(run_date)
    fs, base = open_root(root)
    landing = f"{base}/{landing_relpath(day.isoformat())}"
    marker = f"{landing}/{MINIMISED_MARKER}"
    if fs.get_file_info(f"{landing}/{PURGED_MARKER}").type != pafs.FileType.NotFound:
        raise UserError(f"{landing}: photos already deleted by retention, nothing to minimise")
    flagged = flagged_photo_ids(fs, base, day.isoformat())
    kept, deleted = split_photos([f.path for f in _photo_files(fs, f"{landing}/photos")],
                                 flagged)
    keep_until = (day + dt.timedelta(days=retention_days)).isoformat()
    if fs.get_file_info(marker).type != pafs.FileType.NotFound:
        done = _read_json(fs, marker)
        result = Minimised(day.isoformat(), int(done.get("kept", len(kept))),
                           int(done.get("deleted", 0)), str(done.get("keep_until", keep_until)),
                           already=True)
    else:
        result = Minimised(day.isoformat(), len(kept), len(deleted), keep_until)
        record = {k: v for k, v in asdict(result).items() if k != "already"}
        pause_point("minimise:marker")  # tests stop a run here (reports done, nothing deleted)
        with fs.open_output_stream(marker) as out:  # the record first, then the deletions
            out.write(json.dumps(record, sort_keys=True).encode("utf-8"))
    for number, path in enumerate(deleted):
        if number == 1:
            pause_point("minimise:deleting")  # tests stop a run here (a crash mid-way)
        fs.delete_file(path)
    if deleted and result.already:
        log.warning("finished minimising %s: %d photos a crashed run left", day, len(deleted))
    return result


def read_minimised(root: str, run_date: str) -> Minimised | None:
    """The day's minimisation record, or None when its photos were not minimised."""
    from jobs.daily.ops import _read_json, open_root

    fs, base = open_root(root)
    marker = f"{base}/{landing_relpath(parse_date(run_date).isoformat())}/{MINIMISED_MARKER}"
    if fs.get_file_info(marker).type == pafs.FileType.NotFound:
        return None
    done = _read_json(fs, marker)
    return Minimised(run_date, int(done.get("kept", 0)), int(done.get("deleted", 0)),
                     str(done.get("keep_until", "")), already=True)
