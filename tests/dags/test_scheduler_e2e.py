"""The DAGs under Airflow's real scheduler: scheduler, DAG processor and API server (LocalExecutor,
SQLite, loopback), runs triggered through the REST API as the UI's "Trigger DAG w/ config" does.

`checkout_age_daily` with `conf={"date": D}` must process day D end to end; at the same time an
`age_model_retrain` run whose gate refuses must succeed with `promote_candidate` skipped and the
production model unchanged. The two runs go concurrently (parallelism 2) to keep the test short.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from airflow_site import JOBS_CLI, PROJECT, Airflow, copy_small_faces, prepare_site, scheduler_env
from local_services import listening_addresses

# About 5 minutes on 2 idle cores; the waits below only bound a hung run (shared machines are slow).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

DAY = "2026-03-14"
FACES = 150


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, faces_dir):
    """A running Airflow (own home, data root, registry) with a production model v0001."""
    home = tmp_path_factory.mktemp("scheduler")
    faces = copy_small_faces(faces_dir, home / "faces", FACES)
    env = scheduler_env(home, faces)
    prepare_site(home, faces, env, DAY)
    site = Airflow(home, env)
    try:
        site.start()
        yield site
    finally:
        site.stop()


def _versions(env: dict) -> list[dict]:
    """`checkout-age model list --json` in the site's environment (the MLflow store)."""
    done = subprocess.run([str(JOBS_CLI), "model", "list", "--json"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_the_api_server_listens_on_loopback_only(airflow):
    assert listening_addresses(airflow.port) == {"0100007F"}  # 127.0.0.1, nothing else


def test_rest_triggered_runs_under_the_real_scheduler(airflow):
    daily = airflow.trigger("checkout_age_daily", {"date": DAY})
    retrain = airflow.trigger("age_model_retrain", {
        "image_size": 96, "epochs": 0, "head_epochs": 1, "limit": 60, "max_mae": 1.0})

    states = airflow.wait_run("checkout_age_daily", daily, 1500)
    assert states == {
        "run": "success", "wait_for_landing": "success", "resolve_model": "success",
        "score_photos": "success", "build_reports": "success", "detect_drift": "success",
        "check_quality": "success", "minimise_photos": "success", "build_rollups": "success",
        "render_report": "success", "apply_retention": "success",
    }, airflow.logs()
    data = airflow.home / "data"
    quality = data / "reports" / "run_quality" / f"date={DAY}"
    assert list(quality.glob("*.parquet"))
    html = (data / "html" / f"report-{DAY}.html").read_text()
    assert f"Checkout age report: {DAY}" in html

    states = airflow.wait_run("age_model_retrain", retrain, 600)
    assert states == {
        "run": "success", "validate_faces": "success", "train_candidate": "success",
        "evaluate_candidate": "success", "promote_candidate": "skipped",
    }, airflow.logs()
    versions = _versions(airflow.env)
    assert [v["version"] for v in versions if v["production"]] == ["v0001"]
    # The refused candidate stays registered.
    assert [v["version"] for v in versions] == ["v0001", "v0002"]


def test_make_airflow_binds_loopback_unless_opened():
    def host(**env: str) -> str:
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("AIRFLOW__API__HOST", "AIRFLOW_HOST")}
        show = 'source scripts/airflow_env.sh; echo "$AIRFLOW__API__HOST"'
        done = subprocess.run(["bash", "-c", show],
                              cwd=PROJECT, env={**clean, **env}, capture_output=True, text=True)
        return done.stdout.strip()

    assert host() == "127.0.0.1"
    assert host(AIRFLOW_HOST="0.0.0.0") == "0.0.0.0"
    assert host(AIRFLOW__API__HOST="10.1.2.3", AIRFLOW_HOST="0.0.0.0") == "10.1.2.3"
