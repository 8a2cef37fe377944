"""Checkout-camera frames: the customer's face pasted into a 1280x720 scene of the lane.

`plan_frames` decides, from a seed, what each photo shows (where the customer's face is and how
big, a second smaller face queueing behind in some, no face at all in a few, brightness, blur,
JPEG quality); `render_frame` paints one plan into JPEG bytes (the landing writer calls it, so
the plan stays a small table and frames are never held in memory all at once). `frame_faces`
is the ground truth: every face's box (frame pixels) and age. Layout: docs/frames.md.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
from PIL import Image, ImageChops, ImageDraw, ImageFilter

FRAME_W, FRAME_H = 1280, 720
CUSTOMER_FACE_PX = (80, 300)  # customer's face width in the frame
SECOND_FACE_SHARE, NO_FACE_SHARE = 0.3, 0.04  # frames with a person queueing / with nobody
SECOND_FACE_RATIO = (0.35, 0.65)  # queueing face width / customer face width
BRIGHTNESS, BLUR_RADIUS, JPEG_QUALITY = (0.6, 1.3), (0.0, 1.2), (60, 90)
# Where the face sits in a faces-set crop (200x200, aligned): the MTCNN box of 150 training faces
# has median width 0.81 and height 0.96 of the crop side, centred at (0.50, 0.48) of it
# (bench/bench_frames.py measures it again). Pasting a crop of side s puts a face this big here.
FACE_IN_CROP = {"cx": 0.4975, "cy": 0.48, "w": 0.81, "h": 0.96}


def _face_paste(width: float, rng: np.random.Generator, top: float) -> dict:
    """Paste square (side, x, y) for a face `width` px wide whose box lies below `top`."""
    side = width / FACE_IN_CROP["w"]
    height = side * FACE_IN_CROP["h"]
    cx = rng.uniform(width / 2, FRAME_W - width / 2)
    cy = rng.uniform(top + height / 2, FRAME_H - height / 2)
    return {"side": int(round(side)), "x": int(round(cx - FACE_IN_CROP["cx"] * side)),
            "y": int(round(cy - FACE_IN_CROP["cy"] * side))}


def plan_frames(photos: pd.DataFrame, queue_faces: pd.DataFrame,
                rng: np.random.Generator) -> pd.DataFrame:
    """Add the `frame` column (JSON render plan) to simulated photo rows.

    Args:
        photos: rows with `face_path`, `face_file`, `customer_age` (the customer in the frame).
        queue_faces: faces of people queueing (`path`, `file_name`, `real_age`), one per photo.
        rng: the day's frame generator (its own stream: crops days stay byte-identical).
    """
    plans = []
    for i, row in enumerate(photos.itertuples(index=False)):
        plan = {"seed": int(rng.integers(2**31)), "brightness": float(rng.uniform(*BRIGHTNESS)),
                "blur": float(rng.uniform(*BLUR_RADIUS)),
                "quality": int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)), "faces": []}
        if rng.random() >= NO_FACE_SHARE:
            width = float(rng.uniform(*CUSTOMER_FACE_PX))
            plan["faces"].append({"role": "customer", "path": row.face_path,
                                  "file": row.face_file, "age": float(row.customer_age),
                                  **_face_paste(width, rng, FRAME_H / 3)})
            if rng.random() < SECOND_FACE_SHARE:
                queue = queue_faces.iloc[i % len(queue_faces)]
                small = width * rng.uniform(*SECOND_FACE_RATIO)
                plan["faces"].insert(0, {"role": "queue", "path": queue["path"],
                                         "file": queue["file_name"],
                                         "age": float(queue["real_age"]),
                                         **_face_paste(small, rng, FRAME_H / 6)})
        plans.append(json.dumps(plan))
    return photos.assign(frame=plans)


def face_box(paste: dict) -> tuple[int, int, int, int]:
    """Ground-truth face box (x, y, w, h) of a pasted crop, in frame pixels."""
    side = paste["side"]
    w, h = FACE_IN_CROP["w"] * side, FACE_IN_CROP["h"] * side
    cx, cy = paste["x"] + FACE_IN_CROP["cx"] * side, paste["y"] + FACE_IN_CROP["cy"] * side
    return int(round(cx - w / 2)), int(round(cy - h / 2)), int(round(w)), int(round(h))


def frame_faces(frame: str) -> list[dict]:
    """Every face of a plan (no paths): role, file, age, x, y, w, h."""
    faces = []
    for face in json.loads(frame)["faces"]:
        x, y, w, h = face_box(face)
        faces.append({"role": face["role"], "file": face["file"], "age": face["age"],
                      "x": x, "y": y, "w": w, "h": h})
    return faces


def background(rng: np.random.Generator, width: int = FRAME_W, height: int = FRAME_H) -> Image.Image:
    """A lane-like scene: a vertical light gradient, shelves and boxes, a floor, sensor noise."""
    top, bottom = rng.uniform(90, 200, 3), rng.uniform(30, 120, 3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    column = (top * (1 - ramp) + bottom * ramp).astype(np.uint8)  # (height, 1, 3)
    image = Image.fromarray(np.ascontiguousarray(np.broadcast_to(column, (height, width, 3))))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 7))):  # shelf boards
        y = int(rng.uniform(0, height * 0.8))
        draw.rectangle([0, y, width, y + int(rng.integers(6, 18))],
                       fill=tuple(int(v) for v in rng.integers(40, 220, 3)))
    for _ in range(int(rng.integers(15, 40))):  # goods, signs, a till
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(20, 220), rng.uniform(20, 160)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.3 else draw.rectangle
        shape([x0, y0, x0 + w, y0 + h], fill=colour)
    # Sensor noise in 4x4 blocks (JPEG keeps it), grey: +-6 levels around 128, added to all bands.
    noise = np.clip(rng.normal(128, 6, (height // 4, width // 4)), 0, 255).astype(np.uint8)
    grain = Image.fromarray(noise).resize((width, height), Image.Resampling.NEAREST)
    return ImageChops.add(image, Image.merge("RGB", [grain] * 3), offset=-128)


def _feather_mask(side: int) -> Image.Image:
    """An ellipse with a soft edge: the pasted crop blends into the scene without a frame."""
    yy, xx = np.mgrid[0:side, 0:side]
    r = np.hypot((xx - side / 2) / (side * 0.5), (yy - side / 2) / (side * 0.52))
    alpha = np.clip((1.0 - r) / 0.12, 0, 1)
    return Image.fromarray((alpha * 255).astype(np.uint8))


def render_frame(frame: str, *, feather: bool = True) -> bytes:
    """JPEG bytes of one plan (`plan_frames`'s `frame` value); same plan, same bytes.

    `feather` False pastes each crop as a hard-edged square, its corners kept (the frame-gap
    bench uses it to tell the feathered edge's share of the gap from the camera's).
    """
    plan = json.loads(frame)
    rng = np.random.default_rng(plan["seed"])
    image = background(rng)
    for face in plan["faces"]:  # queueing face first: the customer stands in front
        side = face["side"]
        with Image.open(face["path"]) as crop:
            pasted = crop.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
        image.paste(pasted, (face["x"], face["y"]), _feather_mask(side) if feather else None)
    gain = plan["brightness"]
    image = image.point([min(255, int(v * gain)) for v in range(256)] * 3)
    if plan["blur"] > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(plan["blur"]))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=plan["quality"])
    return out.getvalue()
