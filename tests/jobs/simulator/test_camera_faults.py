"""Camera faults for the drift alarms: parsed strictly, and each one really changes the photo."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from jobs.simulator.camera_faults import CAMERA_FAULTS, CameraFault, degrade, parse_camera_fault
from model.errors import UserError


def test_a_fault_is_store_lane_and_kind():
    assert parse_camera_fault("S001:2:blur") == CameraFault("S001", 2, "blur")
    for bad, message in (("S001:2", "expected STORE:LANE:KIND"), ("S001:x:blur", "expected"),
                         ("S001:2:fog", "use one of blur, dark, glare, tilt")):
        with pytest.raises(UserError, match=message):
            parse_camera_fault(bad)


def _photo() -> bytes:
    rng = np.random.default_rng(1)
    pixels = rng.integers(60, 200, (120, 160, 3), dtype=np.uint8)
    pixels[30:90, 50:110] = (220, 180, 150)  # a bright square with sharp edges
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=95)
    return out.getvalue()


@pytest.mark.parametrize("kind", CAMERA_FAULTS)
def test_each_fault_degrades_the_photo(kind):
    before = np.asarray(Image.open(io.BytesIO(_photo())).convert("RGB"), dtype=float)
    after = np.asarray(Image.open(io.BytesIO(degrade(_photo(), kind))).convert("RGB"),
                       dtype=float)
    assert after.shape == before.shape
    edges = lambda a: np.abs(np.diff(a.mean(axis=2), axis=1)).mean()  # noqa: E731
    if kind == "blur":
        assert edges(after) < edges(before) / 2
    elif kind == "dark":
        assert after.mean() < before.mean() * 0.35
    elif kind == "glare":
        assert after.mean() > 220
    else:  # tilt: the corners are the grey fill
        assert np.allclose(after[0, 0], 128, atol=12) and not np.allclose(before[0, 0], 128,
                                                                           atol=12)
