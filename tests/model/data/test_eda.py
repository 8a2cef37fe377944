"""model/data/eda.py: counts computed by hand, real PNGs written where asked."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from model.data.dataset import validate_dataset
from model.data.eda import describe_ages, sample_rows, write_eda


def test_describe_ages_by_hand():
    usable = pd.DataFrame(
        {
            "real_age": [5.0, 16.0, 30.0, 30.0, 70.0],
            "gender": ["male", "female", "", "male", "male"],
        }
    )
    counts = describe_ages(usable)
    assert counts == {
        "n": 5,
        "age_mean": 30.2,  # (5 + 16 + 30 + 30 + 70) / 5
        "age_median": 30.0,
        "age_min": 5.0,
        "age_max": 70.0,
        "by_band": {
            "<13": 1,
            "13-17": 1,
            "18-24": 0,
            "25-34": 2,
            "35-44": 0,
            "45-54": 0,
            "55-64": 0,
            "65+": 1,
        },
        "by_gender": {"female": 1, "male": 3, "unknown": 1},
    }


def test_describe_ages_without_gender_or_rows():
    counts = describe_ages(pd.DataFrame({"real_age": pd.Series([], dtype=float)}))
    assert counts["n"] == 0
    assert counts["age_mean"] is None
    assert "by_gender" not in counts


def test_sample_rows_are_seeded_and_sorted_by_age():
    usable = pd.DataFrame({"real_age": np.arange(100, dtype=float)[::-1]})
    first = sample_rows(usable, 20, seed=7)
    assert first.equals(sample_rows(usable, 20, seed=7))
    assert len(first) == 20
    assert first["real_age"].is_monotonic_increasing
    assert len(sample_rows(usable.head(3), 20, seed=7)) == 3


def _face_set(root: Path, count: int) -> Path:
    (root / "final_files").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["file_name,real_age,gender"]
    for i in range(count):
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "final_files" / f"{i}.jpg")
        lines.append(f"{i}.jpg,{3 + 4 * i},{'male' if i % 2 else 'female'}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_write_eda_outputs(tmp_path: Path):
    report = validate_dataset(_face_set(tmp_path / "faces", 12))
    written = write_eda(report.usable, tmp_path / "eda", validation=report.summary())
    assert set(written) == {"age_histogram", "sample_grid", "counts"}
    for name in ("age_histogram", "sample_grid"):
        with Image.open(written[name]) as image:
            assert image.format == "PNG"
            assert min(image.size) > 200
    counts = json.loads(Path(written["counts"]).read_text())
    assert counts["usable"]["n"] == 12
    assert counts["usable"]["age_min"] == 3.0
    assert counts["usable"]["age_max"] == 47.0  # 3 + 4 * 11
    assert counts["usable"]["by_gender"] == {"female": 6, "male": 6}
    assert counts["validation"]["rows"] == 12


def test_sample_grid_shows_photos(tmp_path: Path):
    """The grid is not blank: the random-noise photos make it far from uniform."""
    report = validate_dataset(_face_set(tmp_path / "faces", 4))
    written = write_eda(report.usable, tmp_path / "eda")
    grid = np.asarray(
        Image.open(io.BytesIO(Path(written["sample_grid"]).read_bytes())).convert("L")
    )
    assert grid.std() > 30
