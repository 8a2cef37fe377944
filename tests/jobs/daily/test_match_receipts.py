"""Time-window matching of receipts to photos, on hand-made lanes with hand-computed answers."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from pyspark.testing import assertDataFrameEqual

from jobs.daily.match_receipts import greedy_pairs, match_receipts

RECEIPT_SCHEMA = (
    "receipt_id string, store_id string, lane_id int, cashier_id string, closed_at timestamp, "
    "total_rub double"
)
SCORE_SCHEMA = (
    "photo_id string, store_id string, lane_id int, captured_at timestamp, "
    "age_pred_years double, age_group string, model_version string"
)
OUT_SCHEMA = (
    "receipt_id string, store_id string, lane_id int, cashier_id string, closed_at timestamp, "
    "total_rub double, photo_id string, captured_at timestamp, time_diff_s double, "
    "age_pred_years double, age_group string, model_version string, p_under_legal_age double"
)


def t(clock: str) -> dt.datetime:
    """A UTC time on the test day from 'HH:MM:SS' or 'HH:MM:SS.mmm'."""
    return dt.datetime.fromisoformat(f"2026-03-14T{clock}+00:00")


def receipt(rid, store, lane, clock):
    return (rid, store, lane, "C1", t(clock), 100.0)


def photo(pid, store, lane, clock, age=30.0):
    return (pid, store, lane, t(clock), age, "25-34", "v1")


def matched(rec, pho, diff):
    """Expected receipt_ages row: receipt tuple + photo tuple (or None) + time difference."""
    if pho is None:
        return (*rec, None, None, None, None, None, None, None)
    # SCORE_SCHEMA is a partition scored before calibration: p_under_legal_age is NULL.
    return (*rec, pho[0], pho[3], diff, pho[4], pho[5], pho[6], None)


def test_window_ties_skew_and_competition(spark):
    # Lane 1: r1 (10:00:00) and r2 (10:00:06) both see pA (10:00:03) at |3 s|; pA goes to r2
    # because its photo is taken before closing (-3 s beats +3 s). r1 falls back to pB (-8 s).
    r1, r2 = receipt("r1", "S1", 1, "10:00:00"), receipt("r2", "S1", 1, "10:00:06")
    pa, pb = photo("pA", "S1", 1, "10:00:03"), photo("pB", "S1", 1, "09:59:52")
    # Lane 2: camera clock 7 s behind the till: matched at -7 s; pD at +12 s is out of the window.
    r3 = receipt("r3", "S1", 2, "11:00:00")
    pc, pd_ = photo("pC", "S1", 2, "10:59:53"), photo("pD", "S1", 2, "11:00:12")
    # Lane 3 of S1 and lane 1 of S2 have receipts at pA's time but no photo of their own.
    r4, r5 = receipt("r4", "S1", 3, "10:00:03"), receipt("r5", "S2", 1, "10:00:03")
    # Lane 4: two receipts closed at the same instant, one photo +2 s after: smaller id wins.
    r6, r7 = receipt("r6", "S1", 4, "12:00:00"), receipt("r7", "S1", 4, "12:00:00")
    pe = photo("pE", "S1", 4, "12:00:02")
    # Lane 5: exactly on the window edge (10 s) still matches.
    r8, pf = receipt("r8", "S1", 5, "13:00:00"), photo("pF", "S1", 5, "13:00:10")
    receipts = spark.createDataFrame([r1, r2, r3, r4, r5, r6, r7, r8], RECEIPT_SCHEMA)
    scores = spark.createDataFrame([pa, pb, pc, pd_, pe, pf], SCORE_SCHEMA)

    result = match_receipts(receipts, scores, window_s=10)

    expected = spark.createDataFrame([
        matched(r1, pb, -8.0), matched(r2, pa, -3.0), matched(r3, pc, -7.0),
        matched(r4, None, None), matched(r5, None, None), matched(r6, pe, 2.0),
        matched(r7, None, None), matched(r8, pf, 10.0),
    ], OUT_SCHEMA)
    assertDataFrameEqual(result, expected)


def test_nearest_pair_first_not_nearest_per_receipt(spark):
    # r1 10:00:00, r2 10:00:02; photos p1 10:00:01.5 and p2 10:00:05.
    # Candidates: (r1,p1)=+1.5, (r2,p1)=-0.5, (r1,p2)=+5, (r2,p2)=+3.
    # Greedy: (r2,p1) first (0.5 s), then r1 can only take p2 (+5 s).
    r1, r2 = receipt("r1", "S1", 1, "10:00:00"), receipt("r2", "S1", 1, "10:00:02")
    p1, p2 = photo("p1", "S1", 1, "10:00:01.500", 17.0), photo("p2", "S1", 1, "10:00:05", 40.0)
    result = match_receipts(
        spark.createDataFrame([r1, r2], RECEIPT_SCHEMA),
        spark.createDataFrame([p1, p2], SCORE_SCHEMA),
        window_s=10,
    )
    expected = spark.createDataFrame(
        [matched(r1, p2, 5.0), matched(r2, p1, -0.5)], OUT_SCHEMA
    )
    assertDataFrameEqual(result, expected)


def test_window_bucket_edges_do_not_lose_pairs(spark):
    # Times straddling multiples of the window (bucket edges): 09:59:59.9 vs 10:00:09.8 is 9.9 s.
    r1 = receipt("r1", "S1", 1, "09:59:59.900")
    p1 = photo("p1", "S1", 1, "10:00:09.800")
    result = match_receipts(
        spark.createDataFrame([r1], RECEIPT_SCHEMA), spark.createDataFrame([p1], SCORE_SCHEMA), 10
    )
    assertDataFrameEqual(result, spark.createDataFrame([matched(r1, p1, 9.9)], OUT_SCHEMA))


def test_greedy_pairs_is_one_to_one_and_deterministic():
    candidates = pd.DataFrame({
        "receipt_id": ["r2", "r1", "r1", "r2", "r3"],
        "photo_id": ["p1", "p1", "p2", "p2", "p2"],
        "time_diff_s": [1.0, -1.0, 4.0, -2.0, 3.0],
    })
    # |1| tie: (r1,p1,-1) before (r2,p1,+1) as the photo came first; then (r2,p2,-2); r3 loses.
    result = greedy_pairs(candidates.sample(frac=1.0, random_state=3))
    assert result.to_dict("records") == [
        {"receipt_id": "r1", "photo_id": "p1", "time_diff_s": -1.0},
        {"receipt_id": "r2", "photo_id": "p2", "time_diff_s": -2.0},
    ]


def test_calibrated_scores_carry_their_probability(spark):
    r1, r2 = receipt("r1", "S1", 1, "10:00:00"), receipt("r2", "S1", 1, "11:00:00")
    scores = spark.createDataFrame(
        [(*photo("p1", "S1", 1, "10:00:02", 16.5), 0.62)],
        SCORE_SCHEMA + ", p_under_legal_age double")
    result = match_receipts(spark.createDataFrame([r1, r2], RECEIPT_SCHEMA), scores, 10)
    assert {r.receipt_id: r.p_under_legal_age for r in result.collect()} == {"r1": 0.62,
                                                                             "r2": None}
