"""Decoded-image cache: uint8 arrays at the training size, so epochs never decode JPEGs again.

Layout under `cache_dir`, keyed by the dataset fingerprint and the image size:
`images-{fingerprint[:16]}-{size}.npy` (N, size, size, 3) plus `...index.json` naming each
row (file name and content hash). Files are written under a temporary name and renamed, and
the index is written last, so a crash never leaves a cache that looks complete. Arrays are
memory-mapped on load (read-only), so the 21.7k x 160 px set (1.6 GB) is not copied.
A rebuild copies every image already decoded at this size in another cache (matched by
content hash) and decodes only the rest, in parallel, with `decode_face`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from model.errors import UserError
from model.serving.images import ImageRejected, decode_face

log = logging.getLogger(__name__)

_COPY_CHUNK = 1024  # rows copied from an older cache per step, to bound memory


def cache_files(cache_dir: Path, fingerprint: str, size: int) -> tuple[Path, Path]:
    """(array file, index file) for one dataset fingerprint and image size."""
    stem = f"images-{fingerprint[:16]}-{size}"
    return Path(cache_dir) / f"{stem}.npy", Path(cache_dir) / f"{stem}.index.json"


def _read_index(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable image-cache index %s (%s)", path, exc)
        return None


def _open_cached(array_path: Path, index: dict | None, size: int) -> np.ndarray | None:
    """The memory-mapped array if it matches its index, else None."""
    if index is None:
        return None
    try:
        array = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if array.shape != (len(index["sha256"]), size, size, 3) or array.dtype != np.uint8:
        return None
    return array


def _positions(index: dict, sha256: list[str]) -> np.ndarray | None:
    """Row of each wanted hash in a cache, or None when the cache lacks one."""
    where = {sha: i for i, sha in enumerate(index["sha256"])}
    try:
        return np.fromiter((where[sha] for sha in sha256), dtype=np.int64, count=len(sha256))
    except KeyError:
        return None


def _decode_one(path: str, sha256: str, size: int) -> np.ndarray:
    """Decode one image, checking it is still the file validation saw."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read image ({exc.strerror}); validate again") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise UserError(f"{path}: file changed since validation; validate the face set again")
    try:
        return decode_face(data, size)
    except ImageRejected as exc:
        raise UserError(f"{path}: {exc}; validate the face set again") from None


def _reuse(target: np.ndarray, sha256: list[str], cache_dir: Path, size: int) -> np.ndarray:
    """Copy rows decoded at `size` in existing caches; returns a mask of rows filled."""
    filled = np.zeros(len(sha256), dtype=bool)
    wanted: dict[str, list[int]] = {}
    for row, sha in enumerate(sha256):
        wanted.setdefault(sha, []).append(row)
    for index_path in sorted(Path(cache_dir).glob(f"images-*-{size}.index.json")):
        index = _read_index(index_path)
        source = _open_cached(
            index_path.with_name(index_path.name[: -len(".index.json")] + ".npy"), index, size
        )
        if source is None:
            continue
        pairs = [
            (row, old)
            for old, sha in enumerate(index["sha256"])
            for row in wanted.get(sha, ())
            if not filled[row]
        ]
        for start in range(0, len(pairs), _COPY_CHUNK):
            rows, olds = zip(*pairs[start : start + _COPY_CHUNK], strict=True)
            target[list(rows)] = source[list(olds)]
            filled[list(rows)] = True
    return filled


def _prune_superseded(cache_dir: Path, keep: Path, sha256: list[str], size: int) -> None:
    """Delete other caches at this size whose every image is in the new one."""
    have = set(sha256)
    for index_path in Path(cache_dir).glob(f"images-*-{size}.index.json"):
        if index_path == keep:
            continue
        index = _read_index(index_path)
        if index is not None and set(index["sha256"]) <= have:
            index_path.unlink(missing_ok=True)
            index_path.with_name(index_path.name[: -len(".index.json")] + ".npy").unlink(
                missing_ok=True
            )
            log.info("removed superseded image cache %s", index_path.name)


