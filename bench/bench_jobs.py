"""Benchmark of the daily Spark jobs (issue 3), side by side in one run.

1. Scoring throughput: the score job (`jobs.daily.score_photos.run` in a warm local Spark session:
   binaryFile -> decode UDF -> predict_batch_udf -> Parquet) against a plain in-process Keras
   batch prediction of the same photos with the same model (read bytes -> decode_face ->
   predict_ages, flip TTA both sides): the ceiling. Goal: ratio >= 0.8.
2. The same score job end to end through `checkout-age score` (spark-submit: JVM start, worker
   start, model load included) with the peak memory of its whole process tree.
3. The report job on one million receipt lines through `checkout-age reports`, with peak memory.

Medians over --repeats. Results: bench/results/bench_jobs.json.

    .venv/bin/python bench/bench_jobs.py            # ~13 min on 2 cores
    .venv/bin/python bench/bench_jobs.py --quick    # small sizes, a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

SCORE_DAY, SMALL_DAY, LINES_DAY = "2026-03-14", "2026-03-13", "2026-03-16"


class PeakMemory:
    """Samples the summed RSS of a process and all its descendants (JVM + Python workers)."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def pick_models(workdir: Path) -> list[tuple[str, str, int, str]]:
    """(model path, version, image size, description) of each model to compare.

    The registry's production model when there is one, and always an untrained MobileNetV2 at
    160 px (the production input size; same compute as a trained one).
    """
    from model.config import load_settings
    from model.errors import UserError
    from model.lifecycle.registry import ModelRegistry
    from model.serving.net import build_age_model

    settings = load_settings()
    models = []
    try:
        version = ModelRegistry(settings.registry_root).resolve("production")
        models.append((str(version.model_path), version.version, version.image_size,
                       f"registry production {version.version} ({settings.registry_root})"))
    except UserError:
        pass
    path = workdir / "untrained-mobilenet_v2-160.keras"
    build_age_model("mobilenet_v2", 160, weights=None).save(path)
    models.append((str(path), "untrained", 160, "untrained MobileNetV2 160 px (model.net)"))
    return models


def in_process_scoring(landing: Path, model_path: str, size: int, batch_size: int) -> int:
    """The ceiling: read every photo file, decode, predict in this process; returns photos."""
    from model.serving.images import ImageRejected, decode_face
    from model.serving.net import load_age_model
    from model.serving.predict import predict_ages

    model = load_age_model(model_path)
    images = []
    for path in sorted((landing / "photos").rglob("*.jpg")):
        try:
            images.append(decode_face(path.read_bytes(), size))
        except ImageRejected:
            pass
    predict_ages(model, np.stack(images), batch_size=batch_size)
    return len(images)


