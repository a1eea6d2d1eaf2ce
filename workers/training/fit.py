"""Training a classifier on crop files, on every GPU of the worker (predicting: inference.py)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import keras
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from shared.train_config import TrainConfig
from workers.training.data import count_batches, crops_from_packs, make_dataset
from workers.training.models import build_model, trainable_parameters

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
# Epochs without a better validation loss before training stops: at least this many, and a third
# of the epochs asked for. A small validation part makes its loss noisy; with a fixed 3, the
# learning guard (tiny, 15 epochs, ~30 validation crops) stopped at epoch 4 on a model whose
# best was epoch 1 (held-out video AUC 0.85), where the same run going on reached 0.99.
EARLY_STOPPING_PATIENCE = 3


def early_stopping_patience(epochs: int) -> int:
    return max(EARLY_STOPPING_PATIENCE, epochs // 3)

ProgressCallback = Callable[[dict], None]


def distribution_strategy(replicas: int | str = "auto") -> tf.distribute.Strategy:
    """MirroredStrategy over the visible GPUs (``replicas``: "auto" = all, N = the first N);
    the default strategy for one device. Without a GPU, the logical CPU devices take their
    place: one unless a test splits the CPU with ``tf.config.set_logical_device_configuration``.
    Raises ValueError when fewer devices than ``replicas`` are visible."""
    devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
    if replicas != "auto":
        if int(replicas) > len(devices):
            raise ValueError(f"replicas={replicas} but only {len(devices)} device(s) visible: {', '.join(devices)}")
        devices = devices[: int(replicas)]
    if len(devices) <= 1:
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy(devices)


def _gpu_visible() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def dataset_cache(setting: str, out_dir: Path, name: str) -> bool | str:
    """make_dataset's ``cache`` for a config value: memory, none, or a file under a directory."""
    if setting == "memory":
        return True
    if setting == "none":
        return False
    folder = Path(setting).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{out_dir.name}-{name}")


def balanced_class_weight(labels: Sequence[int]) -> dict[int, float] | None:
    """sklearn's "balanced" weights, n / (2 * n_class); None when a class is missing."""
    labels = np.asarray(labels, dtype=int)
    present = np.unique(labels)
    if len(present) < 2:
        return None
    weights = compute_class_weight("balanced", classes=present, y=labels)
    return {int(c): float(w) for c, w in zip(present, weights)}


