#!/usr/bin/env bash
# `make airflow`: Airflow standalone (API server + UI, scheduler, DAG processor, triggerer) on this
# machine with the project's DAGs, until Ctrl-C.
#
# Standalone runs in its own process group, so Ctrl-C reaches only this script, which then stops it by
# PID: SIGINT to standalone (its graceful shutdown), a grace period, then SIGTERM and finally SIGKILL
# to whatever is left of the processes it started, never to anything else.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/airflow_env.sh

export PATH="$PWD/.venv-airflow/bin:$PATH"  # standalone starts its parts as `airflow ...`
AIRFLOW=.venv-airflow/bin/airflow
PORT="${AIRFLOW__API__PORT:-8080}"
HOST="$AIRFLOW__API__HOST"  # 127.0.0.1 unless AIRFLOW_HOST / AIRFLOW__API__HOST open it up
HEALTH="http://127.0.0.1:$PORT/api/v2/monitor/health"
LOG="$AIRFLOW_HOME/standalone.log"
PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
mkdir -p "$AIRFLOW_HOME"

if curl -s -o /dev/null "$HEALTH"; then
    echo "something already answers on port $PORT: stop it or set AIRFLOW__API__PORT" >&2
    exit 1
fi

echo "starting Airflow standalone (AIRFLOW_HOME=$AIRFLOW_HOME, log: $LOG) ..."
# Job control on: the background job gets its own process group (so the terminal's Ctrl-C reaches
# only this script) and keeps SIGINT, which non-interactive bash otherwise ignores in background jobs.
set -m
"$AIRFLOW" standalone >"$LOG" 2>&1 &
STANDALONE=$!
set +m

descendants() {  # every live process below $1, depth first
    local child
    for child in $(pgrep -P "$1" || true); do
        echo "$child"
        descendants "$child"
    done
}

wait_gone() {  # wait_gone SECONDS PID...: true once none of the PIDs is alive
    local deadline=$((SECONDS + $1)) pid alive
    shift
    while ((SECONDS < deadline)); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || return 0
        sleep 1
    done
    return 1
}

stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping Airflow (pid $STANDALONE) ..."
    local pids
    pids="$STANDALONE $(descendants "$STANDALONE" | tr '\n' ' ')"
    # SIGINT is standalone's own shutdown path: it terminates its components and waits for them.
    kill -INT "$STANDALONE" 2>/dev/null || true
    if ! wait_gone 60 $pids; then
        echo "still running after 60 s, sending SIGTERM to its own processes: $pids"
        kill -TERM $pids 2>/dev/null || true
        if ! wait_gone 15 $pids; then
            echo "sending SIGKILL to: $pids"
            kill -KILL $pids 2>/dev/null || true
        fi
    fi
    wait "$STANDALONE" 2>/dev/null || true
    echo "Airflow stopped."
    exit 0
}
trap stop INT TERM EXIT

for _ in $(seq 1 180); do
    if curl -s -o /dev/null "$HEALTH" && [[ -s "$PASSWORDS" ]]; then
        break
    fi
    if ! kill -0 "$STANDALONE" 2>/dev/null; then
        echo "Airflow standalone exited; the end of its log:" >&2
        tail -n 30 "$LOG" >&2
        exit 1
    fi
    sleep 1
done

password="$(.venv-airflow/bin/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$PASSWORDS")"
cat <<EOF

  Airflow UI:  http://$([[ $HOST == 0.0.0.0 ]] && hostname || echo "$HOST"):$PORT   (listening on $HOST)
  login:       admin / $password
  DAGs:        checkout_age_daily, age_model_retrain (paused until you unpause them),
               checkout_age_backfill (by hand: Params date_from, date_to)
  data root:   $CHECKOUT_AGE_DATA_ROOT     registry: $MODEL_REGISTRY
  log:         $LOG

  Ctrl-C stops Airflow.
EOF
wait "$STANDALONE" || true
echo "Airflow standalone exited; the end of its log:" >&2
tail -n 30 "$LOG" >&2
