"""Training speed: our input pipeline (PNG crop files) vs the same model fed from in-memory arrays.

    python bench/train_bench.py --out bench/out/train-cpu.json               # this CPU: 256 crops, batch 32
    python bench/train_bench.py --images 4096 --batch-size 256 --mixed-precision   # on a GPU machine

What it measures, in one process:

  data alone   the input pipeline iterated with no model, images/s: its ceiling.
               ``pipeline``: ``make_dataset(files, training=True)`` (epoch 1 decodes and fills the
               cache, later epochs read the cache, shuffle, augment, preprocess);
               ``pipeline_no_augment``: the same with ``training=False`` (epoch 1 = PNG decode ceiling);
               ``arrays``: ``make_array_dataset(arrays, training=True)``.
  train        one model (``build_model``, weights none) trained by ``model.fit`` as
               ``workers/training/fit.py`` does (class_weight, shuffle=False), on each feed:
               ``arrays``   ``make_array_dataset(..., training=True)`` from crops already decoded in memory
               ``pipeline`` ``make_dataset(..., training=True)`` from the PNG files
               ``constant`` (optional) one preprocessed batch repeated: the model alone, no input work.
               The feeds take turns, one epoch each (A B C A B C ...), ``--epochs`` epochs per feed; the
               first epoch of each is not timed (tracing / XLA compilation, cache filling).
               Steady-state images/s = images of epochs 2..N / their wall time. Taking turns makes
               the slow drifts of a shared machine hit every feed alike; the ratio pipeline / arrays
               is also given per round (median).

The crops are synthetic 128x128 faces (from the face images shipped with scikit-image and
matplotlib, jittered, colour-shifted, with sensor-like noise so the PNGs are about the size of real
ingest crops) written as PNG files, or real crops from an ingest with ``--crops-from DATA_DIR/crops``.
Nothing is downloaded. The same script runs on a GPU machine: TensorFlow places the model on the GPU
by itself, ``--mixed-precision`` is used there (ignored without a GPU, as ``fit.train`` does).

The report is written to ``--out`` after every phase, so a run cut short still leaves its numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FEEDS = ("arrays", "pipeline", "constant")
RATIO_TARGET = 0.90  # the pipeline must stay within 10% of the in-memory feed
GPU_TARGET_IMAGES_PER_S = 5000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet50", help="resnet50 | efficientnetb0 | mobilenetv2")
    parser.add_argument("--images", type=int, default=256, help="number of crops (default 256)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2,
                        help="training epochs per feed, the first not timed, feeds taking turns (at least 2; default 2)")
    parser.add_argument("--data-epochs", type=int, default=3,
                        help="passes over each dataset without a model (at least 2; default 3)")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="mixed_float16 model (used only when TensorFlow sees a GPU)")
    parser.add_argument("--feeds", default="arrays,pipeline",
                        help="comma list, trained in this order, of: arrays, pipeline, constant "
                             "(default arrays,pipeline)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--weights", default="none", help="none (default) | imagenet | path of a .h5")
    parser.add_argument("--crops-dir", type=Path,
                        help="write the synthetic crops here and reuse them on the next run "
                             "(default: a temporary folder, deleted at the end)")
    parser.add_argument("--crops-from", type=Path,
                        help="use the PNG files under this folder (e.g. DATA_DIR/crops of an ingest) instead "
                             "of synthetic ones; repeated if fewer than --images")
    parser.add_argument("--skip-data", action="store_true", help="do not measure the pipeline alone")
    parser.add_argument("--skip-train", action="store_true", help="do not train (pipeline alone only)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    args.feeds = [f.strip() for f in args.feeds.split(",") if f.strip()]
    bad = [f for f in args.feeds if f not in FEEDS]
    if bad or not args.feeds:
        parser.error(f"--feeds: unknown {bad}; choose from {', '.join(FEEDS)}")
    if args.images < 1 or args.batch_size < 1:
        parser.error("--images and --batch-size must be at least 1")
    if args.epochs < 2 or args.data_epochs < 2:
        parser.error("--epochs and --data-epochs must be at least 2 (the first epoch is not timed)")
    return args


# ----------------------------------------------------------------------------------------- crops

def synthetic_crops(folder: Path, count: int, size: int, seed: int) -> tuple[list[Path], list[int]]:
    """``count`` PNG face crops in ``folder`` (reused when already there); labels alternate 0/1."""
    import cv2
    import numpy as np

    from shared.sample_data import load_face_images

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"crop_{i:06d}_{size}.png" for i in range(count)]
    labels = [i % 2 for i in range(count)]
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if not missing:
        return paths, labels
    faces = load_face_images()
    # The two large colour portraits first: most real crops are colour and detailed.
    weights = np.array([4.0 if face.image.shape[0] > 100 else 1.0 for face in faces])
    weights /= weights.sum()

    def write(i: int) -> None:
        rng = np.random.default_rng([seed, i])
        face = faces[rng.choice(len(faces), p=weights)]
        x, y, w, h = face.face_box
        side = max(w, h) * 1.6 * rng.uniform(0.9, 1.1)  # the ingest's 0.3 margin on each side
        cx = x + w / 2 + rng.normal(0, 0.04 * w)
        cy = y + h / 2 + rng.normal(0, 0.04 * h)
        scale = size / side
        matrix = cv2.getRotationMatrix2D((cx, cy), rng.uniform(-8, 8), scale)
        matrix[:, 2] += (size / 2 - cx, size / 2 - cy)
        crop = cv2.warpAffine(face.image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        crop *= rng.uniform(0.8, 1.2, size=3)  # white balance / lighting
        crop += rng.normal(0, 3.0, crop.shape)  # sensor and compression noise
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        rgb = np.clip(np.round(crop), 0, 255).astype(np.uint8)
        tmp = paths[i].with_suffix(".tmp.png")
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {tmp}")
        os.replace(tmp, paths[i])

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(write, missing))
    return paths, labels


def existing_crops(folder: Path, count: int) -> tuple[list[Path], list[int]]:
    """PNG files under ``folder``, repeated up to ``count``; label 1 under Celeb-synthesis, else 0."""
    found = sorted(folder.rglob("*.png"))
    if not found:
        raise SystemExit(f"no PNG files under {folder}")
    paths = [found[i % len(found)] for i in range(count)]
    labels = [1 if "Celeb-synthesis" in p.parts else 0 for p in paths]
    return paths, labels


def load_arrays(paths: list[Path]):
    """The crops decoded into one RGB uint8 array (N, H, W, 3): the in-memory feed."""
    import cv2
    import numpy as np

    def read(path: Path):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"cannot read {path}")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return np.stack(list(pool.map(read, paths)))


# ------------------------------------------------------------------------------------ datasets

def make_feed(name: str, paths, labels, arrays, args, *, training: bool = True):
    import numpy as np
    import tensorflow as tf

    from workers.training.data import count_batches, make_array_dataset, make_dataset

    options = dict(batch_size=args.batch_size, backbone=args.backbone, seed=args.seed,
                   image_size=args.image_size)
    if name == "pipeline":
        return make_dataset(paths, labels, training=training, **options)
    if name == "arrays":
        return make_array_dataset(arrays, labels, training=training, **options)
    if name == "constant":
        images, batch_labels = next(iter(make_array_dataset(arrays, labels, training=True, **options)))
        one_batch = (tf.identity(images), tf.constant(np.asarray(batch_labels)))
        return tf.data.Dataset.from_tensors(one_batch).repeat(count_batches(len(paths), args.batch_size))
    raise ValueError(name)


def time_data_alone(dataset, n_images: int, epochs: int) -> dict:
    """Iterate the dataset ``epochs`` times with no model; images/s of the first and later passes."""
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        seen = 0
        for images, _labels in dataset:
            seen += int(images.shape[0])
        seconds.append(time.perf_counter() - start)
        if seen != n_images:
            raise RuntimeError(f"dataset gave {seen} images, expected {n_images}")
    steady = n_images * (epochs - 1) / sum(seconds[1:])
    return {
        "epoch_s": [round(s, 4) for s in seconds],
        "first_epoch_images_per_s": round(n_images / seconds[0], 1),
        "steady_images_per_s": round(steady, 1),
    }


# --------------------------------------------------------------------------------------- train

def epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall time of each epoch, and the time of each batch end (for a per-batch median)."""

        def __init__(self):
            super().__init__()
            self.epochs: list[dict] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()
            self._ends: list[float] = []

        def on_train_batch_end(self, batch, logs=None):
            self._ends.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            # Keras has turned the epoch's metrics into numbers by now: the device work is done.
            end = time.perf_counter()
            self.epochs.append({"seconds": end - self._start, "batches": len(self._ends),
                                "batch_gaps": [b - a for a, b in zip([self._start] + self._ends, self._ends)]})

    return EpochTimer()


