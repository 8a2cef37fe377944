"""The real training loop against plain `train_on_batch`, on real cached faces.

Usage: .venv/bin/python bench/bench_train_loop.py [--size 96] [--rows 1200] [--epochs 3]
       [--variants before after ...] [--out bench/results/bench_train_loop.json]

Each variant builds a fresh MobileNetV2 age model (ImageNet weights, backbone unfrozen,
BatchNorm momentum 0.9: the fine-tuning phase of `model train`) and runs `model.fit` for
`--epochs` whole epochs over `--rows` training faces from the decoded-image cache (plus
`--valid-rows` validation faces when the variant validates). The first epoch (tracing and
compilation) is dropped; the figure is training images per second of the later epochs'
wall time, validation included, with the process's user and system CPU seconds.
Next to it, on the same model, batch size and compile options, `train_on_batch` runs on one
fixed batch of the same faces: the ceiling the loop should reach (ratio goal >= 0.8).

Variants change one thing at a time from `before` (the loop as it was: XLA "auto", which is
on for TensorFlow on the CPU, a last partial batch, per-epoch validation):
- before      : the old loop (jit_compile "auto" = XLA on, ragged last batch, validation)
- no_xla      : jit_compile=False
- whole_batches: XLA on, but every batch full (training drops the ragged tail; no new shapes)
- after       : what `model.train` does now: XLA only on an accelerator (so off here), whole
                batches (`compile_for_training` and `FaceBatches(drop_remainder=True)`)
CPU seconds (user + system) per image are reported too: on a shared machine they move less
than wall time; `fit_cores_used` (CPU seconds per wall second) shows whether the loop keeps
both cores busy, which only a quiet machine can show (under a load of 2+ runnable threads per
core no variant gets more than its share). `first_epoch_s` holds tracing and, with XLA, compilation of every new batch
shape (the ragged last training and validation batches add one each).
The machine is shared: the 1-minute load average is recorded before and after each variant.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_model import write_results  # noqa: E402
from model.config import Settings  # noqa: E402
from model.serving.net import backbone_of, build_age_model, set_batchnorm_momentum  # noqa: E402
from model.training.batches import FaceBatches  # noqa: E402
from model.training.profiles import train_config  # noqa: E402
from model.training.train import compile_for_training  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_train_loop.json"

# variant -> (fit options, compile options, FaceBatches options)
VARIANTS: dict[str, dict] = {
    "before": {"jit_compile": "auto", "validate": True, "drop_remainder": False},
    "no_xla": {"jit_compile": False, "validate": True, "drop_remainder": False},
    "whole_batches": {"jit_compile": "auto", "validate": True, "drop_remainder": True},
    "after": {"jit_compile": None, "validate": True, "drop_remainder": True},
}


def _cpu_seconds() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


class EpochTimer(keras.callbacks.Callback):
    """Wall, user and system seconds of every epoch (validation included)."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[dict] = []
        self._start = (0.0, 0.0, 0.0)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = (time.perf_counter(), *_cpu_seconds())

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        wall, user, system = time.perf_counter(), *_cpu_seconds()
        self.epochs.append({"wall_s": wall - self._start[0], "user_s": user - self._start[1],
                            "sys_s": system - self._start[2]})


def _load_faces(size: int, rows: int, valid_rows: int) -> tuple[np.ndarray, ...]:
    from model.config import load_settings
    from model.data.dataset import validate_dataset
    from model.data.image_cache import load_images
    from model.data.split import assign_splits

    settings = load_settings()
    if settings.faces_dir is None:
        raise SystemExit("set FACES_DIR to the labelled face set")
    report = validate_dataset(settings.faces_dir, cache_dir=settings.cache_dir)
    split = assign_splits(report.usable)
    train = split[split["split"] == "train"].head(rows)
    valid = split[split["split"] == "valid"].head(valid_rows)
    load = lambda part: np.asarray(  # noqa: E731
        load_images(part, size, settings.cache_dir, report.fingerprint))
    return (load(train), train["real_age"].to_numpy(np.float32),
            load(valid), valid["real_age"].to_numpy(np.float32))


def _model(size: int, batch_size: int, jit_compile: object) -> keras.Model:
    keras.utils.clear_session()
    model = build_age_model("mobilenet_v2", size)
    backbone_of(model).trainable = True
    set_batchnorm_momentum(model, 0.9)
    config = train_config(Settings(), "gpu", size=size, batch_size=batch_size)
    if jit_compile is None:  # what model.train uses now
        compile_for_training(model, 1e-4, config)
    else:
        compile_for_training(model, 1e-4, config, jit_compile=jit_compile)
    return model


