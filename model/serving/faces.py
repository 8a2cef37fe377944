"""The customer's face in a checkout frame: detect faces, choose the customer's, crop it like
the training faces.

A checkout camera sends a frame of the lane, not a face crop. `FaceDetector` finds faces with
MTCNN (the `mtcnn` package, MIT, its three small nets bundled in the wheel: nothing is
downloaded at run time) on a copy of the frame scaled down to `detect_width` px, which is what
makes it fast enough (docs/frames.md has the figures); boxes come back in full-frame pixels and
the crop is cut from the full-resolution frame. `choose_customer` is the documented rule that
picks the customer among the faces found, `locate_customer` turns that into a quarantine reason
or a crop, and `crop_face` cuts the crop with the geometry calibrated against the faces set
(`CropGeometry`). No pyspark here: the score job calls these inside its Python workers, and
training or evaluation can call them on frames too. Crops live only in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from model.config import Settings
from model.serving.images import image_to_array
from model.serving.reasons import DETECTION_FAILED, FACE_TOO_SMALL, NO_FACE

DETECT_WIDTH = Settings.detect_width_px  # MTCNN: frames are scaled to this width for detection
MIN_CONFIDENCE = Settings.min_face_confidence  # MTCNN: a detection below this is not a face
MIN_FACE_PX = Settings.min_face_px  # a chosen face narrower than this is `face_too_small`
MTCNN, YUNET = "mtcnn", "yunet"  # the face detectors (`CHECKOUT_AGE_FACE_DETECTOR`)
NEAR_TIE = 0.8  # faces at least this share of the widest one's width compete on centring
DETECT_BATCH = 16  # frames of one size per detector call (one call per pyramid level)
MAX_TILT_DEG = 30.0  # eye lines tilted more than this are landmark errors, not heads
_MIN_DETECT_SIDE = 24  # MTCNN's first net needs 12 px; smaller scaled frames have no face


@dataclass(frozen=True)
class Face:
    """One detected face, in full-frame pixels; eyes are (x, y) points."""

    x: float
    y: float
    w: float
    h: float
    confidence: float
    left_eye: tuple[float, float]
    right_eye: tuple[float, float]

    def box(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) rounded to whole pixels: what `photo_scores` stores."""
        return round(self.x), round(self.y), round(self.w), round(self.h)


@dataclass(frozen=True)
class CropGeometry:
    """Where the training crop lies relative to a detected face.

    The faces set's 200x200 crops are aligned on the eyes and tight: MTCNN finds the face box
    at 0.82 of the crop's width and 0.96 of its height. The defaults are measured on 189 test
    faces pasted into simulated frames and detected there, as the score job does (frames scaled
    to 480 px): the pasted crop's side is 1.25 box widths, its centre 0.024 box widths right of
    and 0.053 box heights below the box centre (bench/bench_frames.py, docs/frames.md).
    The crop is a square of side `scale` x box width around the box centre moved by
    (`dx` box widths, `dy` box heights); `align_eyes` also turns it so the eyes are level, as
    the faces set was aligned (a tilt over `MAX_TILT_DEG` means unreliable landmarks: not
    turned).
    """

    scale: float = 1.25
    dx: float = 0.024
    dy: float = 0.053
    align_eyes: bool = True


def choose_customer(faces: list[Face], frame_width: int,
                    min_confidence: float = MIN_CONFIDENCE) -> Face | None:
    """The customer's face: the widest confident face, nearest the centre line on a near tie.

    The customer stands at the till, nearest the lane camera, so their face is the largest;
    someone queueing behind is smaller. When two confident faces are almost as wide (within
    `NEAR_TIE`), the one nearest the frame's vertical centre line (the camera looks down the
    lane) wins. None when no face reaches `min_confidence`.
    """
    confident = [face for face in faces if face.confidence >= min_confidence]
    if not confident:
        return None
    widest = max(face.w for face in confident)
    contenders = [face for face in confident if face.w >= NEAR_TIE * widest]
    return min(contenders, key=lambda face: abs(face.x + face.w / 2 - frame_width / 2))


@dataclass(frozen=True)
class Located:
    """What a frame holds: the chosen face, or a quarantine reason (`reason`, `detail`)."""

    faces_found: int
    face: Face | None
    reason: str | None = None
    detail: str | None = None


def locate_customer(faces: list[Face], frame_size: tuple[int, int], *,
                    min_confidence: float = MIN_CONFIDENCE,
                    min_face_px: int = MIN_FACE_PX) -> Located:
    """The customer's face among `faces` of a (width, height) frame, or why there is none."""
    found = sum(face.confidence >= min_confidence for face in faces)
    face = choose_customer(faces, frame_size[0], min_confidence)
    if face is None:
        return Located(0, None, NO_FACE,
                       f"no face with confidence >= {min_confidence:.2f} in a "
                       f"{frame_size[0]}x{frame_size[1]} frame")
    if face.w < min_face_px:
        return Located(found, face, FACE_TOO_SMALL,
                       f"largest face {face.w:.0f} px wide, the minimum is {min_face_px} px")
    return Located(found, face)