def train_interleaved(model, datasets: dict, n_images: int, args, class_weight) -> dict:
    """Train ``model`` one epoch at a time, the feeds taking turns (A B C A B C ...).

    The first epoch of each feed is not timed (tracing / compilation, cache filling); each later
    round gives every feed one timed epoch under the same machine conditions, so slow drifts of a
    shared machine hit all feeds alike. Per feed: images/s over all timed epochs, and per round.
    """
    timers = {feed: epoch_timer() for feed in datasets}
    for _round in range(args.epochs):
        for feed, dataset in datasets.items():
            model.fit(dataset, epochs=1, class_weight=class_weight, callbacks=[timers[feed]],
                      shuffle=False, verbose=0)
    full_batch = min(args.batch_size, n_images)
    results = {}
    for feed, timer in timers.items():
        steady = timer.epochs[1:]
        gaps = [g for e in steady for g in e["batch_gaps"]]
        results[feed] = {
            "epoch_s": [round(e["seconds"], 3) for e in timer.epochs],
            "first_epoch_s": round(timer.epochs[0]["seconds"], 3),
            "steady_images_per_s": round(n_images * len(steady) / sum(e["seconds"] for e in steady), 2),
            "per_round_images_per_s": [round(n_images / e["seconds"], 2) for e in steady],
            "median_batch_s": round(statistics.median(gaps), 4),
            "median_batch_images_per_s": round(full_batch / statistics.median(gaps), 2),
        }
    return results


