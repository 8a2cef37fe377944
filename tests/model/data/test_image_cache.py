"""model/data/image_cache.py: decoded arrays equal decode_face, are reused, and rebuilt only in part."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.data.dataset import validate_dataset
from model.data.image_cache import cache_files, load_images
from model.errors import UserError
from model.serving.images import decode_face


def _photo(seed: int, mode: str = "RGB") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _face_set(root: Path, count: int) -> Path:
    (root / "final_files").mkdir(parents=True, exist_ok=True)
    lines = ["file_name,real_age"]
    for i in range(count):
        (root / "final_files" / f"{i:03d}.png").write_bytes(_photo(i, "L" if i == 2 else "RGB"))
        lines.append(f"{i:03d}.png,{20 + i}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def face_set(tmp_path: Path) -> Path:
    return _face_set(tmp_path / "faces", 6)


def test_cached_images_equal_decode_face(face_set: Path, tmp_path: Path):
    report = validate_dataset(face_set)
    images = load_images(report.usable, 32, tmp_path / "cache", report.fingerprint)
    assert images.shape == (6, 32, 32, 3)
    assert images.dtype == np.uint8
    for row, path in enumerate(report.usable["path"]):
        np.testing.assert_array_equal(images[row], decode_face(Path(path).read_bytes(), 32))
    array_file, index_file = cache_files(tmp_path / "cache", report.fingerprint, 32)
    assert array_file.name == f"images-{report.fingerprint[:16]}-32.npy"
    assert index_file.is_file()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [array_file.name, index_file.name]
    )  # no temporary files left behind


def test_second_load_is_a_read_only_memory_map_without_decoding(
    face_set: Path, tmp_path: Path, caplog
):
    report = validate_dataset(face_set)
    first = np.array(load_images(report.usable, 32, tmp_path / "cache", report.fingerprint))
    caplog.set_level(logging.INFO, logger="model.data.image_cache")
    again = load_images(report.usable, 32, tmp_path / "cache", report.fingerprint)
    assert isinstance(again, np.memmap)
    assert not again.flags.writeable
    assert "image cache" not in caplog.text  # nothing was built
    np.testing.assert_array_equal(again, first)


def test_subset_and_reordering_are_gathered(face_set: Path, tmp_path: Path):
    report = validate_dataset(face_set)
    full = np.array(load_images(report.usable, 32, tmp_path / "cache", report.fingerprint))
    subset = report.usable.iloc[[4, 0, 2]]
    picked = load_images(subset, 32, tmp_path / "cache", report.fingerprint)
    np.testing.assert_array_equal(picked, full[[4, 0, 2]])


def test_each_size_has_its_own_cache(face_set: Path, tmp_path: Path):
    report = validate_dataset(face_set)
    assert load_images(report.usable, 32, tmp_path / "cache", report.fingerprint).shape[1] == 32
    assert load_images(report.usable, 48, tmp_path / "cache", report.fingerprint).shape[1] == 48
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_grown_set_decodes_only_new_images(face_set: Path, tmp_path: Path, caplog):
    cache = tmp_path / "cache"
    old = validate_dataset(face_set)
    old_images = np.array(load_images(old.usable, 32, cache, old.fingerprint))
    _face_set(face_set, 8)  # two more photos, the first six unchanged
    new = validate_dataset(face_set)
    assert new.fingerprint != old.fingerprint
    caplog.set_level(logging.INFO, logger="model.data.image_cache")
    images = load_images(new.usable, 32, cache, new.fingerprint)
    assert "8 images (6 reused, 2 decoded)" in caplog.text
    np.testing.assert_array_equal(images[:6], old_images)
    np.testing.assert_array_equal(
        images[7], decode_face((face_set / "final_files" / "007.png").read_bytes(), 32)
    )
    # The old cache is wholly contained in the new one, so it was removed.
    assert [p.name for p in cache.glob("*.npy")] == [f"images-{new.fingerprint[:16]}-32.npy"]


def test_file_changed_after_validation_is_named(face_set: Path, tmp_path: Path):
    report = validate_dataset(face_set)
    changed = face_set / "final_files" / "003.png"
    changed.write_bytes(_photo(100))
    with pytest.raises(UserError, match=r"003\.png: file changed since validation"):
        load_images(report.usable, 32, tmp_path / "cache", report.fingerprint)
    assert not list((tmp_path / "cache").glob("*.npy*"))  # no partial cache left


def test_empty_set_gives_an_empty_array(face_set: Path, tmp_path: Path):
    usable = validate_dataset(face_set).usable.iloc[:0]
    assert load_images(usable, 32, tmp_path / "cache", "0" * 64).shape == (0, 32, 32, 3)


def test_another_subset_extends_the_cache(face_set: Path, tmp_path: Path, caplog):
    cache = tmp_path / "cache"
    report = validate_dataset(face_set)
    caplog.set_level(logging.INFO, logger="model.data.image_cache")
    first = load_images(report.usable.iloc[:4], 32, cache, report.fingerprint)
    assert "4 images (0 reused, 4 decoded)" in caplog.text
    caplog.clear()
    second = load_images(report.usable.iloc[[5, 1]], 32, cache, report.fingerprint)
    assert "5 images (4 reused, 1 decoded)" in caplog.text  # rows 0-3 kept, row 5 added
    caplog.clear()
    everything = load_images(report.usable.iloc[[0, 1, 2, 3, 5]], 32, cache, report.fingerprint)
    assert caplog.text == ""  # all cached now
    np.testing.assert_array_equal(everything[:4], first)
    np.testing.assert_array_equal(second, everything[[4, 1]])