def scoring_inventory(spark, root: Path, run_date: str):
    """The score job's inventory of a day (what `score_photos.run` decodes and scores)."""
    from jobs.daily import photos
    from jobs.daily.csv_lines import read_csv_lines
    from jobs.daily.score_photos import read_photo_files

    landing = f"{root}/landing/date={run_date}"
    spark.conf.set("spark.sql.files.openCostInBytes", str(256 * 1024))
    files = photos.file_photo_ids(read_photo_files(spark, f"{landing}/photos"))
    meta = photos.check_photo_metadata(
        read_csv_lines(spark, f"{landing}/photos.csv", photos.PHOTO_META_COLUMNS))
    parts = max(1, spark.sparkContext.defaultParallelism // 2)
    return photos.photo_inventory(files, meta).repartition(parts, "photo_id")


def compare_scoring(spark, inventory, root: Path, model: tuple[str, str, int, str],
                    photo_files: int, repeats: int, batch_size: int) -> dict:
    """Median seconds and images/s of the score job, its scoring stage, and in-process Keras.

    "job" = the whole `score_photos.run` (read, inventory, decode + predict, write, count);
    "stage" = the decode + predict stage alone over an inventory already in memory (the
    per-photo cost without the job's fixed start-up of a few seconds).
    """
    from jobs.daily import score_photos

    model_path, version, size, note = model
    common = {"root": str(root), "model_path": model_path, "model_version": version,
              "image_size": size, "batch_size": batch_size}
    score_photos.run(spark, run_date=SMALL_DAY, **common)  # start workers, import TensorFlow
    in_process_scoring(root / "landing" / f"date={SMALL_DAY}", model_path, size, batch_size)
    job_s, stage_s, keras_s, scored = [], [], [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        scored = score_photos.run(spark, run_date=SCORE_DAY, **common)["photos_scored"]
        job_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        score_photos.score_inventory(
            inventory, score_photos.face_udf(), score_photos.pixels_udf(size),
            score_photos.age_udf(model_path, size, batch_size),
        ).agg({"age_pred_years": "sum"}).collect()
        stage_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        in_process_scoring(root / "landing" / f"date={SCORE_DAY}", model_path, size, batch_size)
        keras_s.append(time.perf_counter() - started)
        print(f"  {note}: spark job {job_s[-1]:.1f} s, spark stage {stage_s[-1]:.1f} s, "
              f"in-process keras {keras_s[-1]:.1f} s")
    ips = {name: photo_files / statistics.median(runs)
           for name, runs in (("job", job_s), ("stage", stage_s), ("keras", keras_s))}
    return {
        "model": note, "image_size": size, "photo_files": photo_files, "photos_scored": scored,
        "spark_job_s_median": round(statistics.median(job_s), 2),
        "spark_stage_s_median": round(statistics.median(stage_s), 2),
        "in_process_keras_s_median": round(statistics.median(keras_s), 2),
        "spark_job_images_per_s": round(ips["job"], 1),
        "spark_stage_images_per_s": round(ips["stage"], 1),
        "in_process_keras_images_per_s": round(ips["keras"], 1),
        "ratio_spark_job_to_keras": round(ips["job"] / ips["keras"], 3),
        "ratio_spark_stage_to_keras": round(ips["stage"] / ips["keras"], 3),
        "ratio_goal": 0.8,
        "runs_s": {"job": [round(v, 2) for v in job_s], "stage": [round(v, 2) for v in stage_s],
                   "keras": [round(v, 2) for v in keras_s]},
    }


def run_cli(args: list[str]) -> tuple[float, float, dict]:
    """(wall seconds, peak process-tree GiB, JSON result) of one `checkout-age` command."""
    command = [str(Path(sys.executable).parent / "checkout-age"), *args, "--json"]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    with PeakMemory(proc.pid) as peak:
        out, _ = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode})")
    return wall, peak.peak_bytes / 2**30, json.loads(out.strip().splitlines()[-1])