# ---------------------------------------------------------------------------------------- main

def machine_info() -> dict:
    import keras
    import tensorflow as tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(device)
        except Exception:  # noqa: BLE001 - details are decoration
            details = {}
        gpus.append(details.get("device_name", device.name))
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gpus": gpus,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    report: dict = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
                    "errors": {}}

    def save() -> None:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")

    def phase(name: str, function):
        """Run one part; an error is recorded and printed, the other parts still run."""
        try:
            return function()
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop at the first error
            report["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            print(f"[{name}] FAILED: {exc}", flush=True)
            return None
        finally:
            save()

    t0 = time.perf_counter()
    import keras

    from workers.training.fit import balanced_class_weight
    from workers.training.models import build_model

    report["machine"] = machine_info()
    on_gpu = bool(report["machine"]["gpus"])
    use_mixed_precision = args.mixed_precision and on_gpu
    report["config"] = {
        "backbone": args.backbone, "images": args.images, "batch_size": args.batch_size,
        "image_size": args.image_size, "epochs": args.epochs, "data_epochs": args.data_epochs,
        "timed_epochs": args.epochs - 1, "feeds": args.feeds, "weights": args.weights,
        "mixed_precision_requested": args.mixed_precision, "mixed_precision_used": use_mixed_precision,
        "device": "GPU" if on_gpu else "CPU", "seed": args.seed,
    }
    if args.mixed_precision and not on_gpu:
        print("note: --mixed-precision ignored: TensorFlow sees no GPU (fit.train does the same)", flush=True)
    print(f"machine: {report['machine']}", flush=True)

    temporary = None
    start = time.perf_counter()
    if args.crops_from:
        paths, labels = existing_crops(args.crops_from, args.images)
        source = str(args.crops_from)
    else:
        folder = args.crops_dir
        if folder is None:
            temporary = Path(tempfile.mkdtemp(prefix="train-bench-"))
            folder = temporary
        paths, labels = synthetic_crops(folder, args.images, args.image_size, args.seed)
        source = "synthetic"
    prepare_s = time.perf_counter() - start
    sizes = [p.stat().st_size for p in paths]
    start = time.perf_counter()
    arrays = load_arrays(paths)
    report["crops"] = {
        "source": source, "count": len(paths), "unique_files": len(set(paths)),
        "labels": {"real": labels.count(0), "fake": labels.count(1)},
        "png_mean_bytes": round(statistics.mean(sizes)), "write_s": round(prepare_s, 2),
        "load_arrays_s": round(time.perf_counter() - start, 2),
        "arrays_mib": round(arrays.nbytes / 2**20, 1),
    }
    print(f"crops: {report['crops']}", flush=True)
    save()
    n = len(paths)

    try:
        if not args.skip_data:
            report["data_alone"] = {}
            variants = (("pipeline", "pipeline", True), ("pipeline_no_augment", "pipeline", False),
                        ("arrays", "arrays", True))
            for key, feed, training in variants:
                result = phase(f"data_alone.{key}", lambda: time_data_alone(
                    make_feed(feed, paths, labels, arrays, args, training=training), n, args.data_epochs))
                if result is not None:
                    report["data_alone"][key] = result
                    print(f"data alone  {key:20s} {result}", flush=True)

        if not args.skip_train:
            keras.utils.set_random_seed(args.seed)
            class_weight = balanced_class_weight(labels)
            start = time.perf_counter()
            model = phase("build_model", lambda: build_model(
                args.backbone, weights=args.weights, image_size=args.image_size,
                mixed_precision=use_mixed_precision))
            report["build_model_s"] = round(time.perf_counter() - start, 2)
            report["train"] = {}
            if model is not None:
                report["model_params"] = int(model.count_params())
                datasets = {feed: make_feed(feed, paths, labels, arrays, args) for feed in args.feeds}
                results = phase("train", lambda: train_interleaved(model, datasets, n, args, class_weight))
                for feed, result in (results or {}).items():
                    report["train"][feed] = result
                    print(f"train       {feed:20s} {result}", flush=True)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)

    report["summary"] = summarize(report, on_gpu)
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    report["total_s"] = round(time.perf_counter() - t0, 1)
    save()
    print_summary(report)
    return 1 if report["errors"] else 0


