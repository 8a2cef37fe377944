"""Experiment: what combining registered versions would give, before paying for it.

Two ways to combine versions trained from the same ImageNet start (same frozen layers):
- **weight soups** (one model, the weights averaged: no extra serving cost): uniform, and
  greedy (versions added in order of validation MAE while the soup's validation MAE improves);
- **prediction ensembles** (the estimates averaged: each member is one more model to run per
  face, so a serving cost of k x; the issue allows 1.3 x, so these bound what distilling an
  ensemble into one model could reach).

Every figure on the valid and test splits of the whole face set with flip TTA, as
`model evaluate` computes them. Results: bench/results/ensembles.json.

    .venv/bin/python bench/bench_ensembles.py v0002 v0005 v0004 v0003 --registry var/mlflow
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.run_record import progress, publish, run_record  # noqa: E402

RESULTS = PROJECT / "bench" / "results" / "ensembles.json"
SPLITS = ("valid", "test")


def figures(true: np.ndarray, pred: np.ndarray, split: np.ndarray) -> dict:
    """The table's figures of one set of estimates, per split."""
    from model.evaluation.metrics import age_metrics

    out = {}
    for name in SPLITS:
        mask = split == name
        m = age_metrics(true[mask], pred[mask])
        out[name] = {"mae": round(m["mae"], 3),
                     "minors_pred_ge_challenge": round(m["minors_pred_ge_challenge"], 4),
                     "young_adults_pred_lt_legal": round(m["young_adults_pred_lt_legal"], 4),
                     "mae_13_17": round(m["by_band"]["13-17"]["mae"], 2),
                     "mae_65_plus": round(m["by_band"]["65+"]["mae"], 2),
                     "bias_65_plus": round(m["by_band"]["65+"]["bias"], 2)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="+", help="registered versions of one image size")
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
    versions = [registry.resolve(name) for name in args.versions]
    size = versions[0].image_size
    if any(v.image_size != size for v in versions):
        raise SystemExit("versions of different image sizes cannot be combined")
    faces_dir = Path(settings.faces_dir or PROJECT.parent / "shared" / "faces")
    report = validate_dataset(faces_dir, cache_dir=settings.cache_dir)
    rows = assign_splits(report.usable)
    rows = rows[rows["split"].isin(SPLITS)].reset_index(drop=True)
    images = np.asarray(load_images(rows, size, settings.cache_dir, report.fingerprint))
    true, split = rows["real_age"].to_numpy(dtype=float), rows["split"].to_numpy()

    def estimate(model: object) -> np.ndarray:
        return predict_ages(model, images, batch_size=settings.score_batch_size)

    models = {v.version: load_age_model(v.model_path) for v in versions}
    preds = {}
    for name, model in models.items():
        progress(f"scoring {name}")
        preds[name] = estimate(model)
    result: dict = {"versions": {n: figures(true, p, split) for n, p in preds.items()},
                    "prediction_ensembles": {}, "weight_soups": {}}
    for k in range(2, len(preds) + 1):
        for members in itertools.combinations(preds, k):
            mean = np.mean([preds[m] for m in members], axis=0)
            result["prediction_ensembles"]["+".join(members)] = figures(true, mean, split)

    weights = {name: model.get_weights() for name, model in models.items()}
    soup = load_age_model(versions[0].model_path)

    def soup_of(members: list[str]) -> dict:
        progress(f"soup {'+'.join(members)}")
        soup.set_weights([np.mean(layer, axis=0) for layer in
                          zip(*(weights[m] for m in members), strict=True)])
        return figures(true, estimate(soup), split)

    result["weight_soups"]["uniform " + "+".join(preds)] = soup_of(list(preds))
    ranked = sorted(preds, key=lambda n: result["versions"][n]["valid"]["mae"])
    chosen, best = [ranked[0]], result["versions"][ranked[0]]["valid"]["mae"]
    for name in ranked[1:]:
        tried = soup_of([*chosen, name])
        result["weight_soups"]["+".join([*chosen, name])] = tried
        if tried["valid"]["mae"] < best:
            chosen, best = [*chosen, name], tried["valid"]["mae"]
    result["greedy_soup"] = {"members": chosen, "valid_mae": best}
    result["run"] = run_record(started, load_before)
    publish(result, args.out, keep=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
