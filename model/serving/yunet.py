"""YuNet face detection (libfacedetection through the `yuface` package), without TensorFlow.

`yuface` (BSD-3-Clause) is libfacedetection's C++ YuNet with its weights compiled into the
library: nothing is downloaded or read at run time. It takes a BGR uint8 array of at most
960 px a side and returns, per face, a confidence in percent, an (x, y, w, h) box and five
landmarks (the eye on the image's left first). Frames are given to it at `detect_width` px,
usually decoded at that scale straight from the JPEG (`model.images.open_scaled`), and the
boxes come back in full-frame pixels, as `model.faces.Face`.

Two runtimes answer the same: "openvino" (the default) runs the same network and weights on
OpenVINO (`model.serving.yunet_net`, about 4x less CPU), "yuface" the library's own loops.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from PIL import Image

from model.serving.faces import CropGeometry, Face

# The crop around a YuNet box (`model.serving.faces.CropGeometry`): measured like MTCNN's, on
# test faces pasted into simulated frames and found there at 480 px (bench/bench_detectors.py):
# the pasted crop's side is 1.23 box widths, its centre 0.013 box widths right of and 0.050
# box heights below the box centre. Ages of those crops: MAE 8.04 against MTCNN's 8.08.
YUNET_GEOMETRY = CropGeometry(scale=1.232, dx=0.013, dy=0.050)
MAX_SIDE = 960  # yuface's own limit: larger inputs detect worse (its warning)
_MIN_SIDE = 16  # nothing to find in a smaller image
OPENVINO, YUFACE = "openvino", "yuface"
log = logging.getLogger(__name__)
RUNTIMES = (OPENVINO, YUFACE)


class YuNetDetector:
    """YuNet on frames scaled to `detect_width`; faces (confidence 0..1) in frame pixels."""

    def __init__(self, detect_width: int = 480, min_confidence: float = 0.0,
                 threads: int = 1, runtime: str = OPENVINO) -> None:
        if not 0 < detect_width <= MAX_SIDE:
            raise ValueError(f"detect_width {detect_width}: YuNet takes 1..{MAX_SIDE} px")
        if runtime not in RUNTIMES:
            raise ValueError(f"YuNet runtime {runtime!r}, expected one of {RUNTIMES}")
        self.detect_width = detect_width
        self.min_confidence = min_confidence
        self.runtime = runtime
        if runtime == OPENVINO:
            from model.serving.yunet_net import YuNetOpenVINO

            try:
                self._detect_rgb = YuNetOpenVINO(threads).detect
                return
            except (OSError, ValueError) as exc:  # another yuface build: its own code still works
                log.warning("YuNet on OpenVINO unavailable (%s): running yuface's own code", exc)
                self.runtime = YUFACE
        # libfacedetection runs on its own OpenMP runtime, which reads its thread count when it
        # loads: with 2 threads on 2 busy cores its spinning threads cost 6-16x the CPU of one.
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import yuface  # a compiled library of ~1 MB: loads in milliseconds

        self._detect_rgb = lambda rgb: yuface.detect(np.ascontiguousarray(rgb[:, :, ::-1]),
                                                     conf=0.0)

    def detect(self, images: list[Image.Image],
               frame_sizes: list[tuple[int, int]] | None = None) -> list[list[Face]]:
        """Faces of each RGB image, in the pixels of its frame.

        Args:
            images: the frames, or the frames already decoded at a reduced scale.
            frame_sizes: each image's full frame (width, height) when it was decoded at a
                reduced scale; None: the images are the frames.
        """
        sizes = frame_sizes or [image.size for image in images]
        return [self._one(image, size) for image, size in zip(images, sizes, strict=True)]

    def _one(self, image: Image.Image, frame_size: tuple[int, int]) -> list[Face]:
        if image.width > self.detect_width or image.height > MAX_SIDE:
            ratio = min(self.detect_width / image.width, MAX_SIDE / image.height)
            image = image.resize((max(1, round(image.width * ratio)),
                                  max(1, round(image.height * ratio))), Image.Resampling.BILINEAR)
        if min(image.size) < _MIN_SIDE:
            return []
        scale = image.width / frame_size[0]
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        confs, boxes, marks = self._detect_rgb(np.asarray(rgb, dtype=np.uint8))
        faces = []
        for conf, box, mark in zip(confs, boxes, marks, strict=True):
            if conf <= self.min_confidence * 100:  # yuface.detect's own filter
                continue
            x, y, w, h = (float(v) / scale for v in box)
            lx, ly, rx, ry = (float(v) / scale for v in mark[:4])
            faces.append(Face(x, y, w, h, float(conf) / 100.0, (lx, ly), (rx, ry)))
        return faces

    def detect_bytes(self, data: bytes) -> tuple[list[Face], tuple[int, int]]:
        """Decode `data` at the detection scale and detect: (faces, the frame's size)."""
        from model.serving.images import open_scaled

        image, frame_size = open_scaled(data, self.detect_width)
        return self.detect([image], [frame_size])[0], frame_size
