#!/usr/bin/env bash
# Runs ON the GPU machine (device tool), from the repo root, with .gpu/ carried:
#   device run: command "bash bench/run_gpu.sh --size 192 --epochs 40", carry [".gpu"], timeout 600
# Installs the carried Keras wheels, selects the JAX backend, trains on the packed face set
# and writes train_gpu.json + model.keras to $OUT (copy train_gpu.json to bench/results/).
# Extra arguments go to bench/train_gpu.py (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpu/wheels/*.whl
export PYTHONPATH="/tmp/site:$PWD" KERAS_BACKEND=jax KERAS_HOME="$PWD/.gpu/keras" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 bench/train_gpu.py --pack .gpu/faces --out "${OUT:-bench/results}" "$@"
