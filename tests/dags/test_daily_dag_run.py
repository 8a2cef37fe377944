"""End to end with `airflow dags test`: retrain on a small real face set, then one simulated day.

Runs the real DAGs through the real commands (jobs venv, spark-submit in local mode, Keras on CPU)
in a temporary Airflow home, data root and registry, with `scripts/airflow_env.sh` as the demo uses
it. The tests in this module build on each other, in order (the daily run needs the promoted model).
"""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from airflow_site import copy_small_faces, site_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

PROJECT = Path(__file__).resolve().parents[2]
JOBS_CLI = PROJECT / ".venv" / "bin" / "checkout-age"
AIRFLOW = PROJECT / ".venv-airflow" / "bin" / "airflow"
DAY, OLD_DAY = "2026-03-14", "2026-02-01"  # OLD_DAY is more than 30 days before DAY
FACES = 300
REPORT_TABLES = ("photo_scores", "photo_quarantine", "receipt_quarantine", "receipt_ages",
                 "segment_category", "recommendations", "compliance", "compliance_flags",
                 "run_quality")


@pytest.fixture(scope="module")
def site(tmp_path_factory, faces_dir) -> dict:
    """A temp Airflow home, data root, registry and a 300-face set (copied; spread over ages)."""
    home = tmp_path_factory.mktemp("site")
    faces = copy_small_faces(faces_dir, home / "faces", FACES)
    env = site_env(home, faces)
    site = {"home": home, "env": env, "data": home / "data", "registry": home / "registry"}
    _airflow(site, "db", "migrate")
    return site


def _airflow(site: dict, *args: str) -> subprocess.CompletedProcess:
    command = ["bash", "-c", 'source scripts/airflow_env.sh && exec "$@"', "_", str(AIRFLOW), *args]
    done = subprocess.run(command, cwd=PROJECT, env=site["env"], capture_output=True, text=True)
    (site["home"] / "airflow.log").open("a").write(done.stdout + done.stderr)
    return done


def _jobs(site: dict, *args: str) -> str:
    return subprocess.run([str(JOBS_CLI), *args], env=site["env"], check=True,
                          capture_output=True, text=True).stdout


