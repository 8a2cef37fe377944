"""
### checkout_age_daily: one checkout day, from landed photos and receipts to report tables

One run per logical date `ds`, the day whose data is processed (the run starts when that day ends).
Every task reads and replaces only that day's partitions: reruns, catch-up and backfills are safe.

1. `wait_for_landing`: waits (reschedule mode) for `ROOT/landing/date=ds/_COMPLETE`; fails at once
   when retention already deleted that day's photos (re-scoring would empty its reports).
2. `resolve_model`: pins the model version for the whole run to the run that produced it
   (Param `model_version`, default `production`; XCom `v0003@<run id>`: the score job reads the
   version's files without MLflow); `run_quality.model_version` records the version.
3. `score_photos`, `build_reports`: Spark jobs; master and settings come from the `spark_default`
   connection (a cluster needs no code change). With `CHECKOUT_AGE_JOB_SERVER` set where the DAG
   is parsed, both are sent to that warm `checkout-age job-server` instead (no Spark start-up
   per day; a day runs alone when the server does not answer).
4. `detect_drift`: the day's ages and no-face rate per store and lane vs the 28 days before
   (`age_drift`).
5. `check_quality`: fails the run when counts do not add up or the match rate is below the floor;
   drift alarms are printed as warnings.
6. `minimise_photos`: deletes the day's photos not tied to a flagged restricted sale (setting
   `photo_minimisation`); the day can then not be scored again.
7. `build_rollups`: rebuilds the monthly rollups of `ds`'s month (queries over a year stay fast).
8. `render_report`: the day's HTML report (`ROOT/html/report-ds.html`) and the week-to-date one
   (`report-MONDAY..ds.html`), self-contained, no images.
9. `apply_retention`: deletes landing photos older than `photo_retention_days` before `ds`.

Manual trigger Params: `date` (another day than the logical date), `model_version`.
Data root: Variable `checkout_age_data_root` (env `AIRFLOW_VAR_CHECKOUT_AGE_DATA_ROOT`).

This file also defines `checkout_age_backfill` (below, its own doc): a range of days in one
Spark application per job.
"""

from __future__ import annotations

import os
import shlex
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.sensors.bash import BashSensor
from airflow.sdk import DAG, CronDataIntervalTimetable, Param

PROJECT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("CHECKOUT_AGE_JOBS_VENV") or PROJECT / ".venv")  # the jobs venv
CLI = f"{VENV}/bin/checkout-age"
# Templates, rendered when a task runs. A manual run without a logical date needs Param `date`.
RUN_DATE = "{{ params.date or ds | default('no-date:set-Param-date-or-a-logical-date') }}"
ROOT = "{{ var.value.get('checkout_age_data_root', '%s') }}" % (PROJECT / "var" / "data")
# resolve_model's XCom pins the version to its run ("v0003@<run id>"): the score job resolves a
# pin from local files without importing MLflow, and refuses it if the version changed meanwhile.
MODEL = "{{ ti.xcom_pull(task_ids='resolve_model') }}"
MODEL_VERSION = "{{ ti.xcom_pull(task_ids='resolve_model').split('@')[0] }}"  # v0003
DAY = f"--date {RUN_DATE} --root {ROOT}"
SPARK = {
    "conn_id": "spark_default",
    "spark_binary": f"{VENV}/bin/spark-submit",
    "env_vars": {
        "SPARK_HOME": f"{VENV}/lib/python3.11/site-packages/pyspark",
        "PYSPARK_PYTHON": f"{VENV}/bin/python",
        "PYSPARK_DRIVER_PYTHON": f"{VENV}/bin/python",
        "PYTHONHASHSEED": "0",
        # The driver JVM's options, as jobs/daily/spark.py driver_jvm_options gives them (this
        # file stays free of project imports): C1 only, the serial collector, the jobs venv's
        # class-data archive (jobs/daily/jvm_archive.py; none yet: ignored), JVM warnings on
        # stderr. The worker's own SPARK_SUBMIT_OPTS wins.
        "SPARK_SUBMIT_OPTS": os.environ.get(
            "SPARK_SUBMIT_OPTS", f"-XX:TieredStopAtLevel=1 -XX:+UseSerialGC "
            f"-XX:SharedArchiveFile={VENV}/spark-cds.jsa -Xlog:disable -Xlog:all=warning:stderr"),
    },
}
# One model version Param and one retry policy for both DAGs.
MODEL_VERSION_PARAM = Param(
    "production", type="string", pattern=r"^(production|v\d{4,})$",
    description="Registry version (e.g. v0003) or 'production'")
