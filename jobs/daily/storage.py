"""Where things live under the data root, and atomic replacement of a table's day partition.

Layout (docs/data-contract.md): `ROOT/landing/date=D/...` in, `ROOT/reports/<table>/date=D/` out.
The root is a local path or an `s3a://` URI. File-system work goes through Hadoop's `FileSystem`
API in the Spark JVM, so one code path serves both (rename is atomic locally and on HDFS; on S3 it
is a copy, see the contract's "Reruns" section); a local partition is swapped by one atomic
directory exchange. Writers of a day hold its lock (`jobs.daily.run_lock`).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import uuid
from typing import TYPE_CHECKING

from jobs.contract import (
    ASIDE_PREFIX,
    COMPLETE_MARKER,
    MINIMISED_MARKER,
    PURGED_MARKER,
    STAGING_PREFIX,
    check_columns,
    is_local,
    landing_dir,
    partition_dir,
    table_dir,
)
from jobs.daily.pause_points import pause_point
from model.errors import UserError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

def _fs_path(spark: SparkSession, path: str):  # -> (FileSystem, Path) JVM objects
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def path_exists(spark: SparkSession, path: str) -> bool:
    """Does `path` (file or directory, local or s3a) exist?"""
    fs, hpath = _fs_path(spark, path)
    return bool(fs.exists(hpath))


def require_complete_day(spark: SparkSession, root: str, run_date: str) -> str:
    """The landing directory of day D, or `UserError` if its completion marker is absent."""
    day = landing_dir(root, run_date)
    if not path_exists(spark, f"{day}/{COMPLETE_MARKER}"):
        raise UserError(
            f"landing day {day} has no {COMPLETE_MARKER} marker: the day is missing or incomplete"
        )
    return day


def require_photos_kept(spark: SparkSession, root: str, run_date: str) -> None:
    """`UserError` if retention already deleted day `run_date`'s photos.

    Scoring such a day would find no photo files and replace its `photo_scores` with an empty
    day (every photo `missing_file`): the score job refuses it, whatever asked for the rerun.
    """
    day = landing_dir(root, run_date)
    if path_exists(spark, f"{day}/{PURGED_MARKER}"):
        raise UserError(
            f"landing day {day}: its photos were deleted by retention ({PURGED_MARKER}); "
            "scoring it again would empty its photo_scores, so its reports stay as they are"
        )
    if path_exists(spark, f"{day}/{MINIMISED_MARKER}"):
        raise UserError(
            f"landing day {day}: photo minimisation deleted its photos not tied to a flagged "
            f"sale ({MINIMISED_MARKER}); scoring it again would drop them from photo_scores, so "
            "its reports stay as they are"
        )


def _delete_leftovers(spark: SparkSession, table: str, prefix: str) -> None:
    """Remove `_tmp-D-*` / `_old-D-*` directories a crashed run of the same day left behind."""
    fs, pattern = _fs_path(spark, f"{table}/{prefix}*")
    for status in fs.globStatus(pattern) or []:
        log.warning("removing leftover %s", status.getPath().toString())
        fs.delete(status.getPath(), True)


def _rename(fs, source, target) -> bool:  # JVM FileSystem and Paths
    """Hadoop rename; False instead of an exception (a local FS raises when `source` is gone)."""
    try:
        return bool(fs.rename(source, target))
    except Exception as exc:  # py4j.protocol.Py4JJavaError
        log.error("rename %s -> %s failed: %s", source.toString(), target.toString(),
                  str(exc).splitlines()[0])
        return False


def _restore_aside(spark: SparkSession, base: str, run_date: str) -> None:
    """Put back a `date=D` partition that a run killed between its two renames left aside."""
    fs, final_path = _fs_path(spark, f"{base}/date={run_date}")
    if fs.exists(final_path):
        return
    _, pattern = _fs_path(spark, f"{base}/{ASIDE_PREFIX}{run_date}-*")
    aside = sorted((st.getPath() for st in fs.globStatus(pattern) or []), key=lambda p: p.getName())
    if aside and _rename(fs, aside[0], final_path):
        log.warning("restored %s from %s", final_path.toString(), aside[0].toString())


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _local_path(path: str) -> str:
    for prefix in ("file://", "file:"):
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


def _exchange(first: str, second: str) -> bool:
    """Swap two local directories in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`).

    False where the C library or the file system cannot (the caller falls back to two renames).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                 _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, f"could not rename {first} to {second}: {os.strerror(code)}")


def replace_partition(spark: SparkSession, staged: str, final: str) -> None:
    """Swap the fully written directory `staged` in as `final` (a `date=D` partition).

    Local roots: one atomic exchange of the two directories, then the old one (now at `staged`)
    is deleted, so at every moment `final` is the complete old or the complete new partition.
    Elsewhere (HDFS, s3a, a file system without exchange): old renamed aside, new renamed in, old
    deleted, through Hadoop FileSystem; for a moment there is no `final` (the next run restores
    it if the job dies there: `_restore_aside`).
    """
    table = final.rstrip("/").split("/")[-2]
    if is_local(final) and os.path.isdir(_local_path(final)):
        if _exchange(_local_path(staged), _local_path(final)):
            pause_point(f"swapped:{table}")
            shutil.rmtree(_local_path(staged))
            return
    fs, final_path = _fs_path(spark, final)
    _, staged_path = _fs_path(spark, staged)
    parent = final_path.getParent()
    aside = None
    if fs.exists(final_path):
        name = final_path.getName().replace("date=", "")
        aside = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(
            parent, f"{ASIDE_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
        )
        if not _rename(fs, final_path, aside):
            raise OSError(f"could not move {final} aside to {aside.toString()}")
    if not _rename(fs, staged_path, final_path):
        if aside is not None:  # put the old data back rather than leave the day empty
            _rename(fs, aside, final_path)
        raise OSError(f"could not rename {staged} to {final}")
    if aside is not None:
        fs.delete(aside, True)


def write_partition(
    df: DataFrame, root: str, table: str, run_date: str, *, files: int = 1
) -> str:
    """Write `df` as day `run_date` of report `table`, replacing that partition atomically.

    Args:
        df: rows of the day, without a `date` column (it lives in the directory name).
        root: data root.
        table: report table name (a key of `jobs.contract.SCHEMAS`; the columns must match).
        run_date: YYYY-MM-DD.
        files: number of Parquet files (coalesced; a day is small).

    Returns:
        The final partition path.
    """
    spark = df.sparkSession
    base = table_dir(root, table)
    final = partition_dir(root, table, run_date)
    check_columns(table, [(f.name, f.dataType.simpleString()) for f in df.schema.fields])
    # Leftovers of a killed run of this day (the day lock guarantees none is in flight).
    _restore_aside(spark, base, run_date)
    _delete_leftovers(spark, base, f"{STAGING_PREFIX}{run_date}-")
    _delete_leftovers(spark, base, f"{ASIDE_PREFIX}{run_date}-")
    staged = f"{base}/{STAGING_PREFIX}{run_date}-{uuid.uuid4().hex[:8]}"
    df.coalesce(files).write.mode("error").parquet(staged)
    pause_point(f"staged:{table}")
    replace_partition(spark, staged, final)
    pause_point(f"written:{table}")
    log.info("wrote %s", final)
    return final
