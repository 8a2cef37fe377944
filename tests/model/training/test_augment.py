"""Numpy augmentation: shapes, determinism, and what flips and shifts do to pixels."""

from __future__ import annotations

import numpy as np
import pytest

from model.training.augment import augment_batch, flip_horizontal


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
