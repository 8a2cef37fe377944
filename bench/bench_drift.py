"""Measure the drift alarms: does a degraded lane camera raise one within a day, and how often
do normal lanes raise one? Chooses the statistic and its threshold.

Usage: .venv/bin/python bench/bench_drift.py --model production [--registry DIR] [--quick]

1. Real outcomes: a simulated day of checkout frames (jobs.simulator) goes through the real face
   detector and age model (`model.faces.locate_photos`, `crop_from`, `predict_ages`) as it is,
   and again degraded by each camera fault (`jobs.simulator.camera_faults`: blur, dark, glare,
   tilt). Each frame gives an outcome: no face, or a predicted age.
2. Chain scale: 300 lanes (50 stores x 6) x (28 reference + 30 judged) days. A lane-day draws
   its photos (Poisson, a lane's mean 20-400 a day) from the normal outcomes, with a weekday
   effect (weekends: customers under 30 twice as likely), so normal days differ from their
   window by more than sampling noise. A degraded lane draws its judged day from a fault's
   outcomes (300 trials per fault). Every lane-day is judged by `jobs.daily.drift.judge`, the
   daily step's own function, and by the other candidate statistics on the same histograms.
3. Writes bench/results/bench_drift.json (with the load average: the machine is shared; only
   the detector and model part depends on it, the figures do not).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from jobs.daily import drift

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT / "bench" / "results" / "bench_drift.json"
DAY = "2026-03-03"
FAULTS = ("blur", "dark", "glare", "tilt")
REFERENCE_DAYS, JUDGED_DAYS, LANES = 28, 30, 300


def real_outcomes(model_ref: str, registry: str | None, stores: int, per_store: int) -> dict:
    """Per fault ('none' too): [(no_face, predicted age or NaN)] from the real detector + model."""
    from PIL import Image

    from jobs.simulator.camera_faults import degrade
    from jobs.simulator.frames import render_frame
    from jobs.simulator.landing import load_test_faces
    from jobs.simulator.simulate import simulate_day
    from model.config import load_settings
    from model.lifecycle.registry import ModelRegistry
    from model.serving.faces import crop_from, locate_photos
    from model.serving.net import load_age_model
    from model.serving.predict import predict_ages

    settings = load_settings()
    version = ModelRegistry(registry or settings.registry_store).resolve(model_ref)
    model, size = load_age_model(version.model_path), version.image_size
    faces = load_test_faces(settings.faces_dir or PROJECT.parent / "shared" / "faces",
                            settings.cache_dir)
    day = simulate_day(faces, DAY, stores, per_store, seed=11, frames=True)
    photos = day.photos[day.photos.corrupt == ""].reset_index(drop=True)
    frames = [render_frame(plan) for plan in photos.frame]
    out = {"model": version.version, "frames": len(frames)}
    for fault in ("none", *FAULTS):
        data = frames if fault == "none" else [degrade(f, fault) for f in frames]
        located = locate_photos(data, photo_format="frames")
        keep = [i for i, row in enumerate(located) if row["reason"] is None]
        ages = np.full(len(data), np.nan)
        if keep:
            crops = np.stack([crop_from(Image.open(io.BytesIO(data[i])).convert("RGB"),
                                        located[i]["crop"], size) for i in keep])
            ages[keep] = predict_ages(model, crops)
        no_face = [row["reason"] == "no_face" for row in located]
        out[fault] = {"no_face": no_face, "age": ages.tolist(),
                      "customer_age": photos["customer_age"].astype(float).tolist()}
        print(f"  {fault:6s}: {sum(no_face)} no face of {len(data)}, "
              f"{len(keep)} scored, median age {np.nanmedian(ages) if keep else float('nan'):.1f}")
    return out


def _histogram(ages: np.ndarray) -> np.ndarray:
    bins = np.minimum((ages // drift.AGE_BIN_YEARS).astype(int), drift.AGE_BINS - 1)
    return np.bincount(bins, minlength=drift.AGE_BINS)


class Pool:
    """Outcomes to draw lane-days from, weekday-weighted by the customers' true ages."""

    def __init__(self, outcome: dict):
        self.no_face = np.array(outcome["no_face"])
        self.age = np.array(outcome["age"], dtype=float)
        young = np.array(outcome["customer_age"]) < 30
        self.weights = {False: np.full(len(young), 1.0 / len(young)),
                        True: np.where(young, 2.0, 1.0) / np.where(young, 2.0, 1.0).sum()}

    def draw(self, rng: np.random.Generator, n: int, weekend: bool) -> tuple[np.ndarray, int, int]:
        """(age histogram, frames, no_face) of `n` photos."""
        pick = rng.choice(len(self.age), n, p=self.weights[weekend])
        ages = self.age[pick]
        return _histogram(ages[~np.isnan(ages)]), n, int(self.no_face[pick].sum())


