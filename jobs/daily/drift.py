"""Drift alarms: is a store's or a lane's camera seeing customers differently from its recent past?

Each day, per store and per lane (store rows have `lane_id` NULL), the day's predicted ages and
no-face rate are compared with the trailing reference window (`drift_reference_days`, 28: four
whole weeks, so every weekday weighs the same). Two statistics, chosen by measurement
(`bench/bench_drift.py`, `bench/results/bench_drift.json`):

- age: the population stability index over 5-year bins of `age_pred_years`,
  PSI = sum((p - q) * ln(p / q)), each bin's count + 0.5 so an empty bin stays finite. It is an
  effect size (how far the mix moved), so busy lanes do not alarm on shifts too small to matter,
  as a pure p-value test (chi-square, Kolmogorov-Smirnov) does at thousands of photos; and it must
  exceed its own sampling noise too (`PSI_NOISE_CHI2`), so quiet lanes do not alarm on chance;
- no-face rate: how many standard errors the day's rate lies above the window's
  (z of two proportions), for frames only (face crops have no detector verdict).

A lane with fewer than `drift_min_photos` scored photos on the day or in the window gets no
verdict (alarm false, with the reason). numpy does the arithmetic: no statistics library needed.
The transforms are pure (rows in, rows out); `run` reads partitions with DuckDB and writes the
`age_drift` partition; `check-quality` turns alarms into warnings.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jobs.contract import AGE_DRIFT, SCHEMAS, parse_date, partition_dir
from model.config import Settings

AGE_BIN_YEARS = 5
AGE_BINS = 20  # 0-5, 5-10, ..., 95+
# n_eff * PSI of two samples of one distribution is about chi-square with AGE_BINS - 1 = 19
# degrees of freedom; its 99.9 % quantile is 43.82. A day's PSI must exceed that noise level
# (n_eff = n m / (n + m)) as well as `max_psi`: a quiet lane's 100 photos alone give PSI ~0.2.
PSI_NOISE_CHI2 = 43.82
STATISTIC = "age PSI (5-year bins); no-face z"
FACE_REASONS = ("no_face", "face_too_small", "detection_failed")


@dataclass(frozen=True)
class DriftLimits:
    """Thresholds of a drift verdict (Settings drift_*)."""

    min_photos: int = Settings.drift_min_photos
    max_psi: float = Settings.drift_max_psi
    max_no_face_z: float = Settings.drift_max_no_face_z


def psi(day: np.ndarray, reference: np.ndarray) -> float:
    """Population stability index of two histograms (counts over the same bins)."""
    p = (day + 0.5) / (day.sum() + 0.5 * len(day))
    q = (reference + 0.5) / (reference.sum() + 0.5 * len(reference))
    return float(np.sum((p - q) * np.log(p / q)))


def no_face_z(no_face: int, frames: int, ref_no_face: int, ref_frames: int) -> float | None:
    """Standard errors by which the day's no-face rate exceeds the window's (None: no frames)."""
    if frames == 0 or ref_frames == 0:
        return None
    rate, ref = no_face / frames, (ref_no_face + 0.5) / (ref_frames + 1)
    error = math.sqrt(ref * (1 - ref) * (1 / frames + 1 / ref_frames))
    return (rate - ref) / error


def _median_of_bins(counts: np.ndarray) -> float | None:
    """The median age (bin centre) of a histogram; None when it is empty."""
    if counts.sum() == 0:
        return None
    index = int(np.searchsorted(np.cumsum(counts), counts.sum() / 2))
    return float(index * AGE_BIN_YEARS + AGE_BIN_YEARS / 2)


def judge(key: tuple[str, int | None], day: np.ndarray, reference: np.ndarray,
          frames: tuple[int, int, int, int], reference_days: int,
          limits: DriftLimits) -> dict[str, Any]:
    """One `age_drift` row: the statistics, the verdict and why.

    Args:
        key: (store_id, lane_id or None for the whole store).
        day, reference: age histograms (AGE_BINS counts) of the day and of the window.
        frames: (no_face, frames, reference no_face, reference frames).
        reference_days: days of the window that had data.
        limits: thresholds.
    """
    no_face, n_frames, ref_no_face, ref_frames = frames
    photos, ref_photos = int(day.sum()), int(reference.sum())
    row: dict[str, Any] = {
        "store_id": key[0], "lane_id": key[1], "photos": photos, "reference_photos": ref_photos,
        "reference_days": reference_days, "age_psi": None,
        "age_pred_p50": _median_of_bins(day), "reference_age_p50": _median_of_bins(reference),
        "frames": n_frames, "no_face_rate": no_face / n_frames if n_frames else None,
        "reference_no_face_rate": ref_no_face / ref_frames if ref_frames else None,
        "no_face_z": None, "alarm": False, "statistic": STATISTIC,
        "threshold": limits.max_psi, "reason": None,
    }
    reasons = []
    if photos < limits.min_photos or ref_photos < limits.min_photos:
        row["reason"] = (f"too few photos for a verdict: {photos} on the day, {ref_photos} in "
                         f"the {reference_days} reference days (minimum {limits.min_photos})")
    else:
        row["age_psi"] = psi(day, reference)
        row["threshold"] = max(limits.max_psi,
                               PSI_NOISE_CHI2 * (photos + ref_photos) / (photos * ref_photos))
        if row["age_psi"] > row["threshold"]:
            reasons.append(f"age PSI {row['age_psi']:.3f} > {row['threshold']:.3f} (median "
                           f"{row['reference_age_p50']:.0f} -> {row['age_pred_p50']:.0f} years)")
    if n_frames >= limits.min_photos and ref_frames >= limits.min_photos:
        row["no_face_z"] = no_face_z(no_face, n_frames, ref_no_face, ref_frames)
        if row["no_face_z"] > limits.max_no_face_z:
            reasons.append(f"no-face rate {row['no_face_rate']:.1%} vs "
                           f"{row['reference_no_face_rate']:.1%} (z {row['no_face_z']:.1f} > "
                           f"{limits.max_no_face_z})")
    if reasons:
        row["alarm"] = True
        row["reason"] = "; ".join(reasons)
    return row


def compare(histograms: list[tuple], frames: list[tuple], reference_days: int,
            limits: DriftLimits) -> list[dict[str, Any]]:
    """`age_drift` rows per store (lane NULL) and per lane, worst first.

    Args:
        histograms: (store_id, lane_id, in_reference, age_bin, photos) counts.
        frames: (store_id, lane_id, in_reference, frames, no_face) counts.
        reference_days: days of the window that had data.
        limits: thresholds.
    """
    ages: dict[tuple, np.ndarray] = {}
    for store, lane, in_reference, age_bin, photos in histograms:
        for key in ((store, lane), (store, None)):
            ages.setdefault(key, np.zeros((2, AGE_BINS), dtype=np.int64))
            ages[key][int(in_reference), min(int(age_bin), AGE_BINS - 1)] += int(photos)
    seen: dict[tuple, list[int]] = {}
    for store, lane, in_reference, n_frames, no_face in frames:
        for key in ((store, lane), (store, None)):
            counts = seen.setdefault(key, [0, 0, 0, 0])
            counts[2 * int(in_reference)] += int(no_face)
            counts[2 * int(in_reference) + 1] += int(n_frames)
            ages.setdefault(key, np.zeros((2, AGE_BINS), dtype=np.int64))
    rows = [judge(key, counts[0], counts[1], tuple(seen.get(key, (0, 0, 0, 0))),
                  reference_days, limits) for key, counts in ages.items()]
    return sorted(rows, key=lambda r: (not r["alarm"], r["store_id"], r["lane_id"] is not None,
                                       r["lane_id"] or 0))


# -- reading and writing ---------------------------------------------------------------------------


def _day_files(root: str, table: str, days: list[dt.date]) -> list[str]:
    return [str(path) for day in days
            for path in sorted(Path(partition_dir(root, table, day.isoformat())).glob("*.parquet"))]


def read_counts(root: str, run_date: dt.date, reference_days: int
                ) -> tuple[list[tuple], list[tuple], int]:
    """The day's and the window's age histograms and frame counts, and the window's days."""
    import duckdb

    window = [run_date - dt.timedelta(days=i) for i in range(1, reference_days + 1)]
    day_scores = _day_files(root, "photo_scores", [run_date])
    if not day_scores:
        from model.errors import UserError

        raise UserError(f"{partition_dir(root, 'photo_scores', run_date.isoformat())}: no "
                        "partition (did the score job run for this day?)")
    seen_days = [d for d in window if _day_files(root, "photo_scores", [d])]
    con = duckdb.connect()
    scores = _day_files(root, "photo_scores", [run_date, *seen_days])
    quarantine = _day_files(root, "photo_quarantine", [run_date, *seen_days])
    day = run_date.isoformat()
    source = ("read_parquet(?, hive_partitioning = true, hive_types = {'date': DATE}, "
              "union_by_name = true)")
    histograms = con.execute(
        f"SELECT store_id, lane_id, date <> DATE '{day}' AS in_reference, "
        f"least(CAST(floor(age_pred_years / {AGE_BIN_YEARS}) AS INT), {AGE_BINS - 1}), count(*) "
        f"FROM {source} WHERE age_pred_years IS NOT NULL GROUP BY ALL", [scores]).fetchall()
    reasons = ", ".join(f"'{r}'" for r in FACE_REASONS)
    frame_sql = (f"SELECT store_id, lane_id, date <> DATE '{day}' AS in_reference, count(*), "
                 f"count_if(no_face) FROM ("
                 f"SELECT date, store_id, lane_id, false AS no_face FROM {source} "
                 "WHERE faces_found IS NOT NULL")
    params: list[Any] = [scores]
    if quarantine:
        frame_sql += (f" UNION ALL SELECT date, store_id, lane_id, reason = 'no_face' FROM "
                      f"{source} WHERE reason IN ({reasons})")
        params.append(quarantine)
    frames = con.execute(frame_sql + ") GROUP BY ALL", params).fetchall()
    return histograms, frames, len(seen_days)


def run(root: str, run_date: str, reference_days: int, limits: DriftLimits) -> list[dict]:
    """Compare day `run_date` with its window and replace its `age_drift` partition."""
    import pyarrow as pa

    from jobs.daily.local_partition import replace_partition_dir

    day = parse_date(run_date)
    histograms, frames, seen = read_counts(root, day, reference_days)
    rows = compare(histograms, frames, seen, limits)
    replace_partition_dir(Path(partition_dir(root, AGE_DRIFT, day.isoformat())),
                          pa.Table.from_pylist(rows, schema=SCHEMAS[AGE_DRIFT]))
    return rows
