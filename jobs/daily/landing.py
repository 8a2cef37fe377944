"""Writing a simulated day into the landing zone (local data roots only), marker last.

Layout and formats: docs/data-contract.md. Photo files are the face set's JPEG bytes, copied,
or for a frames day checkout frames rendered from the day's plan (`jobs.simulator.frames`);
the few deliberately corrupt ones are truncated, replaced by garbage or left empty.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.contract import COMPLETE_MARKER, ground_truth_dir, is_local, landing_dir
from jobs.simulator.frames import frame_faces, render_frame
from jobs.simulator.simulate import SimulatedDay
from model.errors import UserError

log = logging.getLogger(__name__)


def load_test_faces(faces_dir: Path, cache_dir: Path | None, *, min_age: int = 1,
                    max_age: int = 100) -> pd.DataFrame:
    """The face set's test split (validated usable rows only): the simulated customers' faces."""
    from model.data.dataset import validate_dataset
    from model.data.split import assign_splits

    report = validate_dataset(faces_dir, min_age=min_age, max_age=max_age, cache_dir=cache_dir)
    usable = assign_splits(report.usable)
    test = usable[usable["split"] == "test"].reset_index(drop=True)
    if test.empty:
        raise UserError(f"{faces_dir}: the face set's test split is empty")
    return test


def _corrupt(data: bytes, kind: str, seed: int) -> bytes:
    if kind == "truncated":
        return data[: max(1, len(data) * 2 // 5)]
    if kind == "garbage":
        return np.random.default_rng(seed).bytes(max(64, len(data) // 4))
    if kind == "empty":
        return b""
    return data


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n")


def write_day(day: SimulatedDay, root: str, *, photo_files: bool = True) -> Path:
    """Write `day` under `ROOT/landing/date=D/` and its ground truth; returns the landing dir.

    A rerun replaces the day (the old landing day is removed first); `_COMPLETE` comes last.
    `photo_files=False` writes everything but the JPEGs (report-job benchmarks at scale).
    """
    if not is_local(root):
        raise UserError(f"the simulator writes local data roots only, not {root}")
    landing = Path(landing_dir(root, day.run_date).removeprefix("file://"))
    truth_dir = Path(ground_truth_dir(root, day.run_date).removeprefix("file://"))
    for folder in (landing, truth_dir):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)

    photos = day.photos
    frames = "frame" in photos.columns  # checkout frames (`simulate_day(frames=True)`)
    files = 0
    for idx, row in enumerate(photos.itertuples(index=False)):
        if not (row.has_file and photo_files):
            continue
        folder = landing / "photos" / f"store={row.store_id}" / f"lane={row.lane_id}"
        folder.mkdir(parents=True, exist_ok=True)
        data = render_frame(row.frame) if frames else Path(row.face_path).read_bytes()
        data = _corrupt(data, row.corrupt, idx)
        (folder / f"{row.photo_id}.jpg").write_bytes(data)
        files += 1
    meta = photos.loc[photos["has_metadata"], ["photo_id", "store_id", "lane_id", "captured_at"]]
    _write_csv(day.products, landing / "products.csv")
    _write_csv(day.receipts, landing / "receipts.csv")
    _write_csv(day.lines, landing / "receipt_lines.csv")
    _write_csv(meta, landing / "photos.csv")

    _write_csv(day.truth_receipts, truth_dir / "receipts.csv")
    truth_photos = photos.drop(columns=["face_path", "store_id", "lane_id", "captured_at"])
    if frames:  # every face's box and age; the render plan itself (paths) stays out
        truth_photos = truth_photos.drop(columns=["frame"]).assign(
            faces=[json.dumps(frame_faces(frame)) for frame in photos["frame"]])
    _write_csv(truth_photos, truth_dir / "photos.csv")
    summary = {**day.summary, "date": day.run_date, "receipts": len(day.truth_receipts),
               "photos": len(photos)}
    (truth_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")

    marker = {"date": day.run_date, "products": len(day.products), "receipts": len(day.receipts),
              "receipt_lines": len(day.lines), "photos": len(meta), "photo_files": files,
              "written_by": "checkout-age simulate"}
    (landing / COMPLETE_MARKER).write_text(json.dumps(marker, sort_keys=True) + "\n")
    log.info("wrote landing day %s: %s", landing, marker)
    return landing