def train(
    train_paths: Sequence[str | Path],
    train_labels: Sequence[int],
    val_paths: Sequence[str | Path],
    val_labels: Sequence[int],
    config: TrainConfig,
    out_dir: Path,
    on_progress: ProgressCallback | None = None,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
    landmarks: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Train on crop files; keep the epoch with the lowest validation loss (``config.keep`` best), the
    highest validation AUC (best-auc), the last epoch (last) or the mean weights of the last third of
    the epochs (average).

    Writes ``model.keras`` and ``history.csv`` into ``out_dir``. Without validation crops,
    every epoch runs and the final model is saved. ``on_progress(dict)`` is called at each
    epoch's start and end and about once a second in between; an exception it raises
    stops training (and propagates). ``extra_callbacks`` (e.g. TensorBoard) are added to
    Keras's own. Returns model_path, history (per-epoch lists),
    epochs_run, best_epoch (1-based), train_images_per_s and "config": ``config`` as a dict with
    what was used added: jit_used, mixed_precision_used, replicas_used, global_batch_size, devices,
    train_crops_from_packs (crops read from their video's pack rather than decoded from PNG).

    Every visible GPU trains (``distribution_strategy``); ``batch_size`` is per replica. The
    model gets raw uint8 crops; it augments (training only) and preprocesses on the device.

    ``fakes`` sbi or both (workers/training/sbi.py): real crops also become pseudo-fakes, blended
    from ``landmarks`` (train, val) in the crops' pixels; the result says how many.
    """
    train_labels = np.asarray(train_labels, dtype=int)
    val_labels = np.asarray(val_labels, dtype=int)
    if len(train_paths) == 0:
        raise ValueError("no training crops")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / MODEL_FILE
    model_path.unlink(missing_ok=True)  # a stale model from an earlier run must not survive

    keras.backend.clear_session()  # a long-lived worker trains many models
    keras.utils.set_random_seed(config.seed)
    strategy = distribution_strategy(config.replicas)
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    # The dataset gives global batches; the strategy splits each among the replicas.
    dataset_options = dict(batch_size=global_batch, seed=config.seed, image_size=config.image_size)
    blended = None
    if config.fakes != "real":
        from workers.training.sbi import sbi_inputs

        if landmarks is None:
            raise ValueError(f"--fakes {config.fakes} needs the crops' landmarks")
        blended = sbi_inputs(train_paths, train_labels, val_paths, val_labels, landmarks, fakes=config.fakes,
                             image_size=config.image_size, batch_size=global_batch, seed=config.seed,
                             out_dir=out_dir)
        train_data, val_data, train_labels = blended.pop("train"), blended.pop("val"), blended.pop("train_labels")
        has_validation = val_data is not None
    else:
        train_data = make_dataset(train_paths, train_labels, training=True,
                                  cache=dataset_cache(config.cache, out_dir, "train"), **dataset_options)
        has_validation = len(val_paths) > 0
        val_data = (
            make_dataset(val_paths, val_labels, training=False,
                         cache=dataset_cache(config.cache, out_dir, "val"), **dataset_options)
            if has_validation else None
        )
    n_train = len(train_labels)
    class_weight = balanced_class_weight(train_labels) if config.class_weight == "balanced" else None

    use_mixed_precision = config.mixed_precision and _gpu_visible()
    use_jit = _gpu_visible() if config.jit == "auto" else config.jit
    # Keras compiles the whole distributed step (strategy.run inside one XLA function), which
    # cannot reach variables on other devices ("Trying to access resource ... located in
    # device CPU:1 from device CPU:0", seen here on 2 logical CPUs); Keras' own "auto" turns
    # XLA off under tf.distribute for the same reason. Several replicas: no XLA.
    if use_jit and replicas > 1:
        use_jit = False
    with strategy.scope():
        model = build_model(
            config.backbone,
            weights=config.weights,
            image_size=config.image_size,
            dropout=config.dropout,
            learning_rate=learning_rate(config, count_batches(n_train, global_batch)),
            mixed_precision=use_mixed_precision,
            jit_compile=use_jit,
            seed=config.seed,
            tune=config.tune,
            augment=config.augment != "off",
        )
    use_jit = bool(model.jit_compile)  # Keras turns it off for layers that cannot compile
    used = dict(jit_used=use_jit, mixed_precision_used=use_mixed_precision, replicas_used=replicas,
                global_batch_size=global_batch, devices=_strategy_devices(strategy),
                train_crops_from_packs=crops_from_packs(train_paths),
                trainable_parameters=trainable_parameters(model))

    speed = _TrainSpeed(n_train, global_batch)
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.CSVLogger(str(out_dir / HISTORY_FILE)),
        speed,
    ]
    averaging = None
    if config.keep == "average":
        averaging = WeightAverage(first_epoch=average_from(config.epochs))
        callbacks.append(averaging)
    monitor, mode = ("val_auc", "max") if config.keep == "best-auc" else ("val_loss", "min")
    if has_validation and config.keep in ("best", "best-auc"):
        callbacks += [
            keras.callbacks.ModelCheckpoint(str(model_path), monitor=monitor, mode=mode, save_best_only=True),
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=early_stopping_patience(config.epochs), restore_best_weights=True
            ),
        ]
    callbacks += list(extra_callbacks)
    if on_progress is not None:
        batches = count_batches(n_train, global_batch)
        callbacks.append(ProgressReporter(on_progress, config.epochs, batches))

    fit_history = model.fit(
        train_data,
        validation_data=val_data,
        epochs=config.epochs,
        class_weight=class_weight,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself; Keras warns otherwise
        verbose=0,
    )
    history = {key: [float(v) for v in values] for key, values in fit_history.history.items()}
    epochs_run = len(history.get("loss", []))
    best_epoch = _best_epoch(history, epochs_run, monitor, mode) if config.keep.startswith("best") else epochs_run
    # keep last/average, no validation, or every val_loss NaN: the checkpoint never wrote; keep what
    # we have (EarlyStopping has already put the best weights back when there was validation).
    if not model_path.exists():
        model.save(str(model_path))

    return {
        "model_path": str(model_path),
        "history": history,
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "train_images_per_s": speed.images_per_s(),
        "class_weight": class_weight,
        "mixed_precision_used": use_mixed_precision,
        "config": {**config.as_dict(), **used,
                   **({"averaged_epochs": averaging.averaged} if averaging is not None else {})},
        "sbi": blended,
        "train_labels": np.asarray(train_labels, dtype=int),  # one epoch's, pseudo-fakes included
    }


def learning_rate(config: TrainConfig, steps_per_epoch: int):
    """Adam's rate: the number, or for ``lr_schedule`` cosine a schedule from it to 0 over the epochs."""
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, max(1, config.epochs * steps_per_epoch))
    return config.learning_rate


def average_from(epochs: int) -> int:
    """The first (1-based) epoch whose weights ``keep`` average takes: the last third of ``epochs``."""
    return epochs - max(1, epochs // 3) + 1


class WeightAverage(keras.callbacks.Callback):
    """The mean of the model's float variables (weights and batch-norm statistics) at the end of each
    epoch from ``first_epoch`` (1-based) on, put into the model when training ends (as SWA, Izmailov
    et al. 2018, without its batch-norm pass: the averaged statistics are kept). The sums live in memory:
    a run resumed after a take-back averages the epochs its new holder ran (``averaged_epochs`` says
    how many)."""

    def __init__(self, first_epoch: int):
        super().__init__()
        self.first_epoch = first_epoch
        self.averaged = 0
        self._sums: list[np.ndarray] | None = None

    def _variables(self):
        return [v for v in self.model.weights if "float" in str(v.dtype)]

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.first_epoch:
            return
        values = [np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float64) for v in self._variables()]
        self._sums = values if self._sums is None else [s + v for s, v in zip(self._sums, values)]
        self.averaged += 1

    def on_train_end(self, logs=None):
        if self._sums is None:
            return
        for variable, total in zip(self._variables(), self._sums):
            variable.assign((total / self.averaged).astype(str(variable.dtype)))


class ProgressReporter(keras.callbacks.Callback):
    """Turns Keras callbacks into ``on_progress(dict)`` calls, at most about once per second
    between the epoch start and end events (which are always sent)."""

    def __init__(
        self, on_progress: ProgressCallback, epochs: int, batches: int, min_interval_s: float = 1.0
    ):
        super().__init__()
        self.on_progress = on_progress
        self.epochs = epochs
        self.batches = batches
        self.min_interval_s = min_interval_s
        self._epoch = 0
        self._last_sent = 0.0
        self._epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1
        self._epoch_started = time.monotonic()
        self._send("epoch_begin", batch=0)

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self._last_sent >= self.min_interval_s:
            self._send("batch", batch=batch + 1, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        self._send("epoch_end", batch=self.batches, logs=logs)

    def _send(self, phase: str, *, batch: int, logs=None):
        self._last_sent = time.monotonic()
        event = {
            "phase": phase,
            "epoch": self._epoch,
            "epochs": self.epochs,
            "batch": batch,
            "batches": self.batches,
            "elapsed_s": round(self._last_sent - self._epoch_started, 3),
        }
        for key, value in (logs or {}).items():
            number = _to_float(value)
            if number is not None:
                event[key] = number
        self.on_progress(event)


class _TrainSpeed(keras.callbacks.Callback):
    """Training throughput, timed from batch start to batch end (input feed included).

    The first batch is left out when there are others: it pays for graph tracing."""

    def __init__(self, n_images: int, batch_size: int):
        super().__init__()
        self.n_images = n_images
        self.batch_size = batch_size
        self.batches = count_batches(n_images, batch_size)
        self._started = 0.0
        self._timed: list[tuple[int, float]] = []  # (images, seconds) of each batch

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        size = self.batch_size if batch < self.batches - 1 else self.n_images - batch * self.batch_size
        self._timed.append((size, time.perf_counter() - self._started))

    def images_per_s(self) -> float | None:
        timed = self._timed[1:] if len(self._timed) > 1 else self._timed
        seconds = sum(s for _, s in timed)
        return round(sum(n for n, _ in timed) / seconds, 2) if seconds > 0 else None


def _best_epoch(history: dict, epochs_run: int, monitor: str = "val_loss", mode: str = "min") -> int:
    sign = 1 if mode == "min" else -1
    values = [sign * v if math.isfinite(v) else math.inf for v in history.get(monitor, [])]
    if values and min(values) < math.inf:
        return int(np.argmin(values)) + 1
    return epochs_run


def _strategy_devices(strategy: tf.distribute.Strategy) -> list[str]:
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return list(strategy.extended.worker_devices)
    return ["default"]  # one device, placed by TensorFlow


def _to_float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
