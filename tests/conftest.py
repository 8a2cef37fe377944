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