RETRIES = {"retries": 2, "retry_delay": timedelta(minutes=2),
           "retry_exponential_backoff": 2.0, "max_retry_delay": timedelta(minutes=30)}


def resolve_model_task() -> BashOperator:
    """`resolve_model`: prints the pinned version alone, the task's XCom (`MODEL` reads it)."""
    return BashOperator(task_id="resolve_model",
                        bash_command=f"{CLI} model show {{{{ params.model_version }}}} --pin")


# `checkout-age job-server`'s URL (docs/serving.md), read when the file is parsed: the Spark
# tasks send their days to that warm application through the CLI (`--server`), which runs a day
# as its own application on CHECKOUT_AGE_SPARK_MASTER where the server does not answer. Unset:
# spark-submit on the `spark_default` connection.
JOB_SERVER = os.environ.get("CHECKOUT_AGE_JOB_SERVER") or None
JOB_COMMANDS = {"score_photos.py": "score", "reports.py": "reports"}


def spark_job(task_id: str, script: str, days: list[str], label: str,
              *args: str) -> SparkSubmitOperator | BashOperator:
    """Daily Spark job `script` on `days` (`--date D`, or `--date D1 --to D2` for a range):
    spark-submit, or the CLI sending it to `JOB_SERVER`."""
    if JOB_SERVER:
        return BashOperator(
            task_id=task_id,
            bash_command=" ".join([CLI, JOB_COMMANDS[script], *days, "--root", ROOT, *args,
                                   "--server", shlex.quote(JOB_SERVER)]))
    return SparkSubmitOperator(
        task_id=task_id,
        application=str(PROJECT / "jobs" / "daily" / script),
        application_args=[*days, "--root", ROOT, *args],
        name=f"checkout-age-{label}",
        **SPARK,
    )


with DAG(
    dag_id="checkout_age_daily",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),  # ds = the day processed
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,  # a rerun or catch-up day need not wait behind a run waiting for its landing
    tags=["checkout-age", "daily", "spark"],
    params={  # the schemas keep trigger-form input safe to put on a command line
        "date": Param(None, type=["null", "string"], format="date",
                      description="Process this day (YYYY-MM-DD) instead of the logical date"),
        "model_version": MODEL_VERSION_PARAM,
    },
    default_args=RETRIES,
) as dag:
    wait_for_landing = BashSensor(
        task_id="wait_for_landing",
        bash_command=f"{CLI} landing-ready {DAY}",
        retry_exit_code=3,  # 3: not landed yet, poke again; any other failure fails at once
        mode="reschedule",
        poke_interval=timedelta(minutes=5),
        timeout=timedelta(hours=12),
    )
    resolve_model = resolve_model_task()
    score_photos = spark_job("score_photos", "score_photos.py", ["--date", RUN_DATE],
                             f"score-{RUN_DATE}", "--model", MODEL)
    build_reports = spark_job("build_reports", "reports.py", ["--date", RUN_DATE],
                              f"reports-{RUN_DATE}")
    detect_drift = BashOperator(task_id="detect_drift", bash_command=f"{CLI} drift {DAY}")
    check_quality = BashOperator(
        task_id="check_quality", bash_command=f"{CLI} check-quality {DAY} --model-version {MODEL_VERSION}"
    )
    minimise_photos = BashOperator(task_id="minimise_photos",
                                   bash_command=f"{CLI} minimise-photos {DAY}")
    build_rollups = BashOperator(task_id="build_rollups", bash_command=f"{CLI} rollup {DAY}")
    render_report = BashOperator(
        task_id="render_report",
        bash_command=f"{CLI} report html {DAY} && {CLI} report html {DAY} --week-to-date",
    )
    apply_retention = BashOperator(task_id="apply_retention", bash_command=f"{CLI} retention {DAY}")

    wait_for_landing >> resolve_model >> score_photos >> build_reports >> detect_drift
    detect_drift >> check_quality >> minimise_photos >> build_rollups >> render_report
    render_report >> apply_retention


