"""Experiment: can the 65+ bias be removed after the fact, by remapping a version's estimates?

The old faces are estimated about 6 years too young by every model (docs/model.md). Before
changing training for it, this measures the free alternative: a monotone map of the estimate,
fitted on the validation split and measured on the test split (flip TTA, as served):
- the least-squares line of true age on estimate (E[age | estimate]);
- a stretch above a knee: estimate e > K becomes K + (e - K) x s.

Results: bench/results/tail_correction.json.

    .venv/bin/python bench/bench_tail_correction.py v0006 --registry var/mlflow
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.bench_ensembles import figures  # noqa: E402
from bench.run_record import progress, publish, run_record  # noqa: E402

RESULTS = PROJECT / "bench" / "results" / "tail_correction.json"
KNEES, STRETCHES = (45, 50, 55), (1.1, 1.2, 1.3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="a registered version")
    parser.add_argument("--registry", default=None, help="MLflow store (default: the settings')")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    started, load_before = time.time(), os.getloadavg()

    from model.config import load_settings
    from model.data.dataset import validate_dataset
    from model.data.image_cache import load_images
    from model.data.split import assign_splits
    from model.lifecycle.registry import ModelRegistry
    from model.serving.net import load_age_model
    from model.serving.predict import predict_ages

    settings = load_settings()
    registry = ModelRegistry(args.registry or settings.registry_store,
                             cache_dir=settings.cache_dir / "models")
    version = registry.resolve(args.version)
    faces_dir = Path(settings.faces_dir or PROJECT.parent / "shared" / "faces")
    report = validate_dataset(faces_dir, cache_dir=settings.cache_dir)
    rows = assign_splits(report.usable)
    rows = rows[rows["split"].isin(("valid", "test"))].reset_index(drop=True)
    images = np.asarray(load_images(rows, version.image_size, settings.cache_dir,
                                    report.fingerprint))
    true, split = rows["real_age"].to_numpy(dtype=float), rows["split"].to_numpy()
    progress(f"scoring {version.version}")
    estimate = predict_ages(load_age_model(version.model_path), images,
                            batch_size=settings.score_batch_size).astype(float)
    valid = split == "valid"
    slope, intercept = np.polyfit(estimate[valid], true[valid], 1)
    maps = {"none": estimate,
            f"line {slope:.3f} x + {intercept:.2f}": slope * estimate + intercept}
    for knee in KNEES:
        for stretch in STRETCHES:
            maps[f"knee {knee} x{stretch}"] = np.where(estimate > knee,
                                                       knee + (estimate - knee) * stretch,
                                                       estimate)
    result = {"version": version.version,
              "maps": {name: figures(true, mapped, split) for name, mapped in maps.items()},
              "run": run_record(started, load_before)}
    publish(result, args.out, keep=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
