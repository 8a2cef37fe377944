"""How much worse a model reads ages from checkout frames than from the original face crops.

Usage: .venv/bin/python bench/bench_frame_gap.py --model v0007 [--registry var/mlflow]
       [--faces 2108] [--seed 5] [--variants camera camera_square] [--geometry 1.2,0.016,0.065]
       [--out bench/results/bench_frame_gap-v0007.json]

Every face of the test split (or the first --faces of it) is pasted into a simulated 1280x720
checkout frame by the simulator's own renderer (`jobs.simulator.frames`: face 80-300 px wide,
brightness 0.6-1.3, blur 0-1.2 px, JPEG quality 60-90, a person queueing behind in 30 % of
frames), and scored the way a worker of the score job scores it (`model.serving.score`:
YuNet, the customer rule, the crop cut at full resolution, the version's serving artifact).
The same face's original crop is scored the same way, as a crop. The gap is the paired
difference of absolute errors over the faces found in their frame, with its standard error;
also per age band, and Challenge 25 (minors estimated 25 or older) from frames and from crops.
Issue 16's goal: a gap of at most 0.3 years, with the crop MAE not worse.
To tell where the gap comes from, the same frames are also rendered easier (`VARIANTS`): each
crop at its own size, hard-edged, with no camera loss; then with the simulator's feathered edge.

Nothing of Spark or the registry's MLflow server is timed here; this is a quality figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.run_record import progress, publish, run_record  # noqa: E402

BANDS = [(0, 13), (13, 18), (18, 25), (25, 35), (35, 45), (45, 55), (55, 65), (65, 120)]


def _score(contents: list[bytes], options) -> np.ndarray:  # noqa: ANN001
    from model.serving.score import score_contents

    ages = []
    for start in range(0, len(contents), 64):
        rows = score_contents(contents[start:start + 64], options)
        ages += [np.nan if row["age_pred_years"] is None else row["age_pred_years"]
                 for row in rows]
    return np.array(ages, dtype=float)


def _paired(truth: np.ndarray, crops: np.ndarray, frames: np.ndarray) -> dict:
    crop_err, frame_err = np.abs(crops - truth), np.abs(frames - truth)
    diff = frame_err - crop_err
    minors = truth < 18
    return {"faces": int(len(truth)), "mae_crops": float(crop_err.mean()),
            "mae_frames": float(frame_err.mean()), "gap": float(diff.mean()),
            "gap_standard_error": float(diff.std(ddof=1) / np.sqrt(len(diff)))
            if len(diff) > 1 else None,
            "mean_shift_frames_minus_crops": float((frames - crops).mean()),
            "minors": int(minors.sum()),
            "minors_ge_25_crops": float((crops[minors] >= 25).mean()) if minors.any() else None,
            "minors_ge_25_frames": float((frames[minors] >= 25).mean()) if minors.any() else None}


# Frames made easier one step at a time, to tell where the gap comes from (`_variant_plan`):
# "clean square": the crop pasted at its own 200 px, hard-edged, no blur, brightness or JPEG
# loss (only detection and the serving crop differ from scoring the crop itself);
# "clean feathered": the same with the simulator's feathered oval edge;
# "camera": the simulator's frames as the score job gets them (the gap of issue 16);
# "camera_square": those frames with the crop's corners kept (no oval a real camera never makes).
VARIANTS = {"clean_square": {"feather": False, "clean": True},
            "clean_feathered": {"feather": True, "clean": True},
            "camera": {"feather": True, "clean": False},
            "camera_square": {"feather": False, "clean": False}}


def _variant_plan(frame: str, clean: bool) -> str:
    """`frame`'s plan, or (`clean`) the same faces at their crop's own size (200 px side, the
    paste kept inside the frame around its centre), no blur, brightness 1, JPEG quality 95."""
    import json

    from jobs.simulator.frames import FRAME_H, FRAME_W

    if not clean:
        return frame
    plan = json.loads(frame)
    plan.update(brightness=1.0, blur=0.0, quality=95)
    for face in plan["faces"]:
        side = 200 if face["role"] == "customer" else min(face["side"], 120)
        cx, cy = face["x"] + face["side"] / 2, face["y"] + face["side"] / 2
        face["x"] = int(min(max(cx - side / 2, 0), FRAME_W - side))
        face["y"] = int(min(max(cy - side / 2, 0), FRAME_H - side))
        face["side"] = side
    return json.dumps(plan)


def _use_geometry(text: str) -> None:
    """Serve this run with `text`'s crop geometry (scale,dx,dy): the serving path reads
    `yunet.YUNET_GEOMETRY` when it cuts, so replacing it here changes every cut of the run."""
    from model.serving import yunet
    from model.serving.faces import CropGeometry

    scale, dx, dy = (float(v) for v in text.split(","))
    yunet.YUNET_GEOMETRY = CropGeometry(scale=scale, dx=dx, dy=dy)


def _geometry_record() -> dict:
    from model.serving.yunet import YUNET_GEOMETRY

    return {"scale": YUNET_GEOMETRY.scale, "dx": YUNET_GEOMETRY.dx, "dy": YUNET_GEOMETRY.dy}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=None, help="model registry (default: settings)")
    parser.add_argument("--model", default="production", help="the version to measure")
    parser.add_argument("--faces", type=int, default=None, help="first N test faces (all)")
    parser.add_argument("--seed", type=int, default=5, help="the frames' random plans")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS),
                        default=["clean_square", "clean_feathered", "camera"],
                        help="frame renderings to measure (default: all but camera_square; the gap "
                             "is 'camera')")
    parser.add_argument("--geometry", default=None, metavar="SCALE,DX,DY",
                        help="cut frames' faces with this crop geometry instead of the shipped "
                             "YUNET_GEOMETRY (an experiment: e.g. one calibrated elsewhere)")
    parser.add_argument("--out", default=None,
                        help="results file (default bench/results/bench_frame_gap-<version>.json)")
    args = parser.parse_args()
    started, load_before = time.time(), os.getloadavg()
    if args.geometry:
        _use_geometry(args.geometry)

    from jobs.daily.score_photos import serving_options_from
    from jobs.simulator.frames import plan_frames, render_frame
    from jobs.simulator.landing import load_test_faces
    from model.config import load_settings
    from model.lifecycle.registry import ModelRegistry
    from model.serving.artifact import read_artifact
    from model.serving.score import ServingOptions

    settings = load_settings()
    faces_dir = settings.faces_dir or PROJECT.parent / "shared" / "faces"
    version = ModelRegistry(args.registry or settings.registry_store,
                            cache_dir=settings.cache_dir / "models").resolve(args.model)
    artifact = read_artifact(version.path)
    if artifact is None:
        raise SystemExit(f"{version.version} has no serving artifact: publish it again "
                         "(`checkout-age model register`) to measure the serving path")
    faces = load_test_faces(Path(faces_dir), settings.cache_dir)
    if args.faces:
        faces = faces.head(args.faces)
    rng = np.random.default_rng(args.seed)
    photos = pd.DataFrame({"face_path": faces["path"].astype(str),
                           "face_file": faces["file_name"],
                           "customer_age": faces["real_age"].astype(float)})
    queue = faces.sample(frac=1.0, random_state=args.seed).reset_index(drop=True)
    queue = queue.assign(path=queue["path"].astype(str))
    plans = plan_frames(photos, queue, rng)
    base = {**serving_options_from(settings, artifact), "size": version.image_size}
    frame_options = ServingOptions(**{**base, "photo_format": "frames"})
    crop_options = ServingOptions(**{**base, "photo_format": "crops"})

    crops = [Path(path).read_bytes() for path in photos["face_path"]]
    t0 = time.perf_counter()
    crop_ages = _score(crops, crop_options)
    score_s = time.perf_counter() - t0
    render_s, variant_ages = 0.0, {}
    for name, how in VARIANTS.items():
        if name not in args.variants:
            continue
        t0 = time.perf_counter()
        frames = [render_frame(_variant_plan(plan, how["clean"]), feather=how["feather"])
                  for plan in plans["frame"]]
        t1 = time.perf_counter()
        variant_ages[name] = _score(frames, frame_options)
        render_s, score_s = render_s + t1 - t0, score_s + time.perf_counter() - t1
        progress(f"{name}: rendered and scored {len(frames)} frames in "
                  f"{time.perf_counter() - t0:.0f} s")
    frame_ages = variant_ages.get("camera", next(iter(variant_ages.values())))

    truth = photos["customer_age"].to_numpy()
    # A frame planned with nobody in it (the simulator's 4 %) says nothing about ages: left out.
    has_customer = np.array(['"customer"' in plan for plan in plans["frame"]])
    found = has_customer & ~np.isnan(frame_ages) & ~np.isnan(crop_ages)
    result: dict = {
        "model": version.version, "image_size": version.image_size,
        "artifact": {k: v for k, v in artifact.items() if k != "path"},
        "detector": frame_options.detector, "seed": args.seed,
        "geometry": _geometry_record(),
        "test_faces": len(photos), "frames_with_the_customer": int(has_customer.sum()),
        "customer_found_and_scored": int(found.sum()),
        "render_s": round(render_s, 1), "score_s": round(score_s, 1),
        "all": _paired(truth[found], crop_ages[found], frame_ages[found]),
        "by_true_age": {},
        "goal": {"gap_years_at_most": 0.3},
        "variants": {},
    }
    # Every variant on the same faces: those found in all of them.
    both = has_customer & ~np.isnan(crop_ages) & np.logical_and.reduce(
        [~np.isnan(a) for a in variant_ages.values()])
    for name, ages in variant_ages.items():
        result["variants"][name] = {**VARIANTS[name],
                                    **_paired(truth[both], crop_ages[both], ages[both])}
    for low, high in BANDS:
        band = found & (truth >= low) & (truth < high)
        if band.sum() >= 2:
            result["by_true_age"][f"{low}-{high - 1}"] = _paired(
                truth[band], crop_ages[band], frame_ages[band])
    result["run"] = run_record(started, load_before)
    out = args.out or PROJECT / "bench" / "results" / f"bench_frame_gap-{version.version}.json"
    publish(result, out, keep=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
