"""Age estimates for batches of decoded face images.

Uses `predict_on_batch` in a loop (never `model.predict` in a loop, which leaked memory on
some Keras versions: stack-notes) and no `tf.*`, so it runs in Spark workers under any backend.
"""

from __future__ import annotations

import keras
import numpy as np

from model.training.augment import flip_horizontal


def predict_ages(
    model: keras.Model,
    images: np.ndarray,
    batch_size: int = 64,
    flip_tta: bool = True,
) -> np.ndarray:
    """Estimated ages (float32, shape (N,)) for uint8 images (N, S, S, 3).

    Args:
        model: an age model taking raw pixels.
        images: decoded images at the model's input size.
        batch_size: images per forward pass (doubled internally with flip TTA).
        flip_tta: average each estimate with that of the mirrored image (test-time
            augmentation; faces are roughly symmetric, so this only removes noise).
    """
    if images.ndim != 4:
        raise ValueError(f"expected (N, S, S, 3) images, got shape {images.shape}")
    count = len(images)
    out = np.empty(count, dtype=np.float32)
    size = min(batch_size, count)
    for start in range(0, count, batch_size):
        batch = images[start : start + batch_size].astype(np.float32)
        n = len(batch)
        if n < size:  # pad the last batch: one input shape means one compiled function
            batch = np.concatenate([batch, np.repeat(batch[-1:], size - n, axis=0)])
        if flip_tta:
            batch = np.concatenate([batch, flip_horizontal(batch)])
        pred = np.asarray(model.predict_on_batch(batch), dtype=np.float32).reshape(-1)
        out[start : start + n] = (pred[:n] + pred[size : size + n]) / 2 if flip_tta else pred[:n]
    return out