def crop_face(image: Image.Image, face: Face, size: int,
              geometry: CropGeometry = CropGeometry()) -> np.ndarray:
    """The model's input (uint8, size x size x 3) for `face` of `image` (the full frame).

    Cut at the frame's own resolution, then resized exactly as `model.images.decode_face`
    resizes a training crop. Parts of the square outside the frame (a face at the border) are
    mid-grey.
    """
    side = geometry.scale * face.w
    cx = face.x + face.w / 2 + geometry.dx * face.w
    cy = face.y + face.h / 2 + geometry.dy * face.h
    angle = 0.0
    if geometry.align_eyes:
        # The eye on the image's left first, whatever the detector calls it, so the angle is
        # the eye line's tilt (a few degrees), never a half turn.
        (lx, ly), (rx, ry) = sorted((face.left_eye, face.right_eye))
        angle = math.atan2(ry - ly, rx - lx)
        if abs(math.degrees(angle)) > MAX_TILT_DEG:
            angle = 0.0
    out = max(1, int(round(side)))
    step = side / out
    cos, sin = math.cos(angle) * step, math.sin(angle) * step
    # Output pixel (u, v) samples the frame at centre + R(angle) @ (u - out/2, v - out/2) * step.
    coeffs = (cos, -sin, cx - cos * out / 2 + sin * out / 2,
              sin, cos, cy - sin * out / 2 - cos * out / 2)
    square = image.transform((out, out), Image.Transform.AFFINE, coeffs,
                             resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128))
    return image_to_array(square, size)


class FaceDetector:
    """MTCNN on frames scaled to `detect_width`; faces in full-frame pixels.

    Build it once per process (`shared_detector`): the nets load in about a second.
    """

    def __init__(self, detect_width: int = DETECT_WIDTH) -> None:
        from mtcnn import MTCNN  # imports TensorFlow: only where detection runs

        self.detect_width = detect_width
        self._net = MTCNN()

    def _scaled(self, image: Image.Image) -> tuple[np.ndarray, float]:
        width, height = image.size
        scale = min(1.0, self.detect_width / width)
        if scale < 1.0:
            size = (self.detect_width, max(1, round(height * scale)))
            image = image.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8), scale

    def _run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """MTCNN rows (x, y, w, h, confidence, eyes...) per array, in the arrays' pixels."""
        rows = self._net.detect_faces(list(arrays), output_type="numpy", box_format="xywh")
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 16)
        return [rows[rows[:, 0] == i, 1:] for i in range(len(arrays))]

    def detect(self, images: list[Image.Image],
               frame_sizes: list[tuple[int, int]] | None = None) -> list[list[Face]]:
        """Faces of each RGB image (any sizes: frames of one size are detected together).

        `frame_sizes`: each image's full frame (width, height) when it was decoded at a
        reduced scale (faces come back in frame pixels); None: the images are the frames.
        """
        if frame_sizes is not None:
            found = self.detect(images)
            return [[_rescaled(face, size[0] / image.width) for face in faces]
                    for faces, image, size in zip(found, images, frame_sizes, strict=True)]
        scaled = [self._scaled(image) for image in images]
        results: list[list[Face]] = [[] for _ in images]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, (array, _) in enumerate(scaled):
            if min(array.shape[:2]) >= _MIN_DETECT_SIDE:  # smaller: nothing to find
                by_shape.setdefault(array.shape, []).append(i)
        for indices in by_shape.values():
            for start in range(0, len(indices), DETECT_BATCH):
                chunk = indices[start:start + DETECT_BATCH]
                for i, rows in zip(chunk, self._run([scaled[i][0] for i in chunk]), strict=True):
                    results[i] = [_face(row, scaled[i][1]) for row in rows]
        return results


def _rescaled(face: Face, ratio: float) -> Face:
    if ratio == 1.0:
        return face
    return Face(face.x * ratio, face.y * ratio, face.w * ratio, face.h * ratio, face.confidence,
                (face.left_eye[0] * ratio, face.left_eye[1] * ratio),
                (face.right_eye[0] * ratio, face.right_eye[1] * ratio))


def _face(row: np.ndarray, scale: float) -> Face:
    # MTCNN's numpy rows: x, y, w, h, confidence, then the 5 landmarks' x values (left eye,
    # right eye, nose, mouth left, mouth right), then their 5 y values.
    x, y, w, h, confidence = (float(v) for v in row[:5])
    lx, rx, ly, ry = float(row[5]), float(row[6]), float(row[10]), float(row[11])
    return Face(x / scale, y / scale, w / scale, h / scale, confidence,
                (lx / scale, ly / scale), (rx / scale, ry / scale))


@lru_cache(maxsize=2)
def shared_detector(detect_width: int = DETECT_WIDTH) -> FaceDetector:
    """One detector per process and width (Spark reuses its Python workers between tasks)."""
    return FaceDetector(detect_width)


