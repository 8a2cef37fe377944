"""Batches of (raw pixels or cached activations, ages) for `model.fit`, from in-memory arrays.

A `keras.utils.PyDataset` works the same under every Keras backend (no `tf.data`), and its
batches are pure functions of (seed, epoch, batch index): shuffling and augmentation are
reproducible and do not depend on the order in which worker threads build batches.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from model.training.augment import augment_batch, camera_views


def age_weights(ages: np.ndarray, balance: float, band_years: int = 5) -> np.ndarray:
    """Loss weights that lift sparse ages: (share of `ages` in a face's band) ** -`balance`,
    scaled to mean 1 (so the learning rate means the same). `balance` 0: all ones.

    The weights are capped at 10x the smallest so a band of a few faces cannot dominate.
    """
    ages = np.asarray(ages, dtype=np.float64).reshape(-1)
    if balance <= 0 or len(ages) == 0:
        return np.ones(len(ages), dtype=np.float32)
    bands = np.floor(ages / band_years).astype(np.int64)
    _, inverse, counts = np.unique(bands, return_inverse=True, return_counts=True)
    weights = (counts[inverse] / len(ages)) ** -balance
    weights = np.minimum(weights, 10 * weights.min())
    return (weights / weights.mean()).astype(np.float32)


class FaceBatches(keras.utils.PyDataset):
    """Face images and ages as float32 batches `(x (n, S, S, 3) in 0..255, y (n, 1))`.

    Args:
        images: uint8 (N, S, S, 3) array (kept as is; converted one batch at a time).
        ages: N ages in years.
        batch_size: rows per batch; the last batch may be smaller.
        shuffle: reshuffle the rows every epoch (training); off for validation.
        augment: apply random flips and shifts (training only).
        seed: fixes the shuffles and augmentations.
        max_shift: largest augmentation shift as a share of the side.
        drop_remainder: leave out the last, smaller batch (training: every step then has the
            same shape, so nothing is traced or compiled again mid-epoch).
        camera_share: chance that a training image (pixels, not `mirrored` rows) is replaced
            by a checkout camera's view of it (`augment.camera_view`) in an epoch.
        camera_view: how that view is made, `view(image, rng)` (e.g. cut around the serving
            detector's box: `served_view.ServedView`); None: `augment.camera_view`.
        weights: per-row loss weights; batches are then `(x, y, w)` (`age_weights`).
        mirrored: the images' mirror-image counterparts (e.g. activations of the flipped
            pictures, which are not the flipped activations); augmentation then takes a row
            from here instead of flipping it.
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size` for `PyDataset`.
    """

    def __init__(
        self,
        images: np.ndarray,
        ages: np.ndarray,
        *,
        batch_size: int = 64,
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 0,
        max_shift: float = 0.1,
        drop_remainder: bool = False,
        mirrored: np.ndarray | None = None,
        camera_share: float = 0.0,
        camera_view: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        weights: np.ndarray | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        if len(images) != len(ages):
            raise ValueError(f"{len(images)} images but {len(ages)} ages")
        if len(images) == 0:
            raise ValueError("no images to batch")
        if mirrored is not None and mirrored.shape != images.shape:
            raise ValueError(f"mirrored rows {mirrored.shape} differ from images {images.shape}")
        if weights is not None and len(weights) != len(images):
            raise ValueError(f"{len(weights)} weights but {len(images)} images")
        self.images = images
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self.mirrored = mirrored
        self.camera_share = camera_share
        self.camera_view = camera_view
        self.ages = np.asarray(ages, dtype=np.float32).reshape(-1, 1)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.augment = augment
        self.seed = int(seed)
        self.max_shift = max_shift
        self.drop_remainder = drop_remainder and len(images) >= batch_size
        self.epoch = 0
        self._order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.images))
        return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.images))

    def __len__(self) -> int:
        if self.drop_remainder:
            return len(self.images) // self.batch_size
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        batch = self.images[rows]
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, index, 1))
            if self.mirrored is None:
                if self.camera_share > 0:  # pixels: a share of them as a checkout camera's
                    batch = camera_views(batch, rng, self.camera_share, view=self.camera_view)
                batch = augment_batch(batch, rng, max_shift=self.max_shift)
            else:
                flips = rng.random(len(rows)) < 0.5
                batch[flips] = self.mirrored[rows[flips]]
                batch = augment_batch(batch, rng, flip_prob=0.0, max_shift=self.max_shift)
        if self.weights is not None:
            return batch.astype(np.float32), self.ages[rows], self.weights[rows]
        return batch.astype(np.float32), self.ages[rows]

    def on_epoch_end(self) -> None:
        """Move to the next epoch's shuffle and augmentation draws."""
        self.epoch += 1
        self._order = self._epoch_order()
