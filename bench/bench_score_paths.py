"""Benchmark of the score job, today's path and the serving path side by side in one run.

One registry model, twice: copied as a version without a serving artifact (today's path: MTCNN
and the `.keras` model, TensorFlow in every worker) and re-registered through
`checkout-age model register` (the publish path), which gives the same weights an OpenVINO
artifact (the serving path: YuNet, the artifact, no TensorFlow). Both score:

1. per stage, in this process, one frame at a time: decode (full and DCT-scaled), detect,
   crop, predict (core-s per frame; the model stages per face, flip TTA included);
2. the whole job through `checkout-age score` (spark-submit, `local[2]`; the serving path also
   with the JVM's own defaults instead of `DRIVER_JVM_OPTIONS`) on the same day of
   ~1,200 checkout frames (1280x720) and the same day of ~1,200 face crops, alternating the
   paths: wall seconds, core-seconds of the whole process tree (JVM and Python workers),
   core utilisation (core-s / (wall x 2)), frames/s, peak resident memory of each Python
   worker and of the JVM; and how far the two paths' ages lie apart.

Results: bench/results/bench_score_paths.json, with the load average (the machine is shared).

    .venv/bin/python bench/bench_score_paths.py --model v0001   # the embedded MLflow store
    .venv/bin/python bench/bench_score_paths.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.run_record import progress, publish, run_record  # noqa: E402

RESULTS = PROJECT / "bench" / "results" / "bench_score_paths.json"
DAY = "2026-03-14"
JVM_DEFAULTS = "new_jvm_defaults"  # the results' key of the serving path on Java's defaults
SCORE_GOALS = {"frames_per_s": 60, "crops_per_s": 150, "core_utilisation": 0.95}  # issue 17
CLI = Path(sys.executable).parent / "checkout-age"


class TreeUsage:
    """Peak RSS and CPU time of each process under this one (sampled every 0.2 s), by kind.

    CPU time is summed over every process seen, so it counts the JVM and the PySpark daemon's
    workers: `getrusage(RUSAGE_CHILDREN)` does not, since the daemon's forked workers are never
    waited for by a process of ours (it measured about 0.04 core-s per frame for a path whose
    stages alone cost 0.13). A process's last 0.2 s before it ends can be missed.
    """

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self.peaks: dict[int, float] = {}  # MiB
        self.cpu: dict[int, float] = {}
        self.kinds: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _kind(self, proc) -> str:  # noqa: ANN001
        """By ancestry, not by command line alone: the PySpark daemon's forked workers keep
        whatever command line they were forked with, but their ancestor is always the JVM."""
        if "java" in proc.name():
            return "jvm"
        if any("score_photos.py" in part for part in proc.cmdline()):
            return "driver"  # spark-submit's Python driver (a child of the JVM too)
        if any("java" in parent.name() for parent in proc.parents()):
            return "python_worker"
        return "cli"  # checkout-age score and the spark-submit scripts

    def _run(self) -> None:
        me = self._psutil.Process()
        while not self._stop.is_set():
            for proc in me.children(recursive=True):
                try:
                    rss = proc.memory_info().rss / 2**20
                    # spark-submit is a shell script that becomes the JVM (same pid) with
                    # score_photos.py on its command line: look again until it is java.
                    if self.kinds.get(proc.pid) in (None, "driver", "cli"):
                        self.kinds[proc.pid] = self._kind(proc)
                    times = proc.cpu_times()
                except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
                    continue
                self.cpu[proc.pid] = max(self.cpu.get(proc.pid, 0.0), times.user + times.system)
                self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0.0), rss)
            self._stop.wait(0.2)

    def __enter__(self) -> TreeUsage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def core_seconds(self) -> float:
        """CPU seconds (user + system) of every process seen under this one."""
        return sum(self.cpu.values())

    def core_seconds_by_kind(self) -> dict[str, float]:
        """CPU seconds per kind of process: jvm, driver, python_worker, cli."""
        out: dict[str, float] = {}
        for pid, seconds in self.cpu.items():
            kind = self.kinds[pid]
            out[kind] = round(out.get(kind, 0.0) + seconds, 1)
        return out

    def summary(self) -> dict:
        workers = sorted(mib for pid, mib in self.peaks.items()
                         if self.kinds[pid] == "python_worker")
        jvm = [mib for pid, mib in self.peaks.items() if self.kinds[pid] == "jvm"]
        return {"python_workers": len(workers),
                "python_worker_peak_rss_mib_max": max(workers) if workers else None,
                "python_worker_peak_rss_mib_each": [round(m) for m in workers],
                "jvm_peak_rss_mib": max(jvm) if jvm else None}


def score_job(root: Path, registry: Path, version: str, env: dict) -> dict:
    """`checkout-age score` once: its result, wall, core-seconds, utilisation, memory."""
    progress(f"score {root.parent.name} with {version}")
    wall = time.perf_counter()
    with TreeUsage() as usage:
        done = subprocess.run([str(CLI), "score", "--date", DAY, "--root", str(root), "--model",
                               version, "--master", "local[2]", "--json"],
                              env={**env, "MODEL_REGISTRY": str(registry)},
                              capture_output=True, text=True)
    seconds, core_s = time.perf_counter() - wall, usage.core_seconds()
    if done.returncode != 0:
        raise RuntimeError(f"score {version} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout[done.stdout.index("{"):])
    photos = result["photos_in"]
    return {"seconds": seconds, "core_s": core_s, "core_utilisation": core_s / (2 * seconds),
            "photos_in": photos, "photos_per_s": photos / seconds,
            "core_s_per_photo": core_s / photos, "photos_per_s_2_cores_by_cpu": 2 * photos / core_s,
            "scored": result["photos_scored"], "quarantine_reasons": result["quarantine_reasons"],
            "serving": result.get("serving"),
            "core_s_by_process": usage.core_seconds_by_kind(),
            "job_log_timings": _timings(done.stderr),
            **usage.summary()}


def _timings(stderr: str) -> list[str]:
    """The job's own timing lines (`... in N s`), for where its wall time goes."""
    return [line.split(": ", 1)[-1] for line in stderr.splitlines()
            if " in " in line and line.rstrip().endswith(" s") and "INFO" in line]


