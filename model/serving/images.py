"""Robust decoding of face images into uint8 RGB arrays at the model's size.

One decoder for training data, evaluation and the daily scoring job, so a photo is
seen the same way everywhere. Bad bytes raise `ImageRejected` with a stable reason
code (used as quarantine reasons and validator counts); they never crash a caller.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from model.config import Settings

# Reason codes shared by the dataset validator and the scoring job's quarantine.
NOT_AN_IMAGE = "not_an_image"
UNREADABLE_IMAGE = "unreadable_image"
ABSURD_DIMENSIONS = "absurd_dimensions"

# PIL's own bomb guard would raise a warning/error with its own limit; we apply ours
# before decoding, from the header only.
Image.MAX_IMAGE_PIXELS = None


class ImageRejected(ValueError):
    """An image that cannot be used; `reason` is a stable code, `detail` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _to_rgb(image: Image.Image) -> Image.Image:
    """Grayscale, CMYK, palette and alpha images become plain RGB (alpha over grey)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _center_square(image: Image.Image) -> Image.Image:
    width, height = image.size
    side = min(width, height)
    left = (width - side) // 2
    top = (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def open_image(
    data: bytes,
    *,
    min_side: int = Settings.min_side_px,
    max_side: int = Settings.max_side_px,
    max_pixels: int = Settings.max_pixels,
) -> Image.Image:
    """Fully decode `data` into an upright RGB PIL image, or raise `ImageRejected`.

    Dimensions are checked from the header before any pixel is decoded, so a
    decompression bomb costs nothing.
    """
    return _decode(_open_checked(data, min_side, max_side, max_pixels))


def open_scaled(
    data: bytes,
    width: int,
    *,
    min_side: int = 32,
    max_side: int = 8000,
    max_pixels: int = 40_000_000,
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode `data` at a reduced scale at least `width` px wide: (image, full upright size).

    A JPEG is decoded with libjpeg's DCT scaling (1/2, 1/4 or 1/8: PIL `draft`), which skips
    most of the decoding work; other formats are decoded whole. The image is never smaller
    than `width` (unless the photo is) and is not resized further here. The checks and the
    reasons are `open_image`'s; the full size is what `open_image` would return.
    """
    image = _open_checked(data, min_side, max_side, max_pixels)
    full = image.size
    if image.format == "JPEG" and full[0] > width:
        try:
            image.draft("RGB", (width, max(1, full[1] * width // full[0])))
        except Exception as exc:  # a header PIL cannot scale is a broken file
            raise ImageRejected(UNREADABLE_IMAGE, f"header unreadable ({exc})") from None
    scale = image.size[0] / full[0]
    decoded = _decode(image)  # an EXIF quarter turn swaps the sides: the scale stays one
    return decoded, (round(decoded.size[0] / scale), round(decoded.size[1] / scale))


def _open_checked(data: bytes, min_side: int, max_side: int, max_pixels: int) -> Image.Image:
    """The opened (not decoded) image after the header checks, or `ImageRejected`."""
    if not data:
        raise ImageRejected(NOT_AN_IMAGE, "file is empty")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageRejected(NOT_AN_IMAGE, "not a recognised image format") from None
    except Exception as exc:  # PIL raises many types on hostile headers
        raise ImageRejected(UNREADABLE_IMAGE, f"header unreadable ({exc})") from None
    width, height = image.size
    if (
        width < min_side
        or height < min_side
        or width > max_side
        or height > max_side
        or width * height > max_pixels
    ):
        raise ImageRejected(ABSURD_DIMENSIONS, f"{width}x{height} pixels")
    return image


def _decode(image: Image.Image) -> Image.Image:
    """Decode an opened image upright in RGB, or raise `ImageRejected`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
            image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except Exception as exc:  # truncated data, bad huffman tables, ...
        raise ImageRejected(UNREADABLE_IMAGE, f"decoding failed ({exc})") from None


def image_to_array(image: Image.Image, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to `size`x`size`; uint8 array (size, size, 3)."""
    square = _center_square(image)
    if square.size != (size, size):
        square = square.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(square, dtype=np.uint8)


def decode_face(data: bytes, size: int, **limits: int) -> np.ndarray:
    """Decode image bytes into a uint8 (size, size, 3) RGB array or raise `ImageRejected`."""
    return image_to_array(open_image(data, **limits), size)
