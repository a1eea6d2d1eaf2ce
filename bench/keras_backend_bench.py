"""The product's Keras 3 model on another Keras backend (JAX), from in-memory uint8 batches.

    KERAS_BACKEND=jax python bench/keras_backend_bench.py --out $OUT/keras-jax.json
    python bench/keras_backend_bench.py --backend tensorflow --images 64 --batch-sizes 8 --epochs 2  # smoke

Why it exists: the GPU hosts this project is lent have PyTorch and JAX but no TensorFlow, and
TensorFlow's wheel is too large to carry there, so the product's TensorFlow training path cannot be
timed on them. Keras' wheel can be carried; this script builds exactly ``build_model()`` (RGB uint8
input, ``CropAugmentation`` and ``BackbonePreprocessing`` layers in the model, the backbone, the head)
and trains it with ``model.fit`` on crops already in memory, so the numbers are the model side of
training on that GPU (augmentation included), **on JAX, not TensorFlow**: no tf.data, no
MirroredStrategy, XLA always (JAX compiles every step). Label them so.

For each batch size and with mixed precision off and on: one untimed epoch (compilation), then
``--epochs`` timed epochs; images/s = images / wall time of each timed epoch (median reported).
The workers package is not imported (it needs Celery): ``workers/training/models.py`` is loaded by path.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "jax"), help="jax (default) | tensorflow")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-sizes", default="32,128,256")
    parser.add_argument("--images", type=int, default=8192, help="crops per epoch (default 8192)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after the compiling one (default 3)")
    parser.add_argument("--precisions", default="float32,mixed_float16")
    parser.add_argument("--time-limit-s", type=float, default=480,
                        help="skip the remaining configurations after this many seconds (default 480)")
    parser.add_argument("--out", type=Path)
    return parser.parse_args(argv)


def load_models_module():
    sys.path.insert(0, str(REPO))  # for shared.preprocessing (imports no TensorFlow)
    spec = importlib.util.spec_from_file_location("deepfake_models", REPO / "workers" / "training" / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def device_info(backend: str) -> dict:
    if backend == "jax":
        import jax

        return {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
                "device_kinds": sorted({getattr(d, "device_kind", "?") for d in jax.devices()})}
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    models = load_models_module()
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "what": f"Keras {keras.__version__} on the {keras.backend.backend()} backend: build_model() "
                      "(augmentation + preprocessing layers in the model), model.fit on in-memory uint8 crops. "
                      "Not the TensorFlow training path of the product.",
              "python": platform.python_version(), "device": device_info(args.backend),
              "config": vars(args) | {"out": str(args.out)}, "results": [], "errors": {}}

    def save():
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.image_size, args.image_size, 3), dtype=np.uint8)
    labels = (np.arange(args.images) % 2).astype("float32")
    started = time.perf_counter()
    for precision in args.precisions.split(","):
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            name = f"{precision}_batch{batch}"
            if time.perf_counter() - started > args.time_limit_s:
                report["errors"][name] = "skipped: time limit"
                continue
            try:
                keras.utils.set_random_seed(1)
                model = models.build_model(args.backbone, weights="none", image_size=args.image_size,
                                           mixed_precision=precision == "mixed_float16", jit_compile=True, seed=1)
                n = (args.images // batch) * batch
                epoch_s = []
                for _ in range(args.epochs + 1):
                    start = time.perf_counter()
                    model.fit(images[:n], labels[:n], batch_size=batch, epochs=1, shuffle=False, verbose=0)
                    epoch_s.append(time.perf_counter() - start)
                timed = [n / s for s in epoch_s[1:]]
                result = {"precision": precision, "batch_size": batch, "images_per_epoch": n,
                          "first_epoch_s": round(epoch_s[0], 2), "epoch_s": [round(s, 3) for s in epoch_s],
                          "images_per_s": round(statistics.median(timed), 1),
                          "images_per_s_per_epoch": [round(t, 1) for t in timed]}
                report["results"].append(result)
                print(json.dumps(result), flush=True)
                del model
                keras.backend.clear_session()
            except Exception as exc:  # noqa: BLE001 - record, go on with the next configuration
                report["errors"][name] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
                print(f"{name} FAILED: {report['errors'][name]}", flush=True)
            save()
    report["total_s"] = round(time.perf_counter() - started, 1)
    save()
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
