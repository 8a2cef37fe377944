"""A small real face set for DAG runs: faces spread evenly over the ages, copied (never linked)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path


def copy_small_faces(faces_dir: Path, target: Path, count: int) -> Path:
    """Copy `count` faces of `faces_dir`, evenly spread over the age-sorted labels, to `target`.

    Writes `target/labels.csv` and `target/final_files/`; returns `target`.
    """
    (target / "final_files").mkdir(parents=True)
    with open(faces_dir / "labels.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["real_age"].isdigit()]
    rows.sort(key=lambda r: (int(r["real_age"]), r["file_name"]))
    picked = [rows[i * (len(rows) - 1) // (count - 1)] for i in range(count)]
    for row in picked:
        shutil.copy(faces_dir / "final_files" / row["file_name"], target / "final_files")
    with open(target / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(picked[0]))
        writer.writeheader()
        writer.writerows(picked)
    return target
