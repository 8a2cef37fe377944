#!/usr/bin/env bash
# `make mlflow`: the MLflow UI (and tracking server) on the embedded store, until Ctrl-C.
#
# Serves what every command writes by default: runs and the model registry in
# $MODEL_REGISTRY/mlflow.db (SQLite), artifacts under $MODEL_REGISTRY/artifacts. Listens on
# 127.0.0.1 only; `make mlflow MLFLOW_HOST=0.0.0.0` opens it to the network (add
# MLFLOW_SERVER_ARGS="--allowed-hosts host:port" for the names clients use to reach it).
# A shared server for a team runs the same command on PostgreSQL: docs/running-at-scale.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export MODEL_REGISTRY="${MODEL_REGISTRY:-$PWD/var/mlflow}"
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"  # never calls out
HOST="${MLFLOW_HOST:-127.0.0.1}"
PORT="${MLFLOW_PORT:-5000}"
STORE="$(cd "$(dirname "$MODEL_REGISTRY")" && pwd)/$(basename "$MODEL_REGISTRY")"

# The store exists (schema made) before the server opens it, as the first command would make it.
.venv/bin/python -c "import sys; from model.lifecycle.store import MlflowStore; MlflowStore(sys.argv[1]).client" "$STORE"
echo "MLflow UI on http://$HOST:$PORT (store: $STORE); Ctrl-C stops it"
# shellcheck disable=SC2086  # MLFLOW_SERVER_ARGS is a list of flags
exec .venv/bin/mlflow server --host "$HOST" --port "$PORT" --workers 1 \
    --backend-store-uri "sqlite:///$STORE/mlflow.db" \
    --artifacts-destination "$STORE/artifacts" ${MLFLOW_SERVER_ARGS:-}
