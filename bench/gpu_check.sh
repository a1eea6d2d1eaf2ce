#!/usr/bin/env bash
# One short GPU session: what does the GPU give for our model's training, with what this host has?
#
#   bash bench/gpu_check.sh      # from the repository root; JSON and logs go to $OUT (else bench/out/)
#
# Two paths, chosen by what is installed; each labels its numbers:
#
# 1. TensorFlow with a GPU (the product: a host with `pip install -e ".[gpu]"`, docker/Dockerfile.gpu):
#    bench/train_bench.py at batch 256, ResNet50 128x128, 8,192 synthetic crops, feeds
#    model (augmentation in the model), map (today's tf.data augmentation) and constant, XLA on,
#    float32 then mixed precision; each run capped at 240 s.
# 2. No TensorFlow but JAX (the GPU hosts this project is lent: PyTorch + JAX, no TensorFlow, nothing
#    downloadable, at most 64 MiB carried): Keras 3 is installed from wheels carried in
#    bench/out/wheels (made here with the command below; ~10 MB), then
#    bench/keras_backend_bench.py trains the same build_model() on the JAX backend from in-memory uint8
#    batches (augmentation + preprocessing layers in the model): images/s at batch 32/128/256,
#    mixed precision off and on. These are JAX numbers, NOT the TensorFlow training path.
#
#    Carry the wheels (Python 3.12 on those hosts), from the repository root of a machine with internet:
#      pip download keras==3.15.1 --no-deps -d bench/out/wheels
#      pip download --only-binary=:all: --python-version 3.12 --implementation cp \
#          --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d bench/out/wheels \
#          namex optree h5py absl-py rich markdown-it-py mdurl pygments typing-extensions packaging
#      rm -f bench/out/wheels/numpy-*   # the host has its own numpy: never shadow it
#    and pass carry=["bench/out/wheels"] to the device run. Only the modules the host lacks are
#    unpacked (into a temporary folder put on PYTHONPATH); nothing is installed system-wide.
#
# Exit: 0 measured, 1 a run failed, 3 neither TensorFlow nor JAX (or no wheels), 4 no GPU seen.
# Whole script: path 1 about 5-8 min on an H100, path 2 about 4-6 min (mostly XLA compilation).
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-bench/out}"
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d /tmp/gpu-check.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-bench/out/wheels}"

echo "== nvidia-smi"
nvidia-smi || echo "nvidia-smi failed"
"$PY" --version

if "$PY" -c "import tensorflow" 2>/dev/null; then
    echo "== path 1: TensorFlow (the product's training path)"
    "$PY" -c "
import tensorflow as tf
gpus = tf.config.list_physical_devices('GPU')
print('tensorflow', tf.__version__, 'built with CUDA:', tf.test.is_built_with_cuda(), 'GPUs:', gpus)
raise SystemExit(0 if gpus else 4)
" || { echo "TensorFlow sees no GPU: the benchmark would run on the CPU; stopping."; exit 4; }
    COMMON=(--images 8192 --batch-size 256 --epochs 5 --feeds model,map,constant --jit on --crops-dir "$WORK/crops")
    status=0
    echo "== float32: input side alone, then training"
    timeout 240 "$PY" bench/train_bench.py "${COMMON[@]}" --data-epochs 3 \
        --out "$OUT_DIR/train-gpu-fp32.json" 2>&1 | tee "$OUT_DIR/train-gpu-fp32.log" | grep -v '^[WI]0000'
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    echo "== mixed precision (the input side does not depend on it: skipped)"
    timeout 240 "$PY" bench/train_bench.py "${COMMON[@]}" --skip-data --mixed-precision \
        --out "$OUT_DIR/train-gpu-mixed.json" 2>&1 | tee "$OUT_DIR/train-gpu-mixed.log" | grep -v '^[WI]0000'
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    echo "== reports in $OUT_DIR: train-gpu-fp32.json train-gpu-mixed.json (exit $status)"
    exit $status
fi

if ! "$PY" -c "import jax" 2>/dev/null; then
    echo "neither TensorFlow nor JAX is installed for $PY: nothing was measured."
    exit 3
fi
echo "== path 2: no TensorFlow here; Keras 3 on JAX (NOT the product's TensorFlow path)"
"$PY" -c "
import jax
print('jax', jax.__version__, 'devices:', jax.devices())
raise SystemExit(0 if any(d.platform == 'gpu' for d in jax.devices()) else 4)
" || { echo "JAX sees no GPU; stopping."; exit 4; }

# Unpack the carried wheels of the modules this Python lacks (a wheel is a zip: no pip needed).
SITE="$WORK/site"
mkdir -p "$SITE"
for pair in keras:keras namex:namex optree:optree h5py:h5py absl:absl_py rich:rich \
            markdown_it:markdown_it_py mdurl:mdurl pygments:pygments typing_extensions:typing_extensions \
            packaging:packaging; do
    module="${pair%%:*}"; wheel_prefix="${pair##*:}"
    if "$PY" -c "import $module" 2>/dev/null; then continue; fi
    wheel="$(ls "$WHEELS"/"$wheel_prefix"-*.whl 2>/dev/null | head -n 1)"
    if [ -z "$wheel" ]; then
        echo "module $module is missing and no $wheel_prefix wheel was carried in $WHEELS: see the header; nothing measured."
        exit 3
    fi
    echo "unpacking $wheel"
    "$PY" -m zipfile -e "$wheel" "$SITE" || exit 3
done
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=jax
"$PY" -c "import keras; print('keras', keras.__version__, 'backend', keras.backend.backend())" || exit 3

timeout 540 "$PY" bench/keras_backend_bench.py --backend jax --batch-sizes 32,128,256 --images 8192 --epochs 3 \
    --time-limit-s 420 --out "$OUT_DIR/keras-jax-gpu.json" 2>&1 | tee "$OUT_DIR/keras-jax-gpu.log"
status=${PIPESTATUS[0]}
echo "== report in $OUT_DIR/keras-jax-gpu.json: Keras 3 on JAX, in-memory uint8 batches (exit $status)"
exit $status
