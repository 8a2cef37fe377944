"""Numpy augmentation: shapes, determinism, and what flips and shifts do to pixels."""

from __future__ import annotations

import numpy as np
import pytest

from model.training.augment import (
    CameraModel,
    augment_batch,
    camera_view,
    camera_views,
    flip_horizontal,
)


def _grid_batch(count: int = 4, side: int = 10) -> np.ndarray:
    """uint8 images whose pixel (y, x) holds y * side + x in every channel (+ image index)."""
    base = np.arange(side * side, dtype=np.uint8).reshape(side, side)
    return np.stack([np.repeat((base + i)[:, :, None], 3, axis=2) for i in range(count)])


def test_shape_dtype_kept_and_input_untouched() -> None:
    batch = _grid_batch()
    before = batch.copy()
    out = augment_batch(batch, np.random.default_rng(0))
    assert out.shape == batch.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(batch, before)


def test_same_seed_same_batch_other_seed_other_batch() -> None:
    batch = _grid_batch(16)
    first = augment_batch(batch, np.random.default_rng(7))
    np.testing.assert_array_equal(first, augment_batch(batch, np.random.default_rng(7)))
    assert not np.array_equal(first, augment_batch(batch, np.random.default_rng(8)))


def test_flip_only_mirrors_left_right() -> None:
    batch = _grid_batch()
    out = augment_batch(batch, np.random.default_rng(0), flip_prob=1.0, max_shift=0.0)
    np.testing.assert_array_equal(out, batch[:, :, ::-1])
    np.testing.assert_array_equal(flip_horizontal(batch)[0, 3, 0], batch[0, 3, 9])
    same = augment_batch(batch, np.random.default_rng(0), flip_prob=0.0, max_shift=0.0)
    np.testing.assert_array_equal(same, batch)


def test_shift_moves_the_image_and_repeats_edges() -> None:
    side = 10
    batch = _grid_batch(8, side)
    out = augment_batch(batch, np.random.default_rng(3), flip_prob=0.0, max_shift=0.2)  # <= 2 px
    idx = np.arange(side)
    shifted = 0
    for image, result in zip(batch, out, strict=True):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(
                result,
                image[np.clip(idx + dy, 0, side - 1)][:, np.clip(idx + dx, 0, side - 1)],
            )
        ]
        assert matches, "output is not a clamped shift of the input by at most 2 px"
        shifted += matches[0] != (0, 0)
    assert shifted >= 4  # 8 images, 25 possible shifts: most must move


def test_rejects_a_single_image() -> None:
    with pytest.raises(ValueError, match="batch"):
        augment_batch(np.zeros((10, 10, 3), np.uint8), np.random.default_rng(0))


def _face_like(side: int = 160) -> np.ndarray:
    """A sharp, textured uint8 image: a checkerboard of 4-px squares over a colour ramp."""
    yy, xx = np.mgrid[0:side, 0:side]
    board = (((yy // 4) + (xx // 4)) % 2) * 120
    ramp = np.stack([xx, yy, (xx + yy) // 2], axis=2) * 0.5
    return np.clip(board[:, :, None] + ramp + 40, 0, 255).astype(np.uint8)


def _detail(image: np.ndarray) -> float:
    """Mean absolute difference of horizontal neighbours: high for sharp texture."""
    return float(np.abs(np.diff(image.astype(float), axis=1)).mean())


def test_camera_view_keeps_shape_is_seeded_and_loses_detail() -> None:
    image = _face_like()
    view = camera_view(image, np.random.default_rng(3))
    assert view.shape == image.shape and view.dtype == np.uint8
    np.testing.assert_array_equal(view, camera_view(image, np.random.default_rng(3)))
    # The smallest face (64 px wide: a 79-px crop) cannot keep 4-px squares sharp.
    small = camera_view(image, np.random.default_rng(3), CameraModel(face_px=(64.0, 64.0)))
    assert _detail(small) < 0.7 * _detail(image)


def test_camera_view_exposure_moves_brightness_by_its_gain() -> None:
    image = np.full((96, 96, 3), 100, np.uint8)
    dark = CameraModel(face_px=(200.0, 200.0), blur_px=(0.0, 0.0), gain=(0.6, 0.6),
                       white_balance=(1.0, 1.0), jpeg_quality=(90, 90))
    assert abs(float(camera_view(image, np.random.default_rng(0), dark).mean()) - 60) < 2


def test_camera_views_replaces_about_its_share_and_leaves_the_input() -> None:
    batch = np.stack([_face_like(48)] * 200)
    before = batch.copy()
    out = camera_views(batch, np.random.default_rng(1), share=0.25)
    changed = np.array([not np.array_equal(a, b) for a, b in zip(out, batch, strict=True)])
    assert 0.15 < changed.mean() < 0.35
    np.testing.assert_array_equal(batch, before)
    assert np.array_equal(camera_views(batch, np.random.default_rng(1), share=0.0), batch)
