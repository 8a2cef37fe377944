"""One run of a day at a time: a per-date lock on the data root, held by both daily jobs.

Two runs of the same date at once (a manual trigger while the scheduled run is running) would
delete each other's staged partitions and interleave their swaps. So the score and reports jobs
take `ROOT/_locks/date=D.lock` for the whole job; a second run of that date fails at once with
`DayLocked` naming the holder (job, pid, host, start time), and its retry succeeds once the first
run has ended. Other dates are not blocked.

The lock is `flock(2)` on that file: the kernel drops it when the holder dies, `kill -9`
included, so a crashed run never leaves a stale lock (the holder text it leaves behind is only
information, overwritten by the next holder). Local roots only (and NFSv4, where Linux maps flock
to byte-range locks): an `s3a://` root has no lock (S3 has no exclusive create that Hadoop
exposes), the job logs a warning, and one run per date must be ensured by the scheduler
(docs/data-contract.md, "Reruns").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from jobs.contract import is_local, normalise_root
from model.errors import UserError

log = logging.getLogger(__name__)

LOCKS_DIR = "_locks"


class DayLocked(UserError):
    """Another live process holds the day's lock."""


def lock_path(root: str, run_date: str) -> str:
    """`ROOT/_locks/date=D.lock`."""
    return f"{normalise_root(root)}/{LOCKS_DIR}/date={run_date}.lock"


def _local(path: str) -> Path:
    """A local path from a plain path or a `file:` URI."""
    for prefix in ("file://", "file:"):
        if path.startswith(prefix):
            return Path(path[len(prefix):])
    return Path(path)


@contextlib.contextmanager
def day_lock(root: str, run_date: str, job: str) -> Iterator[str | None]:
    """Hold day `run_date`'s lock on `root` for the duration of the block.

    Args:
        root: data root (local path or URI).
        run_date: YYYY-MM-DD.
        job: who holds it (shown to a run that finds the day locked).

    Yields:
        The lock file's path, or None for a root that cannot be locked (s3a).

    Raises:
        DayLocked: another live process holds the lock (the message names it).
    """
    if not is_local(normalise_root(root)):
        log.warning("no day lock on %s: one run per date must be ensured by the scheduler", root)
        yield None
        return
    path = _local(lock_path(root, run_date))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DayLocked(
                f"day {run_date} is being processed by another run ({_holder(fd)}; lock {path}): "
                "two runs of one day must not interleave their writes, retry when it has ended"
            ) from None
        holder = {"job": job, "pid": os.getpid(), "host": socket.gethostname(),
                  "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        log.info("holding %s", path)
        yield str(path)
        os.ftruncate(fd, 0)  # a lock file with text in it was left by a killed run
    finally:
        os.close(fd)  # releases the flock (a killed process releases it the same way)


def _holder(fd: int) -> str:
    """Who holds the lock, from the text the holder wrote (best effort)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"{info['job']}, pid {info['pid']} on {info['host']} since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
