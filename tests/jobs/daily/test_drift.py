"""Drift alarms: the statistics worked by hand, a shifted lane flagged from real partitions,
quiet lanes given no verdict, and check-quality warning (never failing) on an alarm."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
from contract_writer import write_day
from test_ops import DAY, GOOD_QUALITY, _write_day

from jobs.cli.main import main
from jobs.contract import AGE_DRIFT, SCHEMAS
from jobs.daily import drift

LIMITS = drift.DriftLimits(min_photos=100, max_psi=0.25, max_no_face_z=5.0)


def test_psi_worked_by_hand():
    # Day 30/10, window 20/20, each bin + 0.5: p = 30.5/41, 10.5/41; q = 20.5/41 twice.
    p, q = (30.5 / 41, 10.5 / 41), (20.5 / 41, 20.5 / 41)
    expected = sum((a - b) * math.log(a / b) for a, b in zip(p, q, strict=True))
    assert drift.psi(np.array([30, 10]), np.array([20, 20])) == pytest.approx(expected)
    assert drift.psi(np.array([7, 3]), np.array([70, 30])) == pytest.approx(0.0, abs=2e-3)


def test_no_face_z_worked_by_hand():
    # Day 30 of 100, window (100 + 0.5) / (1000 + 1) = 0.1004; error sqrt(r(1-r)(1/100+1/1000)).
    ref = 100.5 / 1001
    error = math.sqrt(ref * (1 - ref) * (1 / 100 + 1 / 1000))
    assert drift.no_face_z(30, 100, 100, 1000) == pytest.approx((0.3 - ref) / error)
    assert drift.no_face_z(0, 0, 100, 1000) is None


def _ages(rng, mean: float, sd: float, n: int) -> np.ndarray:
    return np.clip(rng.normal(mean, sd, n), 1, 99)


def test_a_shifted_lane_is_flagged_and_too_few_photos_give_a_reason():
    rng = np.random.default_rng(3)
    bins = lambda a: np.bincount((a // 5).astype(int), minlength=20)  # noqa: E731
    window = bins(_ages(rng, 40, 12, 28 * 250))
    normal = drift.judge(("S001", 1), bins(_ages(rng, 40, 12, 250)), window,
                         (20, 250, 560, 7000), 28, LIMITS)
    assert (normal["alarm"], normal["reason"]) == (False, None)
    assert normal["threshold"] == pytest.approx(max(0.25, 43.82 * (250 + 7000) / (250 * 7000)))
    shifted = drift.judge(("S001", 2), bins(_ages(rng, 62, 6, 250)), window,
                          (20, 250, 560, 7000), 28, LIMITS)
    assert shifted["alarm"] and shifted["age_psi"] > shifted["threshold"]
    assert shifted["reason"].startswith("age PSI ")
    quiet = drift.judge(("S002", 1), bins(_ages(rng, 62, 6, 40)), window, (0, 40, 0, 900), 28,
                        LIMITS)
    assert (quiet["alarm"], quiet["age_psi"]) == (False, None)
    assert quiet["reason"] == ("too few photos for a verdict: 40 on the day, 7000 in the 28 "
                               "reference days (minimum 100)")


def _scores(day: str, lane_ages: dict[tuple[str, int], np.ndarray]) -> list[dict]:
    return [{"photo_id": f"{day}-{store}-{lane}-{i}", "store_id": store, "lane_id": lane,
             "age_pred_years": float(age), "faces_found": 1, "model_version": "v0003"}
            for (store, lane), ages in lane_ages.items() for i, age in enumerate(ages)]


def _no_face(day: str, counts: dict[tuple[str, int], int]) -> list[dict]:
    return [{"photo_id": f"q-{day}-{store}-{lane}-{i}", "store_id": store, "lane_id": lane,
             "reason": "no_face", "detail": "no face found"}
            for (store, lane), n in counts.items() for i in range(n)]


def test_the_drift_step_writes_age_drift_and_names_the_faulty_lane(tmp_path, capsys):
    rng = np.random.default_rng(8)
    judged = dt.date(2026, 3, 29)
    for back in range(1, 29):  # the window; one day missing (no partition) is simply not there
        day = (judged - dt.timedelta(days=back)).isoformat()
        if back == 10:
            continue
        write_day(tmp_path, "photo_scores", day, _scores(day, {
            ("S001", 1): _ages(rng, 40, 12, 200), ("S001", 2): _ages(rng, 40, 12, 200),
            ("S002", 1): _ages(rng, 40, 12, 5)}))
        write_day(tmp_path, "photo_quarantine", day,
                  _no_face(day, {("S001", 1): 10, ("S001", 2): 10}))
    day = judged.isoformat()
    # Lane 2's camera went blurry: faces look younger, and half the frames have none.
    write_day(tmp_path, "photo_scores", day, _scores(day, {
        ("S001", 1): _ages(rng, 40, 12, 200), ("S001", 2): _ages(rng, 27, 5, 120),
        ("S002", 1): _ages(rng, 40, 12, 5)}))
    write_day(tmp_path, "photo_quarantine", day, _no_face(day, {("S001", 1): 10,
                                                                 ("S001", 2): 120}))
    assert main(["drift", "--date", day, "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # S001 as a whole alarms too (its lanes together); S002 is too quiet for a verdict.
    assert out.startswith("ALARM S001 all lanes: age PSI ")
    assert "\nALARM S001 lane 2: age PSI " in out and "no-face rate 50.0% vs 4.8%" in out
    assert out.endswith(f"drift for {day}: 5 store and lane rows, 2 alarms, 2 without a verdict "
                        "(too few photos)\n")
    part = tmp_path / "reports" / AGE_DRIFT / f"date={day}" / "part-0.parquet"
    assert pq.read_schema(part).equals(SCHEMAS[AGE_DRIFT], check_metadata=False)
    rows = {(r["store_id"], r["lane_id"]): r for r in pq.read_table(part).to_pylist()}
    assert rows[("S001", 2)]["alarm"] and not rows[("S001", 1)]["alarm"]
    assert (rows[("S001", 2)]["photos"], rows[("S001", 2)]["frames"]) == (120, 240)
    assert rows[("S001", 1)]["reference_days"] == 27
    assert rows[("S002", 1)]["reason"].startswith("too few photos for a verdict: 5 on the day")
    # A rerun of the day replaces its partition (same rows).
    assert main(["drift", "--date", day, "--root", str(tmp_path), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5
    assert len(list((tmp_path / "reports" / AGE_DRIFT).iterdir())) == 1


def test_a_day_without_scores_is_a_user_error(tmp_path, capsys):
    assert main(["drift", "--date", "2026-03-29", "--root", str(tmp_path)]) == 2
    assert "photo_scores/date=2026-03-29: no partition" in capsys.readouterr().err


def test_check_quality_warns_on_a_drift_alarm_and_still_passes(tmp_path, capsys):
    _write_day(tmp_path, GOOD_QUALITY)
    row = dict.fromkeys(SCHEMAS[AGE_DRIFT].names)
    row.update(store_id="S001", lane_id=2, photos=250, alarm=True, statistic=drift.STATISTIC,
               threshold=0.25, reason="age PSI 0.910 > 0.250 (median 42 -> 27 years)")
    write_day(tmp_path, AGE_DRIFT, DAY, [row, {**row, "lane_id": 1, "alarm": False,
                                               "reason": None}])
    assert main(["check-quality", "--date", DAY, "--root", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"quality ok for {DAY}")
    assert err == (f"checkout-age: warning for {DAY}: drift: store S001 lane 2: age PSI 0.910 "
                   "> 0.250 (median 42 -> 27 years) [age PSI (5-year bins); no-face z]\n")