def summarize(report: dict, on_gpu: bool) -> dict:
    train = report.get("train", {})
    data = report.get("data_alone", {})
    summary: dict = {}
    for feed, result in train.items():
        summary[f"train_{feed}_images_per_s"] = result["steady_images_per_s"]
    if "pipeline" in train and "arrays" in train:
        ratio = train["pipeline"]["steady_images_per_s"] / train["arrays"]["steady_images_per_s"]
        summary["pipeline_vs_arrays"] = round(ratio, 3)
        rounds = [p / a for p, a in zip(train["pipeline"]["per_round_images_per_s"],
                                        train["arrays"]["per_round_images_per_s"])]
        summary["pipeline_vs_arrays_per_round"] = [round(r, 3) for r in rounds]
        summary["pipeline_vs_arrays_median_round"] = round(statistics.median(rounds), 3)
        summary["pipeline_vs_arrays_median_batch"] = round(
            train["pipeline"]["median_batch_images_per_s"] / train["arrays"]["median_batch_images_per_s"], 3)
        summary["ratio_target"] = RATIO_TARGET
        summary["meets_ratio_target"] = ratio >= RATIO_TARGET
    if "pipeline" in data:
        summary["pipeline_alone_steady_images_per_s"] = data["pipeline"]["steady_images_per_s"]
        summary["pipeline_alone_first_epoch_images_per_s"] = data["pipeline"]["first_epoch_images_per_s"]
    if "pipeline_no_augment" in data:
        summary["decode_ceiling_images_per_s"] = data["pipeline_no_augment"]["first_epoch_images_per_s"]
    if "pipeline" in data and "pipeline" in train:
        # How much of the model's speed the input could feed if it had the machine to itself.
        summary["pipeline_headroom_x"] = round(
            data["pipeline"]["steady_images_per_s"] / train["pipeline"]["steady_images_per_s"], 1)
    if on_gpu and "pipeline" in train:
        summary["gpu_target_images_per_s"] = GPU_TARGET_IMAGES_PER_S
        summary["meets_gpu_target"] = train["pipeline"]["steady_images_per_s"] >= GPU_TARGET_IMAGES_PER_S
    return summary


def print_summary(report: dict) -> None:
    config, summary = report["config"], report["summary"]
    print()
    print(f"{config['backbone']} {config['image_size']}x{config['image_size']}, batch {config['batch_size']}, "
          f"{report['crops']['count']} crops, {config['device']}"
          f"{', mixed precision' if config['mixed_precision_used'] else ''}; "
          f"steady state = epochs 2..{config['epochs']}")
    for feed, result in report.get("train", {}).items():
        print(f"  train {feed:9s} {result['steady_images_per_s']:10.1f} images/s   "
              f"(median batch {result['median_batch_images_per_s']:.1f}; first epoch {result['first_epoch_s']} s)")
    for key, result in report.get("data_alone", {}).items():
        print(f"  alone {key:20s} first epoch {result['first_epoch_images_per_s']:10.1f}   "
              f"later {result['steady_images_per_s']:10.1f} images/s")
    if "pipeline_vs_arrays" in summary:
        print(f"  pipeline / arrays = {summary['pipeline_vs_arrays']:.3f} "
              f"(per round {summary['pipeline_vs_arrays_per_round']}) "
              f"(target >= {RATIO_TARGET}: {'met' if summary['meets_ratio_target'] else 'NOT met'})")
    if "meets_gpu_target" in summary:
        print(f"  GPU target {GPU_TARGET_IMAGES_PER_S} images/s: "
              f"{'met' if summary['meets_gpu_target'] else 'NOT met'}")
    if report["errors"]:
        print(f"  errors: {report['errors']}")
    print(f"  total {report['total_s']} s, peak RSS {report['peak_rss_mib']} MiB")


if __name__ == "__main__":
    sys.exit(main())
