"""Atomic replacement of one partition directory on a local data root, without Spark.

For the small tables the light steps write with pyarrow (`age_drift`, the monthly rollups): the
partition is written to a `_tmp-*` sibling and swapped in with the same one-step directory
exchange the Spark jobs use (`jobs.daily.storage`), so a reader sees the whole old or the whole
new partition and a crash leaves only a `_tmp-*` directory, which readers ignore.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.contract import STAGING_PREFIX

# Row groups this small let a reader skip most of a store-sorted month file for one store.
ROW_GROUP_ROWS = 65_536


def replace_partition_dir(final: Path, table: pa.Table, extra: dict[str, str] | None = None
                          ) -> Path:
    """Make `final` (e.g. `.../age_drift/date=D`) hold `part-0.parquet` of `table` (+ `extra`).

    Args:
        final: the partition directory.
        table: rows, already cast to the table's contract schema.
        extra: small text files written beside the Parquet file (name -> content).
    """
    from jobs.daily.storage import _exchange  # one atomic rename exchange (Linux)

    final.parent.mkdir(parents=True, exist_ok=True)
    for leftover in final.parent.glob(f"{STAGING_PREFIX}{final.name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)  # a crashed earlier write
    staged = final.parent / f"{STAGING_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
    staged.mkdir()
    try:
        pq.write_table(table, staged / "part-0.parquet", row_group_size=ROW_GROUP_ROWS)
        for name, text in (extra or {}).items():
            (staged / name).write_text(text, encoding="utf-8")
        if final.exists() and _exchange(str(staged), str(final)):
            shutil.rmtree(staged)  # now the old partition
        else:
            if final.exists():
                shutil.rmtree(final)
            os.replace(staged, final)
    finally:
        if staged.exists():
            shutil.rmtree(staged)
    return final
