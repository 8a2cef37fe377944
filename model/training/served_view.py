"""Checkout-camera views framed the way the score job frames a face: detected, then cut.

`augment.camera_view` degrades a faces-set crop as a camera would and brings it back whole, so
the model learns the camera's losses but always sees the faces set's own framing. The score
job never sees that framing: it finds the face with YuNet on the frame scaled to 480 px and
cuts a square around the box, eyes levelled (`model.serving.faces.crop_face`,
`YUNET_GEOMETRY`). The box moves a little from face to face, and so does each crop's framing;
detection and the serving crop alone cost 0.17 years of the frames' gap (docs/model.md).

`ServedView` shrinks the crop to the face's size in a frame, surrounds it with a margin of
a flat scene colour (a small frame), applies the camera's losses to that frame, finds the face
there with the serving detector at the scale the score job detects at, and cuts it with the
serving crop: the model trains on crops framed as they will be served. A face the detector
misses keeps the plain camera view (counted in `missed`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from model.config import Settings
from model.training.augment import CameraModel, camera_losses, frame_side

# The score job decodes a 1280-px frame and detects on it at 480 px (Settings.yunet_width_px).
FRAME_WIDTH_PX = 1280
# The small frame's margin on each side, in crop sides: room for the serving square (1.23 box
# widths, about a crop side) to be cut wherever the box puts it, as in a frame.
MARGIN = 0.5
SCENE_LEVELS = (40, 220)  # the flat scene colour's range, per channel


class ServedView:
    """`view(image, rng)` for `augment.camera_views`: a camera view cut around a detected face."""

    def __init__(self, camera: CameraModel | None = None,
                 detect_scale: float = Settings.yunet_width_px / FRAME_WIDTH_PX,
                 min_confidence: float = Settings.yunet_min_confidence) -> None:
        from model.serving.yunet import MAX_SIDE, YuNetDetector

        self.camera = camera or CameraModel()
        self.detect_scale = detect_scale
        self.min_confidence = min_confidence
        # The frame is handed over already at the detection scale: no second resize inside.
        self._detector = YuNetDetector(detect_width=MAX_SIDE, threads=1)
        self.seen = 0
        self.missed = 0

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from model.serving.faces import crop_face, locate_customer
        from model.serving.yunet import YUNET_GEOMETRY

        height, width = image.shape[:2]
        side = min(frame_side(rng, self.camera), width)
        margin = int(round(MARGIN * side))
        face = Image.fromarray(np.ascontiguousarray(image))
        if side != width:
            face = face.resize((side, side), Image.Resampling.BILINEAR)
        # Around the crop, a flat scene colour: the crop's own edge pixels smeared outwards
        # would lengthen the head for YuNet (boxes 10-15 % taller, every crop cut lower).
        scene = tuple(int(v) for v in rng.integers(*SCENE_LEVELS, size=3))
        frame = Image.new("RGB", (side + 2 * margin,) * 2, scene)
        frame.paste(face, (margin, margin))
        frame = camera_losses(frame, rng, self.camera)
        scaled = frame.resize((max(1, round(frame.width * self.detect_scale)),
                               max(1, round(frame.height * self.detect_scale))),
                              Image.Resampling.BILINEAR)
        faces = self._detector.detect([scaled], [frame.size])[0]
        located = locate_customer(faces, frame.size, min_confidence=self.min_confidence,
                                  min_face_px=1)
        self.seen += 1
        if located.face is None:
            self.missed += 1
            plain = frame.crop((margin, margin, margin + side, margin + side))
            return np.asarray(plain.resize((width, height), Image.Resampling.BILINEAR),
                              dtype=np.uint8)
        return crop_face(frame, located.face, height, YUNET_GEOMETRY)