def stages(frames_bytes: list[bytes], keras_path: Path, artifact: dict, settings) -> dict:  # noqa: ANN001
    """Core-s per frame of each stage alone, one frame at a time, today's and the new one."""
    from model.serving.artifact import load_runtime
    from model.serving.faces import CropGeometry, crop_face, locate_customer, shared_detector
    from model.serving.images import open_image, open_scaled
    from model.serving.net import load_age_model
    from model.serving.predict import predict_ages
    from model.serving.yunet import YUNET_GEOMETRY, YuNetDetector

    def timed(fn, items):  # noqa: ANN001, ANN202
        cpu = time.process_time()
        out = [fn(item) for item in items]
        return out, (time.process_time() - cpu) / len(items)

    size = artifact["size"]
    out: dict = {}
    full, out["decode_full"] = timed(open_image, frames_bytes)
    scaled, out["decode_dct_scaled_for_yunet"] = timed(
        lambda b: open_scaled(b, settings.yunet_width_px), frames_bytes)
    mtcnn = shared_detector(settings.detect_width_px)
    mtcnn.detect(full[:4])
    found_m, out["detect_mtcnn_480"] = timed(lambda im: mtcnn.detect([im])[0], full)
    yunet = YuNetDetector(settings.yunet_width_px)
    found_y, out[f"detect_yunet_{settings.yunet_width_px}"] = timed(
        lambda pair: yunet.detect([pair[0]], [pair[1]])[0], scaled)
    pairs = []
    for image, faces_m, faces_y in zip(full, found_m, found_y, strict=True):
        m = locate_customer(faces_m, image.size, min_confidence=settings.min_face_confidence)
        y = locate_customer(faces_y, image.size, min_confidence=settings.yunet_min_confidence)
        if m.reason is None and y.reason is None:
            pairs.append((image, m.face, y.face))
    crops_m, out["crop_mtcnn_box"] = timed(
        lambda p: crop_face(p[0], p[1], size, CropGeometry()), pairs)
    crops_y, out["crop_yunet_box"] = timed(
        lambda p: crop_face(p[0], p[2], size, YUNET_GEOMETRY), pairs)
    batch = np.stack(crops_y[:64])
    model = load_age_model(keras_path)
    predict_ages(model, batch)
    _, keras_s = timed(lambda _: predict_ages(model, batch), range(3))
    out["predict_keras_per_face"] = keras_s / len(batch)
    for precision in ("f32", "bf16"):
        runtime = load_runtime(artifact["path"], threads=1, precision=precision)
        runtime.predict(batch)
        _, s = timed(lambda _, r=runtime: r.predict(batch), range(3))
        out[f"predict_openvino_{precision}_1_thread_per_face"] = s / len(batch)
    out["today_per_frame"] = (out["decode_full"] * 2 + out["detect_mtcnn_480"]
                              + out["crop_mtcnn_box"] + out["predict_keras_per_face"])
    out["new_per_frame"] = (out["decode_dct_scaled_for_yunet"] + out["decode_full"]
                            + out[f"detect_yunet_{settings.yunet_width_px}"]
                            + out["crop_yunet_box"]
                            + out[f"predict_openvino_{artifact['precision']}_1_thread_per_face"])
    out["note"] = ("core-s; today's path decodes each frame twice (detection, crop); the new "
                   "one decodes it DCT-scaled for detection and whole for the crop")
    out["frames"] = len(frames_bytes)
    out["faces_cropped"] = len(pairs)
    return out


