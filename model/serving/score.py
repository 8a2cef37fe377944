"""Score photos end to end in one process without TensorFlow: decode, detect, crop, predict.

What one Python worker of the score job runs when the model version has a serving artifact
(`model.serving.artifact`): each frame is decoded at the detector's reduced scale straight from
the JPEG (`open_scaled`), YuNet finds the faces, the customer rule picks one, the face is cut
from the frame decoded at full resolution (`crop_face`, the geometry calibrated for YuNet's
boxes) and the crops are scored in batches by the artifact. A face crop (a small photo) is
scored whole. Crops exist only in this process's memory. The rows are `locate_photos`'s plus
`age_pred_years`, so the job's tables do not depend on the path taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from model.config import Settings
from model.serving.faces import (
    DETECTION_FAILED,
    LOCATED_COLUMNS,
    MTCNN,
    YUNET,
    CropGeometry,
    Located,
    crop_face,
    is_crop,
    locate_customer,
    located_row,
)
from model.serving.images import ImageRejected, image_to_array, open_image, open_scaled

SCORED_COLUMNS = tuple(c for c in LOCATED_COLUMNS if c != "crop") + ("age_pred_years",)


@dataclass(frozen=True)
class ServingOptions:
    """How one worker scores: the artifact, its precision and threads, the detector."""

    artifact: str  # the artifact file (age.xml)
    precision: str = "f32"
    threads: int = 1
    cpu_pinning: bool = False  # OpenVINO's thread pinning (Settings.serving_cpu_pinning)
    size: int = 160
    batch_size: int = Settings.score_batch_size
    detector: str = YUNET
    detector_runtime: str = "openvino"  # YuNet's: openvino | yuface (Settings.yunet_runtime)
    detect_width: int = 480
    min_confidence: float = 0.6
    min_face_px: int = 64
    photo_format: str = "auto"
    crop_max_px: int = 400


@lru_cache(maxsize=2)
def shared_runtime(artifact: str, precision: str, threads: int,
                   cpu_pinning: bool = False):  # -> AgeRuntime
    """The artifact loaded once per process (Spark reuses its Python workers between tasks)."""
    from model.serving.artifact import load_runtime

    return load_runtime(artifact, threads=threads, precision=precision, cpu_pinning=cpu_pinning)


@lru_cache(maxsize=2)
def shared_detector(name: str, width: int, threads: int,
                    runtime: str = "openvino"):  # -> a detector with .detect
    """One face detector per process: YuNet, or MTCNN (which imports TensorFlow)."""
    if name == YUNET:
        from model.serving.yunet import YuNetDetector

        return YuNetDetector(width, threads=threads, runtime=runtime)
    if name == MTCNN:
        from model.serving.faces import FaceDetector

        return FaceDetector(width)
    raise ValueError(f"face detector {name!r}, expected {YUNET} or {MTCNN}")


def _geometry(name: str) -> CropGeometry:
    if name == YUNET:
        from model.serving.yunet import YUNET_GEOMETRY

        return YUNET_GEOMETRY
    return CropGeometry()


def score_contents(contents: list[bytes | None], options: ServingOptions,
                   limits: dict[str, int] | None = None) -> list[dict]:
    """One `SCORED_COLUMNS` row per photo: the verdict, the customer's face and the age.

    `age_pred_years` is NULL where `reason` is set (or the content is NULL); a frame the
    detector fails on gets `detection_failed`, never an exception.
    """
    limits = dict(limits or {})
    detector = shared_detector(options.detector, options.detect_width, options.threads,
                               options.detector_runtime)
    geometry = _geometry(options.detector)
    rows: list[dict] = []
    pixels: list[np.ndarray] = []
    scored_rows: list[int] = []
    for data in contents:
        row = dict.fromkeys(SCORED_COLUMNS)
        rows.append(row)
        if data is None:
            continue
        try:
            crop = _locate_and_crop(bytes(data), detector, geometry, options, limits, row)
        except ImageRejected as exc:
            row.update(reason=exc.reason, detail=exc.detail)
            continue
        if crop is not None:
            pixels.append(crop)
            scored_rows.append(len(rows) - 1)
    if pixels:
        runtime = shared_runtime(options.artifact, options.precision, options.threads,
                                 options.cpu_pinning)
        ages = runtime.predict(np.stack(pixels), batch_size=options.batch_size)
        for i, age in zip(scored_rows, ages, strict=True):
            rows[i]["age_pred_years"] = float(age)
    return rows


def _locate_and_crop(data: bytes, detector, geometry: CropGeometry,  # noqa: ANN001
                     options: ServingOptions, limits: dict, row: dict) -> np.ndarray | None:
    """Fill `row`'s verdict and face columns; the model input, or None (not scored)."""
    image, full_size = open_scaled(data, options.detect_width, **limits)
    if is_crop(full_size, options.photo_format, options.crop_max_px):
        if image.size != full_size:  # reduced for detection: a crop is scored at full size
            image = open_image(data, **limits)
        row.update(located_row(Located(0, None), frame=False))
        row.pop("crop", None)
        return image_to_array(image, options.size)
    try:
        faces = detector.detect([image], [full_size])[0]
    except Exception as exc:  # noqa: BLE001 - any detector error is this frame's verdict
        located = Located(0, None, DETECTION_FAILED, f"face detector failed: {exc}"[:300])
    else:
        located = locate_customer(faces, full_size, min_confidence=options.min_confidence,
                                  min_face_px=options.min_face_px)
    row.update(located_row(located, frame=True))
    row.pop("crop", None)
    if located.reason is not None:
        return None
    frame = image if image.size == full_size else open_image(data, **limits)
    return crop_face(frame, located.face, options.size, geometry)
