"""One read per image file: content hash plus a full decode check, in parallel, cached.

The cache maps a path to its result, valid while the file's size, mtime and inode are
unchanged; it lives in one JSON file per (images folder, decode limits) and is replaced
atomically, so an interrupted run never leaves a half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from model.serving.images import NOT_AN_IMAGE, UNREADABLE_IMAGE, ImageRejected, open_image

log = logging.getLogger(__name__)

MISSING_FILE = "missing_file"
# Bump when the checks change, so older cached verdicts are not trusted.
CHECK_VERSION = 1


@dataclass(frozen=True)
class FileCheck:
    """Outcome for one file: `reason` is None when the image decodes within the limits."""

    sha256: str | None
    reason: str | None
    detail: str | None


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _check_one(path: str, limits: dict[str, int]) -> tuple[list[int] | None, FileCheck]:
    """Stat, read, hash and decode one file; never raises."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, FileCheck(None, MISSING_FILE, "file not found")
    except OSError as exc:
        return None, FileCheck(None, UNREADABLE_IMAGE, f"cannot stat file ({exc.strerror})")
    if not stat.S_ISREG(st.st_mode):
        return None, FileCheck(None, NOT_AN_IMAGE, "not a regular file")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return None, FileCheck(None, UNREADABLE_IMAGE, f"cannot read file ({exc.strerror})")
    digest = hashlib.sha256(data).hexdigest()
    try:
        open_image(data, **limits)
    except ImageRejected as exc:
        return _stamp(st), FileCheck(digest, exc.reason, exc.detail)
    except Exception as exc:  # a hostile file must not stop the run
        return _stamp(st), FileCheck(digest, UNREADABLE_IMAGE, f"decoder error ({exc!r})")
    return _stamp(st), FileCheck(digest, None, None)


def _cache_file(cache_dir: Path, cache_key: str, limits: dict[str, int]) -> Path:
    key = json.dumps([CHECK_VERSION, cache_key, sorted(limits.items())])
    return cache_dir / f"file-checks-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _read_cache(path: Path) -> dict[str, list]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable file-check cache %s (%s)", path, exc)
        return {}


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _cached(entry: list | None, path: str) -> FileCheck | None:
    """The cached result for `path` if the file is unchanged since it was stored."""
    if entry is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if entry[0] != _stamp(st):
        return None
    return FileCheck(*entry[1:])


def check_files(
    paths: list[str],
    limits: dict[str, int],
    cache_dir: Path | None = None,
    cache_key: str = "",
    workers: int | None = None,
) -> dict[str, FileCheck]:
    """`FileCheck` for every path, decoded on a thread pool (PIL and hashlib release the GIL).

    Args:
        paths: absolute file paths, all inside one images folder.
        limits: `open_image` limits (min_side, max_side, max_pixels).
        cache_dir: where the per-file cache lives; None disables caching.
        cache_key: names the cache file together with `limits` (e.g. the images folder).
        workers: threads; default `os.cpu_count()`.
    """
    results: dict[str, FileCheck] = {}
    cache_path = None
    stored: dict[str, list] = {}
    if cache_dir is not None:
        cache_path = _cache_file(Path(cache_dir), cache_key, limits)
        stored = _read_cache(cache_path)
    stamps: dict[str, list[int] | None] = {}
    todo = []
    for path in paths:
        hit = _cached(stored.get(path), path)
        if hit is None:
            todo.append(path)
        else:
            results[path] = hit
            stamps[path] = stored[path][0]
    log.info("checking %d image files (%d from cache)", len(todo), len(paths) - len(todo))
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for path, (stamp, result) in zip(
            todo, pool.map(lambda p: _check_one(p, limits), todo), strict=True
        ):
            results[path] = result
            stamps[path] = stamp
    if cache_path is not None and todo:
        entries = {
            path: [stamps[path], r.sha256, r.reason, r.detail]
            for path, r in results.items()
            if stamps[path] is not None
        }
        _write_atomic(cache_path, json.dumps(entries))
    return results
