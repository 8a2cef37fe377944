"""YuNet (`yuface`) on faces-set crops pasted into scenes, decoded as the serving path decodes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from test_faces import FACE_FILES, _jpeg, _paste, _scene

from model.serving.faces import locate_customer
from model.serving.yunet import RUNTIMES, YuNetDetector


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_yunet_finds_every_customer_size_in_frame_pixels(faces_dir, runtime):
    detector = YuNetDetector(480, runtime=runtime)
    for i, (name, px) in enumerate(zip(FACE_FILES, (80, 120, 170, 230, 300), strict=True)):
        scene = _scene(seed=i)
        cx, cy, w = _paste(scene, faces_dir, name, px, (300 + 150 * i, 400 + 20 * i))
        faces, size = detector.detect_bytes(_jpeg(scene))  # decoded at 640x360, found at 480
        assert size == (1280, 720)
        confident = [f for f in faces if f.confidence >= 0.6]
        assert len(confident) == 1, (w, faces)
        face = confident[0]
        assert abs(face.x + face.w / 2 - cx) < 0.25 * w and abs(face.y + face.h / 2 - cy) < 0.3 * w
        assert 0.7 * w < face.w < 1.4 * w
        (lx, ly), (rx, ry) = face.left_eye, face.right_eye
        assert lx < rx and abs(ly - ry) < 0.2 * w  # two eyes, side by side, in frame pixels


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_yunet_sees_no_face_in_an_empty_scene_and_the_customer_among_two(faces_dir, runtime):
    detector = YuNetDetector(480, runtime=runtime)
    assert [f for f in detector.detect([_scene(seed=9)])[0] if f.confidence >= 0.6] == []
    scene = _scene(seed=3)
    _paste(scene, faces_dir, FACE_FILES[0], 90, (1000, 300))  # someone queueing behind
    cx, _, w = _paste(scene, faces_dir, FACE_FILES[1], 220, (560, 430))
    image = Image.open(io.BytesIO(_jpeg(scene))).convert("RGB")
    located = locate_customer(detector.detect([image])[0], image.size, min_confidence=0.6)
    assert located.reason is None and located.faces_found == 2
    assert abs(located.face.x + located.face.w / 2 - cx) < 0.25 * w
    assert np.isclose(located.face.w, w, rtol=0.3)


def test_the_runtime_setting_reaches_the_workers_and_a_wrong_one_is_refused(monkeypatch):
    from jobs.daily.score_photos import serving_options_from
    from model.config import load_settings
    from model.errors import UserError

    artifact = {"path": "age.xml", "precision": "f32"}
    assert serving_options_from(load_settings(), artifact)["detector_runtime"] == "openvino"
    monkeypatch.setenv("CHECKOUT_AGE_YUNET_RUNTIME", "yuface")
    assert serving_options_from(load_settings(), artifact)["detector_runtime"] == "yuface"
    monkeypatch.setenv("CHECKOUT_AGE_YUNET_RUNTIME", "onnx")
    with pytest.raises(UserError, match="CHECKOUT_AGE_YUNET_RUNTIME='onnx'"):
        serving_options_from(load_settings(), artifact)
    with pytest.raises(ValueError, match="runtime 'onnx'"):
        YuNetDetector(480, runtime="onnx")