def _candidates(day: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Other statistics on the same histograms: JS distance, KS D over its 0.1 % critical value."""
    p, q = (day + 0.5) / (day + 0.5).sum(), (ref + 0.5) / (ref + 0.5).sum()
    m = (p + q) / 2
    js = float(np.sqrt(0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))))
    n, k = day.sum(), ref.sum()
    d = float(np.max(np.abs(np.cumsum(day) / max(n, 1) - np.cumsum(ref) / max(k, 1))))
    critical = 1.949 * np.sqrt((n + k) / max(n * k, 1))  # alpha 0.001
    return {"js": js, "ks_over_critical": d / critical}


def chain(outcomes: dict, rng: np.random.Generator, limits: drift.DriftLimits) -> dict:
    """False alarms on normal lane-days and first-day detection of each fault."""
    normal = Pool(outcomes["none"])
    means = rng.uniform(20, 400, LANES)
    total = REFERENCE_DAYS + JUDGED_DAYS
    days = np.zeros((LANES, total, drift.AGE_BINS), dtype=np.int64)
    frames = np.zeros((LANES, total, 2), dtype=np.int64)
    for lane in range(LANES):
        for d in range(total):
            hist, n, no_face = normal.draw(rng, int(rng.poisson(means[lane])), d % 7 in (5, 6))
            days[lane, d], frames[lane, d] = hist, (n, no_face)
    scores: dict[str, list[float]] = {"psi": [], "psi_over_threshold": [], "js": [],
                                      "ks_over_critical": [], "z": []}
    alarm_causes = {"age": 0, "no_face": 0}
    verdicts = no_verdict = alarms = 0
    for lane in range(LANES):
        for d in range(REFERENCE_DAYS, total):
            ref = days[lane, d - REFERENCE_DAYS:d].sum(axis=0)
            ref_frames = frames[lane, d - REFERENCE_DAYS:d].sum(axis=0)
            row = drift.judge(("S", lane), days[lane, d], ref,
                              (frames[lane, d, 1], frames[lane, d, 0], ref_frames[1],
                               ref_frames[0]), REFERENCE_DAYS, limits)
            if row["age_psi"] is None:
                no_verdict += 1
                continue
            verdicts += 1
            alarms += row["alarm"]
            alarm_causes["age"] += "age PSI" in (row["reason"] or "")
            alarm_causes["no_face"] += "no-face rate" in (row["reason"] or "")
            scores["psi"].append(row["age_psi"])
            scores["psi_over_threshold"].append(row["age_psi"] / row["threshold"])
            scores["z"].append(row["no_face_z"] if row["no_face_z"] is not None else 0.0)
            for name, value in _candidates(days[lane, d], ref).items():
                scores[name].append(value)
    normal_stats = {name: {"p99": float(np.percentile(v, 99)), "max": float(np.max(v))}
                    for name, v in scores.items()}
    result = {"lane_days_judged": verdicts, "lane_days_too_few_photos": no_verdict,
              "false_alarms": alarms, "false_alarms_per_100_lane_days": 100 * alarms / verdicts,
              "false_alarm_causes": alarm_causes,
              "normal_day_statistics": normal_stats, "faults": {}}
    for fault in FAULTS:
        pool = Pool(outcomes[fault])
        hits = {"alarm": 0, "psi": 0, "z": 0, "js": 0, "ks": 0}
        trials = 300
        for _ in range(trials):
            lane = int(rng.integers(LANES))
            ref = days[lane, :REFERENCE_DAYS].sum(axis=0)
            ref_frames = frames[lane, :REFERENCE_DAYS].sum(axis=0)
            hist, n, no_face = pool.draw(rng, 280, False)
            row = drift.judge(("S", lane), hist, ref, (no_face, n, ref_frames[1], ref_frames[0]),
                              REFERENCE_DAYS, limits)
            other = _candidates(hist, ref)
            hits["alarm"] += row["alarm"]
            hits["psi"] += (row["age_psi"] or 0) > row["threshold"]
            hits["z"] += (row["no_face_z"] or 0) > limits.max_no_face_z
            hits["js"] += other["js"] > normal_stats["js"]["max"]
            hits["ks"] += other["ks_over_critical"] > 1
        result["faults"][fault] = {k: v / trials for k, v in hits.items()}
        result["faults"][fault]["trials"] = trials
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="production", help="registry version or production")
    parser.add_argument("--registry", help="registry root (default: setting registry_root)")
    parser.add_argument("--quick", action="store_true", help="1 store x 60 customers")
    parser.add_argument("--outcomes", type=Path, help="reuse the outcomes of an earlier run")
    args = parser.parse_args()
    started, load = time.time(), os.getloadavg()
    if args.outcomes and args.outcomes.exists():
        outcomes = json.loads(args.outcomes.read_text())
    else:
        print("real detector + model on normal and degraded frames:")
        outcomes = real_outcomes(args.model, args.registry, *((1, 60) if args.quick
                                                               else (3, 120)))
        outcomes["measured_at_load_average_1m"] = [load[0], os.getloadavg()[0]]
        outcomes["detector_model_wall_s"] = round(time.time() - started, 1)
        if args.outcomes:
            args.outcomes.write_text(json.dumps(outcomes))
    from model.config import Settings

    limits = drift.DriftLimits(Settings.drift_min_photos, Settings.drift_max_psi,
                               Settings.drift_max_no_face_z)
    result = {
        "what": "drift alarms: real detector + model outcomes, resampled to chain scale",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_1m": [load[0], os.getloadavg()[0]],
                    "wall_s": round(time.time() - started, 1)},
        # The detector + model part (when reused: the run that measured it) and its load.
        "outcomes_measured": {k: outcomes[k] for k in ("measured_at_load_average_1m",
                                                       "detector_model_wall_s") if k in outcomes},
        "model": outcomes["model"], "frames_per_fault": outcomes["frames"],
        "limits": vars(limits), "reference_days": REFERENCE_DAYS,
        "outcomes": {k: {"no_face_rate": float(np.mean(v["no_face"])),
                         "median_age": float(np.nanmedian(v["age"]))
                         if np.isfinite(np.array(v["age"], dtype=float)).any() else None}
                     for k, v in outcomes.items() if isinstance(v, dict)},
        "chain": chain(outcomes, np.random.default_rng(5), limits),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["chain"], indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
