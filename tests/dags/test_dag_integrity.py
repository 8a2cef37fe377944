"""DAG integrity: the files parse, wire the expected tasks, follow the retry/tag policy and stay light."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jinja2
import jinja2.sandbox
import pytest
from airflow.models import DagBag

from jobs.cli import registry as cli_registry
from jobs.cli import training
from jobs.cli.registry import EXIT_GATE_REFUSED

PROJECT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = PROJECT / "dags"
JOBS_VENV = PROJECT / ".venv"

EXPECTED_DOWNSTREAM = {
    "checkout_age_daily": {
        "wait_for_landing": {"resolve_model"},
        "resolve_model": {"score_photos"},
        "score_photos": {"build_reports"},
        "build_reports": {"detect_drift"},
        "detect_drift": {"check_quality"},
        "check_quality": {"minimise_photos"},
        "minimise_photos": {"build_rollups"},
        "build_rollups": {"render_report"},
        "render_report": {"apply_retention"},
        "apply_retention": set(),
    },
    "checkout_age_backfill": {
        "check_landings": {"resolve_model"},
        "resolve_model": {"score_days"},
        "score_days": {"build_reports"},
        "build_reports": {"check_days"},
        "check_days": {"build_rollups"},
        "build_rollups": set(),
    },
    "age_model_retrain": {
        "validate_faces": {"train_candidate"},
        "train_candidate": {"evaluate_candidate"},
        "evaluate_candidate": {"promote_candidate"},
        "promote_candidate": set(),
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
    assert dag.max_active_runs == {"checkout_age_daily": 2, "checkout_age_backfill": 1,
                                   "age_model_retrain": 1}[dag_id]
    assert not dag.catchup
    for task in dag.tasks:
        assert task.retries >= 2, task.task_id
        assert task.retry_exponential_backoff >= 2, task.task_id


def test_daily_params_default_to_the_logical_date_and_the_production_alias(dagbag):
    from model.lifecycle.registry import PRODUCTION

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
    assert resolve.bash_command.endswith("model show {{ params.model_version }} --pin")
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
    # run_quality records the version id, the part of the pin before its run id.
    template = jinja2.sandbox.SandboxedEnvironment().from_string(
        dag.task_dict["check_quality"].bash_command)
    ti = SimpleNamespace(xcom_pull=lambda task_ids: f"v0002@{'a' * 32}")
    rendered = template.render(ti=ti, params={"date": "2026-03-14"}, var=SimpleNamespace(
        value=SimpleNamespace(get=lambda name, default="": "/data")))
    assert rendered.endswith("--model-version v0002")
    for task_id in ("score_photos", "build_reports"):
        spark = dag.get_task(task_id)
        assert type(spark).__name__ == "SparkSubmitOperator"
        assert spark._conn_id == "spark_default"
        assert spark._spark_binary.endswith("/.venv/bin/spark-submit")
        assert spark.env_vars["PYSPARK_PYTHON"].endswith("/.venv/bin/python")
        # The driver JVM runs with the jobs' own options (one constant, copied in the DAG file).
        from jobs.daily.spark import driver_jvm_options

        assert spark.env_vars["SPARK_SUBMIT_OPTS"] == os.environ.get(
            "SPARK_SUBMIT_OPTS", driver_jvm_options(spark.env_vars["PYSPARK_PYTHON"]))


def test_backfill_params_must_name_the_days_and_refuse_what_is_unsafe(dagbag):
    from airflow.sdk.definitions.param import ParamValidationError

    dag = dagbag.dags["checkout_age_backfill"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # by hand only
    params = dag.params
    assert set(params.dump()) == {"date_from", "date_to", "model_version"}
    for name in ("date_from", "date_to"):
        day = params.get_param(name)
        assert day.resolve("2026-03-14") == "2026-03-14"
        for bad in (None, "14.03.2026", "2026-03-14; rm -rf /"):
            with pytest.raises(ParamValidationError):
                day.resolve(bad)


def test_backfill_runs_each_spark_job_once_for_the_range_with_the_pinned_version(dagbag):
    dag = dagbag.dags["checkout_age_backfill"]
    score, reports = dag.get_task("score_days"), dag.get_task("build_reports")
    assert " ".join(score.application_args).startswith(
        "--date {{ params.date_from }} --to {{ params.date_to }} --root ")
    assert "--model {{ ti.xcom_pull(task_ids='resolve_model') }}" in " ".join(
        score.application_args)
    assert " ".join(reports.application_args).startswith(
        "--date {{ params.date_from }} --to {{ params.date_to }} --root ")
    daily = dagbag.dags["checkout_age_daily"].get_task("score_photos")
    for spark in (score, reports):
        assert spark._conn_id == "spark_default" and spark.env_vars == daily.env_vars
    assert dag.get_task("resolve_model").bash_command == dagbag.dags[
        "checkout_age_daily"].get_task("resolve_model").bash_command


def _run_rendered(command: str, tmp_path: Path, first: str, last: str,
                  fail_on: str = "") -> tuple[subprocess.CompletedProcess, list[str]]:
    """`command` rendered for the range, its CLI a stub that logs each call (and fails one)."""
    stub, calls = tmp_path / "checkout-age", tmp_path / "calls.log"
    stub.write_text(f'#!/bin/bash\necho "$*" >> {calls}\n'
                    f'[[ -n "{fail_on}" && "$*" == *"{fail_on}"* ]] && exit 1\nexit 0\n')
    stub.chmod(0o755)
    ti = SimpleNamespace(xcom_pull=lambda task_ids: f"v0002@{'a' * 32}")
    rendered = jinja2.sandbox.SandboxedEnvironment().from_string(command).render(
        ti=ti, params={"date_from": first, "date_to": last, "model_version": "production"},
        var=SimpleNamespace(value=SimpleNamespace(get=lambda name, default="": "/data")))
    rendered = rendered.replace(str(JOBS_VENV / "bin" / "checkout-age"), str(stub))
    done = subprocess.run(["bash", "-c", rendered], capture_output=True, text=True, timeout=60)
    return done, calls.read_text().splitlines() if calls.exists() else []


def test_backfill_steps_each_day_in_order_and_stop_at_a_failing_one(dagbag, tmp_path):
    dag = dagbag.dags["checkout_age_backfill"]
    check_days = dag.get_task("check_days").bash_command
    done, calls = _run_rendered(check_days, tmp_path, "2026-02-27", "2026-03-01")
    assert done.returncode == 0, done.stderr
    days = [call.split("--date ")[1].split()[0] for call in calls]
    assert days == ["2026-02-27"] * 4 + ["2026-02-28"] * 4 + ["2026-03-01"] * 4
    assert [call.split(" --date")[0] for call in calls[:4]] == [
        "drift", "check-quality", "minimise-photos", "report html"]
    assert calls[1].endswith("--root /data --model-version v0002")

    # A day failing its quality check stops the run there: its photos are not minimised.
    (tmp_path / "bad").mkdir()
    done, calls = _run_rendered(check_days, tmp_path / "bad", "2026-03-14", "2026-03-16",
                                fail_on="check-quality --date 2026-03-15")
    assert done.returncode != 0
    assert calls[-1].startswith("check-quality --date 2026-03-15")
    assert not any("2026-03-16" in call for call in calls)

    landings = dag.get_task("check_landings").bash_command
    (tmp_path / "back").mkdir()
    done, calls = _run_rendered(landings, tmp_path / "back", "2026-03-16", "2026-03-14")
    assert done.returncode == 2 and calls == []
    assert "date_to 2026-03-14 is before date_from 2026-03-16" in done.stderr


def test_retrain_dag_promotion_updates_the_production_asset(dagbag):
    dag = dagbag.dags["age_model_retrain"]
    assert dag.timetable.expression == "0 0 * * 0"
    promote = dag.get_task("promote_candidate")
    assert [asset.name for asset in promote.outlets] == ["age_model_production"]
    assert promote.skip_on_exit_code == [EXIT_GATE_REFUSED]  # the command's own refusal code
    for task in dag.tasks:
        assert not task.outlets or task is promote


# --------------------------------------------------------------------------- retrain: settings
# The retrain DAG's Params default to "use the setting": each rendered command is parsed by the
# real `model` command parser and resolved against `load_settings()`, as the task would.
def _render(command: str, conf: dict, dag) -> list[str]:
    params = {**dag.params.dump(), **conf}
    context = {"params": params, "var": SimpleNamespace(value=SimpleNamespace(
        get=lambda name, default="": "/data/faces")),
        "ti": SimpleNamespace(xcom_pull=lambda task_ids: "v0002")}
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(command)
    return shlex.split(text.render(**context))


def _model_args(dag, task_id: str, conf: dict) -> argparse.Namespace:
    words = _render(dag.get_task(task_id).bash_command, conf, dag)
    assert words[0].endswith("/.venv/bin/checkout-age") and words[1] == "model"
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="model_command")
    training.add_commands(commands)
    cli_registry.add_commands(commands)
    return parser.parse_args(words[2:])


def test_retrain_params_default_to_the_settings(dagbag):
    dag = dagbag.dags["age_model_retrain"]
    assert set(dag.params.dump()) >= {"profile", "image_size", "epochs", "head_epochs",
                                      "backbone", "max_mae", "tolerance", "limit", "faces_dir",
                                      "teachers", "distill_weight"}
    unset = [name for name, value in dag.params.dump().items() if value is not None]
    assert unset == []  # None everywhere: the setting (or the profile) decides
    args = _model_args(dag, "train_candidate", {})
    assert (args.profile, args.size, args.epochs, args.backbone) == (None, None, None, None)
    assert (args.teachers, args.distill_weight) == (None, None)
    assert args.version_only and str(args.faces) == "/data/faces"


def test_a_retrain_can_distil_registered_versions(dagbag):
    from model.config import load_settings

    dag = dagbag.dags["age_model_retrain"]
    args = _model_args(dag, "train_candidate", {"teachers": ["v0002", "production"],
                                                "distill_weight": 0.7})
    config = training.train_config_from_args(args, load_settings())
    assert (config.teachers, config.distill_weight) == (("v0002", "production"), 0.7)
    # The trigger form's schema keeps a teacher's name safe on the command line.
    from airflow.sdk.definitions.param import ParamValidationError

    assert dag.params.get_param("teachers").resolve(["v0002"]) == ["v0002"]
    with pytest.raises(ParamValidationError):
        dag.params.get_param("teachers").resolve(["v0002; rm -rf /"])
    with pytest.raises(ParamValidationError):
        dag.params.get_param("distill_weight").resolve(1.5)


def test_an_environment_override_reaches_a_scheduled_retrain(dagbag, monkeypatch, tmp_path):
    from model.config import TRAIN_PROFILES, load_settings

    dag = dagbag.dags["age_model_retrain"]
    for name, value in {"TRAIN_PROFILE": "gpu", "IMAGE_SIZE": "128", "BACKBONE": "resnet50",
                        "GATE_MAX_MAE": "6.5"}.items():
        monkeypatch.setenv(f"CHECKOUT_AGE_{name}", value)
    config = training.train_config_from_args(_model_args(dag, "train_candidate", {}),
                                             load_settings())
    assert (config.profile, config.size, config.backbone) == ("gpu", 128, "resnet50")
    assert config.epochs == TRAIN_PROFILES["gpu"]["epochs"] and not config.feature_cache
    # A Param given at trigger time still wins over the setting.
    config = training.train_config_from_args(
        _model_args(dag, "train_candidate", {"image_size": 96, "profile": "quick"}),
        load_settings())
    assert (config.profile, config.size, config.feature_cache) == ("quick", 96, True)
    # The gate: a candidate at 7.0 passes the default 8.0 but not CHECKOUT_AGE_GATE_MAX_MAE=6.5.
    # The task's own command runs in the jobs venv (MLflow lives there, not in Airflow's).
    monkeypatch.setenv("MODEL_REGISTRY", str(tmp_path / "mlflow"))
    model_file = tmp_path / "model.keras"
    model_file.write_bytes(b"not loaded by promote")
    register_two = ("import sys; from model.lifecycle.registry import ModelRegistry; "
                    "r = ModelRegistry(sys.argv[1]); "
                    "[r.register(sys.argv[2], {'test': {'mae': 7.0}}, {}, 'f' * 64, '#', []) "
                    "for _ in range(2)]")
    subprocess.run([str(JOBS_VENV / "bin" / "python"), "-c", register_two,
                    str(tmp_path / "mlflow"), str(model_file)], check=True, cwd=PROJECT)
    args = _model_args(dag, "promote_candidate", {})
    assert args.version == "v0002" and args.max_mae is None
    promote = _render(dag.get_task("promote_candidate").bash_command, {}, dag)
    refused = subprocess.run(promote, capture_output=True, text=True)
    assert refused.returncode == EXIT_GATE_REFUSED, refused.stderr[-2000:]
    assert "above the maximum 6.50" in refused.stdout
    monkeypatch.delenv("CHECKOUT_AGE_GATE_MAX_MAE")
    promoted = subprocess.run(promote, capture_output=True, text=True)
    assert promoted.returncode == 0, promoted.stderr[-2000:]


def test_a_retrain_that_cannot_finish_in_the_task_timeout_is_refused(dagbag):
    from model.config import Settings
    from model.training.profiles import estimate_minutes, train_config

    dag = dagbag.dags["age_model_retrain"]
    task = dag.get_task("train_candidate")
    args = _model_args(dag, "train_candidate", {})
    assert 0 < args.max_minutes * 60 < task.execution_timeout.total_seconds()
    whole_set = {"train": 16922, "valid": 2063, "test": 2108}  # ../shared/faces, usable rows
    assert estimate_minutes(train_config(Settings(), "cpu"), whole_set) < args.max_minutes / 2
    assert estimate_minutes(train_config(Settings(), "gpu"), whole_set) > args.max_minutes


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


def test_a_job_server_takes_the_spark_tasks_through_the_cli(monkeypatch):
    monkeypatch.setenv("CHECKOUT_AGE_JOB_SERVER", "http://spark-host:15050")
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    cli = f"{JOBS_VENV}/bin/checkout-age"
    daily, backfill = bag.dags["checkout_age_daily"], bag.dags["checkout_age_backfill"]
    score = daily.get_task("score_photos").bash_command
    assert score.startswith(f"{cli} score --date {{{{ params.date or ds")
    assert "--model {{ ti.xcom_pull(task_ids='resolve_model') }}" in score
    assert score.endswith(" --server http://spark-host:15050")
    assert daily.get_task("build_reports").bash_command.startswith(f"{cli} reports --date ")
    assert backfill.get_task("score_days").bash_command.startswith(
        f"{cli} score --date {{{{ params.date_from }}}} --to {{{{ params.date_to }}}} --root ")
    # The wiring stays the same; without the variable, spark-submit as before.
    assert {t: set(daily.get_task(t).downstream_task_ids) for t in daily.task_ids} == (
        EXPECTED_DOWNSTREAM["checkout_age_daily"])
    monkeypatch.delenv("CHECKOUT_AGE_JOB_SERVER")
    plain = DagBag(dag_folder=str(DAGS_FOLDER)).dags["checkout_age_daily"]
    assert type(plain.get_task("score_photos")).__name__ == "SparkSubmitOperator"
