"""Benchmark: the score job's throughput with the calibration columns vs without (issue 12).

Runs the real score job (`jobs.daily.score_photos.run`, warm local Spark session) on the same
simulated day of photos, alternating runs without a calibration table (age_low, age_high and
p_under_legal_age NULL) and with one (the table interpolated as a Spark expression), in an
ABBA order so that drift in the shared machine's load hits both sides alike. The model is an
untrained MobileNetV2 at 160 px (the production input size: the same compute as a trained one);
the table is fitted on synthetic pairs (its cost does not depend on its values). Goal: the
median throughput with calibration >= 0.95 of the median without.

    .venv/bin/python bench/bench_calibration_cost.py             # ~6 min on 2 cores
    .venv/bin/python bench/bench_calibration_cost.py --quick     # smoke run, nothing written

Results: bench/results/bench_calibration_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

WARM_DAY, SCORE_DAY = "2026-03-13", "2026-03-14"
GOAL = 0.95


def synthetic_calibration(legal_age: int):
    """A table from 3,000 synthetic (true, estimate) pairs with 5-year Gaussian error."""
    from model.evaluation.calibration import fit_calibration

    rng = np.random.default_rng(0)
    true = np.round(rng.uniform(2, 90, 3000))
    return fit_calibration(true, true + rng.normal(0, 5, true.size), legal_age=legal_age)


def check_output(root: Path, calibrated: bool) -> int:
    """Scored rows of the day; raises unless the columns are filled exactly when calibrated."""
    import pyarrow.parquet as pq

    table = pq.read_table(root / "reports" / "photo_scores" / f"date={SCORE_DAY}")
    nulls = table.column("p_under_legal_age").null_count
    if (nulls == 0) != calibrated or (not calibrated and nulls != table.num_rows):
        raise SystemExit(f"calibrated={calibrated} but {nulls} of {table.num_rows} rows lack p")
    return table.num_rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small day, one pair (smoke run)")
    parser.add_argument("--pairs", type=int, default=3, help="ABBA blocks (each 2 runs a side)")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--out", default=str(PROJECT / "bench" / "results"
                                             / "bench_calibration_cost.json"))
    args = parser.parse_args()
    os.environ.setdefault("KERAS_HOME", str(PROJECT.parent / "shared" / "keras"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from jobs.daily import score_photos
    from jobs.daily.landing import load_test_faces, write_day
    from jobs.daily.spark import build_spark
    from jobs.simulator.simulate import simulate_day
    from model.config import load_settings
    from model.serving.net import build_age_model

    settings = load_settings()
    faces_dir = settings.faces_dir or PROJECT.parent / "shared" / "faces"
    stores, receipts = (1, 60) if args.quick else (4, 150)
    blocks = 1 if args.quick else args.pairs
    work = Path(tempfile.mkdtemp(prefix="bench-calibration-"))
    root = work / "data"
    model_path = work / "untrained-mobilenet_v2-160.keras"
    build_age_model("mobilenet_v2", 160, weights=None).save(model_path)
    faces = load_test_faces(faces_dir, settings.cache_dir)
    write_day(simulate_day(faces, WARM_DAY, 1, 20, seed=1), str(root))
    day = simulate_day(faces, SCORE_DAY, stores, receipts, seed=2)
    write_day(day, str(root))
    photo_files = int(day.photos.has_file.sum())
    table = synthetic_calibration(settings.legal_age)
    print(f"{photo_files} photo files; work dir {work}")

    spark = build_spark("bench-calibration", args.master)
    common = {"root": str(root), "model_path": str(model_path), "model_version": "untrained",
              "image_size": 160, "batch_size": settings.score_batch_size}
    load_start = os.getloadavg()
    for calibration in (None, table):  # warm up: workers, TensorFlow, both plans
        score_photos.run(spark, run_date=WARM_DAY, calibration=calibration, **common)
    seconds: dict[str, list[float]] = {"without": [], "with": []}
    scored = 0
    for _ in range(blocks):
        for side in ("without", "with", "with", "without"):
            started = time.perf_counter()
            score_photos.run(spark, run_date=SCORE_DAY,
                             calibration=table if side == "with" else None, **common)
            seconds[side].append(time.perf_counter() - started)
            scored = check_output(root, side == "with")
            print(f"  {side:7s} calibration: {seconds[side][-1]:.2f} s")
    spark.stop()

    ips = {side: photo_files / statistics.median(runs) for side, runs in seconds.items()}
    result = {
        "benchmark": "bench/bench_calibration_cost.py",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_at_start": load_start, "load_avg_at_end": os.getloadavg(),
                    "note": "shared machine: other agents' jobs ran at the same time"},
        "master": args.master, "batch_size": settings.score_batch_size, "flip_tta": True,
        "model": "untrained MobileNetV2 160 px (model.net), same compute as a trained one",
        "photo_files": photo_files, "photos_scored": scored,
        "runs_per_side": len(seconds["with"]), "order": "ABBA blocks (without, with, with, "
        "without)",
        "without_s_median": round(statistics.median(seconds["without"]), 2),
        "with_s_median": round(statistics.median(seconds["with"]), 2),
        "without_images_per_s": round(ips["without"], 1),
        "with_images_per_s": round(ips["with"], 1),
        "ratio_with_to_without": round(ips["with"] / ips["without"], 3),
        "ratio_goal": GOAL,
        "runs_s": {side: [round(v, 2) for v in runs] for side, runs in seconds.items()},
        "calibration_table": {"grid_points": int(table.grid.size),
                              "json_bytes": len(json.dumps(table.to_dict(), indent=1))},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if not args.quick:
        Path(args.out).write_text(text + "\n")
    return 0 if result["ratio_with_to_without"] >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