def _ages(root: Path) -> pd.Series:
    frame = pd.read_parquet(root / "reports" / "photo_scores" / f"date={DAY}")
    return frame.set_index("photo_id")["age_pred_years"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=None)
    parser.add_argument("--model", default="production", help="the version to score with")
    parser.add_argument("--photos", type=int, default=1200, help="photos per day (about)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each path and day")
    parser.add_argument("--quick", action="store_true", help="120 photos, no results file")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    started, load_before = time.time(), os.getloadavg()

    from jobs.daily.spark import launch_env
    from jobs.simulator.frames import render_frame
    from jobs.simulator.landing import load_test_faces, write_day
    from jobs.simulator.simulate import simulate_day
    from model.config import load_settings
    from model.evaluation.calibration import CALIBRATION_FILE
    from model.lifecycle.registry import ModelRegistry
    from model.serving.artifact import read_artifact

    settings = load_settings()
    photos = 120 if args.quick else args.photos
    faces_dir = settings.faces_dir or PROJECT.parent / "shared" / "faces"
    source = ModelRegistry(args.registry or settings.registry_store,
                           cache_dir=settings.cache_dir / "models").resolve(args.model)
    result: dict = {"model": source.version, "image_size": source.image_size, "jobs": {}}
    env = {**launch_env(), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory(prefix="bench-score-paths-") as tmp_name:
        tmp = Path(tmp_name)
        registry = tmp / "registry"  # a throw-away MLflow store: the source version as it is
        kept = {name: source.path / name for name in (CALIBRATION_FILE,)
                if (source.path / name).is_file()}
        today = ModelRegistry(registry).register(
            source.model_path, source.metrics, source.config,
            str(source.config.get("dataset_fingerprint")), "bench copy", [], extra_files=kept)
        t0 = time.perf_counter()
        progress(f"publishing {source.version}'s model again, with its artifact")
        done = subprocess.run([str(CLI), "model", "register", str(source.model_path), "--faces",
                               str(faces_dir), "--version-only"],
                              env={**env, "MODEL_REGISTRY": str(registry)},
                              capture_output=True, text=True, check=True)
        published = done.stdout.strip().splitlines()[-1]
        result["publish_with_artifact_s"] = time.perf_counter() - t0
        artifact = read_artifact(ModelRegistry(registry).resolve(published).path)
        result["artifact"] = {k: v for k, v in artifact.items() if k != "path"}
        versions = {"today": today, "new": published}

        faces = load_test_faces(Path(faces_dir), settings.cache_dir)
        stores, per_store = (1, photos) if photos <= 400 else (4, photos // 4)
        days = {}
        for label, frames in (("frames", True), ("crops", False)):
            day = simulate_day(faces, DAY, stores, per_store, seed=11, frames=frames)
            write_day(day, str(tmp / label / "root"))
            days[label] = day
        progress("stages")
        frame_plans = days["frames"].photos
        frame_plans = frame_plans[frame_plans.corrupt == ""].head(60 if args.quick else 200)
        result["stages_core_s"] = stages([render_frame(p) for p in frame_plans.frame],
                                         source.model_path,
                                         {**artifact, "size": source.image_size}, settings)
        for label in ("frames", "crops"):
            root = tmp / label / "root"
            # JVM_DEFAULTS: the serving path with Java's own JVM options, not DRIVER_JVM_OPTIONS
            runs: dict[str, list] = {"today": [], "new": [], JVM_DEFAULTS: []}
            ages = {}
            for _ in range(args.repeats):
                for path in runs:  # alternating: all see the same neighbours
                    plain_jvm = path == JVM_DEFAULTS
                    job_env = {**env, "SPARK_SUBMIT_OPTS": ""} if plain_jvm else env
                    runs[path].append(score_job(root, registry,
                                                versions["new" if plain_jvm else path], job_env))
                    if not plain_jvm:
                        ages[path] = _ages(root)
            both = ages["today"].index.intersection(ages["new"].index)
            diff = (ages["today"][both] - ages["new"][both]).abs()
            result["jobs"][label] = {
                **{path: min(r, key=lambda r: r["seconds"]) for path, r in runs.items()},
                "runs": runs, "scored_by_both": len(both),
                "age_abs_diff_years": {"max": float(diff.max()), "mean": float(diff.mean())},
                "scored_only_today": len(ages["today"].index.difference(ages["new"].index)),
                "scored_only_new": len(ages["new"].index.difference(ages["today"].index))}
            job = result["jobs"][label]
            job["speedup_wall"] = job["today"]["seconds"] / job["new"]["seconds"]
            job["speedup_core_s"] = job["today"]["core_s"] / job["new"]["core_s"]
            job["jvm_options_speedup_wall"] = job[JVM_DEFAULTS]["seconds"] / job["new"]["seconds"]
            job["jvm_options_speedup_core_s"] = job[JVM_DEFAULTS]["core_s"] / job["new"]["core_s"]
    result["goals"], result["run"] = SCORE_GOALS, run_record(started, load_before)
    publish(result, args.out, keep=not args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