BACKFILL_DOC = """
### checkout_age_backfill: a range of landed days, each Spark job one application for all of them

Manual only (Params `date_from`, `date_to`, `model_version`). For the days that landed while
the pipeline was down or a new store's history: the daily DAG run per day pays Spark's start-up
(about 10 s of a 1,200-photo day's 24 s) every day; here each Spark job starts once for the
whole range (`--date D1 --to D2`; docs/serving.md). Each day is still replaced on its own.

1. `check_landings`: every day of the range has landed and still has its photos, else the run
   fails at once naming the day (before any Spark job).
2. `resolve_model`: pins one version for the whole range, as the daily DAG does.
3. `score_days`, `build_reports`: one Spark application each for the range.
4. `check_days`: per day, in order: drift, check-quality (stops the run at a bad day), photo
   minimisation, the day's HTML report.
5. `build_rollups`: the monthly rollups of the range.

Photo retention stays with the daily DAG. At most 366 days per run.
"""
FIRST, LAST = "{{ params.date_from }}", "{{ params.date_to }}"
# Each day of the range in turn (ISO dates compare as strings; GNU date steps the day).
# A range given backwards fails here, naming both days; `set -e` ends the run at a failing step.
EACH_DAY = (f'set -eu; if [[ "{FIRST}" > "{LAST}" ]]; then echo "date_to {LAST} is before '
            f'date_from {FIRST}" >&2; exit 2; fi; day={FIRST}; while [[ ! "$day" > "{LAST}" ]]; '
            'do %s; day=$(date -I -d "$day + 1 day"); done')
ON_DAY = f'--date "$day" --root {ROOT}'
RANGE = ["--date", FIRST, "--to", LAST]


def backfill_dag() -> DAG:
    """`checkout_age_backfill` (`BACKFILL_DOC`); its task names are the daily DAG's."""
    with DAG(
        dag_id="checkout_age_backfill",
        doc_md=BACKFILL_DOC,
        schedule=None,  # by hand only
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,  # two backfills of the same days would wait on each other's locks
        tags=["checkout-age", "backfill", "spark"],
        params={  # the schemas keep trigger-form input safe to put on a command line
            # No defaults: a run must name its days.
            "date_from": Param(type="string", format="date", description="First day, YYYY-MM-DD"),
            "date_to": Param(type="string", format="date", description="Last day, YYYY-MM-DD"),
            "model_version": MODEL_VERSION_PARAM,
        },
        default_args=RETRIES,
    ) as dag:
        check_landings = BashOperator(
            task_id="check_landings",
            bash_command=EACH_DAY % f"{CLI} landing-ready {ON_DAY}",
        )
        resolve_model = resolve_model_task()
        score_days = spark_job("score_days", "score_photos.py", RANGE, f"score-{FIRST}..{LAST}",
                               "--model", MODEL)
        build_reports = spark_job("build_reports", "reports.py", RANGE, f"reports-{FIRST}..{LAST}")
        check_days = BashOperator(
            task_id="check_days",
            bash_command=EACH_DAY % "; ".join([
                f"{CLI} drift {ON_DAY}",
                f"{CLI} check-quality {ON_DAY} --model-version {MODEL_VERSION}",
                f"{CLI} minimise-photos {ON_DAY}",
                f"{CLI} report html {ON_DAY}",
            ]),
        )
        build_rollups = BashOperator(
            task_id="build_rollups",
            bash_command=f"{CLI} rollup --from {FIRST} --to {LAST} --root {ROOT}",
        )

        check_landings >> resolve_model >> score_days >> build_reports >> check_days
        check_days >> build_rollups
    return dag


backfill = backfill_dag()
