"""Camera views cut as the score job cuts a frame's face (`model.training.served_view`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from model.serving.images import decode_face
from model.serving.yunet import YuNetDetector
from model.training.augment import CameraModel, camera_view, camera_views
from model.training.served_view import ServedView

# A camera that loses nothing, the face at the training crop's own size: only the framing
# (detection and the serving crop) can differ from the crop itself.
LOSSLESS = CameraModel(face_px=(0.81 * 160,) * 2, blur_px=(0.0, 0.0), gain=(1.0, 1.0),
                       white_balance=(1.0, 1.0), jpeg_quality=(95, 95))


@pytest.fixture(scope="module")
def face_images(faces_dir: Path) -> np.ndarray:
    labels = pd.read_csv(faces_dir / "labels.csv").iloc[::1400].head(12)
    return np.stack([decode_face((faces_dir / "final_files" / name).read_bytes(), 160)
                     for name in labels["file_name"]])


def _zoomed(image: np.ndarray, factor: float) -> np.ndarray:
    """The same face framed tighter: the centre 1/factor of the crop, back to its size."""
    side = image.shape[0]
    cut = round(side / factor)
    start = (side - cut) // 2
    inner = Image.fromarray(image[start:start + cut, start:start + cut])
    return np.asarray(inner.resize((side, side), Image.Resampling.BILINEAR))


def _box_width(detector: YuNetDetector, image: np.ndarray) -> float:
    faces = detector.detect([Image.fromarray(image)], [image.shape[1::-1]])[0]
    return max(faces, key=lambda face: face.confidence).w


def test_a_served_view_is_framed_by_the_detector_not_by_the_crop(face_images) -> None:
    """Two framings of one face (the crop and a 25 % tighter cut) are served alike."""
    detector = YuNetDetector(detect_width=160)
    view = ServedView(LOSSLESS)
    ratios_in, ratios_out = [], []
    for i, image in enumerate(face_images):
        tight = _zoomed(image, 1.25)
        served = view(image, np.random.default_rng(i))
        served_tight = view(tight, np.random.default_rng(i))
        assert served.shape == image.shape and served.dtype == np.uint8
        # Not the crop brought back whole, as the plain camera view is.
        assert not np.array_equal(served, camera_view(image, np.random.default_rng(i), LOSSLESS))
        ratios_in.append(_box_width(detector, tight) / _box_width(detector, image))
        ratios_out.append(_box_width(detector, served_tight) / _box_width(detector, served))
    assert (view.seen, view.missed) == (2 * len(face_images), 0)
    # The inputs frame the face differently (boxes about 13 % wider) ...
    assert np.median(ratios_in) > 1.10
    # ... the served views much less (measured: 2-3 % narrower; the plain view keeps all 25 %).
    assert abs(np.median(ratios_out) - 1.0) < 0.05


def test_a_served_view_is_seeded(face_images) -> None:
    view = ServedView()
    first = view(face_images[0], np.random.default_rng(4))
    np.testing.assert_array_equal(first, view(face_images[0], np.random.default_rng(4)))
    assert not np.array_equal(first, view(face_images[0], np.random.default_rng(5)))


def test_a_face_the_detector_misses_keeps_the_plain_view_and_is_counted() -> None:
    view = ServedView(LOSSLESS)
    blank = np.full((160, 160, 3), 128, np.uint8)  # nothing for YuNet to find
    out = view(blank, np.random.default_rng(0))
    assert (view.seen, view.missed) == (1, 1)
    assert out.shape == blank.shape
    # The same grey through a JPEG; only the border takes some of the scene's colour (chroma
    # is subsampled over the paste's edge).
    assert np.abs(out[8:-8, 8:-8].astype(int) - 128).max() <= 2


def test_camera_views_take_the_served_cut(face_images) -> None:
    view = ServedView()
    out = camera_views(face_images, np.random.default_rng(2), share=1.0, view=view)
    assert view.seen == len(face_images) and out.shape == face_images.shape
    assert all(not np.array_equal(a, b) for a, b in zip(out, face_images, strict=True))


def test_training_cuts_served_views_with_the_score_jobs_settings(monkeypatch) -> None:
    from model.config import Settings
    from model.training.profiles import train_config
    from model.training.train import _camera_view

    config = train_config(Settings(), "quick", camera_share=0.5, camera_detect=True)
    monkeypatch.setenv("CHECKOUT_AGE_YUNET_WIDTH_PX", "640")
    monkeypatch.setenv("CHECKOUT_AGE_YUNET_MIN_CONFIDENCE", "0.8")
    view = _camera_view(config)
    assert view.detect_scale == pytest.approx(640 / 1280) and view.min_confidence == 0.8
    assert _camera_view(train_config(Settings(), "quick", camera_share=0.5)) is None
