"""Simulated checkout frames: what the plan promises, what the JPEGs and the ground truth hold."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from jobs.simulator.frames import (
    CUSTOMER_FACE_PX,
    FRAME_H,
    FRAME_W,
    NO_FACE_SHARE,
    SECOND_FACE_SHARE,
    frame_faces,
    render_frame,
)
from jobs.simulator.landing import load_test_faces, write_day
from jobs.simulator.simulate import simulate_day

DAY = "2026-03-14"


@pytest.fixture(scope="module")
def test_faces(faces_dir, tmp_path_factory):
    return load_test_faces(faces_dir, tmp_path_factory.mktemp("face-cache"))


@pytest.fixture(scope="module")
def frames_day(test_faces):
    return simulate_day(test_faces, DAY, stores=4, receipts_per_store=150, seed=8, frames=True)


def test_frames_day_is_the_crops_day_plus_a_frame_plan(test_faces, frames_day):
    crops_day = simulate_day(test_faces, DAY, stores=4, receipts_per_store=150, seed=8)
    pd.testing.assert_frame_equal(crops_day.photos, frames_day.photos.drop(columns="frame"))
    pd.testing.assert_frame_equal(crops_day.truth_receipts, frames_day.truth_receipts)
    again = simulate_day(test_faces, DAY, stores=4, receipts_per_store=150, seed=8, frames=True)
    assert again.photos.frame.tolist() == frames_day.photos.frame.tolist()


def test_plan_places_faces_as_promised(test_faces, frames_day):
    faces = [frame_faces(plan) for plan in frames_day.photos.frame]
    customers = [f for frame in faces for f in frame if f["role"] == "customer"]
    queueing = [(f, c) for frame in faces for f in frame for c in frame
                if f["role"] == "queue" and c["role"] == "customer"]
    empty = sum(not frame for frame in faces)
    # The shares the generator is set to, within 4 standard errors of a binomial draw of this
    # many frames: a generator that stops honouring its settings fails here.
    count = len(faces)
    for seen, share in ((empty, NO_FACE_SHARE),
                        (len(queueing), SECOND_FACE_SHARE * (1 - NO_FACE_SHARE))):
        assert abs(seen - share * count) <= 4 * np.sqrt(count * share * (1 - share)) + 1
    widths = np.array([f["w"] for f in customers])
    low, high = CUSTOMER_FACE_PX
    assert widths.min() >= low - 1 and widths.max() <= high + 1
    assert np.ptp(widths) > 0.6 * (high - low)  # spread over the range, not one size
    for face in customers:  # whole box inside the frame, in its lower two thirds
        assert face["y"] >= FRAME_H / 3 - 1 and face["y"] + face["h"] <= FRAME_H + 1
        assert face["x"] >= -1 and face["x"] + face["w"] <= FRAME_W + 1
    assert all(q["w"] < 0.7 * c["w"] for q, c in queueing)
    by_file = test_faces.set_index("file_name")["real_age"]
    assert all(by_file[f["file"]] == f["age"] for frame in faces for f in frame)


def test_rendered_frames_vary_and_are_deterministic(frames_day):
    plans = frames_day.photos.frame.tolist()[:12]
    data = [render_frame(plan) for plan in plans]
    assert render_frame(plans[0]) == data[0]
    images = [Image.open(io.BytesIO(d)) for d in data]
    assert {(im.format, im.size) for im in images} == {("JPEG", (FRAME_W, FRAME_H))}
    means = [np.asarray(im.convert("L"), float).mean() for im in images]
    assert np.ptp(means) > 15  # brightness varies
    for im in images:  # the background is textured, not a flat colour
        grey = np.asarray(im.convert("L"), float)
        assert grey.std() > 20 and np.abs(np.diff(grey[:FRAME_H // 3], axis=1)).mean() > 1.5
    qualities = {json.loads(plan)["quality"] for plan in frames_day.photos.frame}
    assert min(qualities) >= 60 and max(qualities) <= 90 and len(qualities) > 10


def test_landing_holds_frames_and_truth_every_face(test_faces, tmp_path):
    day = simulate_day(test_faces, DAY, 1, 25, seed=2, frames=True)
    landing = write_day(day, str(tmp_path))
    files = sorted((landing / "photos").rglob("*.jpg"))
    sizes = {Image.open(path).size for path in files if path.stat().st_size > 1000}
    assert sizes == {(FRAME_W, FRAME_H)}
    truth = pd.read_csv(tmp_path / "ground_truth" / f"date={DAY}" / "photos.csv",
                        keep_default_na=False)
    assert "frame" not in truth.columns and len(truth) == len(day.photos)
    assert not truth.astype(str).apply(lambda col: col.str.contains("/final_files/")).any().any()
    faces = dict(zip(truth.photo_id, (json.loads(text) for text in truth.faces), strict=True))
    # Every face the plan put in a frame (customer and queueing) is in the truth, as planned.
    planned = dict(zip(day.photos.photo_id, (frame_faces(p) for p in day.photos.frame), strict=True))
    assert faces == planned
    assert sum(f["role"] == "queue" for frame in faces.values() for f in frame) > 0
    assert all({"x", "y", "w", "h", "age", "role"} <= set(f)
               for frame in faces.values() for f in frame)
