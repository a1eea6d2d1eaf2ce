"""Training a classifier on crop files, and predicting with it."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import keras
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from shared.preprocessing import BACKBONES, DEFAULT_BACKBONE, check_backbone
from workers.training.data import count_batches, make_array_dataset, make_dataset
from workers.training.models import MODEL_NAME_PREFIX, build_model

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
EARLY_STOPPING_PATIENCE = 3

DEFAULT_TRAIN_CONFIG = {
    "backbone": DEFAULT_BACKBONE,
    "weights": "imagenet",
    "epochs": 10,
    "batch_size": 32,
    "learning_rate": 1e-4,
    "seed": 42,
    "class_weight": "balanced",
    "image_size": 128,
    "dropout": 0.3,
    "mixed_precision": False,
    # Decoded crops kept between epochs: "memory" (49 KB a crop), "none" (decode every epoch),
    # or a local directory for tf.data's file cache (a 100x Celeb-DF needs ~120 GB: see docs/scaling.md).
    "cache": "memory",
}

ProgressCallback = Callable[[dict], None]


def resolve_train_config(config: dict | None) -> dict:
    """``config`` over the defaults, checked. Unknown keys are kept as given."""
    resolved = {**DEFAULT_TRAIN_CONFIG, **(config or {})}
    resolved["backbone"] = check_backbone(resolved["backbone"])
    if resolved["class_weight"] not in ("balanced", "none"):
        raise ValueError(f"class_weight must be 'balanced' or 'none', got {resolved['class_weight']!r}")
    for key in ("epochs", "batch_size", "image_size"):
        if int(resolved[key]) < 1:
            raise ValueError(f"{key} must be at least 1, got {resolved[key]!r}")
        resolved[key] = int(resolved[key])
    resolved["weights"] = str(resolved["weights"]) if resolved["weights"] is not None else "none"
    resolved["mixed_precision"] = bool(resolved["mixed_precision"])
    resolved["cache"] = str(resolved["cache"] or "none")
    return resolved


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
    config: dict,
    out_dir: Path,
    on_progress: ProgressCallback | None = None,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict:
    """Train on crop files; keep the epoch with the lowest validation loss.

    Writes ``model.keras`` and ``history.csv`` into ``out_dir``. Without validation crops,
    every epoch runs and the final model is saved. ``on_progress(dict)`` is called at each
    epoch's start and end and about once a second in between; an exception it raises
    stops training (and propagates). ``extra_callbacks`` (e.g. TensorBoard) are added to
    Keras's own. Returns model_path, history (per-epoch lists),
    epochs_run, best_epoch (1-based), train_images_per_s and the resolved config.
    """
    config = resolve_train_config(config)
    train_labels = np.asarray(train_labels, dtype=int)
    val_labels = np.asarray(val_labels, dtype=int)
    if len(train_paths) == 0:
        raise ValueError("no training crops")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / MODEL_FILE
    model_path.unlink(missing_ok=True)  # a stale model from an earlier run must not survive

    keras.backend.clear_session()  # a long-lived worker trains many models
    keras.utils.set_random_seed(config["seed"])
    dataset_options = dict(
        batch_size=config["batch_size"],
        backbone=config["backbone"],
        seed=config["seed"],
        image_size=config["image_size"],
    )
    train_data = make_dataset(train_paths, train_labels, training=True,
                              cache=dataset_cache(config["cache"], out_dir, "train"), **dataset_options)
    has_validation = len(val_paths) > 0
    val_data = (
        make_dataset(val_paths, val_labels, training=False,
                     cache=dataset_cache(config["cache"], out_dir, "val"), **dataset_options)
        if has_validation else None
    )
    class_weight = balanced_class_weight(train_labels) if config["class_weight"] == "balanced" else None

    use_mixed_precision = config["mixed_precision"] and bool(tf.config.list_physical_devices("GPU"))
    model = build_model(
        config["backbone"],
        weights=config["weights"],
        image_size=config["image_size"],
        dropout=config["dropout"],
        learning_rate=config["learning_rate"],
        mixed_precision=use_mixed_precision,
    )

    speed = _TrainSpeed(len(train_paths), config["batch_size"])
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.CSVLogger(str(out_dir / HISTORY_FILE)),
        speed,
    ]
    if has_validation:
        callbacks += [
            keras.callbacks.ModelCheckpoint(str(model_path), monitor="val_loss", save_best_only=True),
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=EARLY_STOPPING_PATIENCE, restore_best_weights=True
            ),
        ]
    callbacks += list(extra_callbacks)
    if on_progress is not None:
        batches = count_batches(len(train_paths), config["batch_size"])
        callbacks.append(ProgressReporter(on_progress, config["epochs"], batches))

    fit_history = model.fit(
        train_data,
        validation_data=val_data,
        epochs=config["epochs"],
        class_weight=class_weight,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself; Keras warns otherwise
        verbose=0,
    )
    history = {key: [float(v) for v in values] for key, values in fit_history.history.items()}
    epochs_run = len(history.get("loss", []))
    best_epoch = _best_epoch(history, epochs_run)
    # No validation, or every val_loss was NaN: the checkpoint never wrote; keep what we have
    # (EarlyStopping has already put the best weights back when there was validation).
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
        "config": json.loads(json.dumps(config, default=str)),
    }


def load_model(path: str | Path) -> keras.Model:
    """A trained model for prediction (no optimizer state needed)."""
    return keras.models.load_model(str(path), compile=False)


def model_backbone(model: keras.Model) -> str | None:
    """The backbone a ``build_model`` model was built on (its name says), else None."""
    name = model.name.removeprefix(MODEL_NAME_PREFIX)
    return name if model.name.startswith(MODEL_NAME_PREFIX) and name in BACKBONES else None


def predict_probabilities(
    model: keras.Model,
    paths: Sequence[str | Path],
    *,
    batch_size: int = 64,
    backbone: str | None = None,
) -> np.ndarray:
    """Fake probability of each crop file, in the order of ``paths``.

    ``backbone`` picks the preprocessing; None reads it from the model (see ``model_backbone``).
    """
    backbone = _preprocessing_backbone(model, backbone)
    if len(paths) == 0:
        return np.zeros(0, dtype=np.float32)
    dataset = make_dataset(
        paths,
        None,
        batch_size=batch_size,
        backbone=backbone,
        training=False,
        image_size=_model_image_size(model),
        cache=False,
    )
    return model.predict(dataset, verbose=0).reshape(-1).astype(np.float32)


def predict_arrays(
    model: keras.Model,
    images_rgb_uint8: np.ndarray,
    *,
    backbone: str | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Fake probability of each in-memory RGB uint8 crop (N, H, W, 3); ``backbone`` as above."""
    backbone = _preprocessing_backbone(model, backbone)
    images = np.asarray(images_rgb_uint8)
    if images.ndim == 3:
        images = images[np.newaxis]
    if len(images) == 0:
        return np.zeros(0, dtype=np.float32)
    dataset = make_array_dataset(
        images,
        None,
        batch_size=batch_size,
        backbone=backbone,
        training=False,
        image_size=_model_image_size(model),
    )
    return model.predict(dataset, verbose=0).reshape(-1).astype(np.float32)


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


def _best_epoch(history: dict, epochs_run: int) -> int:
    val_losses = [v if math.isfinite(v) else math.inf for v in history.get("val_loss", [])]
    if val_losses and min(val_losses) < math.inf:
        return int(np.argmin(val_losses)) + 1
    return epochs_run


def _preprocessing_backbone(model: keras.Model, backbone: str | None) -> str:
    """The backbone whose preprocessing the model expects; a mismatch is an error, because
    a model fed another backbone's preprocessing predicts garbage without failing."""
    built_on = model_backbone(model)
    if backbone is None:
        return built_on or DEFAULT_BACKBONE
    backbone = check_backbone(backbone)
    if built_on is not None and built_on != backbone:
        raise ValueError(f"the model was built on {built_on} but backbone={backbone!r} was given")
    return backbone


def _model_image_size(model: keras.Model) -> int:
    return int(model.input_shape[1])


def _to_float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
