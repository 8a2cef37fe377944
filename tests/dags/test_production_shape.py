"""The production shape of docs/running-at-scale.md, run as the doc writes it, on this machine.

PostgreSQL (Airflow's metadata DB and Celery's result backend; MLflow's tracking server and model
registry on its own database there, artifacts in a local folder), Redis (the Celery broker), the
Celery executor with two worker processes, the API server, scheduler, DAG processor and triggerer
as separate processes, each under a supervisor that restarts it when it exits (as systemd or a
pod's restart policy does), and a Spark standalone master and worker (the `spark_default` connection):
each server a throw-away one owned by this module, on a free 127.0.0.1 port, passwords generated.
The reference is the embedded default (LocalExecutor, SQLite, Spark `local[*]`) on the same day,
the same landed files and the same model. The steps build on each other, in file order:

1. a wrong metadata-DB password and an unreachable broker: `scripts/check_services.py` says so
   in one line naming the setting;
2. every server listens on loopback only, the API needs a login;
3. the daily DAG, triggered over REST for the simulated day, writes exactly the reference's
   tables; at the same time the retrain DAG (quick profile) registers a version;
4. the same day rerun from nothing through three faults: the Celery worker running
   `score_photos` killed with its whole process tree (`kill -9`, a lost machine), PostgreSQL
   restarted between `score_photos` and `build_reports` (a part that exits on it must name the
   database's error, and its supervisor restarts it), the scheduler restarted while
   `build_reports` runs. The run succeeds, `score_photos` took two tries (the second on the
   other worker) and the tables are identical to the reference again;
5. the MLflow server down when the daily run starts: `resolve_model` fails within seconds with
   one line naming `MLFLOW_TRACKING_URI`, and nothing is scored.

`make production-shape` runs this module alone and prints each step.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil
import pytest
import requests
from airflow_site import (
    JOBS_CLI,
    PROJECT,
    Airflow,
    copy_small_faces,
    in_airflow_env,
    prepare_site,
    scheduler_env,
)
from local_services import (
    MlflowServer,
    Postgres,
    Redis,
    SparkStandalone,
    free_port,
    listening_addresses,
    listening_ports,
    listens_on_loopback_only,
)

# Wall time: bench/bench_production_shape.py (target under 15 min on 2 idle cores); the limit only
# bounds a hung run on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

log = logging.getLogger("production-shape")
DOC = PROJECT / "docs" / "running-at-scale.md"
JOBS_VENV = JOBS_CLI.parent.parent
MLFLOW = JOBS_VENV / "bin" / "mlflow"
SPARK_CLASS = JOBS_VENV / "lib" / "python3.11" / "site-packages" / "pyspark" / "bin" / "spark-class"
CHECK_SERVICES = in_airflow_env(str(PROJECT / ".venv-airflow" / "bin" / "python"),
                                "scripts/check_services.py")
DAILY, RETRAIN = "checkout_age_daily", "age_model_retrain"
DAY = "2026-03-14"
FACES = 150
DAILY_TASKS = ("wait_for_landing", "resolve_model", "score_photos", "build_reports",
               "detect_drift", "check_quality", "minimise_photos", "build_rollups",
               "render_report", "apply_retention")
# The day as it landed: a run minimises its photos, and a minimised day cannot be scored again,
# so every run of DAY here starts from this copy.
LANDED = "landed"
# A lost worker's task is failed (then retried) this long after its last heartbeat (default 300).
HEARTBEAT_TIMEOUT_S = 60


def _step(message: str) -> None:
    log.warning("step: %s", message)


def production_settings(database: str, broker: str, api_port: int,
                        tracking: str) -> dict[str, str]:
    """The environment of every component, variable for variable as docs/running-at-scale.md
    writes it, with this machine's hosts and ports and freshly generated secrets.

    `database`: the metadata DB's URL (`postgresql+psycopg2://...`); `broker`: Redis's URL;
    `tracking`: the MLflow server's URL.
    """
    import secrets

    from cryptography.fernet import Fernet

    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database.replace("+psycopg2", ""),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PARALLELISM": "2",  # sized for 2 cores
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "1",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
        "MLFLOW_TRACKING_URI": tracking,
    }


def celery_parts() -> dict[str, list[str]]:
    """One process per component, as the doc lists them. Workers and triggerer would serve their
    logs on every interface (Airflow 3.3 binds its log server to all of them): here they share
    one log folder with the API server, which reads the files itself (`--skip-serve-logs`)."""
    parts = {"api-server": ["api-server"], "scheduler": ["scheduler"],
             "dag-processor": ["dag-processor"], "triggerer": ["triggerer", "--skip-serve-logs"]}
    for number in (1, 2):
        parts[f"worker-{number}"] = ["celery", "worker", "--concurrency", "1",
                                     "--celery-hostname", f"worker{number}@%h",
                                     "--skip-serve-logs"]
    return parts


def _tables(root: Path) -> dict[str, pd.DataFrame]:
    """Every report table's partition for DAY, rows in a canonical order."""
    tables = {}
    for folder in sorted((root / "reports").iterdir()):
        frame = pd.read_parquet(folder / f"date={DAY}")
        tables[folder.name] = frame.sort_values(list(frame.columns), ignore_index=True)
    return tables


