"""DAG integrity: the files parse, wire the expected tasks, follow the retry/tag policy and stay light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.models import DagBag

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"

EXPECTED_DOWNSTREAM = {
    "checkout_age_daily": {
        "wait_for_landing": {"resolve_model"},
        "resolve_model": {"score_photos"},
        "score_photos": {"build_reports"},
        "build_reports": {"check_quality"},
        "check_quality": {"render_report"},
        "render_report": {"apply_retention"},
        "apply_retention": set(),
    },
    "age_model_retrain": {
        "validate_faces": {"train_candidate"},
        "train_candidate": {"evaluate_candidate"},
        "evaluate_candidate": {"promote_candidate"},
        "promote_candidate": set(),
    },
}
EXPECTED_PARAMS = {
    "age_model_retrain": {
        "faces_dir": None, "image_size": 160, "epochs": 30, "head_epochs": 2, "limit": None,
        "backbone": "mobilenet_v2", "max_mae": 8.0, "tolerance": 0.10,
    },
}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_every_dag_file_imports(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == set(EXPECTED_DOWNSTREAM)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DOWNSTREAM))
def test_tasks_are_wired_in_order(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    wiring = {task.task_id: set(task.downstream_task_ids) for task in dag.tasks}
    assert wiring == EXPECTED_DOWNSTREAM[dag_id]


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DOWNSTREAM))
def test_policy_retries_backoff_tags_docs(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert "checkout-age" in dag.tags and len(dag.tags) >= 2
    assert dag.doc_md and dag.doc_md.strip().startswith(f"### {dag_id}")
    assert dag.max_active_runs == {"checkout_age_daily": 2, "age_model_retrain": 1}[dag_id]
    assert not dag.catchup
    for task in dag.tasks:
        assert task.retries >= 2, task.task_id
        assert task.retry_exponential_backoff >= 2, task.task_id


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_PARAMS))
def test_params_and_defaults(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.params.dump() == EXPECTED_PARAMS[dag_id]


def test_daily_params_default_to_the_logical_date_and_the_production_alias(dagbag):
    from model.registry import PRODUCTION

    params = dagbag.dags["checkout_age_daily"].params
    assert set(params.dump()) == {"date", "model_version"}
    assert params.get_param("date").resolve() is None  # None: the run's logical date
    assert params.get_param("model_version").resolve() == PRODUCTION


def test_daily_params_refuse_what_is_unsafe_on_a_command_line(dagbag):
    from airflow.sdk.definitions.param import ParamValidationError

    params = dagbag.dags["checkout_age_daily"].params
    version, day = params.get_param("model_version"), params.get_param("date")
    assert version.resolve("v0003") == "v0003"
    assert day.resolve("2026-03-14") == "2026-03-14"
    for bad in ("v3", "latest", "production; rm -rf /", "v0003 --root /tmp"):
        with pytest.raises(ParamValidationError):
            version.resolve(bad)
    for bad in ("14.03.2026", "2026-03-14; rm -rf /"):
        with pytest.raises(ParamValidationError):
            day.resolve(bad)


def test_daily_dag_resolves_the_model_by_a_command_not_a_shell_pipe(dagbag):
    resolve = dagbag.dags["checkout_age_daily"].get_task("resolve_model")
    assert resolve.bash_command.endswith("model show {{ params.model_version }} --version-only")
    assert "|" not in resolve.bash_command and "python" not in resolve.bash_command


def test_daily_dag_is_one_run_per_day_and_waits_for_the_landing_marker(dagbag):
    dag = dagbag.dags["checkout_age_daily"]
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression == "0 0 * * *"
    sensor = dag.get_task("wait_for_landing")
    assert sensor.mode == "reschedule"
    assert sensor.timeout <= 24 * 3600 and sensor.poke_interval >= 60
    assert "landing-ready --date {{ params.date or ds |" in sensor.bash_command
    assert sensor.retry_exit_code == 3
    # Every step after resolve_model uses the version it pinned, not the moving alias.
    pinned = "--model {{ ti.xcom_pull(task_ids='resolve_model') }}"
    assert pinned in " ".join(dag.task_dict["score_photos"].application_args)
    assert pinned.replace("--model", "--model-version") in dag.task_dict["check_quality"].bash_command
    for task_id in ("score_photos", "build_reports"):
        spark = dag.get_task(task_id)
        assert type(spark).__name__ == "SparkSubmitOperator"
        assert spark._conn_id == "spark_default"
        assert spark._spark_binary.endswith("/.venv/bin/spark-submit")
        assert spark.env_vars["PYSPARK_PYTHON"].endswith("/.venv/bin/python")


def test_retrain_dag_promotion_updates_the_production_asset(dagbag):
    dag = dagbag.dags["age_model_retrain"]
    assert dag.timetable.expression == "0 0 * * 0"
    promote = dag.get_task("promote_candidate")
    assert [asset.name for asset in promote.outlets] == ["age_model_production"]
    assert promote.skip_on_exit_code == [99]
    for task in dag.tasks:
        assert not task.outlets or task is promote


# A fresh interpreter per DAG file: import Airflow first (paid once by the DAG processor), then
# time the DAG module alone and list what it pulled in.
_PROBE = """
import importlib.util, json, sys, time
import airflow.sdk
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("probe_dag", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
seconds = time.perf_counter() - start
heavy = sorted({m.split(".")[0] for m in sys.modules}
               & {"tensorflow", "keras", "pyspark", "jobs", "model", "pandas", "torch", "jax"})
print(json.dumps({"seconds": seconds, "heavy": heavy}))
"""


@pytest.mark.parametrize("dag_file", ["checkout_age_daily.py", "age_model_retrain.py"])
def test_parsing_a_dag_imports_nothing_heavy_and_is_quick(dag_file):
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(DAGS_FOLDER / dag_file)],
        check=True, capture_output=True, text=True,
    ).stdout
    probe = json.loads(out.strip().splitlines()[-1])
    assert probe["heavy"] == []
    assert probe["seconds"] < 2.0, probe
