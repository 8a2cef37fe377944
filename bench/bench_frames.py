"""Benchmark of checkout frames (issue 10), side by side in one run.

1. Crop geometry: where MTCNN puts the face box (a) in the faces set's own crops (training
   faces) and (b) on test faces pasted into simulated frames, relative to the pasted crop: the
   calibration of `model.faces.CropGeometry`.
2. Detection on a simulated day of frames (test split faces): recall (a true face matched by a
   confident detection, IoU >= 0.4), false positives per frame, customer rule right, seconds
   per frame: MTCNN at several detection widths, and dlib's HOG detector when installed.
3. Age MAE of a registry model on the same customers: their original crops vs the crops cut
   from the frames with the calibrated geometry (plus eye alignment, and a tight box).
4. The whole score job (`jobs.daily.score_photos.run`, warm local Spark session, local[2]) on
   the frames day and on the crops day of the same seed (the same photos), images/s.

Results: bench/results/bench_frames.json (with the load average: the machine is shared).

    .venv/bin/python bench/bench_frames.py --registry var/registry    # ~10 min on 2 cores
    .venv/bin/python bench/bench_frames.py --quick
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

DAY = "2026-03-14"


def crop_geometry_in_faces_set(faces_dir: Path, cache_dir: Path, count: int) -> dict:
    """MTCNN's box in the faces set's own crops (training faces): median shares of the side."""
    from model.data.dataset import validate_dataset
    from model.data.split import assign_splits
    from model.serving.faces import shared_detector

    usable = assign_splits(validate_dataset(faces_dir, cache_dir=cache_dir).usable)
    train = usable[usable.split == "train"].sample(count, random_state=1)
    images = [Image.open(path).convert("RGB") for path in train.path]
    found = shared_detector(10_000).detect(images)  # no downscaling: 200 px crops
    ratios = []
    for image, faces in zip(images, found, strict=True):
        if faces:
            face = max(faces, key=lambda f: f.w)
            side = image.size[0]
            ratios.append(((face.x + face.w / 2) / side, (face.y + face.h / 2) / side,
                           face.w / side, face.h / side))
    cx, cy, w, h = np.median(np.array(ratios), axis=0)
    return {"faces": count, "found": len(ratios), "box_cx": cx, "box_cy": cy, "box_w": w,
            "box_h": h, "scale": 1 / w, "dx": (0.5 - cx) / w, "dy": (0.5 - cy) / h}


def _iou(a: tuple, b: tuple) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def detection_quality(frames: list[Image.Image], truths: list[list[dict]],
                      found: list[list[tuple]], min_confidence: float = 0.9) -> dict:
    """Recall, false positives per frame and customer-rule accuracy for one detector's boxes."""
    matched = total = false_pos = customer_ok = customers = 0
    for frame, truth, boxes in zip(frames, truths, found, strict=True):
        boxes = [b for b in boxes if b[4] >= min_confidence]
        total += len(truth)
        used = set()
        for face in truth:
            ious = [_iou(b[:4], (face["x"], face["y"], face["w"], face["h"])) for b in boxes]
            best = int(np.argmax(ious)) if ious else -1
            if best >= 0 and ious[best] >= 0.4:
                matched += 1
                used.add(best)
        false_pos += len(boxes) - len(used)
        customer = [f for f in truth if f["role"] == "customer"]
        if customer and boxes:
            customers += 1
            widest = max(b[2] for b in boxes)
            near = [b for b in boxes if b[2] >= 0.8 * widest]
            pick = min(near, key=lambda b: abs(b[0] + b[2] / 2 - frame.size[0] / 2))
            c = customer[0]
            customer_ok += _iou(pick[:4], (c["x"], c["y"], c["w"], c["h"])) >= 0.4
    return {"faces": total, "recall": matched / max(1, total),
            "false_positives_per_frame": false_pos / max(1, len(frames)),
            "customer_right": customer_ok / max(1, customers)}


