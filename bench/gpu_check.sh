#!/usr/bin/env bash
# One short GPU session: is the GPU seen, and how many training images/s do we get on it?
#
#   bash bench/gpu_check.sh            # from the repository root, on a machine with `pip install -e ".[gpu]"`
#
# Prints nvidia-smi and TensorFlow's GPU list, then runs bench/train_bench.py at batch 256 without and
# with mixed precision (ResNet50, 128x128, 8,192 synthetic crops, 5 epochs per feed of which 4 timed:
# about 30 s of timed training per run at the 5,000 images/s target). JSON reports go to $OUT when it is
# set (else bench/out/). Whole script: about 4-6 minutes on an H100; each run is capped at 240 s.
# Needs TensorFlow with CUDA (the ".[gpu]" extra, as docker/Dockerfile.gpu installs): nothing is
# installed or downloaded here.
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-bench/out}"
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d /tmp/gpu-check.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"

echo "== nvidia-smi"
nvidia-smi || echo "nvidia-smi failed"

echo "== TensorFlow"
if ! "$PY" -c "import tensorflow" 2>/dev/null; then
    echo "TensorFlow is not installed for $PY: install the project with its GPU extra first" \
         '(pip install -e ".[gpu]"); nothing was measured.'
    exit 3
fi
"$PY" -c "
import tensorflow as tf
gpus = tf.config.list_physical_devices('GPU')
print('tensorflow', tf.__version__, 'built with CUDA:', tf.test.is_built_with_cuda())
print('GPUs:', gpus)
for g in gpus:
    print('  ', tf.config.experimental.get_device_details(g))
raise SystemExit(0 if gpus else 4)
" || { echo "TensorFlow sees no GPU: the benchmark would run on the CPU; stopping."; exit 4; }

COMMON=(--images 8192 --batch-size 256 --epochs 5 --feeds arrays,pipeline,constant --crops-dir "$WORK/crops")
status=0

echo "== float32: pipeline alone, then training"
timeout 240 "$PY" bench/train_bench.py "${COMMON[@]}" --data-epochs 3 \
    --out "$OUT_DIR/train-gpu-fp32.json" 2>&1 | tee "$OUT_DIR/train-gpu-fp32.log" | grep -v '^[WI]0000'
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== mixed precision (the pipeline alone does not depend on it: skipped)"
timeout 240 "$PY" bench/train_bench.py "${COMMON[@]}" --skip-data --mixed-precision \
    --out "$OUT_DIR/train-gpu-mixed.json" 2>&1 | tee "$OUT_DIR/train-gpu-mixed.log" | grep -v '^[WI]0000'
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== reports in $OUT_DIR: train-gpu-fp32.json train-gpu-mixed.json (exit $status)"
exit $status
