"""FaceBatches: sizes, ordering, reshuffling and reproducibility."""

from __future__ import annotations

import numpy as np

from model.training.batches import FaceBatches, age_weights


def _data(count: int = 10) -> tuple[np.ndarray, np.ndarray]:
    images = np.zeros((count, 8, 8, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(count)  # tag each image with its row
    return images, np.arange(count, dtype=np.float32) + 20


def _rows(batches: FaceBatches) -> list[int]:
    return [int(v) for i in range(len(batches)) for v in batches[i][0][:, 0, 0, 0]]


def test_batch_sizes_types_and_order_without_shuffle() -> None:
    images, ages = _data(10)
    batches = FaceBatches(images, ages, batch_size=4)
    assert len(batches) == 3
    x, y = batches[2]
    assert x.shape == (2, 8, 8, 3) and x.dtype == np.float32
    assert y.shape == (2, 1) and y.dtype == np.float32
    assert _rows(batches) == list(range(10))
    np.testing.assert_array_equal(y[:, 0], [28, 29])  # ages stay with their images


def test_shuffle_is_a_permutation_that_changes_per_epoch_and_repeats_per_seed() -> None:
    images, ages = _data(10)
    batches = FaceBatches(images, ages, batch_size=4, shuffle=True, seed=5)
    first = _rows(batches)
    assert sorted(first) == list(range(10)) and first != list(range(10))
    x, y = batches[0]
    np.testing.assert_array_equal(y[:, 0], x[:, 0, 0, 0] + 20)
    batches.on_epoch_end()
    second = _rows(batches)
    assert sorted(second) == list(range(10)) and second != first
    again = FaceBatches(images, ages, batch_size=4, shuffle=True, seed=5)
    assert _rows(again) == first


def test_augmented_batches_are_reproducible() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8)
    ages = np.full(6, 30.0)
    one = FaceBatches(images, ages, batch_size=3, shuffle=True, augment=True, seed=1)
    two = FaceBatches(images, ages, batch_size=3, shuffle=True, augment=True, seed=1)
    np.testing.assert_array_equal(one[1][0], two[1][0])
    plain = FaceBatches(images, ages, batch_size=3, shuffle=True, augment=False, seed=1)
    assert not np.array_equal(one[0][0], plain[0][0])


def test_age_weights_lift_sparse_bands_with_mean_one_and_a_cap() -> None:
    ages = np.array([22.0] * 90 + [70.0] * 9 + [90.0])
    weights = age_weights(ages, 0.5)
    assert weights.shape == (100,) and abs(float(weights.mean()) - 1.0) < 1e-6
    dense, sparse, rarest = weights[0], weights[90], weights[99]
    # (share ** -0.5): a band of 9 % weighs sqrt(90 / 9) times one of 90 %.
    assert abs(sparse / dense - np.sqrt(10)) < 1e-5
    assert abs(rarest / dense - np.sqrt(90)) < 1e-4  # under the cap of 10x
    np.testing.assert_array_equal(age_weights(ages, 0.0), np.ones(100, dtype=np.float32))
    capped = age_weights(ages, 1.0)  # 90x apart uncapped
    assert abs(capped.max() / capped.min() - 10) < 1e-4


def test_weighted_batches_keep_each_weight_with_its_row() -> None:
    images, ages = _data(10)
    weights = np.arange(10, dtype=np.float32) / 10
    batches = FaceBatches(images, ages, batch_size=4, shuffle=True, seed=3, weights=weights)
    x, y, w = batches[1]
    np.testing.assert_array_equal(w, x[:, 0, 0, 0] / 10)
    np.testing.assert_array_equal(y[:, 0], x[:, 0, 0, 0] + 20)