def _assert_same_tables(root: Path, reference: Path) -> None:
    got, want = _tables(root), _tables(reference)
    assert sorted(got) == sorted(want)
    for name, frame in want.items():
        pd.testing.assert_frame_equal(got[name], frame, check_exact=True, obj=name)
    assert len(want["photo_scores"]) > 0 and len(want["receipt_ages"]) > 0


def _check_services(env: dict[str, str], **override: str) -> subprocess.CompletedProcess:
    return subprocess.run(CHECK_SERVICES, cwd=PROJECT, env={**env, **override},
                          capture_output=True, text=True, timeout=120)


@dataclass
class Tracking:
    """PostgreSQL and MLflow's tracking server on its own database there."""

    postgres: Postgres
    mlflow: MlflowServer
    home: Path


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """PostgreSQL (initdb in a temp folder) and `mlflow server` on its `mlflow` database with a
    local artifact folder: the registry both the reference and the production shape use, so
    both score with the same model version (and MLflow run)."""
    home = tmp_path_factory.mktemp("tracking")
    postgres = Postgres()
    server = None
    try:
        _step("PostgreSQL (initdb in a temp folder); MLflow server on its own database there")
        postgres.start()
        store = postgres.url("mlflow", postgres.create_database("mlflow"))  # psycopg2
        server = MlflowServer(home, MLFLOW, store).start()
        yield Tracking(postgres, server, home)
    finally:
        if server:
            server.stop()
        postgres.stop()


@pytest.fixture(scope="module")
def reference(tracking, tmp_path_factory, faces_dir) -> Path:
    """The embedded default's run of DAY (LocalExecutor, SQLite, Spark `local[*]`): its home."""
    home = tmp_path_factory.mktemp("reference")
    faces = copy_small_faces(faces_dir, home / "faces", FACES)
    env = scheduler_env(home, faces, MLFLOW_TRACKING_URI=tracking.mlflow.url)
    _step("reference: a production model v0001 in MLflow and a simulated day")
    prepare_site(home, faces, env, DAY)
    shutil.copytree(home / "data" / "landing", home / LANDED)
    _step("reference: the daily DAG under the LocalExecutor on SQLite, Spark local[*]")
    site = Airflow(home, env)
    try:
        site.start()
        states = site.wait_run(DAILY, site.trigger(DAILY, {"date": DAY}), 1500)
        assert states == {"run": "success", **dict.fromkeys(DAILY_TASKS, "success")}, site.logs()
    finally:
        site.stop()
    return home


