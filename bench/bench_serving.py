"""Benchmark of the age model's serving runtimes: Keras vs OpenVINO vs ONNX Runtime, one run.

One registry version (or an untrained MobileNetV2 160 px, `--untrained`: speed and parity
only) is exported to OpenVINO IR and to ONNX (`model.serving.artifact.export_artifact`). Each runtime
then runs in a fresh Python process of its own (never in the exporting process, which holds
TensorFlow's thread pools) on the same real test faces, with flip test-time augmentation as
the score job does, at 1 and 2 threads:

- faces/s and CPU seconds per face (median of `--repeats` passes after a warm-up pass),
- peak resident memory of that process, and whether TensorFlow was imported there,
- the largest difference from Keras's estimates (goal: under 0.05 years in fp32),
- with a trained version: MAE and the Challenge-25 rate (true minors estimated 25 or older)
  against the labels, for fp32 and for OpenVINO's bf16.

Results: bench/results/bench_serving.json, with the load average (the machine is shared).

    .venv/bin/python bench/bench_serving.py --registry var/registry --model production
    .venv/bin/python bench/bench_serving.py --untrained --faces-count 128 --quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
from bench.run_record import publish, run_record  # noqa: E402

RESULTS = PROJECT / "bench" / "results" / "bench_serving.json"


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(args: argparse.Namespace) -> int:
    """One runtime in this process: time it on the faces, write its estimates and figures."""
    from model.serving.artifact import load_runtime

    images = np.load(args.faces)
    started = time.perf_counter()
    runtime = load_runtime(args.artifact, threads=args.threads, precision=args.precision)
    load_s = time.perf_counter() - started
    _time_predictions(lambda batch: runtime.predict(batch, batch_size=args.batch), images,
                      load_s, args, report_keras=True)
    return 0


def _time_predictions(predict, images: np.ndarray, load_s: float,  # noqa: ANN001
                      args: argparse.Namespace, *, report_keras: bool = False) -> None:
    """Warm up, time `args.repeats` passes of `predict` over `images`, save the ages and the
    figures (medians of faces/s and CPU s per face, peak RSS, whether TensorFlow was imported)."""
    predict(images[:args.batch])  # warm-up: compilation, caches
    rates, cpu = [], []
    ages = None
    for _ in range(args.repeats):
        wall, proc = time.perf_counter(), time.process_time()
        ages = predict(images)
        rates.append(len(images) / (time.perf_counter() - wall))
        cpu.append((time.process_time() - proc) / len(images))
    np.save(args.ages_out, ages)
    figures = {"load_s": load_s, "faces_per_s": statistics.median(rates),
               "cpu_s_per_face": statistics.median(cpu), "runs_faces_per_s": rates,
               "peak_rss_mib": peak_rss_mib(),
               "tensorflow_imported": "tensorflow" in sys.modules}
    if report_keras:  # the artifact's worker must not have imported Keras either
        figures["keras_imported"] = "keras" in sys.modules
    Path(args.figures_out).write_text(json.dumps(figures))


def keras_worker(args: argparse.Namespace) -> int:
    """Keras itself (today's path) in a fresh process, timed the same way."""
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(args.threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    from model.serving.net import load_age_model
    from model.serving.predict import predict_ages

    images = np.load(args.faces)
    started = time.perf_counter()
    model = load_age_model(args.artifact)
    load_s = time.perf_counter() - started
    _time_predictions(lambda batch: predict_ages(model, batch, batch_size=args.batch), images,
                      load_s, args)
    return 0


def _spawn(mode: str, artifact: Path, faces: Path, tmp: Path, threads: int, precision: str,
           batch: int, repeats: int) -> tuple[dict, np.ndarray]:
    tag = f"{mode}-{artifact.suffix[1:]}-{precision}-{threads}"
    ages_out, figures_out = tmp / f"{tag}.npy", tmp / f"{tag}.json"
    cmd = [sys.executable, __file__, f"--{mode}", "--artifact", str(artifact), "--faces",
           str(faces), "--threads", str(threads), "--precision", precision, "--batch",
           str(batch), "--repeats", str(repeats), "--ages-out", str(ages_out),
           "--figures-out", str(figures_out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(figures_out.read_text()), np.load(ages_out)


def _quality(ages: np.ndarray, truth: np.ndarray | None) -> dict:
    if truth is None:
        return {}
    minors = truth < 18
    return {"mae": float(np.abs(ages - truth).mean()),
            "challenge25_minors_25_or_older": float((ages[minors] >= 25).mean())
            if minors.any() else None}


def _faces(count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` test-split faces (uint8, decoded as the job decodes crops) and their ages."""
    from jobs.simulator.landing import load_test_faces
    from model.config import load_settings
    from model.serving.images import decode_face

    settings = load_settings()
    faces_dir = settings.faces_dir or PROJECT.parent / "shared" / "faces"
    test = load_test_faces(Path(faces_dir), settings.cache_dir)
    test = test.sample(min(count, len(test)), random_state=7)
    images = np.stack([decode_face(Path(p).read_bytes(), size) for p in test["path"]])
    return images, test["real_age"].to_numpy(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=None)
    parser.add_argument("--model", default="production")
    parser.add_argument("--untrained", action="store_true",
                        help="MobileNetV2 160 px with ImageNet weights and a fresh head")
    parser.add_argument("--faces-count", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="do not write the results file")
    parser.add_argument("--out", default=str(RESULTS))
    # Worker mode (one runtime in a fresh process).
    for flag in ("--worker", "--keras-worker"):
        parser.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    for flag in ("--artifact", "--faces", "--ages-out", "--figures-out"):
        parser.add_argument(flag, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="f32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.keras_worker:
        return keras_worker(args)

    started, load_before = time.time(), os.getloadavg()
    from model.serving.artifact import OPENVINO, RUNTIMES, export_artifact
    from model.serving.net import build_age_model, load_age_model

    if args.untrained:
        model, label, size = build_age_model("mobilenet_v2", 160), "untrained", 160
    else:
        from model.config import load_settings
        from model.lifecycle.registry import ModelRegistry

        version = ModelRegistry(args.registry or load_settings().registry_root).resolve(args.model)
        model, label, size = load_age_model(version.model_path), version.version, version.image_size
    images, truth = _faces(args.faces_count, size)
    result: dict = {"model": label, "image_size": size, "faces": len(images),
                    "batch": args.batch, "flip_tta": True, "runtimes": {}}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp_name:
        tmp = Path(tmp_name)
        keras_path = tmp / "age.keras"
        model.save(keras_path)
        np.save(tmp / "faces.npy", images)
        artifacts = {}
        for runtime in RUNTIMES:
            t0 = time.perf_counter()
            path = export_artifact(model, tmp / runtime, runtime)
            artifacts[runtime] = path
            result.setdefault("export", {})[runtime] = {
                "seconds": time.perf_counter() - t0,
                "mib": sum(f.stat().st_size for f in path.parent.iterdir()) / 2**20}
        reference = None
        for threads in (1, 2):
            figures, ages = _spawn("keras-worker", keras_path, tmp / "faces.npy", tmp, threads,
                                   "f32", args.batch, args.repeats)
            reference = ages if reference is None else reference
            result["runtimes"][f"keras_f32_{threads}t"] = {**figures, **_quality(ages, truth)}
            for runtime, path in artifacts.items():
                for precision in ("f32", "bf16") if runtime == OPENVINO else ("f32",):
                    figures, ages = _spawn("worker", path, tmp / "faces.npy", tmp, threads,
                                           precision, args.batch, args.repeats)
                    diff = np.abs(ages - reference)
                    result["runtimes"][f"{runtime}_{precision}_{threads}t"] = {
                        **figures, "max_abs_diff_vs_keras_years": float(diff.max()),
                        "mean_abs_diff_vs_keras_years": float(diff.mean()),
                        **_quality(ages, None if args.untrained else truth)}
    if args.untrained:
        for entry in result["runtimes"].values():
            entry.pop("mae", None)
            entry.pop("challenge25_minors_25_or_older", None)
    result["run"] = run_record(started, load_before)
    publish(result, args.out, keep=not args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
