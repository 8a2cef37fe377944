"""Shared fixtures: where the real face set is, and settings pointing into a temp home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The real labelled face set (read-only): `FACES_DIR` or `../shared/faces`."""
    path = Path(os.environ.get("FACES_DIR") or PROJECT_ROOT.parent / "shared" / "faces")
    if not (path / "labels.csv").is_file():
        pytest.fail(f"face set not found at {path}: set FACES_DIR")
    return path


# --------------------------------------------------------------------------- age model
# Keras reads KERAS_HOME when it is first imported: point it at the shared ImageNet weights
# (MobileNetV2 only) unless the caller (Makefile, CI) already did.
_SHARED_KERAS = PROJECT_ROOT.parent / "shared" / "keras"
if _SHARED_KERAS.is_dir():
    os.environ.setdefault("KERAS_HOME", str(_SHARED_KERAS))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SMALL_FACES_COUNT = 300
SMOKE_MODEL_SIZE = 96


@pytest.fixture(scope="session")
def small_faces_dir(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few hundred real faces copied into a temp face set (labels.csv + final_files/).

    Rows are spread evenly over the age-sorted labels, so every age band is present, and
    carry the real set's faults that fall among them (the validator rejects those).
    """
    import shutil

    import numpy as np
    import pandas as pd

    labels = pd.read_csv(faces_dir / "labels.csv", dtype=str, keep_default_na=False)
    age = pd.to_numeric(labels["real_age"], errors="coerce")
    ordered = labels.assign(_age=age).sort_values(["_age", "file_name"], na_position="last")
    picked = ordered.iloc[np.linspace(0, len(ordered) - 1, SMALL_FACES_COUNT).astype(int)]
    root = tmp_path_factory.mktemp("small_faces")
    (root / "final_files").mkdir()
    for name in picked["file_name"]:
        source = faces_dir / "final_files" / name
        if source.is_file():
            shutil.copy(source, root / "final_files" / name)
    picked.drop(columns="_age").to_csv(root / "labels.csv", index=False)
    return root


@pytest.fixture(scope="session")
def trained_registry(small_faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Registry root holding `v0001`, promoted to `production`: a real smoke model.

    MobileNetV2 at 96 px, ImageNet weights, 2 head epochs + 1 fine-tuning epoch on
    `small_faces_dir` (~40 s on 2 cores). Its test MAE is poor (about 10-13 years: better than
    guessing the mean, far from useful), so it is promoted with the MAE gate opened: it exists
    to be loaded and to score photos in tests, not for its accuracy. Treat it as read-only
    (copy it before promoting or rolling back).
    """
    from model.config import Settings
    from model.lifecycle.registry import ModelRegistry
    from model.training.profiles import train_config
    from model.training.train import train_model

    root = tmp_path_factory.mktemp("registry")
    config = train_config(Settings(), "gpu", size=SMOKE_MODEL_SIZE, head_epochs=2, epochs=1,
                          batch_size=32)
    result = train_model(small_faces_dir, config, cache_dir=tmp_path_factory.mktemp("cache"),
                         registry_root=root)
    promotion = ModelRegistry(root).promote(result.version, max_mae=100.0)
    assert promotion.promoted, promotion.reason
    return root