@dataclass
class Shape:
    """The running production shape."""

    airflow: Airflow
    postgres: Postgres
    mlflow: MlflowServer
    redis: Redis
    spark: SparkStandalone
    home: Path
    reference: Path

    def versions(self) -> list[dict]:
        """`checkout-age model list --json` against the shape's registry."""
        done = subprocess.run([str(JOBS_CLI), "model", "list", "--json"], env=self.airflow.env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def shape(tracking, reference, tmp_path_factory):
    """Redis, Spark standalone and the Celery-executor Airflow on the tracking fixture's
    PostgreSQL, the reference's landing zone and MLflow."""
    home = tmp_path_factory.mktemp("production")
    _land_again(reference, home / "data")
    (home / "spark").mkdir()
    redis = Redis(home)
    from jobs.daily.spark import spark_env

    spark = SparkStandalone(home / "spark", SPARK_CLASS,
                            {**scheduler_env(home, reference / "faces"),
                             **spark_env(str(JOBS_VENV / "bin" / "python"))})
    airflow = None
    try:
        _step("Redis, Spark master + worker")
        redis.start()
        spark.start()
        api_port = free_port()
        database = tracking.postgres.url("airflow", tracking.postgres.create_database("airflow"))
        settings = production_settings(database, redis.url(), api_port, tracking.mlflow.url)
        # The doc's standalone sample; the API host is scripts/airflow_env.sh's 127.0.0.1.
        spark_default = {"conn_type": "spark", "host": "spark://127.0.0.1", "port": spark.port}
        env = scheduler_env(home, reference / "faces", AIRFLOW__API__PORT=str(api_port),
                            AIRFLOW_CONN_SPARK_DEFAULT=json.dumps(spark_default), **settings)
        done = _check_services(env)
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        _step("airflow db migrate; api-server, scheduler, dag-processor, triggerer, 2 workers")
        airflow = Airflow(home, env, celery_parts())
        airflow.start()
        airflow.supervise(*airflow.parts)  # one process each under a supervisor, as the doc says
        yield Shape(airflow, tracking.postgres, tracking.mlflow, redis, spark, home, reference)
    finally:
        if airflow:
            airflow.stop()
        spark.stop()
        redis.stop()


def _land_again(reference: Path, data: Path) -> None:
    """`data`'s landing zone replaced by the reference's day as it landed (photos and all)."""
    shutil.rmtree(data / "landing", ignore_errors=True)
    shutil.copytree(reference / LANDED, data / "landing")


def test_the_doc_sets_the_variables_this_test_sets():
    block = DOC.read_text().split("## Airflow: PostgreSQL metadata DB and the Celery executor")[1]
    block = block.split("\n## ")[0]
    documented = set(re.findall(r"^export (\w+)=", block, re.M))
    used = production_settings("postgresql+psycopg2://a:b@h:1/a", "redis://:c@h:2/0", 3,
                               "http://d:5000")
    assert documented == set(used)


def test_bad_password_or_unreachable_broker_is_one_line_naming_the_setting(shape):
    env = shape.airflow.env
    good = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    wrong = re.sub(r":[0-9a-f]{32}@", ":not-the-password@", good)
    cases = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (wrong, "password authentication failed"),
        "AIRFLOW__CELERY__BROKER_URL": (f"redis://:x@127.0.0.1:{free_port()}/0",
                                        "Connection refused"),
    }
    for setting, (value, reason) in cases.items():
        done = _check_services(env, **{setting: value})
        assert done.returncode == 2
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{setting}: cannot reach "), done.stderr
        assert reason in lines[0] and "not-the-password" not in lines[0], lines[0]


def test_servers_listen_on_loopback_and_the_api_needs_a_login(shape):
    for port in (shape.postgres.port, shape.redis.port, shape.airflow.port, shape.spark.port,
                 shape.mlflow.port):
        assert listens_on_loopback_only(port), (port, listening_addresses(port))
    mlflow = psutil.Process(shape.mlflow.process.pid)
    processes = [shape.redis.process.pid, *(p.pid for p in shape.spark.processes),
                 mlflow.pid, *(child.pid for child in mlflow.children(recursive=True)),
                 *(m.pid for name in shape.airflow.processes for m in shape.airflow.family(name))]
    for port in listening_ports(processes):  # nothing else of theirs is on the network either
        assert listens_on_loopback_only(port), (port, listening_addresses(port))
    anonymous = requests.get(f"{shape.airflow.url}/api/v2/dags", timeout=30)
    assert anonymous.status_code == 401


def test_daily_run_on_celery_and_a_standalone_cluster_equals_the_embedded_default(shape):
    airflow = shape.airflow
    _step("trigger the daily DAG over REST, and the retrain DAG (quick profile) beside it")
    daily = airflow.trigger(DAILY, {"date": DAY})
    retrain = airflow.trigger(RETRAIN, {"profile": "quick", "max_mae": 1.0})
    states = airflow.wait_run(DAILY, daily, 1500)
    assert states == {"run": "success", **dict.fromkeys(DAILY_TASKS, "success")}, airflow.logs()
    _assert_same_tables(shape.home / "data", shape.reference / "data")
    apps = shape.spark.completed_apps()
    assert sorted(apps) == ["checkout-age-reports", "checkout-age-score"], apps  # on the cluster

    states = airflow.wait_run(RETRAIN, retrain, 1500)
    assert states == {"run": "success", "validate_faces": "success", "train_candidate": "success",
                      "evaluate_candidate": "success", "promote_candidate": "skipped"}, (
        airflow.logs())
    versions = shape.versions()
    assert [v["version"] for v in versions] == ["v0001", "v0002"]  # registered in MLflow
    assert [v["version"] for v in versions if v["production"]] == ["v0001"]  # gate: max_mae 1


def _worker_running(airflow: Airflow, script: str) -> str | None:
    """The worker whose process tree runs spark-submit of `script` now."""
    for name in ("worker-1", "worker-2"):
        if airflow.processes[name].poll() is None:
            for member in airflow.family(name):
                try:
                    if any(script in part for part in member.cmdline()):
                        return name
                except Exception:  # the process ended while we looked
                    continue
    return None


