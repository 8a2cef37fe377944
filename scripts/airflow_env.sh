# Environment of the embedded Airflow: `source scripts/airflow_env.sh` (used by demo.sh, airflow.sh).
#
# Local default: SQLite metadata DB and logs under var/airflow, DAGs from dags/, Spark local[*],
# data under var/data, runs and the model registry in the MLflow store var/mlflow. Every value
# already set in the caller's environment wins, so the same DAGs run against a cluster by
# exporting other values first (docs/running-at-scale.md).

_project_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CHECKOUT_AGE_PROJECT_DIR="${CHECKOUT_AGE_PROJECT_DIR:-$_project_dir}"
unset _project_dir

# Airflow itself (Airflow venv).
export AIRFLOW_HOME="${AIRFLOW_HOME:-$CHECKOUT_AGE_PROJECT_DIR/var/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$CHECKOUT_AGE_PROJECT_DIR/dags}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
# Sized for a 2-core machine: a Spark job already uses every core, so one task at a time per DAG
# (a sensor waiting in reschedule mode holds no slot).
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-2}"
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG="${AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG:-1}"
export AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="${AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES:-1}"
export AIRFLOW__API__WORKERS="${AIRFLOW__API__WORKERS:-1}"
# The API server and UI listen on loopback only: the login page is not on the network unless
# asked for (`make airflow AIRFLOW_HOST=0.0.0.0`, or AIRFLOW__API__HOST).
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-${AIRFLOW_HOST:-127.0.0.1}}"
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="${AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT:-60}"
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"

# Spark: master and settings come from this connection (a cluster needs only another value).
if [[ -z "${AIRFLOW_CONN_SPARK_DEFAULT:-}" ]]; then
    export AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[*]"}'
fi
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"

# The jobs (jobs venv): data root and the MLflow store (runs + model registry; MLFLOW_TRACKING_URI
# points every command at a shared server instead), read by the checkout-age commands (model/config.py)
# and by the DAGs through the Airflow Variables below.
export CHECKOUT_AGE_JOBS_VENV="${CHECKOUT_AGE_JOBS_VENV:-$CHECKOUT_AGE_PROJECT_DIR/.venv}"
export CHECKOUT_AGE_DATA_ROOT="${CHECKOUT_AGE_DATA_ROOT:-$CHECKOUT_AGE_PROJECT_DIR/var/data}"
export MODEL_REGISTRY="${MODEL_REGISTRY:-$CHECKOUT_AGE_PROJECT_DIR/var/mlflow}"
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"  # MLflow never calls out
export AIRFLOW_VAR_CHECKOUT_AGE_DATA_ROOT="${AIRFLOW_VAR_CHECKOUT_AGE_DATA_ROOT:-$CHECKOUT_AGE_DATA_ROOT}"
if [[ -n "${FACES_DIR:-}" ]]; then
    export AIRFLOW_VAR_CHECKOUT_AGE_FACES_DIR="${AIRFLOW_VAR_CHECKOUT_AGE_FACES_DIR:-$FACES_DIR}"
fi
