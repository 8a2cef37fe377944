"""model/serving/images.py: one decoder, stable reasons for bad bytes, conversions instead of rejections."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from model.serving.images import (
    ABSURD_DIMENSIONS,
    NOT_AN_IMAGE,
    UNREADABLE_IMAGE,
    ImageRejected,
    decode_face,
    open_image,
    open_scaled,
)


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _noise(mode: str, size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4, "CMYK": 4}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze() if channels == 1 else pixels, mode)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming width x height, with no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )


def _rejection(data: bytes, **limits) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        decode_face(data, 32, **limits)
    return caught.value


def test_rgb_jpeg_decodes_to_square_uint8():
    array = decode_face(_encode(_noise("RGB"), "JPEG"), 40)
    assert array.shape == (40, 40, 3)
    assert array.dtype == np.uint8


def test_non_square_image_is_centre_cropped():
    # 120x40: left third red, middle third green, right third blue -> the square is green.
    pixels = np.zeros((40, 120, 3), dtype=np.uint8)
    pixels[:, :40, 0] = 255
    pixels[:, 40:80, 1] = 255
    pixels[:, 80:, 2] = 255
    array = decode_face(_encode(Image.fromarray(pixels), "PNG"), 40)
    assert (array == [0, 255, 0]).all()


@pytest.mark.parametrize(
    ("mode", "fmt"), [("L", "JPEG"), ("CMYK", "JPEG"), ("RGBA", "PNG"), ("L", "PNG")]
)
def test_other_modes_are_converted_to_rgb(mode, fmt):
    array = decode_face(_encode(_noise(mode), fmt), 32)
    assert array.shape == (32, 32, 3)


def test_palette_image_is_converted():
    palette = _noise("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    assert decode_face(_encode(palette, "PNG"), 32).shape == (32, 32, 3)


def test_transparent_pixels_become_mid_grey():
    clear = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    assert (decode_face(_encode(clear, "PNG"), 32) == 128).all()


def test_grayscale_keeps_its_grey_level():
    grey = Image.new("L", (40, 40), 77)
    assert (decode_face(_encode(grey, "PNG"), 32) == 77).all()


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (60, 40), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    upright = open_image(_encode(image, "JPEG", exif=exif.tobytes()))
    assert upright.size == (40, 60)


def test_empty_bytes_are_not_an_image():
    assert _rejection(b"").reason == NOT_AN_IMAGE


def test_text_is_not_an_image():
    assert _rejection(b"file_name,real_age\n000001.jpg,25\n").reason == NOT_AN_IMAGE


def test_truncated_jpeg_is_unreadable():
    data = _encode(_noise("RGB", (96, 96)), "JPEG", quality=90)
    rejection = _rejection(data[: len(data) // 2])
    assert rejection.reason == UNREADABLE_IMAGE
    assert "truncated" in rejection.detail


def test_one_pixel_image_has_absurd_dimensions():
    rejection = _rejection(_encode(Image.new("RGB", (1, 1)), "PNG"))
    assert rejection.reason == ABSURD_DIMENSIONS
    assert rejection.detail == "1x1 pixels"


def test_decompression_bomb_is_refused_from_the_header():
    started = time.perf_counter()
    rejection = _rejection(_png_header_only(100_000, 100_000))
    assert rejection.reason == ABSURD_DIMENSIONS
    assert rejection.detail == "100000x100000 pixels"
    assert time.perf_counter() - started < 1.0  # nothing was decoded


def test_limits_are_parameters():
    data = _encode(_noise("RGB", (64, 48)), "PNG")
    assert _rejection(data, min_side=50).reason == ABSURD_DIMENSIONS
    assert _rejection(data, max_side=60).reason == ABSURD_DIMENSIONS
    assert _rejection(data, max_pixels=64 * 48 - 1).reason == ABSURD_DIMENSIONS
    assert decode_face(data, 32, max_pixels=64 * 48).shape == (32, 32, 3)


def test_a_jpeg_frame_is_decoded_at_a_dct_scale_no_smaller_than_asked():
    x, y = np.meshgrid(np.linspace(0, 1, 1280), np.linspace(0, 1, 720))
    smooth = np.stack([200 * x, 200 * y, 100 + 100 * np.sin(6 * x * y)], axis=-1)
    data = _encode(Image.fromarray(smooth.astype(np.uint8)), "JPEG", quality=90)
    half, size = open_scaled(data, 480)  # 1/2 is the smallest scale still >= 480 px wide
    assert size == (1280, 720) and half.size == (640, 360)
    quarter, _ = open_scaled(data, 320)
    assert quarter.size == (320, 180)
    # What a full decode shrunk the same way shows (DCT scaling averages 2x2 blocks).
    full = np.asarray(open_image(data).resize((640, 360), Image.Resampling.BOX), dtype=float)
    assert np.abs(np.asarray(half, dtype=float) - full).mean() < 2


def test_scaled_decoding_keeps_small_photos_other_formats_and_exif_turns():
    small, size = open_scaled(_encode(_noise("RGB", (200, 200)), "JPEG"), 480)
    assert small.size == size == (200, 200)
    png, size = open_scaled(_encode(_noise("RGB", (1280, 720)), "PNG"), 480)
    assert png.size == size == (1280, 720)  # no DCT to scale: decoded whole
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    turned, size = open_scaled(_encode(Image.new("RGB", (1280, 720)), "JPEG",
                                       exif=exif.tobytes()), 480)
    assert size == (720, 1280) and turned.size == (360, 640)


def test_scaled_decoding_rejects_like_the_full_decoder():
    with pytest.raises(ImageRejected) as caught:
        open_scaled(b"", 480)
    assert caught.value.reason == NOT_AN_IMAGE
    data = _encode(_noise("RGB", (1280, 720)), "JPEG")
    with pytest.raises(ImageRejected) as caught:
        open_scaled(data[: len(data) // 3], 480)
    assert caught.value.reason == UNREADABLE_IMAGE
    with pytest.raises(ImageRejected) as caught:
        open_scaled(data, 480, max_side=1000)
    assert caught.value.reason == ABSURD_DIMENSIONS