@pytest.mark.faults
def test_faults_worker_killed_postgres_and_scheduler_restarted_nothing_lost(shape):
    airflow, data = shape.airflow, shape.home / "data"
    for partition in data.glob(f"reports/*/date={DAY}"):
        shutil.rmtree(partition)  # everything this run reports must be written by it
    _land_again(shape.reference, data)  # the first run minimised the day's photos
    run = airflow.trigger(DAILY, {"date": DAY})

    _step("kill -9 the Celery worker running score_photos (its whole process tree)")
    found: dict[str, str] = {}

    def scoring() -> bool:
        found["worker"] = _worker_running(airflow, "score_photos.py")
        return found["worker"] is not None

    airflow.wait(scoring, 900, "score_photos to start on a worker")
    time.sleep(5)  # the Spark job has started: a half-written day is at stake
    killed = found["worker"]
    restarts = len(airflow.restarts)
    airflow.kill(killed)  # a lost machine: its supervisor is gone with it
    survivor = "worker-2" if killed == "worker-1" else "worker-1"

    _step(f"{killed} is gone: wait for score_photos to be retried on {survivor}")
    airflow.wait(lambda: airflow.task_state(DAILY, run, "score_photos") in ("success", "failed"),
                 1200, "score_photos to be retried and end")
    assert airflow.task_state(DAILY, run, "score_photos") == "success", airflow.logs()
    assert airflow.restarts[restarts:] == [], airflow.logs()  # nothing else fell with the worker

    _step("restart PostgreSQL between score_photos and build_reports")
    logged = {name: airflow.log_path(name).stat().st_size for name in airflow.processes}
    shape.postgres.restart()

    _step("restart the scheduler while build_reports runs")
    airflow.wait(lambda: airflow.task_state(DAILY, run, "build_reports") in (
        "running", "success", "failed"), 600, "build_reports to start")
    # A part whose query met the outage may exit (Airflow's scheduler does: it leaves
    # reconnecting to its supervisor); then only with the database's error, and it was restarted.
    for name, _ in airflow.restarts[restarts:]:
        with open(airflow.log_path(name)) as log:
            log.seek(logged[name])
            assert "OperationalError" in log.read(), f"{name} exited: {airflow.logs()}"
        _step(f"{name} exited on the PostgreSQL restart; its supervisor restarted it")
    airflow.stop_part("scheduler")
    airflow.launch("scheduler")
    airflow.supervise("scheduler")

    states = airflow.wait_run(DAILY, run, 1500)
    assert states == {"run": "success", **dict.fromkeys(DAILY_TASKS, "success")}, airflow.logs()
    tries = airflow.tries(DAILY, run, "score_photos")
    assert [t["state"] for t in tries] == ["failed", "success"], tries
    assert airflow.tries(DAILY, run, "build_reports")[-1]["try_number"] == 1  # no state lost
    _assert_same_tables(data, shape.reference / "data")


def _task_log(airflow: Airflow, run_id: str, task_id: str, attempt: int = 1) -> str:
    folder = airflow.home / "airflow" / "logs" / f"dag_id={DAILY}" / f"run_id={run_id}"
    return (folder / f"task_id={task_id}" / f"attempt={attempt}.log").read_text()


def _written(folder: Path) -> dict[str, int]:
    """Each file of `folder` and when it was last written ({} when there is no folder)."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} if folder.is_dir() else {}


@pytest.mark.faults
def test_mlflow_down_when_the_daily_run_starts_fails_fast_and_scores_nothing(shape):
    airflow = shape.airflow
    scores = shape.home / "data" / "reports" / "photo_scores" / f"date={DAY}"
    before = _written(scores)
    _land_again(shape.reference, shape.home / "data")  # scorable: only MLflow stands in the way
    restarts = len(airflow.restarts)
    _step("stop the MLflow server, then trigger the daily DAG")
    shape.mlflow.stop()
    try:
        run = airflow.trigger(DAILY, {"date": DAY})
        started = time.monotonic()
        airflow.wait(lambda: airflow.task_state(DAILY, run, "resolve_model") in (
            "up_for_retry", "failed"), 600, "resolve_model to fail")
        took = time.monotonic() - started
        message = _task_log(airflow, run, "resolve_model")
        assert "MLFLOW_TRACKING_URI" in message and shape.mlflow.url in message, message[-3000:]
        assert took < 180, took  # fails fast: no long client retries
        assert airflow.task_state(DAILY, run, "score_photos") is None  # never scored
        assert _written(scores) == before
        assert airflow.restarts[restarts:] == [], airflow.logs()  # no part fell with MLflow
        airflow.api("PATCH", f"/dags/{DAILY}/dagRuns/{run}", json={"state": "failed"})
    finally:
        shape.mlflow.start()
