"""model/data/importers.py: tiny fake UTKFace and APPA-REAL trees become valid standard face sets."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from model.data.dataset import validate_dataset
from model.data.importers import import_appa_real, import_utkface, parse_utkface_name
from model.errors import UserError


def _photo(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("25_0_0_20170116174525125.jpg.chip.jpg", (25, "male")),
        ("3_1_2_20161219140623097.jpg", (3, "female")),
        ("39_1_20170116174525125.jpg.chip.jpg", (None, "bad_name")),  # race missing
        ("61_3_1_20170109142408075.jpg", (None, "bad_gender")),
        ("x_0_0_20170109142408075.jpg", (None, "bad_age")),
        ("0_0_0_20170109142408075.jpg", (None, "bad_age")),
        ("25_0_0_2017_extra.jpg", (None, "bad_name")),
    ],
)
def test_parse_utkface_name(name, expected):
    assert parse_utkface_name(name) == expected


@pytest.fixture
def utk_tree(tmp_path: Path) -> Path:
    source = tmp_path / "UTKFace"
    (source / "part2").mkdir(parents=True)
    files = {
        "25_0_0_20170116174525125.jpg.chip.jpg": _photo(1),
        "3_1_2_20161219140623097.jpg.chip.jpg": _photo(2),
        "part2/70_1_3_20170109142408075.jpg": _photo(3),
        "39_1_20170116174525125.jpg.chip.jpg": _photo(4),
        "61_3_1_20170109142408075.jpg.chip.jpg": _photo(5),
        "part2/abc_0_0_20170109142408075.jpg": _photo(6),
    }
    for name, data in files.items():
        (source / name).write_bytes(data)
    (source / "README.txt").write_text("not an image, not counted")
    return source


def test_utkface_import_writes_the_standard_layout(utk_tree: Path, tmp_path: Path):
    dest = tmp_path / "faces"
    summary = import_utkface(utk_tree, dest).as_dict()
    labels = pd.read_csv(dest / "labels.csv")
    assert labels.to_dict("records") == [
        {"file_name": "25_0_0_20170116174525125.jpg.chip.jpg", "real_age": 25, "gender": "male"},
        {"file_name": "3_1_2_20161219140623097.jpg.chip.jpg", "real_age": 3, "gender": "female"},
        {"file_name": "70_1_3_20170109142408075.jpg", "real_age": 70, "gender": "female"},
    ]
    assert (dest / "final_files" / "70_1_3_20170109142408075.jpg").read_bytes() == _photo(3)
    assert summary["found"] == 6
    assert summary["imported"] == 3
    assert summary["skipped"] == {"bad_age": 1, "bad_gender": 1, "bad_name": 1}
    assert summary["linked"] + summary["copied"] == 3
    assert summary["other_files"] == 1  # README.txt
    assert {e["file"] for e in summary["skipped_examples"]} == {
        str(utk_tree / "39_1_20170116174525125.jpg.chip.jpg"),
        str(utk_tree / "61_3_1_20170109142408075.jpg.chip.jpg"),
        str(utk_tree / "part2/abc_0_0_20170109142408075.jpg"),
    }
    report = validate_dataset(dest)
    assert report.summary()["usable"] == 3
    assert sorted(report.usable["gender"]) == ["female", "female", "male"]


def test_utkface_import_prefers_hard_links(utk_tree: Path, tmp_path: Path):
    dest = tmp_path / "faces"
    summary = import_utkface(utk_tree, dest)
    assert summary.linked == 3  # same file system, own files: linking is allowed
    source = utk_tree / "25_0_0_20170116174525125.jpg.chip.jpg"
    assert os.path.samefile(source, dest / "final_files" / source.name)


def test_utkface_rerun_is_idempotent(utk_tree: Path, tmp_path: Path):
    dest = tmp_path / "faces"
    import_utkface(utk_tree, dest)
    first = (dest / "labels.csv").read_text()
    again = import_utkface(utk_tree, dest)
    assert (dest / "labels.csv").read_text() == first
    assert again.imported == 3
    assert sorted(os.listdir(dest / "final_files")) == sorted(
        pd.read_csv(dest / "labels.csv")["file_name"]
    )


def test_same_name_in_two_folders_gets_a_unique_name(tmp_path: Path):
    source = tmp_path / "utk"
    for part, seed in (("a", 1), ("b", 2)):
        (source / part).mkdir(parents=True)
        (source / part / "30_0_0_20170101000000000.jpg").write_bytes(_photo(seed))
    import_utkface(source, tmp_path / "faces")
    names = list(pd.read_csv(tmp_path / "faces" / "labels.csv")["file_name"])
    assert names == ["30_0_0_20170101000000000.jpg", "30_0_0_20170101000000000-2.jpg"]


def test_foreign_destination_is_refused(utk_tree: Path, tmp_path: Path):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        import_utkface(utk_tree, dest)
    with pytest.raises(UserError, match="UTKFace folder not found"):
        import_utkface(tmp_path / "absent", tmp_path / "x")


@pytest.fixture
def appa_tree(tmp_path: Path) -> Path:
    source = tmp_path / "appa-real-release"
    for split in ("train", "valid"):
        (source / split).mkdir(parents=True)
    header = "file_name,num_ratings,apparent_age_avg,apparent_age_std,real_age\n"
    (source / "gt_avg_train.csv").write_text(
        header
        + "000000.jpg,38,5.0,1.2,4\n"  # has an aligned crop
        + "000001.jpg,38,20.5,3.1,22\n"  # no crop: the file itself
        + "000002.jpg,38,40.0,4.0,41\n"  # image missing
    )
    (source / "gt_avg_valid.csv").write_text(
        header + "000000.jpg,40,60.1,5.0,63\n" + "004001.jpg,40,30.0,2.0,x\n"
    )
    (source / "allcategories_train.csv").write_text(
        "file,gender,race,makeup,time,happiness\n000000.jpg,female,caucasian,no,no,no\n"
    )
    (source / "train" / "000000.jpg").write_bytes(_photo(10))
    (source / "train" / "000000.jpg_face.jpg").write_bytes(_photo(11))
    (source / "train" / "000001.jpg").write_bytes(_photo(12))
    (source / "valid" / "000000.jpg").write_bytes(_photo(13))
    (source / "valid" / "000000.jpg_face.jpg").write_bytes(_photo(14))
    return source


def test_appa_real_import(appa_tree: Path, tmp_path: Path):
    dest = tmp_path / "faces"
    summary = import_appa_real(appa_tree, dest).as_dict()
    labels = pd.read_csv(dest / "labels.csv", keep_default_na=False)
    assert labels.to_dict("records") == [
        {"file_name": "train_000000.jpg", "real_age": 4, "gender": "female"},
        {"file_name": "train_000001.jpg", "real_age": 22, "gender": ""},
        {"file_name": "valid_000000.jpg", "real_age": 63, "gender": ""},
    ]
    images = dest / "final_files"
    assert (images / "train_000000.jpg").read_bytes() == _photo(11)  # the aligned crop
    assert (images / "train_000001.jpg").read_bytes() == _photo(12)
    assert (images / "valid_000000.jpg").read_bytes() == _photo(14)
    assert summary["found"] == 5
    assert summary["imported"] == 3
    assert summary["skipped"] == {"age_not_a_number": 1, "missing_file": 1}
    assert validate_dataset(dest).summary()["usable"] == 3


def test_appa_real_without_gt_files_is_a_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="gt_avg"):
        import_appa_real(tmp_path, tmp_path / "faces")


def test_appa_real_missing_column_names_the_file(appa_tree: Path, tmp_path: Path):
    (appa_tree / "gt_avg_valid.csv").write_text("file_name,apparent_age_avg\n000000.jpg,3\n")
    with pytest.raises(UserError, match=r"gt_avg_valid\.csv: missing column\(s\) real_age"):
        import_appa_real(appa_tree, tmp_path / "faces")
    assert not (tmp_path / "faces").exists()  # checked before anything is written


def test_destination_inside_source_is_not_imported_again(utk_tree: Path):
    dest = utk_tree / "imported"
    import_utkface(utk_tree, dest)
    again = import_utkface(utk_tree, dest)
    assert (again.found, again.imported) == (6, 3)
