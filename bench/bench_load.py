"""Load benchmark: one day at chain scale through every stage of the daily run, on this machine.

1. Chain scale: 50 stores, 100,000 receipts (~400,000 lines), 20,000 photo files (the simulated
   day's photos thinned to 20,000: cameras on about one lane in five). Each stage runs as the
   daily DAG runs it (`spark-submit jobs/daily/*.py`, `checkout-age check-quality | report html`)
   and is timed with the peak memory of its whole process tree (JVM + Python workers).
2. Growth: the score stage of the same day with 2,000 and with 20,000 photos (the ratio; 10x the
   photos at linear cost gives ~10, less where fixed costs (JVM and model start) weigh).
3. Retention over 30 landed days: time to purge the photos of the days older than the window, what
   is left, and the time of a rerun (nothing left to delete).

Crop days (face crops as photo files): the frames format (issue 10) is not measured here. The
machine is shared: the load average is recorded before and after. Results:
bench/results/bench_load.json.

    .venv/bin/python bench/bench_load.py             # ~25 min on 2 idle cores
    .venv/bin/python bench/bench_load.py --quick     # 5 stores, 2,000 receipts: a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "bench"))

from bench_jobs import PeakMemory  # noqa: E402  (bench/ is not a package)

DAY = "2026-03-14"
VENV_BIN = Path(sys.executable).parent
CLI = str(VENV_BIN / "checkout-age")


def stage(name: str, command: list[str], env: dict[str, str]) -> dict:
    """Run one stage as a child process; wall time and peak memory of its process tree."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    with PeakMemory(process.pid) as peak:
        out, err = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"stage {name} failed ({process.returncode}):\n{err[-3000:]}")
    result = {"stage": name, "wall_s": round(seconds, 1),
              "peak_tree_rss_gib": round(peak.peak_bytes / 2**30, 2)}
    print(f"  {name:<14} {result['wall_s']:>7.1f} s   peak {result['peak_tree_rss_gib']:.2f} GiB",
          flush=True)
    return result


def submit(job: str, *args: str) -> list[str]:
    """The spark-submit command of a daily job, as Airflow's SparkSubmitOperator runs it."""
    script = PROJECT / "jobs" / "daily" / f"{job}.py"
    return [str(VENV_BIN / "spark-submit"), "--master", "local[*]", "--driver-memory", "2g",
            "--conf", f"spark.pyspark.python={sys.executable}", str(script), *args]


def simulate(faces, root: Path, run_date: str, stores: int, receipts_per_store: int,
             photos: int | None, seed: int = 1) -> dict:
    """Write one simulated crop day, its photos thinned to `photos` (all when None)."""
    from jobs.daily.landing import write_day
    from jobs.simulator.simulate import simulate_day

    started = time.perf_counter()
    day = simulate_day(faces, run_date, stores, receipts_per_store, seed)
    if photos is not None and len(day.photos) > photos:
        day.photos = day.photos.sample(n=photos, random_state=seed).sort_index()
    write_day(day, str(root))
    return {"receipts": len(day.receipts), "receipt_lines": len(day.lines),
            "photo_rows": len(day.photos), "photo_files": int(day.photos["has_file"].sum()),
            "simulate_and_write_s": round(time.perf_counter() - started, 1)}


def daily_run(root: Path, registry: Path, env: dict[str, str]) -> list[dict]:
    """Every stage of the daily DAG for DAY under `root` (landing already written)."""
    day = ["--date", DAY, "--root", str(root)]
    return [
        stage("score", submit("score_photos", *day, "--registry", str(registry)), env),
        stage("reports", submit("reports", *day), env),
        stage("check_quality", [CLI, "check-quality", *day, "--min-match-rate", "0"], env),
        stage("render_report", [CLI, "report", "html", *day], env),
    ]