def _decode_into(
    target: np.ndarray,
    rows: np.ndarray,
    paths: list[str],
    sha256: list[str],
    size: int,
    workers: int | None,
) -> None:
    """Decode `rows` into `target` on a thread pool (PIL decodes without holding the GIL)."""

    def fill(row: int) -> None:
        if paths[row] is None:  # a cached row whose cache vanished mid-build
            raise UserError(f"image cache changed while extending it; retry ({sha256[row]})")
        target[row] = _decode_one(paths[row], sha256[row], size)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(fill, rows))


def build_cache(
    usable: pd.DataFrame,
    size: int,
    cache_dir: Path,
    fingerprint: str,
    workers: int | None = None,
) -> None:
    """Write the cache for `usable` (rows in its order), reusing older caches at `size`."""
    started = time.perf_counter()
    array_path, index_path = cache_files(cache_dir, fingerprint, size)
    array_path.parent.mkdir(parents=True, exist_ok=True)
    sha256 = list(usable["sha256"])
    paths = list(usable["path"])
    temp = array_path.with_name(f"{array_path.name}.tmp-{os.getpid()}")
    try:
        target = np.lib.format.open_memmap(
            temp, mode="w+", dtype=np.uint8, shape=(len(sha256), size, size, 3)
        )
        filled = _reuse(target, sha256, cache_dir, size)
        missing = np.flatnonzero(~filled)
        _decode_into(target, missing, paths, sha256, size, workers)
        target.flush()
        del target
        os.replace(temp, array_path)
    finally:
        temp.unlink(missing_ok=True)
    index = {
        "fingerprint": fingerprint,
        "size": size,
        "file_names": list(usable["file_name"]),
        "sha256": sha256,
    }
    temp_index = index_path.with_name(f"{index_path.name}.tmp-{os.getpid()}")
    temp_index.write_text(json.dumps(index))
    os.replace(temp_index, index_path)
    _prune_superseded(cache_dir, index_path, sha256, size)
    log.info(
        "image cache %s: %d images (%d reused, %d decoded) in %.1f s",
        array_path.name,
        len(sha256),
        int(filled.sum()),
        len(missing),
        time.perf_counter() - started,
    )


def _with_cached_rows(index: dict, usable: pd.DataFrame) -> pd.DataFrame:
    """Rows already cached (no path needed: they are copied) followed by `usable`'s new ones."""
    cached = pd.DataFrame(
        {"file_name": index["file_names"], "path": None, "sha256": index["sha256"]}
    )
    new = usable.loc[~usable["sha256"].isin(set(index["sha256"])), list(cached.columns)]
    return pd.concat([cached, new], ignore_index=True)


def load_images(usable: pd.DataFrame, size: int, cache_dir: Path, fingerprint: str) -> np.ndarray:
    """uint8 (N, size, size, 3) images for `usable`'s rows (`path`, `sha256`), in its order.

    Built on first use; a later request with images the cache lacks (another subset of the
    same dataset) extends it, decoding only those. When `usable` is exactly the cached row
    order the result is the read-only memory map itself; otherwise rows are gathered into
    a new array.
    """
    sha256 = list(usable["sha256"])
    if not sha256:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    array_path, index_path = cache_files(cache_dir, fingerprint, size)
    for attempt in range(2):
        index = _read_index(index_path)
        array = _open_cached(array_path, index, size)
        if array is not None:
            if index["sha256"] == sha256:
                return array
            positions = _positions(index, sha256)
            if positions is not None:
                return array[positions]
        if attempt == 0:
            rows = usable if array is None else _with_cached_rows(index, usable)
            build_cache(rows, size, cache_dir, fingerprint)
    raise UserError(f"{array_path}: image cache could not be built")  # pragma: no cover
