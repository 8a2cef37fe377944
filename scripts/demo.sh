#!/usr/bin/env bash
# `make demo` (after `make setup`): the whole system on this machine, through Airflow.
#
#   1. Airflow's metadata DB under var/airflow (SQLite; created once).
#   2. A production age model: reused if the MLflow registry (var/mlflow) has one (an older file
#      registry in var/registry is imported first), else the `age_model_retrain` DAG trains one
#      with the `quick` training profile (the CPU profile's feature cache on a 3,000-face subset
#      at 128 px), printing one line per epoch with the time left. Its train, evaluate and
#      promotion are MLflow runs and the `production` alias: `make mlflow` shows them.
#   3. A few simulated checkout days in the landing zone (var/data/landing).
#   4. The `checkout_age_daily` DAG for each day (`airflow dags test`): sensor, Spark scoring and
#      reports, data-quality check, retention.
#   5. A summary of the report tables and where they are.
#
# Idempotent: rerunning reuses the model and the landed days and replaces each day's reports.
# Knobs (environment): DEMO_FIRST_DAY, DEMO_DAYS, DEMO_STORES, DEMO_RECEIPTS_PER_STORE,
# DEMO_PROFILE, DEMO_TRAIN_LIMIT, DEMO_IMAGE_SIZE, DEMO_HEAD_EPOCHS, DEMO_EPOCHS, DEMO_MAX_MAE
# (the training ones default to the profile's values, the gate to the settings').
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/airflow_env.sh

AIRFLOW=.venv-airflow/bin/airflow
CLI=.venv/bin/checkout-age
PYTHON=.venv/bin/python
FIRST_DAY="${DEMO_FIRST_DAY:-2026-03-09}"
DAYS="${DEMO_DAYS:-3}"
STORES="${DEMO_STORES:-3}"
RECEIPTS="${DEMO_RECEIPTS_PER_STORE:-60}"
# The retrain DAG's Params: the `quick` profile (model/config.py TRAIN_PROFILES) plus any DEMO_*
# override. Should the candidate miss the real production gate (test MAE <= 8.0), the demo says
# so and promotes it by hand with an explicit override so the daily pipeline has a model;
# production retrains never do that.
DEMO_CONF="$("$PYTHON" - <<'PY'
import json, os

conf = {"profile": os.environ.get("DEMO_PROFILE", "quick")}
for param, env, cast in (("limit", "DEMO_TRAIN_LIMIT", int), ("image_size", "DEMO_IMAGE_SIZE", int),
                         ("head_epochs", "DEMO_HEAD_EPOCHS", int), ("epochs", "DEMO_EPOCHS", int),
                         ("max_mae", "DEMO_MAX_MAE", float)):
    if os.environ.get(env):
        conf[param] = cast(os.environ[env])
print(json.dumps(conf))
PY
)"
LOGS="$AIRFLOW_HOME/demo-logs"
: "${FACES_DIR:?set FACES_DIR to the labelled face set (the Makefile uses ../shared/faces)}"
export AIRFLOW_VAR_CHECKOUT_AGE_FACES_DIR="${AIRFLOW_VAR_CHECKOUT_AGE_FACES_DIR:-$FACES_DIR}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
mkdir -p "$LOGS"
START=$SECONDS

step() { printf '\n== %s\n' "$*"; }
elapsed() { echo "$((SECONDS - $1)) s"; }
failed() {  # failed WHAT LOG: say where to look, show the log's end, stop
    echo "FAILED: $1 (full log: $2); its last lines:" >&2
    grep -v '^\s*$' "$2" | tail -n 25 >&2
    exit 1
}
production_version() { "$CLI" model show production --version-only 2>/dev/null; }

step "Airflow metadata DB: $AIRFLOW_HOME"
"$AIRFLOW" db migrate >"$LOGS/db-migrate.log" 2>&1 || failed "airflow db migrate" "$LOGS/db-migrate.log"
echo "ready"

step "Age model (MLflow store: ${MLFLOW_TRACKING_URI:-$MODEL_REGISTRY})"
OLD_REGISTRY="$PWD/var/registry"  # the file registry of earlier checkouts
if [[ -z "${MLFLOW_TRACKING_URI:-}" && -d "$OLD_REGISTRY/versions" ]] && ! production_version >/dev/null; then
    echo "importing the old file registry $OLD_REGISTRY into MLflow ..."
    "$CLI" model migrate-registry "$OLD_REGISTRY"
fi
if version="$(production_version)"; then
    echo "reusing production model $version (delete $MODEL_REGISTRY to retrain)"
