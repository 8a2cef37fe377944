"""One full `--profile cpu` training run on the whole face set; figures for bench/results.

Usage: .venv/bin/python bench/train_cpu_profile.py [--profile cpu] [--head expectation]
       [--registry DIR] [--out bench/results/train_cpu_profile.json]

Runs `model.train.train_model` exactly as `checkout-age model train --profile cpu` does (all
usable faces of FACES_DIR), registers the version in `--registry` (a scratch registry unless
given) and writes: test and validation MAE overall, by age band and by gender, the
Challenge-25 figures, wall time per phase (validation + image cache, frozen-layer
activations, fitting, evaluation and documentation), the epoch history and the machine's
1-minute load average sampled every 30 s (the machine is shared: a load above the 2 cores
means the run had less than the whole CPU, and its wall time is inflated accordingly).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_model import _machine  # noqa: E402
from model.config import load_settings  # noqa: E402
from model.lifecycle.publish import Gate, Policy  # noqa: E402
from model.training.profiles import train_config  # noqa: E402
from model.training.train import train_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "train_cpu_profile.json"


class LoadSampler(threading.Thread):
    """Samples the 1-minute load average every `every` seconds until stopped."""

    def __init__(self, every: float = 30.0) -> None:
        super().__init__(daemon=True)
        self.every, self.samples = every, [os.getloadavg()[0]]
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict:
        self._stop_event.set()
        self.samples.append(os.getloadavg()[0])
        return {"min": round(min(self.samples), 2), "median": round(statistics.median(self.samples), 2),
                "max": round(max(self.samples), 2), "samples": len(self.samples)}


def _summary(metrics: dict) -> dict:
    keep = ("n", "mae", "rmse", "bias", "by_band", "by_gender", "legal_age", "challenge_age",
            "n_minors", "minors_pred_ge_legal", "minors_pred_ge_challenge", "n_young_adults",
            "young_adults_pred_lt_legal")
    return {k: metrics[k] for k in keep if k in metrics}


def _overrides(items: list[str]) -> dict[str, object]:
    """`FIELD=VALUE` pairs as TrainConfig values, typed like the field's default."""
    from dataclasses import fields

    from model.training.profiles import TrainConfig

    types = {f.name: f.type for f in fields(TrainConfig)}
    out: dict[str, object] = {}
    for item in items:
        name, _, text = item.partition("=")
        if name not in types:
            raise SystemExit(f"--set {item}: no TrainConfig field {name!r}")
        kind = str(types[name])
        out[name] = (None if text == "None" else tuple(filter(None, text.split(",")))
                     if kind.startswith("tuple") else text.lower() in ("1", "true", "yes")
                     if kind.startswith("bool") else float(text) if kind.startswith("float")
                     else int(text) if kind.startswith("int") else text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--head", choices=("regression", "expectation"),
                        help="the model's head (default: the profile's)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one TrainConfig field for this experiment, e.g. "
                             "frozen_until=block_5_add, dropout=0.4 or teachers=v0002,v0005 "
                             "(repeatable)")
    parser.add_argument("--registry", type=Path, help="registry for the version (default: temp)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = load_settings()
    if settings.faces_dir is None:
        raise SystemExit("set FACES_DIR to the labelled face set")
    config = train_config(settings, args.profile, head=args.head, **_overrides(args.set))
    registry = args.registry or Path(tempfile.mkdtemp(prefix="train-cpu-registry-"))
    sampler = LoadSampler()
    sampler.start()
    started, cpu_started = time.perf_counter(), os.times()
    result = train_model(settings.faces_dir, config, cache_dir=settings.cache_dir,
                         registry_store=registry,
                         gate=Gate(settings.gate_max_mae, settings.gate_tolerance),
                         policy=Policy.from_settings(settings),
                         validation_limits=settings.validation_limits(),
                         command=f"checkout-age model train --profile {args.profile}"
                         + (f" --head {args.head}" if args.head else "")
                         + "".join(f" (bench --set {item})" for item in args.set),
                         max_minutes=settings.train_max_minutes)
    wall = time.perf_counter() - started
    cpu = os.times()
    phases = dict(result.config["phase_seconds"])
    phases["validate_cache_evaluate_document_s"] = round(wall - sum(phases.values()), 1)
    load = sampler.stop()
    history = result.config["history"]
    full = [h for h in history if h["phase"] == "full"]
    summary = {
        "profile": args.profile,
        "config": {k: v for k, v in result.config.items()
                   if k not in ("history", "phase_seconds", "command")},
        "version": result.version,
        "registry": str(registry),
        "rows": result.config["rows"],
        "test": _summary(result.metrics["test"]),
        "valid": _summary(result.metrics["valid"]),
        "wall_seconds": round(wall, 1),
        "wall_minutes": round(wall / 60, 1),
        "cpu_seconds": {"user": round(cpu.user - cpu_started.user, 1),
                        "system": round(cpu.system - cpu_started.system, 1)},
        "phase_seconds": phases,
        "load_average_1min": load,
        "epochs_run": len(full),
        "best_epoch": result.config["best_epoch"],
        "stopped_by_time_limit": result.config["stopped_by_time_limit"],
        "train_images_per_s_median": round(statistics.median(
            h["images_per_s"] for h in (full[1:] or full)), 1) if full else None,
        "history": history,
        "machine": _machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    test = result.metrics["test"]
    print(f"test MAE {test['mae']:.2f} (n {test['n']}), {len(full)} fine-tuning epochs, "
          f"{wall / 60:.1f} min wall, load average median {load['median']}; wrote {args.out}")


if __name__ == "__main__":
    main()
