"""Training speed: augmentation inside the model vs today's tf.data map; the input ceiling;
the scale of data; two replicas vs one.

    python bench/train_bench.py --out bench/out/train-cpu.json     # this CPU: 256 crops, batch 32
    python bench/train_bench.py --cores 1 --skip-train --images 2048   # input ceiling on one core
    python bench/train_bench.py --scale 100000 --images 1000 --cache-dir /tmp/c --skip-train
    python bench/train_bench.py --augment-cost                    # the augmentation layer per batch
    python bench/train_bench.py --replica-check                   # 2 logical CPUs vs 1: same step?

What it measures, in one process:

  data alone   an input pipeline iterated with no model, images/s (its ceiling):
               ``cache``: ``make_dataset(files, training=True)``, the product's input side
               (epoch 1 decodes PNGs and fills the cache; later epochs: cache, shuffle, batch of
               uint8, prefetch: the ceiling per core with ``--cores 1``);
               ``map``: today's (before this change) input side: the same, plus Keras'
               RandomRotation/RandomTranslation/RandomFlip and ``preprocess`` in the tf.data map;
               ``arrays``: ``make_dataset(arrays, training=True)``.
  train        ``model.fit`` as ``workers/training/fit.py`` calls it (class_weight, shuffle=False):
               ``model``    uint8 batches from the files, augmentation + preprocessing layers in the
                            model (``build_model()``: the product);
               ``map``      today's map feed above, into the same backbone and head built without
                            those layers (``build_model(augment=False, preprocessing=False)``);
               ``arrays``   the product's model on crops decoded in memory;
               ``constant`` one uint8 batch repeated into the product's model: no input work.
               The feeds take turns, one epoch each (A B C A B C ...), ``--epochs`` epochs per feed;
               the first epoch of each is not timed (tracing, cache filling). Steady-state images/s =
               images of epochs 2..N / their wall time; ratios per round, and their median.
  --augment-cost  the augmentation layer alone on a uint8 batch (32, 128), in a tf.function, with and
               without XLA, against today's three Keras layers + preprocess; ms per batch.
  --scale N    N crop paths (the ``--images`` distinct files repeated), ``cache`` fed through the file
               cache in ``--cache-dir`` (``train --cache DIR``): epoch times, peak RSS, cache size.
               With ``--scale-source packs`` the crops are video folders with crop packs, as the
               ingest writes them; ``--drop-caches`` makes every epoch read from disk.
  --replica-check  two logical CPU devices: one step of MirroredStrategy on 2 replicas against one
               replica on the same global batch (loss, weights), then ``fit.train`` on 2 replicas.

The crops are synthetic 128x128 faces (from the face images shipped with scikit-image and
matplotlib, jittered, colour-shifted, with sensor-like noise so the PNGs are about the size of real
ingest crops) written as PNG files, or real crops from an ingest with ``--crops-from DATA_DIR/crops``.
Nothing is downloaded. On a GPU machine TensorFlow places the model on the GPU by itself;
``--mixed-precision`` and ``--jit`` are used there.

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

FEEDS = ("model", "map", "arrays", "constant")
GPU_TARGET_IMAGES_PER_S = 5000
INPUT_TARGET_PER_CORE = 2000  # images/s per core from the cache, model absent


def early_setup(argv=None) -> None:
    """What must happen before TensorFlow starts: CPU affinity, logical devices."""
    argv = sys.argv[1:] if argv is None else argv
    if "--cores" in argv:
        cores = int(argv[argv.index("--cores") + 1])
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))


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
    parser.add_argument("--jit", choices=("auto", "on", "off"), default="auto",
                        help="XLA for the models: auto = on where a GPU is seen (as fit.train), on, off")
    parser.add_argument("--feeds", default="model,map",
                        help="comma list, trained in this order, of: model, map, arrays, constant "
                             "(default model,map)")
    parser.add_argument("--cores", type=int,
                        help="pin the process to this many CPU cores (before TensorFlow starts)")
    parser.add_argument("--scale", type=int,
                        help="scale check: this many crop paths through the file cache (no training)")
    parser.add_argument("--cache-dir", type=Path, help="folder for the scale check's file cache (and its packs)")
    parser.add_argument("--scale-source", choices=("files", "packs"), default="files",
                        help="scale check input: PNG files through the file cache (files), or video folders "
                             "with crop packs as the ingest writes them (packs; PNGs as hard links)")
    parser.add_argument("--crops-per-video", type=int, default=32, help="scale check with packs (default 32)")
    parser.add_argument("--drop-caches", action="store_true",
                        help="scale check: empty the kernel's page cache before every epoch (root), so every "
                             "epoch reads from disk as with data larger than RAM")
    parser.add_argument("--augment-cost", action="store_true", help="time the augmentation layer per batch only")
    parser.add_argument("--replica-check", action="store_true",
                        help="2 logical CPU replicas vs 1 on the same global batch, then fit.train on 2")
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
    if args.scale and not args.cache_dir:
        parser.error("--scale needs --cache-dir")
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

def legacy_map_augmenter(seed: int):
    """Today's (before the change) augmentation: Keras' three layers, run in the tf.data map."""
    import keras

    return keras.Sequential([
        keras.layers.RandomRotation(20 / 360, fill_mode="nearest", seed=seed),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 1),
        keras.layers.RandomFlip("horizontal", seed=seed + 2),
    ], name="legacy_augmentation")


def make_feed(name: str, paths, labels, arrays, args, *, training: bool = True, cache=True):
    import numpy as np
    import tensorflow as tf

    from shared.preprocessing import preprocess
    from workers.training.data import count_batches, make_dataset

    options = dict(batch_size=args.batch_size, seed=args.seed, image_size=args.image_size)
    if name in ("model", "cache"):
        return make_dataset(paths, labels, training=training, cache=cache, **options)
    if name == "map":
        augmenter = legacy_map_augmenter(args.seed)

        def augment_and_preprocess(images, batch_labels):
            images = augmenter(tf.cast(images, tf.float32), training=True)
            return preprocess(images, args.backbone), batch_labels

        dataset = make_dataset(paths, labels, training=training, cache=cache, **options)
        return dataset.map(augment_and_preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    if name == "arrays":
        return make_dataset(arrays, labels, training=training, **options)
    if name == "constant":
        images, batch_labels = next(iter(make_dataset(arrays, labels, training=True, **options)))
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


def train_interleaved(models: dict, datasets: dict, n_images: int, args, class_weight) -> dict:
    """Train ``model`` one epoch at a time, the feeds taking turns (A B C A B C ...).

    The first epoch of each feed is not timed (tracing / compilation, cache filling); each later
    round gives every feed one timed epoch under the same machine conditions, so slow drifts of a
    shared machine hit all feeds alike. Per feed: images/s over all timed epochs, and per round.
    """
    timers = {feed: epoch_timer() for feed in datasets}
    for _round in range(args.epochs):
        for feed, dataset in datasets.items():
            models[feed].fit(dataset, epochs=1, class_weight=class_weight, callbacks=[timers[feed]],
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


def rss_mib(kind: str = "VmRSS") -> float:
    """Resident memory of this process, MiB: VmRSS (all), RssAnon (heap: what the process holds)
    or RssFile (file pages mapped in, which the kernel can drop)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(kind + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def augment_cost(args) -> dict:
    """The augmentation layer alone per uint8 batch, in a tf.function, against today's map work."""
    import numpy as np
    import tensorflow as tf

    from shared.preprocessing import preprocess
    from workers.training.models import BackbonePreprocessing, CropAugmentation

    legacy = legacy_map_augmenter(args.seed)
    layer, prep = CropAugmentation(seed=args.seed), BackbonePreprocessing(args.backbone)
    variants = {
        "in_model_layers": (lambda x: prep(layer(x, training=True)), False),
        "in_model_layers_xla": (lambda x: prep(layer(x, training=True)), True),
        "legacy_map_layers": (lambda x: preprocess(legacy(tf.cast(x, tf.float32), training=True), args.backbone),
                              False),
    }
    results = {}
    for batch in (32, 128):
        images = tf.constant(np.random.default_rng(0).integers(
            0, 256, (batch, args.image_size, args.image_size, 3), dtype=np.uint8))
        for name, (function, jit) in variants.items():
            compiled = tf.function(function, jit_compile=jit)
            compiled(images).numpy()  # trace / compile
            times = []
            for _ in range(7):
                start = time.perf_counter()
                for _ in range(5):
                    out = compiled(images)
                out.numpy()
                times.append((time.perf_counter() - start) / 5)
            ms = statistics.median(times) * 1000
            results[f"{name}_batch{batch}"] = {"ms_per_batch": round(ms, 2),
                                               "images_per_s": round(batch / ms * 1000, 1),
                                               "rounds_ms": [round(t * 1000, 2) for t in times]}
            print(f"augment cost {name:22s} batch {batch:4d}: {results[f'{name}_batch{batch}']}", flush=True)
    return results


def packed_videos(paths, labels, n: int, per_video: int, folder: Path) -> tuple[list[str], list[int]]:
    """``n`` crops laid out as the ingest writes them: video folders of ``per_video`` PNGs (hard links
    to the distinct files) and each folder's crop pack. Reused when already there."""
    import cv2

    from workers.crop_pack import PACK_NAME, read_pack_header, write_pack_atomically

    distinct = {str(p): cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in set(map(str, paths))}
    out_paths, out_labels = [], []
    for start in range(0, n, per_video):
        video = folder / f"v{start // per_video:06d}"
        video.mkdir(parents=True, exist_ok=True)
        names, images = [], []
        for i in range(start, min(n, start + per_video)):
            source = str(paths[i % len(paths)])
            name = f"f{(i - start) * 90:06d}_00.png"
            if not (video / name).exists():
                os.link(source, video / name)
            names.append(name)
            images.append(distinct[source])
            out_paths.append(str(video / name))
            out_labels.append(labels[i % len(labels)])
        header = read_pack_header(video / PACK_NAME)
        if header is None or list(header.names) != names:
            write_pack_atomically(video / PACK_NAME, names, images)
    return out_paths, out_labels


def drop_page_cache() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def scale_check(paths, labels, args) -> dict:
    """``args.scale`` crops through the input side, model absent: PNG paths (the distinct files
    repeated) through the file cache, or video folders with packs (``--scale-source packs``)."""
    from workers.training.data import crops_from_packs, make_dataset

    n = args.scale
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.scale_source == "packs":
        big_paths, big_labels = packed_videos(paths, labels, n, args.crops_per_video, args.cache_dir / "videos")
    else:
        big_paths = [paths[i % len(paths)] for i in range(n)]
        big_labels = [labels[i % len(labels)] for i in range(n)]
    layout_s = time.perf_counter() - start
    cache_file = args.cache_dir / "scale-train"
    for old in args.cache_dir.glob("scale-train*"):
        old.unlink()
    rss_start = rss_mib()
    start = time.perf_counter()
    dataset = make_dataset(big_paths, big_labels, training=True, cache=str(cache_file),
                           batch_size=args.batch_size, seed=args.seed, image_size=args.image_size)
    build_s = time.perf_counter() - start
    from_packs = crops_from_packs(big_paths)
    epochs = []
    for epoch in range(args.data_epochs):
        if args.drop_caches:
            drop_page_cache()
        start, seen, rss_peak_in_epoch = time.perf_counter(), 0, 0.0
        for i, (images, _labels) in enumerate(dataset):
            seen += int(images.shape[0])
            if i % 200 == 0:
                rss_peak_in_epoch = max(rss_peak_in_epoch, rss_mib())
        seconds = time.perf_counter() - start
        epochs.append({"seconds": round(seconds, 2), "images_per_s": round(seen / seconds, 1),
                       "rss_mib_sampled_max": rss_peak_in_epoch, "rss_mib_end": rss_mib(),
                       "rss_anon_mib_end": rss_mib("RssAnon"), "rss_file_mib_end": rss_mib("RssFile")})
        print(f"scale epoch {epoch + 1}: {epochs[-1]}", flush=True)
        if seen != n:
            raise RuntimeError(f"dataset gave {seen} images, expected {n}")
    cache_bytes = sum(f.stat().st_size for f in args.cache_dir.glob("scale-train*"))
    pack_bytes = sum(f.stat().st_size for f in (args.cache_dir / "videos").glob("*/crops.pack")) \
        if args.scale_source == "packs" else 0
    later = statistics.median(e["seconds"] for e in epochs[1:])
    return {"crops": n, "source": args.scale_source, "crops_from_packs": from_packs,
            "page_cache_dropped_before_each_epoch": args.drop_caches,
            "distinct_files": len(set(map(str, paths))), "layout_s": round(layout_s, 2),
            "make_dataset_s": round(build_s, 2), "epochs": epochs,
            "first_over_later": round(epochs[0]["seconds"] / later, 2),
            "cache_file_gib": round(cache_bytes / 2**30, 2), "pack_files_gib": round(pack_bytes / 2**30, 2),
            "rss_mib_before": rss_start,
            "decoded_size_gib": round(n * args.image_size ** 2 * 3 / 2**30, 2)}


def replica_check(args) -> dict:
    """2 logical CPU replicas vs 1 on the same global batch: loss and weights after one step;
    then fit.train on the 2 replicas (tiny backbone without batch norm: BN normalizes per replica)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np

    from workers.training import fit
    from workers.training.data import make_dataset
    from workers.training.models import build_model

    size, global_batch = 32, 8

    def tiny(image_size=size):
        return keras.Sequential([keras.Input((image_size, image_size, 3)),
                                 keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
                                 keras.layers.Conv2D(8, 3, strides=2, activation="relu")], name="tiny")

    rng = np.random.default_rng(args.seed)
    images = rng.integers(0, 256, (global_batch, size, size, 3), dtype=np.uint8)
    labels = np.array([0, 1, 1, 1, 0, 1, 1, 0])
    class_weight = fit.balanced_class_weight(labels)
    options = dict(image_size=size, augment=False, dropout=0.0, learning_rate=1e-2)
    keras.utils.set_random_seed(args.seed)
    initial = build_model("mobilenetv2", base=tiny(), **options).get_weights()

    def one_step(strategy, make, initial_weights):
        with strategy.scope():
            model = make()
        model.set_weights(initial_weights)
        data = make_dataset(images, labels, batch_size=global_batch, training=False, image_size=size)
        history = model.fit(data, epochs=1, class_weight=class_weight, verbose=0)
        return history.history["loss"][0], model.get_weights()

    def compare(make, initial_weights) -> dict:
        loss_one, weights_one = one_step(tf.distribute.get_strategy(), make, initial_weights)
        loss_two, weights_two = one_step(two, make, initial_weights)
        return {
            "loss_one_replica": loss_one, "loss_two_replicas": loss_two,
            "max_weight_difference": float(max(np.abs(a - b).max() for a, b in zip(weights_one, weights_two))),
            "max_weight_change_of_the_step": float(max(np.abs(a - b).max()
                                                       for a, b in zip(initial_weights, weights_one))),
        }

    two = fit.distribution_strategy("auto")
    report = {"strategy": type(two).__name__, "replicas": two.num_replicas_in_sync, "global_batch": global_batch,
              **compare(lambda: build_model("mobilenetv2", base=tiny(), **options), initial)}
    print(f"replica check: {report}", flush=True)

    # A keras-hub ViT (the CLIP entries; layer norm only, so the replicas must agree as exactly) with
    # --tune layernorm: a 2-layer encoder of width 32, random weights.
    import keras_hub

    def small_clip():
        encoder = keras_hub.models.CLIPVisionEncoder(patch_size=16, hidden_dim=32, num_layers=2, num_heads=2,
                                                     intermediate_dim=64, image_shape=(size, size, 3))
        return build_model("clip-vit-b16", base=encoder, tune="layernorm", **options)

    keras.utils.set_random_seed(args.seed)
    report["clip_layernorm"] = compare(small_clip, small_clip().get_weights())
    print(f"replica check, CLIP --tune layernorm: {report['clip_layernorm']}", flush=True)

    # The product's path on the two replicas: files, fit.train, per-replica batch 4.
    import tempfile

    import cv2

    from shared.train_config import TrainConfig

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i in range(12):
            path = Path(folder) / f"crop_{i}.png"
            cv2.imwrite(str(path), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
            paths.append(str(path))
        crop_labels = [i % 2 for i in range(12)]
        fit.build_model = lambda backbone, **kw: build_model(backbone, base=tiny(kw["image_size"]),
                                                              **{k: v for k, v in kw.items() if k != "weights"})
        config = TrainConfig.from_options({"weights": "none", "epochs": 1, "batch_size": 4, "image_size": size,
                                           "jit": True, "backbone": "mobilenetv2"})
        result = fit.train(paths[:8], crop_labels[:8], paths[8:], crop_labels[8:], config, Path(folder) / "run")
    report["train"] = {k: result["config"][k] for k in ("replicas_used", "global_batch_size", "devices",
                                                        "jit", "jit_used")}
    report["train"]["loss"] = result["history"]["loss"]
    print(f"replica check, fit.train: {report['train']}", flush=True)
    return report


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
    if args.replica_check:
        report["replica_check"] = phase("replica_check", lambda: replica_check(args))
        save()
        return 1 if report["errors"] else 0

    import keras

    from workers.training.fit import balanced_class_weight
    from workers.training.models import build_model

    report["machine"] = machine_info()
    report["machine"]["cores_used"] = len(os.sched_getaffinity(0))
    on_gpu = bool(report["machine"]["gpus"])
    use_mixed_precision = args.mixed_precision and on_gpu
    use_jit = on_gpu if args.jit == "auto" else args.jit == "on"
    report["config"] = {
        "backbone": args.backbone, "images": args.images, "batch_size": args.batch_size,
        "image_size": args.image_size, "epochs": args.epochs, "data_epochs": args.data_epochs,
        "timed_epochs": args.epochs - 1, "feeds": args.feeds, "weights": args.weights,
        "mixed_precision_requested": args.mixed_precision, "mixed_precision_used": use_mixed_precision,
        "jit": args.jit, "jit_used": use_jit, "device": "GPU" if on_gpu else "CPU", "seed": args.seed,
        "cores": report["machine"]["cores_used"],
    }
    if args.mixed_precision and not on_gpu:
        print("note: --mixed-precision ignored: TensorFlow sees no GPU (fit.train does the same)", flush=True)
    print(f"machine: {report['machine']}", flush=True)

    if args.augment_cost:
        report["augment_cost"] = phase("augment_cost", lambda: augment_cost(args))
        report["total_s"] = round(time.perf_counter() - t0, 1)
        save()
        return 1 if report["errors"] else 0

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
        if args.scale:
            del arrays
            report["scale"] = phase("scale", lambda: scale_check(paths, labels, args))
        elif not args.skip_data:
            report["data_alone"] = {}
            for key, feed in (("cache", "cache"), ("map", "map"), ("arrays", "arrays")):
                result = phase(f"data_alone.{key}", lambda: time_data_alone(
                    make_feed(feed, paths, labels, arrays, args), n, args.data_epochs))
                if result is not None:
                    result["per_core_images_per_s"] = round(result["steady_images_per_s"] / report["config"]["cores"], 1)
                    report["data_alone"][key] = result
                    print(f"data alone  {key:20s} {result}", flush=True)

        if not args.skip_train and not args.scale:
            class_weight = balanced_class_weight(labels)
            start = time.perf_counter()
            build = dict(weights=args.weights, image_size=args.image_size, mixed_precision=use_mixed_precision,
                         jit_compile=use_jit, seed=args.seed)
            models = {}
            for feed in args.feeds:
                # Same initial weights for every model: the seed is set before each build.
                keras.utils.set_random_seed(args.seed)
                legacy = feed == "map"
                models[feed] = phase(f"build_model.{feed}", lambda: build_model(
                    args.backbone, augment=not legacy, preprocessing=not legacy, **build))
            report["build_model_s"] = round(time.perf_counter() - start, 2)
            report["train"] = {}
            if all(m is not None for m in models.values()):
                report["model_params"] = int(next(iter(models.values())).count_params())
                report["jit_compile_effective"] = {f: bool(m.jit_compile) for f, m in models.items()}
                datasets = {feed: make_feed(feed, paths, labels, arrays, args) for feed in args.feeds}
                results = phase("train", lambda: train_interleaved(models, datasets, n, args, class_weight))
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
    for feed in ("map", "arrays", "constant"):
        if "model" in train and feed in train:
            rounds = [a / b for a, b in zip(train["model"]["per_round_images_per_s"],
                                            train[feed]["per_round_images_per_s"])]
            summary[f"model_vs_{feed}"] = round(
                train["model"]["steady_images_per_s"] / train[feed]["steady_images_per_s"], 3)
            summary[f"model_vs_{feed}_per_round"] = [round(r, 3) for r in rounds]
            summary[f"model_vs_{feed}_median_round"] = round(statistics.median(rounds), 3)
    if "cache" in data:
        summary["input_ceiling_images_per_s"] = data["cache"]["steady_images_per_s"]
        summary["input_ceiling_per_core"] = data["cache"]["per_core_images_per_s"]
        summary["input_target_per_core"] = INPUT_TARGET_PER_CORE
        summary["meets_input_target"] = data["cache"]["per_core_images_per_s"] >= INPUT_TARGET_PER_CORE
        summary["decode_images_per_s"] = data["cache"]["first_epoch_images_per_s"]
    if "map" in data:
        summary["legacy_map_ceiling_per_core"] = data["map"]["per_core_images_per_s"]
    if on_gpu and "model" in train:
        summary["gpu_target_images_per_s"] = GPU_TARGET_IMAGES_PER_S
        summary["meets_gpu_target"] = train["model"]["steady_images_per_s"] >= GPU_TARGET_IMAGES_PER_S
    if "scale" in report and report["scale"]:
        summary["scale_first_over_later"] = report["scale"]["first_over_later"]
    return summary


def print_summary(report: dict) -> None:
    config, summary = report["config"], report["summary"]
    print()
    print(f"{config['backbone']} {config['image_size']}x{config['image_size']}, batch {config['batch_size']}, "
          f"{report['crops']['count']} crops, {config['device']}, {config['cores']} core(s)"
          f"{', mixed precision' if config['mixed_precision_used'] else ''}"
          f"{', XLA' if config['jit_used'] else ''}; steady state = epochs 2..{config['epochs']}")
    for feed, result in report.get("train", {}).items():
        print(f"  train {feed:9s} {result['steady_images_per_s']:10.1f} images/s   "
              f"(median batch {result['median_batch_images_per_s']:.1f}; first epoch {result['first_epoch_s']} s)")
    for key, result in report.get("data_alone", {}).items():
        print(f"  alone {key:8s} first epoch {result['first_epoch_images_per_s']:10.1f}   "
              f"later {result['steady_images_per_s']:10.1f} images/s ({result['per_core_images_per_s']} per core)")
    for key, value in summary.items():
        if key.startswith("model_vs_") or key.startswith("meets") or key.startswith("scale"):
            print(f"  {key} = {value}")
    if report["errors"]:
        print(f"  errors: {report['errors']}")
    print(f"  total {report['total_s']} s, peak RSS {report['peak_rss_mib']} MiB")


if __name__ == "__main__":
    early_setup()
    sys.exit(main())
