#!/usr/bin/env bash
# Run HERE (not on the GPU machine): fills .gpu/ with what bench/run_gpu.sh needs there.
#   .gpu/faces/   the validated face set as WebP + manifest (bench/pack_gpu.py, ~47 MB at 192 px)
#   .gpu/wheels/  keras, namex, optree for the device's Python 3.12 (it has JAX, no Keras)
#   .gpu/keras/   the MobileNetV2 ImageNet weights (a Keras cache, used as KERAS_HOME there)
# .gpu/ is kept out of git through .git/info/exclude; the device tool carries it (64 MiB cap).
# Usage: bash bench/prepare_gpu.sh [pack_gpu.py options, e.g. --side 176 --quality 75]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${FACES_DIR:=$(cd ../shared/faces && pwd)}"
: "${KERAS_HOME:=$(cd ../shared/keras && pwd)}"
export FACES_DIR KERAS_HOME
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
mkdir -p .gpu/wheels .gpu/keras/models
KERAS_VERSION=$(.venv/bin/python -c 'import keras; print(keras.__version__)')
if ! ls .gpu/wheels/keras-"$KERAS_VERSION"-*.whl >/dev/null 2>&1; then
  PIP=".venv-tools/bin/pip"; [ -x "$PIP" ] || PIP="python3 -m pip"  # the jobs venv has no pip
  $PIP download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels \
    "keras==$KERAS_VERSION" namex optree
fi
cp -f "$KERAS_HOME"/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_*_no_top.h5 \
  .gpu/keras/models/ 2>/dev/null || true
# One copy of the (size-independent) weights is enough to carry; link the other sizes to it.
(cd .gpu/keras/models && for f in *_no_top.h5; do [ "$f" = "${f/_224_/}" ] && rm -f "$f"; done; \
  for s in 96 128 160 192; do ln -sf mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 \
  "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_${s}_no_top.h5"; done)
.venv/bin/python bench/pack_gpu.py --faces "$FACES_DIR" --out .gpu/faces "$@"
du -sh .gpu/* && du -shL .gpu
