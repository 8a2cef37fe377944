"""Full training run on the GPU machine; writes train_gpu.json (+ the model) for bench/results.

Usage (on the device, through bench/run_gpu.sh; or here on the CPU with tiny settings):
    python bench/train_gpu.py --pack .gpu/faces --out $OUT [--size 192] [--epochs 40] ...

Reads the pack written by bench/pack_gpu.py (WebP images + manifest with the content-hash
splits), decodes it at --size, fits with `model.train.fit_age_model` (the code path of
`checkout-age model train`: head warm-up, full fine-tuning, BN momentum 0.9, Huber, AdamW +
cosine, early stopping, numpy flip+shift in a PyDataset; mixed bfloat16 on a GPU), then
evaluates the test split with flip TTA. The result JSON holds test MAE overall, by band and
by gender, the compliance shares, images/s and epoch times; the model is saved as
model.keras (float32) next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from model.config import Settings
from model.evaluation.metrics import age_metrics
from model.serving.images import decode_face
from model.serving.predict import predict_ages
from model.training.profiles import train_config
from model.training.train import TimeLimit, accelerator_present, fit_age_model


def load_pack(pack: Path, size: int, limit: int | None) -> tuple[pd.DataFrame, np.ndarray]:
    """Manifest rows and their images decoded at `size` (uint8, N x size x size x 3)."""
    manifest = pd.read_csv(pack / "manifest.csv", dtype={"sha256": str})
    if limit:
        manifest = manifest.sample(n=min(limit, len(manifest)), random_state=0).sort_index()
    data = (pack / "images.bin").read_bytes()
    images = np.empty((len(manifest), size, size, 3), dtype=np.uint8)

    def decode(i: int) -> None:
        offset, length = manifest["offset"].iat[i], manifest["length"].iat[i]
        images[i] = decode_face(data[offset : offset + length], size)

    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(decode, range(len(manifest))))
    return manifest.reset_index(drop=True), images


class TimeBudget(TimeLimit):
    """`model.train.TimeLimit` (the device caps a command at 10 minutes: evaluation and the
    result file still get written) that also writes the history after every epoch."""

    def __init__(self, seconds: float, progress: Path) -> None:
        super().__init__(time.monotonic() + seconds)
        self.progress = progress
        self.history: list[dict] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.history.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        self.progress.write_text(json.dumps(self.history) + "\n")  # survives a hard kill
        super().on_epoch_end(epoch, logs)


def _device() -> str:
    devices = keras.distribution.list_devices()
    try:
        import jax

        return f"{jax.devices()[0].device_kind} ({', '.join(devices)})"
    except Exception:  # not JAX: the device list is all we know
        return ", ".join(devices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, default=Path(".gpu/faces"))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench/results")))
    parser.add_argument("--profile", default="gpu", help="training profile (model/config.py)")
    # Flags left out take the profile's value; these defaults are the GPU run's own choices
    # (a bigger batch and image fit the accelerator; the device's 10-minute cap bounds epochs).
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--backbone")
    parser.add_argument("--head", choices=("regression", "expectation"))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--head-epochs", type=int)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--huber-delta", type=float)
    parser.add_argument("--weights", choices=("imagenet", "none"), default="imagenet")
    parser.add_argument("--workers", type=int, default=8, help="PyDataset threads")
    parser.add_argument("--limit", type=int, help="use N rows (CPU test of the script)")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--no-model", action="store_true", help="do not save model.keras")
    parser.add_argument("--time-budget", type=float, default=480,
                        help="stop training after the epoch that passes N seconds of fitting")
    args = parser.parse_args()
    started = time.perf_counter()

    rows, images = load_pack(args.pack, args.size, args.limit)
    decode_s = time.perf_counter() - started
    ages = rows["real_age"].to_numpy(dtype=np.float32)
    part = {name: (rows["split"] == name).to_numpy() for name in ("train", "valid", "test")}
    print(f"decoded {len(rows)} images at {args.size} px in {decode_s:.1f} s; "
          f"train {part['train'].sum()}, valid {part['valid'].sum()}, test {part['test'].sum()}; "
          f"device {_device()}", flush=True)

    config = train_config(  # the gpu profile (model/config.py), with this script's flags
        Settings(), args.profile, size=args.size, backbone=args.backbone, head=args.head,
        weights=None if args.weights == "none" else "imagenet",
        head_epochs=args.head_epochs, epochs=args.epochs, batch_size=args.batch_size,
        seed=args.seed, learning_rate=args.learning_rate, patience=args.patience,
        huber_delta=args.huber_delta, workers=args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    budget = TimeBudget(args.time_budget, args.out / "progress.json")
    fit = fit_age_model(images[part["train"]], ages[part["train"]], images[part["valid"]],
                        ages[part["valid"]], config, args.out, callbacks=(budget,))
    (args.out / "checkpoint.keras").unlink(missing_ok=True)  # the final model is saved below

    gender = rows["gender"].to_numpy() if "gender" in rows else None
    results = {}
    for name in ("valid", "test"):
        infer_started = time.perf_counter()
        pred = predict_ages(fit.model, images[part[name]], batch_size=256)
        infer_s = time.perf_counter() - infer_started
        plain = predict_ages(fit.model, images[part[name]], batch_size=256, flip_tta=False)
        results[name] = {
            **age_metrics(ages[part[name]], pred, gender[part[name]] if gender is not None else None),
            "mae_without_tta": float(np.mean(np.abs(plain - ages[part[name]]))),
            "inference_images_per_s_tta": round(part[name].sum() / infer_s, 1),
        }
    full = [h for h in fit.history if h["phase"] == "full"]
    steady = full[1:] or full  # the first full epoch includes compilation
    summary = {
        "device": _device(),
        "accelerator": accelerator_present(),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "python": platform.python_version(),
        "dtype_policy": fit.dtype_policy,
        "config": asdict(config),
        "rows": {name: int(mask.sum()) for name, mask in part.items()},
        "pack": str(args.pack),
        "test": results["test"],
        "valid": results["valid"],
        "epochs_run": len(full),
        "stopped_by_time_budget": budget.stopped,
        "best_epoch": fit.best_epoch,
        "epoch_seconds_median": round(statistics.median(h["seconds"] for h in steady), 2)
        if steady else None,
        "train_images_per_s_median": round(statistics.median(h["images_per_s"] for h in steady), 1)
        if steady else None,
        "decode_seconds": round(decode_s, 1),
        "fit_seconds": round(fit.seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "history": fit.history,
    }
    (args.out / "train_gpu.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not args.no_model:
        fit.model.save(args.out / "model.keras")
    test = results["test"]
    print(f"test MAE {test['mae']:.3f} (no TTA {test['mae_without_tta']:.3f}), n {test['n']}; "
          f"{summary['epochs_run']} full epochs, {summary['epoch_seconds_median']} s/epoch, "
          f"{summary['train_images_per_s_median']} img/s; wrote {args.out / 'train_gpu.json'}")


if __name__ == "__main__":
    main()
