"""Benchmark the age model on this CPU: training and inference throughput at the default size.

Usage: .venv/bin/python bench/bench_model.py [--size 160] [--batch-sizes 32 64] [--repeats 3]

- train (full fine-tuning): MobileNetV2 + regression head, backbone unfrozen, AdamW + Huber,
  one `train_on_batch` per step on fixed random pixels (throughput does not depend on the
  picture); after warm-up steps (graph tracing), `--repeats` runs of `--steps` steps each.
- train (head only): the same with the backbone frozen (the warm-up phase of training).
- inference: `predict_ages` (what evaluation and the scoring job call) at batch 64, plain and
  with flip test-time augmentation (two forward passes per image).
- augmentation: numpy flip + shift of uint8 batches, the input pipeline's own cost.
Figures are images per second, median of the runs. The machine is shared: its load average
is recorded before and after. Results go to bench/results/bench_model_cpu.json.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import time
from pathlib import Path

import keras
import numpy as np

from model.config import Settings
from model.serving.net import backbone_of, build_age_model, set_batchnorm_momentum
from model.serving.predict import predict_ages
from model.training.augment import augment_batch
from model.training.profiles import train_config
from model.training.train import compile_for_training

RESULTS = Path(__file__).resolve().parent / "results" / "bench_model_cpu.json"


def _machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    versions = {}
    for name in ("keras", "tensorflow-cpu", "tensorflow", "jax", "numpy"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu,
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "backend": keras.backend.backend(),
        "versions": versions,
    }


def write_results(results: dict, out: Path, started: float, load_before: tuple) -> None:
    """Add the machine, the load average before/after and the run time; write `out` as JSON."""
    results["machine"] = _machine()
    results["load_average_1min"] = {"before": round(load_before[0], 2),
                                    "after": round(os.getloadavg()[0], 2)}
    results["seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out} ({results['seconds']:.0f} s)")


def _model(size: int, weights: str | None, trainable_backbone: bool) -> keras.Model:
    model = build_age_model("mobilenet_v2", size, weights=weights)
    backbone_of(model).trainable = trainable_backbone
    if trainable_backbone:
        set_batchnorm_momentum(model, 0.9)
    compile_for_training(model, 1e-4, train_config(Settings(), "gpu", size=size))
    return model


def _train_rate(model: keras.Model, x: np.ndarray, y: np.ndarray, warmup: int, steps: int,
                repeats: int) -> list[float]:
    for _ in range(warmup):
        model.train_on_batch(x, y)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        rates.append(steps * len(x) / (time.perf_counter() - started))
    return rates


def _timed_rate(fn, images: int, repeats: int) -> list[float]:
    fn()  # warm-up (tracing)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        rates.append(images / (time.perf_counter() - started))
    return rates


def _summary(rates: list[float]) -> dict:
    return {"images_per_s_median": round(statistics.median(rates), 1),
            "runs": [round(r, 1) for r in rates]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="train steps per timed run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed train steps first")
    parser.add_argument("--infer-images", type=int, default=512)
    parser.add_argument("--weights", choices=("imagenet", "none"), default="imagenet")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    weights = None if args.weights == "none" else "imagenet"
    rng = np.random.default_rng(0)
    started, load_before = time.perf_counter(), os.getloadavg()

    results: dict = {"size": args.size, "backbone": "mobilenet_v2", "weights": args.weights,
                     "repeats": args.repeats, "steps_per_run": args.steps,
                     "train_full": {}, "train_head_only": {}}
    for batch_size in args.batch_sizes:
        x = rng.integers(0, 256, (batch_size, args.size, args.size, 3)).astype(np.float32)
        y = rng.uniform(1, 90, (batch_size, 1)).astype(np.float32)
        for key, trainable in (("train_full", True), ("train_head_only", False)):
            keras.utils.clear_session()
            model = _model(args.size, weights, trainable)
            rates = _train_rate(model, x, y, args.warmup, args.steps, args.repeats)
            results[key][str(batch_size)] = {
                **_summary(rates),
                "step_s_median": round(batch_size / statistics.median(rates), 3)}
            print(f"{key} batch {batch_size}: {statistics.median(rates):.1f} images/s "
                  f"(runs {', '.join(f'{r:.1f}' for r in rates)})")

    keras.utils.clear_session()
    model = build_age_model("mobilenet_v2", args.size, weights=weights)
    images = rng.integers(0, 256, (args.infer_images, args.size, args.size, 3), dtype=np.uint8)
    for key, tta in (("inference", False), ("inference_flip_tta", True)):
        rates = _timed_rate(lambda t=tta: predict_ages(model, images, 64, flip_tta=t),
                            len(images), args.repeats)
        results[key] = {"batch_size": 64, **_summary(rates)}
        print(f"{key} batch 64: {statistics.median(rates):.1f} images/s")

    batch = images[:64]
    rates = _timed_rate(lambda: [augment_batch(batch, np.random.default_rng(i)) for i in range(10)],
                        10 * len(batch), args.repeats)
    results["augmentation"] = {"batch_size": 64, **_summary(rates)}
    print(f"augmentation (numpy flip + shift): {statistics.median(rates):.0f} images/s")

    write_results(results, args.out, started, load_before)


if __name__ == "__main__":
    main()