else
    echo "no production model yet: DAG age_model_retrain with $DEMO_CONF ..."
    t0=$SECONDS
    log="$LOGS/age_model_retrain.log"
    "$AIRFLOW" dags test age_model_retrain "$FIRST_DAY" --conf "$DEMO_CONF" >"$log" 2>&1 &
    dag_pid=$!
    # Progress while it trains: the training task's own lines (time estimate, feature cache,
    # one line per epoch with the time left), picked from the DAG log as they are written.
    tail -n +1 -f --pid="$dag_pid" "$log" 2>/dev/null | grep --line-buffered -oE \
        '(estimated [0-9]+ min of .*|activations of [0-9]+ images.*|epoch [0-9]+/[0-9]+ \(.*|time limit reached.*)' \
        | sed -u -e 's/ *\[airflow\.task\..*$//' -e 's/^/  /' || true
    wait "$dag_pid" || failed "DAG age_model_retrain" "$log"
    if ! version="$(production_version)"; then
        candidate="$("$CLI" model list --json | "$PYTHON" -c \
            'import json, sys; print(json.load(sys.stdin)[-1]["version"])')"
        echo "WARNING: the gate refused $candidate (see $log); the demo promotes it anyway" \
            "(--max-mae 99) so the daily runs have a model. Never do this in production."
        "$CLI" model promote "$candidate" --max-mae 99 --tolerance 99 >/dev/null
        version="$(production_version)" || failed "promotion of $candidate" "$log"
    fi
    echo "trained, evaluated and promoted $version in $(elapsed "$t0")"
fi
summary="$("$CLI" model show production)"
head -n 4 <<<"$summary"

step "Simulated checkout days: $DAYS from $FIRST_DAY, $STORES stores x $RECEIPTS customers"
dates=()
for ((i = 0; i < DAYS; i++)); do
    day="$(date -u -d "$FIRST_DAY + $i day" +%F)"
    dates+=("$day")
    if [[ -f "$CHECKOUT_AGE_DATA_ROOT/landing/date=$day/_COMPLETE" ]]; then
        echo "$day: already landed"
    else
        "$CLI" simulate --date "$day" --stores "$STORES" --receipts-per-store "$RECEIPTS" \
            --faces "$FACES_DIR" --root "$CHECKOUT_AGE_DATA_ROOT" --seed "$((1337 + i))" --frames \
            2>"$LOGS/simulate-$day.log" || failed "simulate $day" "$LOGS/simulate-$day.log"
    fi
done

step "DAG checkout_age_daily, one airflow dags test per day"
for day in "${dates[@]}"; do
    t0=$SECONDS
    log="$LOGS/checkout_age_daily-$day.log"
    printf '%s: running ... ' "$day"
    "$AIRFLOW" dags test checkout_age_daily "$day" >"$log" 2>&1 || failed "daily run $day" "$log"
    echo "success in $(elapsed "$t0")"
done

step "Run quality per day"
last="${dates[-1]}"
quality="$("$CLI" query quality --from "${dates[0]}" --to "$last" --format json 2>/dev/null)"
"$PYTHON" - "$quality" <<'PY'
import json, sys

print(f"{'date':<10} {'photos':>6} {'scored':>6} {'quarant.':>8} {'receipts':>8} {'matched':>7} "
      f"{'match':>6}  model")
for r in json.loads(sys.argv[1]):
    print(f"{r['date']:<10} {r['photos_in']:>6} {r['photos_scored']:>6} "
          f"{r['photos_quarantined']:>8} {r['receipts_valid']:>8} {r['receipts_matched']:>7} "
          f"{r['match_rate'] or 0:>6.1%}  {r['model_version']}")
PY

step "Compliance: cashiers with flagged restricted sales (predicted age < 25), all days"
"$CLI" query compliance --from "${dates[0]}" --to "$last" 2>/dev/null \
    | awk 'NR <= 3 || $6 > 0' | head -n 15

step "What each age group buys more than average (top 3 categories by lift), all days"
"$CLI" query recommendations --from "${dates[0]}" --to "$last" --kind category --top 3 2>/dev/null \
    | head -n 30

html="$CHECKOUT_AGE_DATA_ROOT/html/report-$last.html"  # rendered by the DAG's render_report task

step "Where things are"
cat <<EOF
report tables   $CHECKOUT_AGE_DATA_ROOT/reports/<table>/date=YYYY-MM-DD/*.parquet
                ($(ls "$CHECKOUT_AGE_DATA_ROOT/reports" | tr '\n' ' '))
HTML report     $html
landing zone    $CHECKOUT_AGE_DATA_ROOT/landing/date=YYYY-MM-DD/
runs + models   ${MLFLOW_TRACKING_URI:-$MODEL_REGISTRY}   (.venv/bin/checkout-age model list)
MLflow UI       make mlflow   (http://127.0.0.1:5000: experiment checkout-age, model checkout-age@production)
Airflow logs    $AIRFLOW_HOME/logs   demo logs: $LOGS
more queries    .venv/bin/checkout-age query --help
Airflow UI      make airflow
EOF
echo
echo "demo finished in $(elapsed "$START")"
