"""No-face rate per store and lane (`query_sql.lane_quality_query`), DuckDB and Spark SQL alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from contract_writer import write_day

from jobs.analytics.query import DuckDBEngine, make_filters
from jobs.analytics.query_sql import lane_quality_query

DAY1, DAY2 = "2026-03-01", "2026-03-02"


def _score(photo_id: str, store: str, lane: int, face_w: int | None) -> dict:
    frame = face_w is not None
    return {"photo_id": photo_id, "store_id": store, "lane_id": lane, "age_pred_years": 30.0,
            "age_group": "25-34", "model_version": "v1", "faces_found": 1 if frame else None,
            "face_w": face_w}


def _quarantined(photo_id: str, store: str, lane: int, reason: str) -> dict:
    return {"photo_id": photo_id, "store_id": store, "lane_id": lane, "reason": reason,
            "detail": "x"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """S1 lane 1 healthy over two days; S1 lane 2 points at the floor; S2 lane 1 sends crops."""
    root = tmp_path_factory.mktemp("lanes")
    write_day(root, "photo_scores", DAY1, [
        _score("a1", "S1", 1, 100), _score("a2", "S1", 1, 200), _score("b1", "S1", 2, 90),
        _score("c1", "S2", 1, None), _score("c2", "S2", 1, None)])
    write_day(root, "photo_scores", DAY2, [_score("a3", "S1", 1, 150)])
    write_day(root, "photo_quarantine", DAY1, [
        _quarantined("q1", "S1", 1, "no_face"), _quarantined("q2", "S1", 2, "no_face"),
        _quarantined("q3", "S1", 2, "no_face"), _quarantined("q4", "S1", 2, "face_too_small"),
        _quarantined("q5", "S2", 1, "not_an_image")])
    write_day(root, "photo_quarantine", DAY2, [_quarantined("q6", "S1", 1, "no_face")])
    return root


def _check(result) -> None:
    rows = [(r["store_id"], r["lane_id"], r["frames"], r["frames_scored"], r["no_face"],
             r["face_too_small"]) for r in result.records()]
    assert rows == [("S1", 2, 4, 1, 2, 1), ("S1", 1, 5, 3, 2, 0)]  # worst lane first; no crops
    by_lane = {r["lane_id"]: r for r in result.records()}
    assert by_lane[2]["no_face_rate"] == pytest.approx(0.5)
    assert by_lane[1]["no_face_rate"] == pytest.approx(2 / 5)  # from summed counts, both days
    assert by_lane[1]["median_face_px"] == pytest.approx(150.0)


def test_lane_quality_with_duckdb(root):
    _check(DuckDBEngine(root).run(lane_quality_query(make_filters(DAY1, DAY2))))
    one_store = DuckDBEngine(root).run(lane_quality_query(make_filters(DAY1, DAY2, store="S2")))
    assert one_store.rows == []  # S2 sends crops: no frames, no lanes to judge


def test_lane_quality_with_spark_sql(root, spark):
    from jobs.analytics.query_spark import SparkEngine

    _check(SparkEngine(spark, root).run(lane_quality_query(make_filters(DAY1, DAY2))))
