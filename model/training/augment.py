"""Training-time augmentation in numpy: horizontal flips, small shifts, checkout-camera views.

Done on uint8 batches in the input pipeline rather than with Keras's spatial augmentation
layers, which ran pathologically slowly under JAX on the GPU (measured: ~1 s per batch of
128 against ~12 ms per step this way). Every function takes an explicit `numpy` Generator,
so a batch is augmented identically whenever it is rebuilt with the same seed.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image


def flip_horizontal(images: np.ndarray) -> np.ndarray:
    """Mirror every image left-right: (N, H, W, C) -> (N, H, W, C)."""
    return images[:, :, ::-1, :]


def augment_batch(
    images: np.ndarray,
    rng: np.random.Generator,
    *,
    flip_prob: float = 0.5,
    max_shift: float = 0.1,
) -> np.ndarray:
    """Randomly flip and shift a batch of face images.

    Args:
        images: uint8 (N, H, W, C) batch; not modified.
        rng: source of randomness (seed it for reproducible batches).
        flip_prob: chance that an image is mirrored left-right.
        max_shift: largest shift as a share of the side, in each direction; the border
            uncovered by a shift repeats the edge pixels (no black bars for the model to learn).

    Returns:
        A new array of the same shape and dtype.
    """
    if images.ndim != 4:
        raise ValueError(f"expected a (N, H, W, C) batch, got shape {images.shape}")
    count, height, width, _ = images.shape
    flips = rng.random(count) < flip_prob
    pad = int(round(max_shift * max(height, width)))
    shifts = rng.integers(-pad, pad + 1, size=(count, 2)) if pad else np.zeros((count, 2), int)
    if pad:
        padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    else:
        padded = images
    out = np.empty_like(images)
    for i in range(count):
        top = pad + shifts[i, 0]
        left = pad + shifts[i, 1]
        window = padded[i, top : top + height, left : left + width]
        out[i] = window[:, ::-1] if flips[i] else window
    return out


@dataclass(frozen=True)
class CameraModel:
    """What a checkout camera does to a face, as the serving path sees it (docs/frames.md).

    The face is `face_px` wide in the frame (the crop around it is that over 0.81, the share of
    a faces-set crop its box takes), so a small face is upscaled to the model's input; optics
    blur it, exposure and white balance shift its colours, and the frame is a JPEG. The ranges
    cover the simulator's cameras (jobs/simulator/frames.py) and reach below them (64 px faces).
    """

    face_px: tuple[float, float] = (64.0, 240.0)
    blur_px: tuple[float, float] = (0.0, 1.2)  # Gaussian radius, in frame pixels
    gain: tuple[float, float] = (0.6, 1.3)  # exposure
    white_balance: tuple[float, float] = (0.9, 1.1)  # per-channel gain
    jpeg_quality: tuple[int, int] = (60, 90)
    face_share_of_crop: float = 0.81


def camera_view(image: np.ndarray, rng: np.random.Generator,
                camera: CameraModel = CameraModel()) -> np.ndarray:
    """One uint8 (H, W, 3) face crop as a checkout camera would have delivered it.

    The crop is shrunk to the size the face had in a frame (when that is smaller than the
    crop), blurred, re-exposed and white-balanced there, JPEG-encoded at a camera's quality,
    decoded, and brought back to (H, W) as the serving path resizes a crop cut from a frame.
    """
    from PIL import Image

    height, width = image.shape[:2]
    picture = Image.fromarray(np.ascontiguousarray(image))
    side = frame_side(rng, camera)
    if side < width:
        picture = picture.resize((side, side), Image.Resampling.BILINEAR)
    picture = camera_losses(picture, rng, camera)
    if picture.size != (width, height):
        picture = picture.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(picture, dtype=np.uint8)


def frame_side(rng: np.random.Generator, camera: CameraModel = CameraModel()) -> int:
    """The side in frame pixels of a faces-set crop whose face a camera saw at a random size."""
    return int(round(rng.uniform(*camera.face_px) / camera.face_share_of_crop))


def camera_losses(picture: Image.Image, rng: np.random.Generator,
                  camera: CameraModel = CameraModel()) -> Image.Image:
    """`picture` (RGB, at its size in the frame) blurred, re-exposed, white-balanced and passed
    through a camera's JPEG encoding: a new decoded RGB image of the same size."""
    from PIL import Image, ImageFilter

    radius = rng.uniform(*camera.blur_px)
    if radius > 0.05:
        picture = picture.filter(ImageFilter.GaussianBlur(radius))
    gains = rng.uniform(*camera.gain) * rng.uniform(*camera.white_balance, size=3)
    shifted = np.clip(np.asarray(picture, dtype=np.float32) * gains, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(shifted).save(buffer, format="JPEG",
                                  quality=int(rng.integers(camera.jpeg_quality[0],
                                                           camera.jpeg_quality[1] + 1)))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def camera_views(images: np.ndarray, rng: np.random.Generator, share: float = 1.0,
                 camera: CameraModel = CameraModel(),
                 view: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                 ) -> np.ndarray:
    """A copy of a uint8 (N, H, W, 3) batch with each image, with chance `share`, replaced by
    its `camera_view` (or by `view(image, rng)`, e.g. `served_view.ServedView`)."""
    view = view or (lambda image, generator: camera_view(image, generator, camera))
    out = images.copy()
    for i in np.flatnonzero(rng.random(len(images)) < share):
        out[i] = view(images[i], rng)
    return out
