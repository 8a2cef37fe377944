"""YuNet on OpenVINO against yuface itself: the same faces on the simulator's checkout frames."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_faces import FACE_FILES, _paste, _scene

from jobs.simulator.frames import plan_frames, render_frame
from model.serving.images import open_scaled
from model.serving.yunet_net import YuNetOpenVINO, _check_chain, read_layers

os.environ.setdefault("OMP_NUM_THREADS", "1")  # yuface's OpenMP: one thread, as the job runs it


def _yuface(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import yuface

    return yuface.detect(np.ascontiguousarray(rgb[:, :, ::-1]), conf=0.0)


def _assert_same_faces(ours: tuple, theirs: tuple, where: str) -> None:
    confs, boxes, marks = ours
    their_confs, their_boxes, their_marks = theirs
    assert len(confs) == len(their_confs), (where, ours, theirs)
    # Whole pixels and percent truncated from floats summed in another order: at most one off.
    assert np.all(np.abs(confs.astype(int) - their_confs.astype(int)) <= 1), where
    assert np.all(np.abs(boxes.astype(int) - their_boxes.astype(int)) <= 1), where
    assert np.all(np.abs(marks[:, :10].astype(int) - their_marks[:, :10].astype(int)) <= 1), where


@pytest.fixture(scope="module")
def network() -> YuNetOpenVINO:
    return YuNetOpenVINO(threads=1)


def test_openvino_yunet_finds_what_yuface_finds_on_checkout_frames(faces_dir, network):
    labels = pd.read_csv(faces_dir / "labels.csv").head(48)
    paths = [str(faces_dir / "final_files" / name) for name in labels["file_name"]]
    photos = pd.DataFrame({"face_path": paths[:40], "face_file": labels["file_name"][:40],
                           "customer_age": labels["real_age"][:40]})
    queue = pd.DataFrame({"path": paths[40:], "file_name": labels["file_name"][40:],
                          "real_age": labels["real_age"][40:]})
    plans = plan_frames(photos, queue, np.random.default_rng(7))
    found = []
    for i, frame in enumerate(plans["frame"]):
        image, size = open_scaled(render_frame(frame), 480)  # as the score job decodes it
        assert size == (1280, 720)
        rgb = np.asarray(image)
        ours = network.detect(rgb)
        _assert_same_faces(ours, _yuface(rgb), f"frame {i}")
        found.append(len(ours[0]))
    # The day held what makes the comparison worth something: frames with no face, one, two.
    assert {0, 1, 2} <= set(found), found


def test_faces_at_the_edge_and_images_of_any_size(faces_dir, network):
    scene = _scene(seed=5)
    _paste(scene, faces_dir, FACE_FILES[0], 200, (40, 360))  # half outside the left edge
    _paste(scene, faces_dir, FACE_FILES[1], 150, (1240, 700))  # past the bottom-right corner
    _paste(scene, faces_dir, FACE_FILES[2], 180, (640, 300))
    image = scene.resize((480, 270), Image.Resampling.BILINEAR)
    rgb = np.asarray(image)
    ours = network.detect(rgb)
    _assert_same_faces(ours, _yuface(rgb), "edges")
    assert len(ours[0]) >= 2 and ours[1][:, 0].min() < 0  # a box reaching past the left edge
    for width, height in ((37, 100), (100, 37), (481, 271), (32, 32), (250, 333)):
        small = np.asarray(scene.resize((width, height)))  # not multiples of 32: padded
        _assert_same_faces(network.detect(small), _yuface(small), f"{width}x{height}")


def test_a_library_whose_layers_are_not_yunet_is_refused():
    layers = list(read_layers())
    assert len(layers) == 53 and layers[0].channels == 32 and layers[0].filters == 16
    _check_chain(layers)  # the installed yuface's table is the network built here
    swapped = layers.copy()
    swapped[2] = dataclasses.replace(layers[2], depthwise=False)
    with pytest.raises(ValueError, match="layers 1, 2"):
        _check_chain(swapped)
    wider_head = layers.copy()
    wider_head[29] = dataclasses.replace(layers[29], filters=2)
    wider_head[30] = dataclasses.replace(layers[30], channels=2)
    with pytest.raises(ValueError, match="cls head 0"):
        _check_chain(wider_head)


def test_a_yuface_build_the_network_does_not_fit_falls_back_to_its_own_code(faces_dir,
                                                                            monkeypatch, caplog):
    from model.serving import yunet_net
    from model.serving.yunet import YuNetDetector

    def another_build() -> tuple:
        raise ValueError("libfacedetection layer 7: neither 1x1 nor 3x3 depthwise")

    monkeypatch.setattr(yunet_net, "read_layers", another_build)
    with caplog.at_level("WARNING", logger="model.serving.yunet"):
        detector = YuNetDetector(480, runtime="openvino")
    assert detector.runtime == "yuface"
    assert "layer 7" in caplog.text and "running yuface's own code" in caplog.text
    scene = _scene(seed=2)
    _paste(scene, faces_dir, FACE_FILES[3], 200, (640, 360))
    assert [f for f in detector.detect([scene])[0] if f.confidence >= 0.6]  # still finds it