def run_mtcnn(frames: list[Image.Image], width: int) -> tuple[list[list[tuple]], float, float]:
    from model.serving.faces import FaceDetector

    detector = FaceDetector(width)
    detector.detect(frames[:4])  # warm-up: graph tracing
    started, cpu = time.perf_counter(), time.process_time()
    found = detector.detect(frames)
    seconds = (time.perf_counter() - started) / len(frames)
    cpu_seconds = (time.process_time() - cpu) / len(frames)
    boxes = [[(f.x, f.y, f.w, f.h, f.confidence) for f in faces] for faces in found]
    return boxes, seconds, cpu_seconds


def run_dlib(frames: list[Image.Image], width: int) -> tuple[list[list[tuple]], float, float] | None:
    try:
        import dlib
    except ImportError:
        return None
    detector = dlib.get_frontal_face_detector()
    started, cpu = time.perf_counter(), time.process_time()
    found = []
    for frame in frames:
        scale = width / frame.size[0]
        small = np.asarray(frame.resize((width, round(frame.size[1] * scale))))
        rects, scores, _ = detector.run(small, 1 if width < 1000 else 0, 0.0)
        found.append([(r.left() / scale, r.top() / scale, r.width() / scale, r.height() / scale,
                       1.0) for r, _s in zip(rects, scores, strict=True)])
    return (found, (time.perf_counter() - started) / len(frames),
            (time.process_time() - cpu) / len(frames))


def frames_calibration(truths: list[list[dict]], plans: list[dict], found: list[list[tuple]],
                       landmarks: bool = False) -> dict:
    """Crop geometry that maps the detected customer box back onto the pasted crop (medians)."""
    ratios = []
    for truth, plan, boxes in zip(truths, plans, found, strict=True):
        customer = [p for p in plan["faces"] if p["role"] == "customer"]
        if not customer or not boxes:
            continue
        paste = customer[0]
        c = next(f for f in truth if f["role"] == "customer")
        box = max(boxes, key=lambda b: _iou(b[:4], (c["x"], c["y"], c["w"], c["h"])))
        if _iou(box[:4], (c["x"], c["y"], c["w"], c["h"])) < 0.4:
            continue
        x, y, w, h = box[:4]
        side = paste["side"]
        ratios.append((side / w, (paste["x"] + side / 2 - x - w / 2) / w,
                       (paste["y"] + side / 2 - y - h / 2) / h))
    scale, dx, dy = np.median(np.array(ratios), axis=0)
    return {"faces": len(ratios), "scale": scale, "dx": dx, "dy": dy}


def age_mae(model_path: str, size: int, frames_bytes: list[bytes], photos: pd.DataFrame,
            geometries: dict) -> dict:
    """MAE on the customers' original crops vs on crops cut from their frames."""
    from model.serving.faces import crop_from, locate_photos
    from model.serving.images import decode_face, image_to_array
    from model.serving.net import load_age_model
    from model.serving.predict import predict_ages

    model = load_age_model(model_path)
    located = locate_photos(frames_bytes, photo_format="frames")
    keep = [i for i, row in enumerate(located) if row["reason"] is None]
    truth = photos["customer_age"].to_numpy(float)[keep]
    originals = np.stack([decode_face(Path(photos.face_path.iloc[i]).read_bytes(), size)
                          for i in keep])
    result = {"customers_scored": len(keep), "frames": len(frames_bytes)}
    result["mae_original_crops"] = float(np.abs(predict_ages(model, originals) - truth).mean())
    # The pasted square cut back out of the frame: perfect geometry, the frame's blur, light and
    # JPEG. What is left of the gap beyond this one is the crop geometry's share.
    oracle = []
    for i in keep:
        paste = next(p for p in json.loads(photos.frame.iloc[i])["faces"] if p["role"] == "customer")
        frame = Image.open(io.BytesIO(frames_bytes[i])).convert("RGB")
        box = (paste["x"], paste["y"], paste["x"] + paste["side"], paste["y"] + paste["side"])
        oracle.append(image_to_array(frame.crop(box), size))
    mae = float(np.abs(predict_ages(model, np.stack(oracle)) - truth).mean())
    result["mae_frames_pasted_square"] = mae
    result["gap_pasted_square"] = mae - result["mae_original_crops"]
    for label, geometry in geometries.items():
        crops = np.stack([crop_from(Image.open(io.BytesIO(frames_bytes[i])).convert("RGB"),
                                    located[i]["crop"], size, geometry) for i in keep])
        mae = float(np.abs(predict_ages(model, crops) - truth).mean())
        result[f"mae_frames_{label}"] = mae
        result[f"gap_{label}"] = mae - result["mae_original_crops"]
    return result