FRAMES, CROPS, AUTO = "frames", "crops", "auto"
PHOTO_FORMATS = (AUTO, FRAMES, CROPS)
LOCATED_COLUMNS = ("reason", "detail", "faces_found", "face_x", "face_y", "face_w", "face_h",
                   "face_confidence", "crop")


def is_crop(size: tuple[int, int], photo_format: str, crop_max_px: int) -> bool:
    """Whether a photo of `size` is a ready face crop (scored whole) rather than a frame.

    `auto`: a photo no larger than `crop_max_px` on both sides is a crop (the faces set's are
    200x200; a checkout frame is 640 px wide or more).
    """
    if photo_format not in PHOTO_FORMATS:
        raise ValueError(f"photo format {photo_format!r}, expected one of {PHOTO_FORMATS}")
    if photo_format == AUTO:
        return max(size) <= crop_max_px
    return photo_format == CROPS


def located_row(located: Located, frame: bool) -> dict:
    """One `locate_photos` row (`LOCATED_COLUMNS`); `crop` = what `crop_from` needs ([] = the
    whole photo)."""
    row = dict.fromkeys(LOCATED_COLUMNS)
    row.update(reason=located.reason, detail=located.detail)
    if not frame:
        row["crop"] = [] if located.reason is None else None
        return row
    row["faces_found"] = located.faces_found
    face = located.face
    if face is not None:
        row.update(zip(("face_x", "face_y", "face_w", "face_h"), face.box(), strict=True))
        row["face_confidence"] = face.confidence
        if located.reason is None:
            row["crop"] = [face.x, face.y, face.w, face.h, *face.left_eye, *face.right_eye]
    return row


def locate_photos(contents: list[bytes | None], *, photo_format: str = AUTO,
                  crop_max_px: int = Settings.crop_max_px, detect_width: int = DETECT_WIDTH,
                  min_confidence: float = MIN_CONFIDENCE, min_face_px: int = MIN_FACE_PX,
                  limits: dict[str, int] | None = None) -> list[dict]:
    """Per photo: the decoder's or the detector's verdict and, for frames, the customer's face.

    Rows have `LOCATED_COLUMNS`: reason/detail (NULL when the photo can be scored; decoder
    reasons of `model.images`, `no_face`, `face_too_small`, `detection_failed`), faces_found,
    the chosen face box and confidence (NULL for crops), and `crop` for `crop_from`. NULL
    content (nothing to decode) gives an all-NULL row. Frames are decoded and detected
    `DETECT_BATCH` at a time, so memory stays bounded whatever the batch size.
    """
    from model.serving.images import ImageRejected, open_image

    rows: list[dict] = [dict.fromkeys(LOCATED_COLUMNS) for _ in contents]
    for start in range(0, len(contents), DETECT_BATCH):
        frames: dict[int, Image.Image] = {}
        for i in range(start, min(start + DETECT_BATCH, len(contents))):
            if contents[i] is None:
                continue
            try:
                image = open_image(bytes(contents[i]), **(limits or {}))
            except ImageRejected as exc:
                rows[i].update(reason=exc.reason, detail=exc.detail)
                continue
            if is_crop(image.size, photo_format, crop_max_px):
                rows[i] = located_row(Located(0, None), frame=False)
            else:
                frames[i] = image
        for i, faces in _detect_safely(frames, detect_width).items():
            located = faces if isinstance(faces, Located) else locate_customer(
                faces, frames[i].size, min_confidence=min_confidence, min_face_px=min_face_px)
            rows[i] = located_row(located, frame=True)
    return rows


def _detect_safely(frames: dict[int, Image.Image],
                   detect_width: int) -> dict[int, list[Face] | Located]:
    """Faces per frame; a frame the detector fails on gets a `detection_failed` verdict."""
    if not frames:
        return {}
    detector = shared_detector(detect_width)
    try:
        return dict(zip(frames, detector.detect(list(frames.values())), strict=True))
    except Exception:  # one bad frame must not fail the batch: retry one by one
        out: dict[int, list[Face] | Located] = {}
        for i, image in frames.items():
            try:
                out[i] = detector.detect([image])[0]
            except Exception as exc:  # noqa: BLE001 - any detector error is this frame's verdict
                out[i] = Located(0, None, DETECTION_FAILED, f"face detector failed: {exc}"[:300])
        return out


def crop_from(image: Image.Image, crop: list[float], size: int,
              geometry: CropGeometry = CropGeometry()) -> np.ndarray:
    """Model input for a `locate_photos` `crop` value: the whole photo for [], else the face."""
    if len(crop) == 0:
        return image_to_array(image, size)
    x, y, w, h, lx, ly, rx, ry = (float(v) for v in crop)
    return crop_face(image, Face(x, y, w, h, 1.0, (lx, ly), (rx, ry)), size, geometry)