def write_scores_for(day, root: Path, run_date: str) -> None:
    """photo_scores/photo_quarantine partitions for a day without photo files (ages = truth + noise)."""
    from model.config import AGE_GROUPS, band_of

    photos = day.photos[day.photos.has_metadata].copy()
    rng = np.random.default_rng(0)
    age = photos["customer_age"].to_numpy(float) + rng.normal(0, 6, len(photos))
    scores = pd.DataFrame({
        "photo_id": photos["photo_id"], "store_id": photos["store_id"],
        "lane_id": photos["lane_id"].astype("int32"),
        "captured_at": pd.to_datetime(photos["captured_at"], utc=True).astype("datetime64[us, UTC]"),
        "age_pred_years": age, "age_group": [band_of(a, AGE_GROUPS) for a in age],
        "model_version": "synthetic",
    })
    quarantine = scores.iloc[:0][["photo_id", "store_id", "lane_id", "captured_at"]].assign(
        reason=pd.Series(dtype=str), detail=pd.Series(dtype=str))
    for table, frame in (("photo_scores", scores), ("photo_quarantine", quarantine)):
        folder = root / "reports" / table / f"date={run_date}"
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(folder / "part-00000.parquet", index=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--out", default=str(PROJECT / "bench" / "results" / "bench_jobs.json"))
    args = parser.parse_args()
    os.environ.setdefault("KERAS_HOME", str(PROJECT.parent / "shared" / "keras"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from jobs.daily.landing import load_test_faces, write_day
    from jobs.daily.spark import build_spark
    from jobs.simulator.simulate import simulate_day
    from model.config import load_settings

    settings = load_settings()
    faces_dir = settings.faces_dir or PROJECT.parent / "shared" / "faces"
    photo_stores, photo_receipts = (2, 100) if args.quick else (14, 250)
    line_stores, line_receipts = (10, 500) if args.quick else (100, 2280)
    repeats = 1 if args.quick else args.repeats
    work = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    root = work / "data"
    models = pick_models(work)
    print(f"models: {[m[3] for m in models]}; work dir {work}")

    faces = load_test_faces(faces_dir, settings.cache_dir)
    write_day(simulate_day(faces, SMALL_DAY, 1, 40, seed=1), str(root))
    score_day = simulate_day(faces, SCORE_DAY, photo_stores, photo_receipts, seed=2)
    write_day(score_day, str(root))
    photo_files = int(score_day.photos.has_file.sum())
    print(f"scoring day: {photo_files} photo files")

    # 1. Warm session: the job's Spark part vs the in-process ceiling, interleaved, per model.
    spark = build_spark("bench-score", args.master)
    inventory = scoring_inventory(spark, root, SCORE_DAY).cache()
    inventory.count()
    scoring = [compare_scoring(spark, inventory, root, model, photo_files, repeats,
                               settings.score_batch_size) for model in models]
    spark.stop()

    # 2. The real command end to end (spark-submit), with its process tree's peak memory.
    cli_score = run_cli(["score", "--date", SCORE_DAY, "--root", str(root), "--model",
                         models[0][0], "--master", args.master])

    # 3. The report job on ~1M receipt lines (photo scores synthesised: no files at this size).
    lines_day = simulate_day(faces, LINES_DAY, line_stores, line_receipts, seed=3)
    write_day(lines_day, str(root), photo_files=False)
    write_scores_for(lines_day, root, LINES_DAY)
    report_runs = [run_cli(["reports", "--date", LINES_DAY, "--root", str(root),
                            "--master", args.master]) for _ in range(repeats)]
    report_s = statistics.median(r[0] for r in report_runs)

    result = {
        "benchmark": "bench/bench_jobs.py",
        "machine": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                    "python": platform.python_version(), "load_avg_at_end": os.getloadavg()},
        "batch_size": settings.score_batch_size, "flip_tta": True, "master": args.master,
        "repeats": repeats,
        "scoring": scoring,
        "scoring_note": "warm session: JVM, Python workers and TensorFlow already started; "
                        "both sides read the JPEG files (stage: from the cached inventory), "
                        "decode, load the model, predict with flip TTA",
        "score_command_end_to_end": {
            "wall_s": round(cli_score[0], 1), "peak_process_tree_gib": round(cli_score[1], 2),
            "images_per_s": round(photo_files / cli_score[0], 1),
            "model": models[0][3],
            "note": "checkout-age score via spark-submit, JVM + worker start and model load included",
        },
        "reports_job": {
            "receipt_lines": len(lines_day.lines), "receipts": len(lines_day.receipts),
            "photos": int(lines_day.photos.has_metadata.sum()),
            "wall_s_median": round(report_s, 1),
            "runs_s": [round(r[0], 1) for r in report_runs],
            "peak_process_tree_gib": round(max(r[1] for r in report_runs), 2),
            "match_rate": report_runs[-1][2]["match_rate"],
            "note": "checkout-age reports via spark-submit (JVM start included); photo scores "
                    "synthesised from the simulator's true ages",
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if not args.quick:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