def tree_cpu_seconds() -> float:
    """CPU seconds used so far by this process and all its descendants (JVM, Python workers).

    On a shared machine wall time depends on the neighbours; CPU time much less so.
    """
    import psutil

    total = 0.0
    procs = [psutil.Process()]
    procs += procs[0].children(recursive=True)
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def job_speed(root: Path, model: tuple[str, str, int], repeats: int) -> dict:
    """Whole score job on the frames day and on the crops day, local[2], images/s (medians)."""
    from jobs.daily import score_photos
    from jobs.daily.spark import build_spark

    spark = build_spark("bench-frames", "local[2]", driver_memory="2g")
    out: dict = {}
    try:
        for label, data_root in (("frames", root / "frames"), ("crops", root / "crops")):
            seconds, counts = [], {}
            cpu_used = []
            for _ in range(repeats + 1):  # the first run warms the workers (model, detector)
                started, cpu = time.perf_counter(), tree_cpu_seconds()
                counts = score_photos.run(
                    spark, root=str(data_root), run_date=DAY, model_path=model[1],
                    model_version=model[0], image_size=model[2])
                seconds.append(time.perf_counter() - started)
                cpu_used.append(tree_cpu_seconds() - cpu)
            median = statistics.median(seconds[1:])
            cpu_per_image = statistics.median(cpu_used[1:]) / counts["photos_in"]
            out[label] = {"photos_in": counts["photos_in"], "seconds_median": median,
                          "images_per_s": counts["photos_in"] / median,
                          "cpu_s_per_image": cpu_per_image,
                          # What 2 cores of its own would give, if the job kept both busy.
                          "images_per_s_2_cores_by_cpu": 2 / cpu_per_image,
                          "quarantine_reasons": counts["quarantine_reasons"],
                          "runs_s": seconds}
    finally:
        spark.stop()
    out["frames_vs_crops_speed_ratio"] = (out["frames"]["images_per_s"]
                                          / out["crops"]["images_per_s"])
    out["frames_vs_crops_cpu_ratio"] = (out["frames"]["cpu_s_per_image"]
                                        / out["crops"]["cpu_s_per_image"])
    return out


PARTS = ("geometry", "detection", "mae", "job")


def geometries_to_compare(result: dict) -> dict:
    """The job's crop geometry, and the alternatives it was chosen against."""
    from model.serving.faces import CropGeometry

    in_set = result.get("geometry_faces_set", {"scale": 1.2244, "dx": 0.0227, "dy": 0.0198})
    return {
        "default": CropGeometry(),
        "default_not_aligned": CropGeometry(align_eyes=False),
        "faces_set_calibrated": CropGeometry(scale=in_set["scale"], dx=in_set["dx"],
                                             dy=in_set["dy"], align_eyes=False),
        "tight_box": CropGeometry(scale=1.0, dx=0.0, dy=0.0, align_eyes=False),
    }


