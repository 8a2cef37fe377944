"""`checkout-age model validate | import | eda` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from jobs.cli.main import main


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CHECKOUT_AGE_HOME", str(tmp_path / "home"))


@pytest.fixture
def face_set(tmp_path: Path) -> Path:
    root = tmp_path / "faces"
    (root / "final_files").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "final_files" / f"{i}.jpg")
    (root / "final_files" / "3.jpg").write_bytes(b"not an image")
    (root / "labels.csv").write_text(
        "file_name,real_age\n0.jpg,20\n1.jpg,30\n2.jpg,abc\n3.jpg,40\n4.jpg,50\n0.jpg,21\n"
    )
    return root


def test_validate_json(face_set: Path, capsys):
    assert main(["model", "validate", str(face_set), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 6
    assert summary["usable"] == 2
    assert {k: v for k, v in summary["rejected"].items() if v} == {
        "age_not_a_number": 1,
        "not_an_image": 1,
        "missing_file": 1,
        "duplicate_row": 1,
    }


def test_validate_text_names_rejected_files(face_set: Path, tmp_path: Path, capsys):
    rejected_csv = tmp_path / "out" / "rejected.csv"
    code = main(["model", "validate", str(face_set), "--rejected-csv", str(rejected_csv)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"checked {face_set}: 6 rows, 2 usable, 4 rejected" in out
    assert "row 4 3.jpg: not a recognised image format" in out
    assert "row 5 4.jpg: file not found" in out
    rejected = pd.read_csv(rejected_csv)
    assert list(rejected["row"]) == [3, 4, 5, 6]


def test_validate_age_limits_from_flags(face_set: Path, capsys):
    assert main(["model", "validate", str(face_set), "--json", "--max-age", "25"]) == 0
    assert json.loads(capsys.readouterr().out)["rejected"]["age_out_of_range"] == 3


def test_validate_missing_folder_exits_2(tmp_path: Path, capsys):
    assert main(["model", "validate", str(tmp_path / "absent")]) == 2
    assert "absent: face set folder not found" in capsys.readouterr().err


def test_import_utkface_then_eda(tmp_path: Path, capsys):
    source = tmp_path / "utk"
    source.mkdir()
    rng = np.random.default_rng(1)
    for name in ("25_0_0_20170101000000001.jpg", "8_1_1_20170101000000002.jpg", "bad.jpg"):
        pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(source / name)
    dest = tmp_path / "imported"
    assert main(["model", "import", "utkface", str(source), str(dest), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["imported"], summary["skipped"]) == (2, {"bad_name": 1})

    assert main(["model", "eda", str(dest), "--out", str(tmp_path / "eda")]) == 0
    assert "sample_grid:" in capsys.readouterr().out
    counts = json.loads((tmp_path / "eda" / "counts.json").read_text())
    assert counts["usable"]["by_gender"] == {"female": 1, "male": 1}