def retention(faces, root: Path, days: int, stores: int, receipts_per_store: int,
              keep_days: int, env: dict[str, str]) -> dict:
    """Land `days` small days, then purge the photos of those older than `keep_days`."""
    import datetime as dt

    first = dt.date.fromisoformat("2026-02-01")
    dates = [(first + dt.timedelta(days=i)).isoformat() for i in range(days)]
    files = 0
    for i, run_date in enumerate(dates):
        landed = simulate(faces, root, run_date, stores, receipts_per_store, None, seed=i)
        files += landed["photo_files"]
    last = dates[-1]
    command = [CLI, "retention", "--date", last, "--root", str(root), "--days", str(keep_days),
               "--json"]
    first_run = stage("retention", command, env)
    rerun = stage("retention_rerun", command, env)
    landing = root / "landing"
    kept = sorted(p.name[5:] for p in landing.iterdir() if (p / "photos").is_dir())
    purged = sorted(p.name[5:] for p in landing.iterdir() if (p / "_PHOTOS_PURGED").is_file())
    left_files = sum(1 for _ in landing.glob("date=*/photos/**/*.jpg"))
    csv_days = sum(1 for p in landing.iterdir() if (p / "receipts.csv").is_file())
    return {"landed_days": days, "photo_files_landed": files, "keep_days": keep_days,
            "run_date": last, "wall_s": first_run["wall_s"], "rerun_wall_s": rerun["wall_s"],
            "days_purged": len(purged), "days_with_photos_left": len(kept),
            "oldest_day_with_photos": kept[0] if kept else None,
            "photo_files_left": left_files, "days_with_receipts_left": csv_days}


def model_registry(root: Path, size: int) -> Path:
    """A registry whose production model is an untrained MobileNetV2 at `size` px.

    Scoring cost does not depend on the weights, and a benchmark should not need a training run.
    """
    from model.lifecycle.registry import ModelRegistry
    from model.serving.net import build_age_model

    registry = ModelRegistry(root)
    path = root.parent / "untrained.keras"
    build_age_model("mobilenet_v2", size, weights=None).save(path)
    version = registry.register(path, {"test": {"mae": 99.0}},
                                {"size": size, "backbone": "mobilenet_v2"}, "untrained",
                                "untrained benchmark model", [])
    assert registry.promote(version, max_mae=100.0).promoted
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--workdir", default=None, help="keep the data here (default: a temp dir)")
    parser.add_argument("--registry", default=None,
                        help="score with this registry's production model (default: an untrained "
                        "MobileNetV2 of --image-size: the same cost as a trained one)")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--keep-days", type=int, default=7,
                        help="retention window for part 3 (default 7: most of the 30 days go)")
    args = parser.parse_args()
    stores, per_store, photos_big, photos_small = (50, 2000, 20000, 2000)
    retention_days, retention_stores, retention_per_store = 30, 5, 100
    if args.quick:
        stores, per_store, photos_big, photos_small = 5, 400, 1000, 100
        retention_days, retention_stores, retention_per_store = 10, 1, 30

    from jobs.daily.landing import load_test_faces
    from jobs.daily.spark import launch_env
    from model.config import load_settings

    settings = load_settings()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-load-"))
    env = {**launch_env(), "TF_CPP_MIN_LOG_LEVEL": "2", "CHECKOUT_AGE_PHOTO_FORMAT": "crops"}
    load_before = os.getloadavg()
    faces = load_test_faces(Path(settings.faces_dir), work / "face-cache")
    registry = Path(args.registry) if args.registry else model_registry(work / "registry",
                                                                         args.image_size)
    print(f"registry {registry}; work dir {work}; load average {load_before}", flush=True)

    runs = {}
    for label, photos in (("photos_20000", photos_big), ("photos_2000", photos_small)):
        root = work / label
        print(f"day {label}:", flush=True)
        landed = simulate(faces, root, DAY, stores, per_store, photos)
        print(f"  landed {landed}", flush=True)
        runs[label] = {"landing": landed, "stages": daily_run(root, registry, env)}
        shutil.rmtree(root / "landing" / f"date={DAY}" / "photos", ignore_errors=True)
    score = {label: next(s for s in run["stages"] if s["stage"] == "score")["wall_s"]
             for label, run in runs.items()}
    print("retention:", flush=True)
    kept = retention(faces, work / "retention", retention_days, retention_stores,
                     retention_per_store, args.keep_days, env)
    result = {
        "benchmark": "bench/bench_load.py",
        "photo_format": "crops (face crops as photo files; frames not measured)",
        "machine": {"cpus": os.cpu_count(),
                    "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                    "python": platform.python_version(),
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()],
                    "shared": "other agents ran on the same 2 cores during the run"},
        "quick": args.quick,
        "chain": {"stores": stores, "receipts_per_store": per_store},
        "master": "local[*]",
        "model": args.registry or f"untrained mobilenet_v2 at {args.image_size} px",
        "days": runs,
        "score_growth": {"photos": [photos_small, photos_big],
                         "score_wall_s": [score["photos_2000"], score["photos_20000"]],
                         "ratio": round(score["photos_20000"] / score["photos_2000"], 2)},
        "retention": kept,
    }
    name = "bench_load_quick.json" if args.quick else "bench_load.json"
    out = PROJECT / "bench" / "results" / name
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["score_growth"]), json.dumps(kept), f"-> {out}", sep="\n")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