def _run_states(site: dict, dag_id: str) -> list[dict[str, str]]:
    """Task states of each run of `dag_id`, oldest run first."""
    with sqlite3.connect(site["home"] / "airflow" / "airflow.db") as db:
        runs = db.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id",
                          (dag_id,)).fetchall()
        return [
            {"run": state, **dict(db.execute(
                "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                (dag_id, run_id)).fetchall())}
            for run_id, state in runs
        ]


def _asset_events(site: dict) -> int:
    with sqlite3.connect(site["home"] / "airflow" / "airflow.db") as db:
        return db.execute(
            "SELECT count(*) FROM asset_event JOIN asset ON asset.id = asset_event.asset_id "
            "WHERE asset.name = 'age_model_production'").fetchone()[0]


def _production(site: dict) -> tuple[str | None, list[str]]:
    versions = json.loads(_jobs(site, "model", "list", "--json"))
    return ([v["version"] for v in versions if v["production"]] or [None])[0], [
        v["version"] for v in versions]


def test_retrain_dag_trains_and_promotes_through_the_gate(site):
    conf = {"image_size": 96, "epochs": 0, "head_epochs": 1, "limit": 200, "max_mae": 100.0}
    _airflow(site, "dags", "test", "age_model_retrain", "2026-03-08", "--conf", json.dumps(conf))
    assert _run_states(site, "age_model_retrain") == [{
        "run": "success", "validate_faces": "success", "train_candidate": "success",
        "evaluate_candidate": "success", "promote_candidate": "success",
    }]
    assert _production(site) == ("v0001", ["v0001"])
    assert _asset_events(site) == 1


def test_daily_dag_processes_a_simulated_day_end_to_end(site):
    for day in (OLD_DAY, DAY):
        _jobs(site, "simulate", "--date", day, "--stores", "2", "--receipts-per-store", "40",
              "--root", str(site["data"]), "--seed", "7", "--frames")
    _airflow(site, "dags", "test", "checkout_age_daily", DAY)

    assert _run_states(site, "checkout_age_daily") == [{
        "run": "success", "wait_for_landing": "success", "resolve_model": "success",
        "score_photos": "success", "build_reports": "success", "detect_drift": "success",
        "check_quality": "success", "minimise_photos": "success", "build_rollups": "success",
        "render_report": "success", "apply_retention": "success",
    }]
    for table in REPORT_TABLES:
        partition = site["data"] / "reports" / table / f"date={DAY}"
        assert list(partition.glob("*.parquet")), table
    html = (site["data"] / "html" / f"report-{DAY}.html").read_text()
    assert f"Checkout age report: {DAY}" in html and "<img" not in html
    verdict = json.loads(_jobs(site, "check-quality", "--date", DAY, "--root", str(site["data"]),
                               "--json"))
    quality = verdict["run_quality"]
    truth = site["data"] / "ground_truth" / f"date={DAY}"
    injected = json.loads((truth / "summary.json").read_text())["injected"]
    with open(truth / "photos.csv", newline="") as handle:
        photos = list(csv.DictReader(handle))
    assert quality["photos_in"] == len(photos)
    # Frames: besides the injected faults, frames with nobody in them are quarantined no_face
    # (and rarely a face the detector misses).
    nobody = sum(p["faces"] == "[]" and p["corrupt"] == "" and p["has_metadata"] == "True"
                 and p["has_file"] == "True" for p in photos)
    faults = (injected["corrupt_photos"] + injected["metadata_without_file"]
              + injected["photos_without_metadata"])
    assert faults + nobody <= quality["photos_quarantined"] <= faults + nobody + 2
    assert nobody == 0 or quality["no_face_rate"] > 0
    landing = site["data"] / "landing" / f"date={DAY}"
    with open(landing / "receipts.csv") as handle:
        assert quality["receipts_in"] == sum(1 for _ in handle) - 1
    assert quality["receipts_quarantined"] == (
        injected["bad_timestamp"] + injected["duplicate_receipt_id"])
    with sqlite3.connect(site["home"] / "airflow" / "airflow.db") as db:
        pinned = db.execute("SELECT value FROM xcom WHERE dag_id = 'checkout_age_daily' "
                            "AND task_id = 'resolve_model'").fetchall()
    # The run's pin: v0001 and the run that produced it ...
    pin = _jobs(site, "model", "show", "v0001", "--pin").strip()
    assert pin.startswith("v0001@") and [json.loads(value) for (value,) in pinned] == [pin]
    assert quality["model_version"] == "v0001"  # ... is the version that scored the photos
    scores = pq.read_table(site["data"] / "reports" / "photo_scores" / f"date={DAY}")
    assert set(scores.column("model_run_id").to_pylist()) == {pin.split("@")[1]}
    assert verdict["ok"] and quality["match_rate"] >= 0.5

    # Retention: the old day's photos are gone (its receipts stay), today's are kept.
    old = site["data"] / "landing" / f"date={OLD_DAY}"
    assert not (old / "photos").exists() and (old / "_PHOTOS_PURGED").is_file()
    assert (old / "receipts.csv").is_file()
    # Minimisation: today's photos left are exactly those of flagged restricted sales.
    flagged = {p for p in pq.read_table(site["data"] / "reports" / "compliance_flags" /
                                        f"date={DAY}").column("photo_id").to_pylist() if p}
    kept = {path.stem for path in (landing / "photos").rglob("*.jpg")}
    assert kept <= flagged and (landing / "_PHOTOS_MINIMISED").is_file()
    assert json.loads((landing / "_PHOTOS_MINIMISED").read_text())["kept"] == len(kept)
    assert (site["data"] / "html" / f"report-2026-03-09..{DAY}.html").is_file()  # week to date


def test_backfill_dag_processes_a_range_of_days(site):
    """Two landed days through `checkout_age_backfill`: each Spark job once for both."""
    days = ("2026-03-16", "2026-03-17")
    for day in days:
        _jobs(site, "simulate", "--date", day, "--stores", "2", "--receipts-per-store", "40",
              "--root", str(site["data"]), "--seed", "8", "--frames")
    conf = {"date_from": days[0], "date_to": days[1]}
    done = _airflow(site, "dags", "test", "checkout_age_backfill", days[1], "--conf",
                    json.dumps(conf))

    assert _run_states(site, "checkout_age_backfill") == [{
        "run": "success", "check_landings": "success", "resolve_model": "success",
        "score_days": "success", "build_reports": "success", "check_days": "success",
        "build_rollups": "success",
    }], done.stdout[-3000:] + done.stderr[-3000:]
    pin = _jobs(site, "model", "show", "v0001", "--pin").strip()
    for day in days:
        for table in REPORT_TABLES:
            assert list((site["data"] / "reports" / table / f"date={day}").glob("*.parquet")), (
                table, day)
        scores = pq.read_table(site["data"] / "reports" / "photo_scores" / f"date={day}")
        assert set(scores.column("model_run_id").to_pylist()) == {pin.split("@")[1]}
        verdict = json.loads(_jobs(site, "check-quality", "--date", day, "--root",
                                   str(site["data"]), "--json"))
        assert verdict["ok"] and verdict["run_quality"]["model_version"] == "v0001"
        assert (site["data"] / "landing" / f"date={day}" / "_PHOTOS_MINIMISED").is_file()
        assert (site["data"] / "html" / f"report-{day}.html").is_file()
    # The month's rollups were rebuilt with the new days: nothing is left to rebuild.
    rollups = json.loads(_jobs(site, "rollup", "--from", days[0], "--to", days[1], "--root",
                               str(site["data"]), "--json"))
    assert rollups and {run["action"] for run in rollups} == {"fresh"}, rollups


def test_a_refused_candidate_leaves_production_and_skips_promotion(site):
    conf = {"image_size": 96, "epochs": 0, "head_epochs": 1, "limit": 100, "max_mae": 1.0}
    _airflow(site, "dags", "test", "age_model_retrain", "2026-03-15", "--conf", json.dumps(conf))
    assert _run_states(site, "age_model_retrain")[-1] == {
        "run": "success", "validate_faces": "success", "train_candidate": "success",
        "evaluate_candidate": "success", "promote_candidate": "skipped",
    }
    assert _production(site) == ("v0001", ["v0001", "v0002"])
    assert _asset_events(site) == 1  # no event for the refused candidate
    log = (site["home"] / "airflow.log").read_text()
    assert "is above the maximum 1.00" in log
