"""Evaluating a model on any labelled face folder, honestly.

Which rows are scored (`split`):
- "auto" (default): if the folder is the model's own training set (same dataset fingerprint)
  only its test split, the rows the model never saw; for any other folder every usable row
  except images the model learnt from (matched by content hash against the version's
  `training_images.txt`, when it has one), so a copy of training photos cannot flatter it.
- "test": the folder's test split (content-hash split, the same rule as training).
- "all": every usable row, seen or not (the number seen in training is still reported).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from model.errors import UserError
from model.metrics import age_metrics
from model.registry import ModelRegistry, ModelVersion

log = logging.getLogger(__name__)

SPLIT_CHOICES = ("auto", "test", "all")


def training_hashes(version: ModelVersion) -> set[str]:
    """Content hashes of the images a registered version was trained/validated on."""
    if version.path is None:
        return set()
    path = version.path / "training_images.txt"
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def select_rows(
    usable: pd.DataFrame, fingerprint: str, version: ModelVersion, split: str
) -> tuple[pd.DataFrame, str, int]:
    """Rows to score under the rule in the module docstring.

    Returns:
        (rows, rule actually applied, number of rows the model saw in training among `usable`).
    """
    from model.split import assign_splits

    if split not in SPLIT_CHOICES:
        raise UserError(f"split must be one of {', '.join(SPLIT_CHOICES)}, not {split!r}")
    seen_hashes = training_hashes(version)
    seen = usable["sha256"].isin(seen_hashes).to_numpy()
    own_set = fingerprint == version.config.get("dataset_fingerprint")
    if split == "test" or (split == "auto" and own_set):
        rows = assign_splits(usable)
        return rows[rows["split"] == "test"].drop(columns="split"), "test", int(seen.sum())
    if split == "all":
        return usable, "all", int(seen.sum())
    return usable[~seen], "unseen", int(seen.sum())


def evaluate_model(
    model_ref: str,
    faces_dir: Path,
    *,
    registry_root: Path,
    cache_dir: Path,
    split: str = "auto",
    batch_size: int = 64,
    flip_tta: bool = True,
    validation_limits: dict | None = None,
) -> dict:
    """Validate `faces_dir`, score the chosen rows with the model, return its metrics.

    Args:
        model_ref: "production", a version id or a `.keras` path (see `ModelRegistry.resolve`).
        faces_dir: labelled face folder (`labels.csv` + `final_files/`).
        registry_root: the registry that resolves `model_ref`.
        cache_dir: validation and decoded-image caches.
        split: "auto", "test" or "all" (module docstring).
        batch_size: images per forward pass.
        flip_tta: average with mirrored images.
        validation_limits: `validate_dataset` keyword limits.

    Returns:
        `age_metrics` figures plus `model`, `model_path`, `faces_dir`, `fingerprint`,
        `split` (the rule applied), `rows_usable`, `rows_seen_in_training`.
    """
    from model.dataset import validate_dataset
    from model.image_cache import load_images
    from model.net import load_age_model
    from model.predict import predict_ages

    version = ModelRegistry(registry_root).resolve(model_ref)
    report = validate_dataset(Path(faces_dir), cache_dir=cache_dir, **(validation_limits or {}))
    rows, rule, seen = select_rows(report.usable, report.fingerprint, version, split)
    if rows.empty:
        raise UserError(f"{faces_dir}: no rows to evaluate under split {rule!r} "
                        f"({len(report.usable)} usable, {seen} seen in training)")
    model = load_age_model(version.model_path)
    size = version.image_size
    images = load_images(rows, size, cache_dir, report.fingerprint)
    log.info("evaluating %s on %d rows of %s (split %s, %d px)", version.version, len(rows),
             faces_dir, rule, size)
    pred = predict_ages(model, np.asarray(images), batch_size=batch_size, flip_tta=flip_tta)
    gender = rows["gender"].to_numpy() if "gender" in rows else None
    return {
        "model": version.version,
        "model_path": str(version.model_path),
        "faces_dir": str(faces_dir),
        "fingerprint": report.fingerprint,
        "split": rule,
        "rows_usable": len(report.usable),
        "rows_seen_in_training": seen,
        **age_metrics(rows["real_age"].to_numpy(), pred, gender),
    }
