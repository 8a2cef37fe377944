"""A throw-away site for DAG runs: a small real face set (copied, never linked) and the environment
that points Airflow and the jobs at a temp home."""

from __future__ import annotations

import csv
import os
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


def site_env(home: Path, faces: Path, **extra: str) -> dict[str, str]:
    """This process's environment with Airflow, the data root, registry and caches under `home`.

    Variables scripts/airflow_env.sh derives itself (DAG folder, data-root Variable, API host)
    are removed so it derives them, as `make airflow` and the demo do.
    """
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home / "airflow"),
        "CHECKOUT_AGE_DATA_ROOT": str(home / "data"),
        "MODEL_REGISTRY": str(home / "registry"),
        "CHECKOUT_AGE_CACHE_DIR": str(home / "cache"),
        "FACES_DIR": str(faces),
        "AIRFLOW_VAR_CHECKOUT_AGE_FACES_DIR": str(faces),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }
    for name in ("AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW_VAR_CHECKOUT_AGE_DATA_ROOT",
                 "AIRFLOW__API__HOST", "AIRFLOW_HOST"):
        env.pop(name, None)
    return env
