"""A lane camera gone wrong, for the drift alarms' tests and measurement (`simulate --camera-fault`).

`S001:2:blur` degrades every photo of store S001, lane 2: `blur` (out of focus), `dark`
(under-exposed), `glare` (over-exposed), `tilt` (the camera knocked 25 degrees). Sizes are
relative to the photo's width, so frames and crops degrade alike.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageFilter

from model.errors import UserError

CAMERA_FAULTS = ("blur", "dark", "glare", "tilt")


@dataclass(frozen=True)
class CameraFault:
    """Which lane's camera is degraded, and how."""

    store_id: str
    lane_id: int
    kind: str


def parse_camera_fault(text: str) -> CameraFault:
    """`STORE:LANE:KIND` (e.g. `S001:2:blur`), or a UserError naming what is wrong."""
    parts = (text or "").split(":")
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
        raise UserError(f"camera fault {text!r}: expected STORE:LANE:KIND, e.g. S001:2:blur")
    if parts[2] not in CAMERA_FAULTS:
        raise UserError(f"camera fault kind {parts[2]!r}: use one of {', '.join(CAMERA_FAULTS)}")
    return CameraFault(parts[0], int(parts[1]), parts[2])


def degrade_image(image: Image.Image, kind: str) -> Image.Image:
    """`image` as the faulty camera sees it."""
    rgb = image.convert("RGB")
    if kind == "blur":
        return rgb.filter(ImageFilter.GaussianBlur(max(2.0, rgb.width / 160)))
    if kind == "dark":
        return rgb.point([int(v * 0.25) for v in range(256)] * 3)
    if kind == "glare":
        return rgb.point([min(255, int(v * 2.2 + 70)) for v in range(256)] * 3)
    if kind == "tilt":
        return rgb.rotate(25, resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128))
    raise ValueError(f"unknown camera fault {kind!r}")


def degrade(data: bytes, kind: str) -> bytes:
    """JPEG bytes of the photo `data` degraded by `kind`."""
    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        degrade_image(image, kind).save(out, format="JPEG", quality=85)
    return out.getvalue()