def detection_part(frames: list[Image.Image], truths: list[list[dict]]) -> dict:
    """MTCNN at three detection widths and dlib's HOG (when installed) on the same frames."""
    detection = {}
    for width in (640, 480, 320):
        found, seconds, cpu_seconds = run_mtcnn(frames, width)
        detection[f"mtcnn_{width}"] = {"s_per_frame": seconds, "cpu_s_per_frame": cpu_seconds,
                                       **detection_quality(frames, truths, found)}
    for width in (1280, 640):
        dlib_run = run_dlib(frames, width)
        if dlib_run is not None:
            detection[f"dlib_hog_{width}"] = {"s_per_frame": dlib_run[1],
                                              "cpu_s_per_frame": dlib_run[2],
                                              **detection_quality(frames, truths, dlib_run[0])}
        else:
            detection[f"dlib_hog_{width}"] = "not installed (uv pip install dlib-bin)"
    return detection


def run_record(started: tuple[float, tuple]) -> dict:
    """When a part ran and the machine's load around it (the machine is shared)."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "when_utc": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(started[0])),
            "load_avg_at_start": started[1], "load_avg_at_end": os.getloadavg()}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=None, help="model registry (default: settings)")
    parser.add_argument("--model", default="production")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", default="geometry,detection,mae,job",
                        help="comma-separated parts to run; a partial run updates only those "
                        "parts of the results file (each part records its own load average)")
    parser.add_argument("--out", default=str(PROJECT / "bench" / "results" / "bench_frames.json"))
    return parser.parse_args()


def main() -> int:
    args = parse_args()

    from jobs.daily.landing import load_test_faces, write_day
    from jobs.simulator.frames import frame_faces, render_frame
    from jobs.simulator.simulate import simulate_day
    from model.config import load_settings
    from model.lifecycle.registry import ModelRegistry

    settings = load_settings()
    faces_dir = settings.faces_dir or PROJECT.parent / "shared" / "faces"
    version = ModelRegistry(args.registry or settings.registry_root).resolve(args.model)
    model = (version.version, str(version.model_path), version.image_size)
    stores, per_store = (1, 40) if args.quick else (2, 100)
    test_faces = load_test_faces(faces_dir, settings.cache_dir)
    day = simulate_day(test_faces, DAY, stores, per_store, seed=3, frames=True)
    photos = day.photos[day.photos.corrupt == ""].reset_index(drop=True)
    frames_bytes = [render_frame(plan) for plan in photos.frame]
    frames = [Image.open(io.BytesIO(data)).convert("RGB") for data in frames_bytes]
    truths = [frame_faces(plan) for plan in photos.frame]
    plans = [json.loads(plan) for plan in photos.frame]
    parts = set(args.parts.split(","))
    out = Path(args.out)
    result: dict = json.loads(out.read_text()) if out.exists() and parts != set(PARTS) else {}
    result.update({"frames": len(frames), "faces_in_frames": sum(map(len, truths)),
                   "model": {"version": model[0], "image_size": model[2]}})
    runs = result.setdefault("runs", {})

    def record(part: str, started: tuple) -> None:
        runs[part] = run_record(started)

    if "geometry" in parts:
        started = (time.time(), os.getloadavg())
        result["geometry_faces_set"] = crop_geometry_in_faces_set(
            faces_dir, settings.cache_dir, 40 if args.quick else 150)
        record("geometry", started)
    if "detection" in parts:
        started = (time.time(), os.getloadavg())
        result["detection"] = detection_part(frames, truths)
        record("detection", started)
    if "mae" in parts:
        started = (time.time(), os.getloadavg())
        result["geometry_frames"] = frames_calibration(truths, plans, run_mtcnn(frames, 480)[0])
        geometries = geometries_to_compare(result)
        result["geometries"] = {k: vars(v) for k, v in geometries.items()}
        result["age_mae"] = age_mae(model[1], model[2], frames_bytes, photos, geometries)
        record("mae", started)
    if "job" in parts:
        started = (time.time(), os.getloadavg())
        with tempfile.TemporaryDirectory(prefix="bench-frames-") as tmp:
            write_day(day, str(Path(tmp) / "frames"))
            write_day(simulate_day(test_faces, DAY, stores, per_store, seed=3),
                      str(Path(tmp) / "crops"))
            result["score_job"] = job_speed(Path(tmp), model, 1 if args.quick else 2)
        record("job", started)
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if not args.quick:
        out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