def _train_on_batch_rate(model: keras.Model, x: np.ndarray, y: np.ndarray,
                         steps: int) -> tuple[float, float]:
    """(images per second of wall time, CPU seconds per image) of plain train_on_batch."""
    for _ in range(2):  # tracing, compilation
        model.train_on_batch(x, y)
    started, cpu = time.perf_counter(), sum(_cpu_seconds())
    for _ in range(steps):
        model.train_on_batch(x, y)
    images = steps * len(x)
    return images / (time.perf_counter() - started), (sum(_cpu_seconds()) - cpu) / images


def run_variant(name: str, faces: tuple[np.ndarray, ...], size: int, batch_size: int,
                epochs: int, steps: int) -> dict:
    """Time the fit loop and train_on_batch for one variant (module docstring)."""
    options = VARIANTS[name]
    train_x, train_y, valid_x, valid_y = faces
    load_before = os.getloadavg()[0]
    model = _model(size, batch_size, options["jit_compile"])
    train = FaceBatches(train_x, train_y, batch_size=batch_size, shuffle=True, augment=True,
                        drop_remainder=options["drop_remainder"])
    valid = FaceBatches(valid_x, valid_y, batch_size=batch_size) if options["validate"] else None
    timer = EpochTimer()
    started = time.perf_counter()
    model.fit(train, validation_data=valid, epochs=epochs, verbose=0, callbacks=[timer])
    fit_s = time.perf_counter() - started
    steady = timer.epochs[1:]
    rows_per_epoch = len(train) * batch_size if options["drop_remainder"] else len(train_x)
    fit_rate = statistics.median(rows_per_epoch / e["wall_s"] for e in steady)
    batch_x = train_x[:batch_size].astype(np.float32)
    batch_y = train_y[:batch_size].reshape(-1, 1)
    tob_rate, tob_cpu = _train_on_batch_rate(model, batch_x, batch_y, steps)
    result = {
        **{k: v for k, v in options.items()},
        "jit_compile_resolved": bool(model.jit_compile),
        "fit_images_per_s": round(fit_rate, 1),
        "train_on_batch_images_per_s": round(tob_rate, 1),
        "ratio": round(fit_rate / tob_rate, 2),
        "fit_cpu_ms_per_image": round(1000 * statistics.median(
            (e["user_s"] + e["sys_s"]) / rows_per_epoch for e in steady), 1),
        "train_on_batch_cpu_ms_per_image": round(1000 * tob_cpu, 1),
        "cpu_ratio": round(tob_cpu * rows_per_epoch / statistics.median(
            e["user_s"] + e["sys_s"] for e in steady), 2),
        "fit_cores_used": round(statistics.median(
            (e["user_s"] + e["sys_s"]) / e["wall_s"] for e in steady), 2),
        "first_epoch_images_per_s": round(len(train_x) / timer.epochs[0]["wall_s"], 1),
        "first_epoch_sys_s": round(timer.epochs[0]["sys_s"], 1),
        "first_epoch_s": round(timer.epochs[0]["wall_s"], 1),
        "later_epochs": [{k: round(v, 1) for k, v in e.items()} for e in steady],
        "fit_s": round(fit_s, 1),
        "load_average_1min": {"before": round(load_before, 2),
                              "after": round(os.getloadavg()[0], 2)},
    }
    print(f"{name:>13}: fit {fit_rate:6.1f} img/s, train_on_batch {tob_rate:6.1f} img/s, "
          f"ratio {result['ratio']:.2f} (CPU time {result['cpu_ratio']:.2f}); first epoch "
          f"{result['first_epoch_s']} s (sys {result['first_epoch_sys_s']} s); later "
          f"epochs sys {sum(e['sys_s'] for e in steady):.1f} s of "
          f"{sum(e['wall_s'] for e in steady):.1f} s wall", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--rows", type=int, default=1200,
                        help="training faces per epoch (1,200: the issue's --limit 1500 run)")
    parser.add_argument("--valid-rows", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="the first is not timed")
    parser.add_argument("--steps", type=int, default=10, help="timed train_on_batch steps")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()
    faces = _load_faces(args.size, args.rows, args.valid_rows)
    results = {"size": args.size, "rows": len(faces[0]), "valid_rows": len(faces[2]),
               "batch_size": args.batch_size, "epochs": args.epochs,
               "train_on_batch_steps": args.steps, "variants": {}}
    for name in args.variants:
        results["variants"][name] = run_variant(name, faces, args.size, args.batch_size,
                                                args.epochs, args.steps)
    write_results(results, args.out, started, load_before)


if __name__ == "__main__":
    main()
