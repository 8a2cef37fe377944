"""A tiny hand-made set of report partitions (two days, two stores) for the query/report tests.

Every expected figure in the tests is worked out by hand from the numbers below (see the comments).
Written with pyarrow following docs/data-contract.md; the Spark jobs are not involved.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from contract_writer import ratio, segment_row, write_day

from jobs.contract import SCHEMAS

DAY1, DAY2 = "2026-03-01", "2026-03-02"
UTC = dt.UTC


def _ts(day: str, clock: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=UTC)


def write_samples(root: Path) -> Path:
    """Write every report table for DAY1 and DAY2 under `root`; return `root`."""
    # segment_category.  Store totals: D1 S001 all=10, S002 all=5; D2 S001 all=8.
    # Segments: D1 S001 18-24 4 (400 rub), 65+ 6 (900); D1 S002 18-24 5 (500); D2 S001 18-24 2
    # (100), 65+ 6 (600). Categories: D1 S001 snacks 5 dairy 7; D1 S002 snacks 4 dairy 2;
    # D2 S001 snacks 2 dairy 6.  On D2 there is no 18-24/dairy and no 65+/snacks row.
    write_day(root, "segment_category", DAY1, [
        segment_row("S001", "18-24", "snacks", 3, 5, 150.0, 4, 400.0, 5, 10),
        segment_row("S001", "18-24", "dairy", 1, 1, 60.0, 4, 400.0, 7, 10),
        segment_row("S001", "65+", "snacks", 2, 2, 100.0, 6, 900.0, 5, 10),
        segment_row("S001", "65+", "dairy", 6, 8, 480.0, 6, 900.0, 7, 10),
        segment_row("S002", "18-24", "snacks", 4, 6, 200.0, 5, 500.0, 4, 5),
        segment_row("S002", "18-24", "dairy", 2, 2, 100.0, 5, 500.0, 2, 5),
    ])
    write_day(root, "segment_category", DAY2, [
        segment_row("S001", "18-24", "snacks", 2, 3, 100.0, 2, 100.0, 2, 8),
        segment_row("S001", "65+", "dairy", 6, 7, 500.0, 6, 600.0, 6, 8),
    ])
    # Leftovers of interrupted writes, with absurd counts: readers must never see them.
    bogus = pa.Table.from_pylist(
        [segment_row("S001", "18-24", "snacks", 999, 999, 9e6, 999, 9e6, 999, 999)],
        schema=SCHEMAS["segment_category"])
    for name in (f"_tmp-{DAY2}-deadbeef", f"_old-{DAY2}-cafe0001"):
        (root / "reports" / "segment_category" / name).mkdir()
        pq.write_table(bogus, root / "reports" / "segment_category" / name / "part-0.parquet")

    # recommendations (chain-wide): D1 all=15, 18-24 seg=9, 65+ seg=6; D2 all=8, 18-24 seg=2.
    def rec(age, kind, item, name, category, receipts, segment, item_receipts, all_receipts,
            rank):
        confidence = ratio(receipts, segment)
        return {"age_group": age, "kind": kind, "item_id": item, "item_name": name,
                "category": category, "receipts": receipts, "segment_receipts": segment,
                "item_receipts": item_receipts, "all_receipts": all_receipts,
                "support": ratio(receipts, all_receipts), "confidence": confidence,
                "lift": confidence / (item_receipts / all_receipts), "rank": rank}

    write_day(root, "recommendations", DAY1, [
        rec("18-24", "category", "snacks", "snacks", "snacks", 7, 9, 9, 15, 1),
        rec("18-24", "product", "P002", "Gummies, sour", "sweets", 2, 9, 2, 15, 1),
        rec("18-24", "product", "P001", "Chips paprika", "snacks", 4, 9, 5, 15, 2),
        rec("65+", "product", "P003", "Kefir <1%> & \"fresh\"", "dairy", 5, 6, 6, 15, 1),
    ])
    write_day(root, "recommendations", DAY2, [
        rec("18-24", "product", "P001", "Chips paprika", "snacks", 2, 2, 3, 8, 1),
    ])

    # compliance: flag_rate over both days is 3/6 for S001-C01 (the mean of the daily rates
    # would be 0.625) and 2/4 for S002-C01. Expected sales to minors (sum of P(minor) over
    # restricted sales with a photo): S001-C01 0.9 + 0.12 = 1.02 over 4 + 1 sales with a
    # probability (one D2 photo had none); S002-C01 0.79 + 0.01 = 0.80 over 3 + 1; S001-C02
    # had no photo, so no expectation (NULL, not 0).
    def comp(store, cashier, receipts, restricted, with_photo, flagged, with_p, expected):
        return {"store_id": store, "cashier_id": cashier, "receipts": receipts,
                "restricted_receipts": restricted, "with_photo": with_photo, "flagged": flagged,
                "flag_rate": ratio(flagged, with_photo), "no_photo": restricted - with_photo,
                "challenge_age": 25, "with_probability": with_p, "expected_minor_sales": expected}

    write_day(root, "compliance", DAY1, [
        comp("S001", "S001-C01", 20, 5, 4, 1, 4, 0.9),
        comp("S001", "S001-C02", 10, 2, 0, 0, 0, None),
        comp("S002", "S002-C01", 8, 3, 3, 2, 3, 0.79),
    ])
    write_day(root, "compliance", DAY2, [
        comp("S001", "S001-C01", 15, 3, 2, 2, 1, 0.12),
        comp("S002", "S002-C01", 5, 1, 1, 0, 1, 0.01),
    ])

    # Tiers at the default thresholds (0.5 likely, 0.2 possible): 0.72 likely minor, 0.31
    # possible minor, 0.12 and 0.04 probably adult, NULL no calibration.
    def flag(day, store, lane, cashier, n, clock, photo, age, p_minor):
        return {"receipt_id": f"R-{day.replace('-', '')}-{store}-{n:06d}", "store_id": store,
                "lane_id": lane, "cashier_id": cashier, "closed_at": _ts(day, clock),
                "photo_id": photo, "age_pred_years": age, "model_version": "v0003",
                "restricted_units": 2, "restricted_revenue_rub": 259.8, "challenge_age": 25,
                "p_under_legal_age": p_minor}

    write_day(root, "compliance_flags", DAY1, [
        flag(DAY1, "S001", 1, "S001-C01", 1, "09:12:33.120", "ph-0001", 19.5, 0.31),
        flag(DAY1, "S002", 2, "S002-C01", 7, "10:00:00", "<script>alert(1)</script>", 16.0,
             0.72),
        flag(DAY1, "S002", 2, "S002-C01", 9, "11:30:00", "ph-0009", 23.9, 0.04),
    ])
    write_day(root, "compliance_flags", DAY2, [
        flag(DAY2, "S001", 1, "S001-C01", 3, "08:00:00", "ph-1003", 21.0, 0.12),
        flag(DAY2, "S001", 3, "S001-C01", 4, "18:45:10", "ph-1004", 24.2, None),
    ])

    def quality(photos, scored, matched, receipts_in, valid, receipts_matched, lines_in,
                lines_valid, p10, p50, p90, groups):
        return {"photos_in": photos, "photos_scored": scored,
                "photos_quarantined": photos - scored, "photos_matched": matched,
                "photos_unmatched": scored - matched, "receipts_in": receipts_in,
                "receipts_valid": valid, "receipts_quarantined": receipts_in - valid,
                "receipts_matched": receipts_matched,
                "receipts_unmatched": valid - receipts_matched, "lines_in": lines_in,
                "lines_valid": lines_valid, "lines_quarantined": lines_in - lines_valid,
                "match_rate": ratio(receipts_matched, valid), "age_pred_p10": p10,
                "age_pred_p50": p50, "age_pred_p90": p90,
                "age_group_counts": json.dumps(groups), "model_version": "v0003",
                "match_window_s": 10, "challenge_age": 25}

    write_day(root, "run_quality", DAY1, [
        {**quality(30, 27, 20, 26, 25, 20, 60, 58, 20.0, 38.0, 61.0, {"18-24": 9, "65+": 18}),
         "no_face_rate": 3 / 7, "median_face_px": 135.0}])
    write_day(root, "run_quality", DAY2, [
        quality(20, 20, 14, 16, 16, 14, 40, 40, 22.0, 41.0, 66.0, {"18-24": 5, "65+": 15})])

    # photo_scores: D1 S001 3 photos (1 x 18-24, 2 x 65+), S002 2 photos (18-24); D2 S001 1.
    # Intervals 5 years either side; probabilities as on the flags above.
    p_minor = {1: 0.31, 7: 0.72, 9: 0.04, 1003: 0.12}

    def score(day, n, store, age, group):
        return {"photo_id": f"ph-{n:04d}", "store_id": store, "lane_id": 1,
                "captured_at": _ts(day, f"09:{n % 60:02d}:00"), "age_pred_years": age,
                "age_group": group, "model_version": "v0003", "age_low": age - 5.0,
                "age_high": age + 5.0, "p_under_legal_age": p_minor.get(n, 0.001)}

    # Frames on D1: S001 lane 1 3 scored (face 120/150/180 px) + 1 no_face, S001 lane
    # 2 only 2 no_face, S002 lane 1 one scored (90 px); the other photos are crops (NULLs).
    # No-face rate: S001/1 1/4, S001/2 2/2, S002/1 0/1; the day 3/7, median face 135 px. D2: crops.
    frames = {1: 120, 2: 150, 3: 180, 9: 90}

    def frame(row, n):
        return {**row, "faces_found": 1, "face_w": frames[n]} if n in frames else row

    write_day(root, "photo_scores", DAY1, [
        frame(score(DAY1, 1, "S001", 19.5, "18-24"), 1),
        frame(score(DAY1, 2, "S001", 70.2, "65+"), 2),
        frame(score(DAY1, 3, "S001", 66.0, "65+"), 3), score(DAY1, 7, "S002", 16.0, "under 18"),
        frame(score(DAY1, 9, "S002", 23.9, "18-24"), 9),
    ])
    write_day(root, "photo_scores", DAY2, [score(DAY2, 1003, "S001", 21.0, "18-24")])
    write_day(root, "photo_quarantine", DAY1, [
        {"photo_id": "ph-0100", "store_id": "S001", "lane_id": 1, "reason": "not_an_image",
         "detail": "starts with b'<html>'"},
        {"photo_id": "ph-0101", "store_id": "S001", "lane_id": 2, "reason": "not_an_image",
         "detail": "empty file"},
        {"photo_id": "ph-0102", "reason": "missing_file", "detail": "no photos/…/ph-0102.jpg"},
        *({"photo_id": f"ph-010{n}", "store_id": "S001", "lane_id": lane, "reason": "no_face",
           "detail": "no face found"} for n, lane in ((3, 1), (4, 2), (5, 2))),
    ])
    write_day(root, "photo_quarantine", DAY2, [])
    write_day(root, "receipt_quarantine", DAY1, [
        {"source_file": "receipts.csv", "line_no": 7, "receipt_id": "R-X", "reason":
         "bad_timestamp", "detail": "closed_at 'yesterday'"},
        {"source_file": "receipt_lines.csv", "line_no": 12, "receipt_id": "R-X",
         "product_id": "P001", "reason": "receipt_quarantined", "detail": "receipt R-X"},
        {"source_file": "receipt_lines.csv", "line_no": 30, "receipt_id": "R-Y",
         "product_id": "P999", "reason": "unknown_product", "detail": "P999"},
    ])
    write_day(root, "receipt_quarantine", DAY2, [])
    return root
