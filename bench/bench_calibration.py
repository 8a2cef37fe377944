"""Benchmark: interval coverage and P(minor) reliability of each calibration method, per true age.

Fits every method of `model.evaluation.calibration_methods` on the validation split's
(true, estimated) ages of a trained model and measures it on the test split, which the fit
never saw; then the other way round (fit on test, measure on validation) as a check that the
verdict is not one split's luck. Goals: 13-17 coverage >= 70 %, every reliability bin with
>= 20 photos within 0.10 of its observed minor share, overall coverage within 2 points of the
nominal 80 %. Also writes the policy curve (minors caught vs adults flagged) of the default
method on the test split.

    # predictions of a registered model (validation and test splits of FACES_DIR, flip TTA),
    # saved to bench/results/calibration_predictions.json, then every method measured:
    .venv/bin/python bench/bench_calibration.py --model v0001
    # the methods again from the saved predictions (seconds, no model, no images):
    .venv/bin/python bench/bench_calibration.py

Results: bench/results/calibration_methods.json (with the machine's load average; only the
fitting times depend on it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

RESULTS = PROJECT / "bench" / "results"
PREDICTIONS = RESULTS / "calibration_predictions.json"
CANDIDATES = (("predicted_age", 200), ("predicted_age", 100), ("true_age", 60),
              ("true_age", 100), ("true_age", 200))
GOALS = {"teen_coverage_min": 0.70, "reliability_gap_max": 0.10, "coverage_tolerance": 0.02}


def predict_splits(model_ref: str) -> dict:
    """{split: {"true": [...], "pred": [...]}} for the valid and test splits, plus the model."""
    from model.config import load_settings
    from model.data.dataset import validate_dataset
    from model.data.image_cache import load_images
    from model.data.split import assign_splits
    from model.lifecycle.registry import ModelRegistry
    from model.serving.net import load_age_model
    from model.serving.predict import predict_ages

    settings = load_settings()
    if settings.faces_dir is None:
        raise SystemExit("set FACES_DIR to the face set the model was trained on")
    version = ModelRegistry(settings.registry_root).resolve(model_ref)
    report = validate_dataset(settings.faces_dir, cache_dir=settings.cache_dir)
    if report.fingerprint != version.config.get("dataset_fingerprint"):
        raise SystemExit(f"{version.version} was not trained on {settings.faces_dir}")
    rows = assign_splits(report.usable)
    model = load_age_model(version.model_path)
    out = {"model": version.version, "test_mae": version.metrics.get("test", {}).get("mae"),
           "fingerprint": report.fingerprint}
    for split in ("valid", "test"):
        part = rows[rows["split"] == split]
        images = load_images(part, version.image_size, settings.cache_dir, report.fingerprint)
        pred = predict_ages(model, np.asarray(images), batch_size=64, flip_tta=True)
        out[split] = {"true": part["real_age"].astype(float).tolist(),
                      "pred": [round(float(p), 3) for p in pred]}
    return out


def goals_met(figures: dict) -> dict:
    """Each goal of the module docstring: met or not, with the figure it was judged on."""
    teen = figures["coverage_by_band"]["13-17"]["coverage"]
    gap = (figures["reliability_worst_gap"] or {}).get("gap")
    off = abs(figures["coverage"] - figures["coverage_target"])
    return {
        "teen_coverage": {"value": teen, "met": teen is not None
                          and teen >= GOALS["teen_coverage_min"]},
        "reliability_worst_gap": {"value": gap, "met": gap is None
                                  or gap <= GOALS["reliability_gap_max"]},
        "overall_coverage_off_by": {"value": off, "met": off <= GOALS["coverage_tolerance"]},
    }


def _max_abs_z(reliability: list[dict]) -> float | None:
    """Largest |observed - mean p| in binomial standard errors over bins with >= 20 faces:
    about 2 or less is what sampling alone gives a calibrated p over ~8 bins."""
    z = [abs(r["observed_minor_share"] - r["mean_p"])
         / max((r["mean_p"] * (1 - r["mean_p"]) / r["n"]) ** 0.5, 1e-9)
         for r in reliability if r["n"] >= 20]
    return round(max(z), 2) if z else None


def measure(method: str, neighbours: int, fit: tuple, check: tuple) -> dict:
    """Fit on `fit`, measure on `check`: the summary figures and the goals."""
    from model.evaluation.calibration import evaluate_calibration, fit_calibration

    started = time.perf_counter()
    calibration = fit_calibration(*fit, legal_age=18, method=method, neighbours=neighbours)
    fit_s = time.perf_counter() - started
    figures = evaluate_calibration(calibration, *check)
    goals = goals_met(figures)
    return {
        "coverage": round(figures["coverage"], 4),
        "mean_width_years": round(figures["mean_width_years"], 2),
        "coverage_by_band": {band: {"n": row["n"], "coverage": None if row["coverage"] is None
                                    else round(row["coverage"], 4),
                                    "mean_width_years": None if row["mean_width_years"] is None
                                    else round(row["mean_width_years"], 2)}
                             for band, row in figures["coverage_by_band"].items()},
        "brier": round(figures["brier"], 5), "brier_base_rate": round(figures["brier_base_rate"], 5),
        "reliability": figures["reliability"], "reliability_worst_gap": figures[
            "reliability_worst_gap"],
        "reliability_max_abs_z": _max_abs_z(figures["reliability"]),
        "goals": goals, "all_goals_met": all(goal["met"] for goal in goals.values()),
        "fit_seconds": round(fit_s, 3),
    }


def markdown(out: dict) -> str:
    """docs/model.md's table of the methods from a results file."""
    lines = ["| method | k | fitted on -> measured on | coverage | 13-17 | <13 | 18-24 | 65+ | "
             "mean width | worst reliability gap (bin, n) | max abs z | Brier | goals |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    for r in out["results"]:
        band = r["coverage_by_band"]
        gap = r["reliability_worst_gap"]
        lines.append(
            f"| `{r['method']}` | {r['neighbours']} | {r['fitted_on']} -> {r['measured_on']} | "
            f"{100 * r['coverage']:.1f} % | " + " | ".join(
                f"{100 * band[b]['coverage']:.1f} %" for b in ("13-17", "<13", "18-24", "65+"))
            + f" | {r['mean_width_years']:.1f} | "
            + (f"{gap['gap']:.3f} ({gap['p_from']:.1f}, {gap['n']})" if gap else "-")
            + f" | {r['reliability_max_abs_z']} | {r['brier']:.4f} | "
            + ("all met" if r["all_goals_met"] else ", ".join(
                name for name, goal in r["goals"].items() if not goal["met"]) + " not met")
            + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="registry version (or model path) to predict with; "
                        f"without it, read {PREDICTIONS.name}")
    parser.add_argument("--predictions", type=Path, default=PREDICTIONS,
                        help="saved (true, estimated) ages per split, written with --model")
    parser.add_argument("--out", type=Path, default=RESULTS / "calibration_methods.json")
    parser.add_argument("--markdown", action="store_true",
                        help="print docs/model.md's table from --out and stop")
    args = parser.parse_args()
    if args.markdown:
        sys.stdout.write(markdown(json.loads(args.out.read_text())) + "\n")
        return 0
    load_before = os.getloadavg()
    if args.model:
        started = time.perf_counter()
        predictions = predict_splits(args.model)
        predictions["predict_seconds"] = round(time.perf_counter() - started, 1)
        predictions["load_average"] = [round(x, 2) for x in load_before]
        args.predictions.write_text(json.dumps(predictions))
    predictions = json.loads(args.predictions.read_text())
    splits = {name: (np.asarray(predictions[name]["true"]), np.asarray(predictions[name]["pred"]))
              for name in ("valid", "test")}
    results = []
    for method, neighbours in CANDIDATES:
        for fit, check in (("valid", "test"), ("test", "valid")):
            row = measure(method, neighbours, splits[fit], splits[check])
            results.append({"method": method, "neighbours": neighbours, "fitted_on": fit,
                            "measured_on": check, **row})
    from model.config import Settings
    from model.evaluation.calibration import fit_calibration
    from model.evaluation.policy import policy_curve

    default = fit_calibration(*splits["valid"], legal_age=18)
    curve = policy_curve(*splits["test"], default.apply(splits["test"][1])[2], legal_age=18)
    out = {
        "what": __doc__.splitlines()[0],
        "model": predictions["model"], "model_test_mae": predictions.get("test_mae"),
        "faces": {name: int(splits[name][0].size) for name in splits},
        "goals": GOALS, "default_method": Settings.calibration_method,
        "default_neighbours": default.neighbours,
        "results": results,
        "policy_curve_test_default_method": curve,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "load_average_at_start": [round(x, 2) for x in load_before],
        "note": "coverage and reliability do not depend on the machine's load; fit_seconds do",
    }
    args.out.write_text(json.dumps(out, indent=1))
    for row in results:
        band = row["coverage_by_band"]["13-17"]["coverage"]
        gap = (row["reliability_worst_gap"] or {}).get("gap")
        sys.stdout.write(f"{row['method']:>13} k={row['neighbours']:<3} fit {row['fitted_on']:>5}"
                         f": coverage {row['coverage']:.3f}, 13-17 {band:.3f}, worst gap "
                         f"{gap if gap is None else round(gap, 3)}, width "
                         f"{row['mean_width_years']}, max |z| {row['reliability_max_abs_z']}, "
                         f"brier {row['brier']}, goals "
                         f"{'MET' if row['all_goals_met'] else 'not met'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
