"""Where crops become a model: one training run, from its recorded split to metrics and plots."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
from sqlalchemy import select, update

from db.models import Crop, Run, SplitMember, Video, utcnow
from db.session import session_scope
from shared.labels import RUN_DONE, RUN_FAILED
from shared.process import process_name
from shared.settings import get_settings
from shared.storage import artifact_keys, open_store, resolve, storage_key, upload_folder
from shared.train_config import TrainConfig
from workers.training.lease import (Claim, Heartbeat, LeaseLost, checkpoint_dir, checkpoint_epoch, claim_run, remove_checkpoint,
                                    training_callbacks)

CONFIG_FILE, METRICS_FILE, PREDICTIONS_FILE = "config.json", "metrics.json", "test_predictions.csv"
VAL_PREDICTIONS_FILE = "val_predictions.csv"  # every validation crop's probability: thresholds per aggregation
TENSORBOARD_DIR = "tensorboard"
# TensorBoard scalars: per epoch, and every this many training batches.
TENSORBOARD_EVERY_BATCHES = 10

log = logging.getLogger(__name__)


def run_dir(run_id: str) -> Path:
    return get_settings().runs_dir / run_id


def load_split(run_id: str, progress: Callable[[dict], None] | None = None) -> dict[str, dict[str, list]]:
    """part -> {"paths", "labels", "video_ids"} with local crop paths, in a stable order: under
    DATA_DIR, or fetched from the object store into CACHE_DIR first."""
    store = open_store()
    root = get_settings().cache_path if store.remote else get_settings().data_dir
    parts: dict[str, dict[str, list]] = {p: {"paths": [], "labels": [], "video_ids": []} for p in ("train", "val", "test")}
    with session_scope() as session:
        rows = session.execute(
            select(SplitMember.part, Crop.crop_path, Video.label, Video.id)
            .join(Crop, SplitMember.crop_id == Crop.id)
            .join(Video, Crop.video_id == Video.id)
            .where(SplitMember.run_id == run_id)
            .order_by(Crop.id)
        ).all()
    for part, crop_path, label, video_id in rows:
        parts[part]["paths"].append(str(resolve(crop_path, root)))
        parts[part]["labels"].append(int(label))
        parts[part]["video_ids"].append(int(video_id))
    if store.remote:
        from workers.training.fetch import fetch_crops

        fetch_crops(store, [storage_key(crop_path) for _, crop_path, _, _ in rows], root, progress=progress)
    return parts


class ProgressRecorder:
    """Keeps the run's progress in the database (the CLI reads it) and forwards it (Flower)."""

    def __init__(self, run_id: str, forward: Callable[[dict], None] | None = None, min_interval_s: float = 1.0):
        self.run_id, self.forward, self.min_interval_s = run_id, forward, min_interval_s
        self._last = 0.0

    def __call__(self, event: dict) -> None:
        now = time.monotonic()
        if event.get("phase") == "batch" and now - self._last < self.min_interval_s:
            return
        self._last = now
        with session_scope() as session:
            session.execute(update(Run).where(Run.id == self.run_id).values(progress=event))
        if self.forward:
            self.forward(event)


def describe_progress(event: dict | None) -> str:
    """'epoch 2/10, batch 5/12, loss 0.4123' for people (CLI, Flower)."""
    if not event:
        return "starting"
    if event.get("phase") == "evaluate":
        return "evaluating on the test set"
    if event.get("phase") == "fetch":
        return f"fetching crops from the store: {event.get('files')}/{event.get('total')} files, {event.get('bytes', 0) / 1e6:.1f} MB"
    text = f"epoch {event.get('epoch', '?')}/{event.get('epochs', '?')}"
    if event.get("batches"):
        text += f", batch {event.get('batch', 0)}/{event['batches']}"
    if event.get("loss") is not None:
        text += f", loss {event['loss']:.4f}"
    if event.get("val_loss") is not None:
        text += f", val_loss {event['val_loss']:.4f}"
    return text


def execute_run(run_id: str, forward_progress: Callable[[dict], None] | None = None) -> dict:
    """Train on the run's train part (validation for checkpoint choice), score the test part
    once, write every artifact into DATA_DIR/runs/<run_id>/, and record the outcome.

    The run's lease (workers/training/lease.py) makes this process its one holder: a heartbeat
    renews it while the run goes on, training stops once another worker has taken the run back,
    and a later holder resumes from the last epoch checkpoint."""
    claim = claim_run(run_id)
    if not claim.granted:
        return {"run_id": run_id, "status": claim.status, "skipped": True, "reason": claim.reason}
    out_dir = _open_run_dir(run_id)
    with Heartbeat(run_id) as lease:
        try:
            return _train_and_record(run_id, claim, out_dir, lease, ProgressRecorder(run_id, forward_progress))
        except LeaseLost:  # another worker holds the run now: it records the outcome
            return {"run_id": run_id, "status": "lease lost", "skipped": True}
        except BaseException as exc:
            _record_failure(run_id, exc)
            raise


def _open_run_dir(run_id: str) -> Path:
    """The run's folder, made; the epoch an earlier holder's checkpoint resumes from is recorded."""
    out_dir = run_dir(run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    resumed_from = checkpoint_epoch(out_dir)
    if resumed_from:
        with session_scope() as session:
            session.execute(update(Run).where(Run.id == run_id).values(resumed_from_epoch=resumed_from))
    return out_dir


def _train_and_record(run_id: str, claim: Claim, out_dir: Path, lease: Heartbeat, progress: ProgressRecorder) -> dict:
    from workers.training.report_html import write_report_html

    # The run's record: its training options (checked when the run was planned) and what planning
    # added (ingest parameters, datasets, data folder).
    recorded, split_info = claim.config, claim.split
    config = TrainConfig.from_record(recorded)
    split = load_split(run_id, progress)
    # Written now so that a run that fails still says what it tried; again at the end with what was used.
    write_config(out_dir, run_id, recorded, split_info)
    tensorboard = _tensorboard_callbacks(out_dir / TENSORBOARD_DIR)
    landmarks = None
    if config.fakes != "real":  # the crops' landmarks, in their pixels: SBI blends its pseudo-fakes from them
        from workers.training.sbi import split_landmarks

        landmarks = (split_landmarks(run_id, "train", recorded), split_landmarks(run_id, "val", recorded))
    fitted = _fit(split, config, out_dir, progress, tensorboard, lease, landmarks)
    progress({"phase": "evaluate"})
    scores = _score(fitted, split, config, out_dir, landmarks, recorded.get("input_warnings") or [])
    artifacts = _write_artifacts(out_dir, split, fitted, scores, tensorboard=bool(tensorboard))
    final_config = {**recorded, **fitted["config"], "threshold": scores.threshold["threshold"],
                    "threshold_rule": scores.threshold["threshold_rule"]}
    write_config(out_dir, run_id, final_config, split_info)
    finished_at = utcnow()
    write_report_html({"run_id": run_id, "status": RUN_DONE, "config": final_config, "split": split_info,
                       "metrics": scores.metrics, "artifacts": artifacts,  # keys: the page stays true in a copy
                       "created_at": claim.created_at.isoformat() if claim.created_at else None,
                       "finished_at": finished_at.isoformat()}, out_dir)
    # An object store holds the run folder before the run is recorded done (not the checkpoint: local resume state).
    upload_folder(storage_key(out_dir), out_dir, skip=checkpoint_dir(out_dir))
    with session_scope() as session:
        session.execute(update(Run).where(Run.id == run_id, Run.worker == process_name()).values(
            status=RUN_DONE, metrics=scores.metrics, history=fitted["history"], artifacts=artifacts,
            config=final_config, finished_at=finished_at, progress={"phase": "done"},
        ))
    remove_checkpoint(out_dir)
    return {"run_id": run_id, "status": RUN_DONE, "accuracy": scores.metrics.get("accuracy"),
            "auc": scores.metrics.get("auc")}


def write_config(out_dir: Path, run_id: str, config: dict, split: dict) -> None:
    (out_dir / CONFIG_FILE).write_text(json.dumps({"run_id": run_id, **config, "split": split}, indent=2))


def _fit(split: dict, config: TrainConfig, out_dir: Path, progress: ProgressRecorder, tensorboard: list,
         lease: Heartbeat, landmarks: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Train on the train part, the validation part choosing the checkpoint (``fit.train``), with
    the lease's callbacks: an epoch checkpoint to resume from, a stop once the lease is lost.
    ``landmarks`` (train, val): for ``--fakes sbi|both``, the pseudo-fakes' faces."""
    from workers.training.fit import train

    train_part, val_part = split["train"], split["val"]
    return train(train_part["paths"], train_part["labels"], val_part["paths"], val_part["labels"], config, out_dir,
                 on_progress=progress, extra_callbacks=tensorboard + training_callbacks(out_dir, lease),
                 landmarks=landmarks)


class Scores(NamedTuple):
    threshold: dict  # the run's video rule's entry of aggregation_metrics: its threshold, chosen on validation
    test_probabilities: np.ndarray
    metrics: dict  # of the test part, with the validation's and the warnings


def _score(fitted: dict, split: dict, config: TrainConfig, out_dir: Path,
           landmarks: tuple[np.ndarray, np.ndarray] | None = None, input_warnings: list[str] = ()) -> Scores:
    """Every validation and test crop's probability, written (val_predictions.csv,
    test_predictions.csv); from them the video scores under every rule (workers/training/aggregate.py),
    each with its threshold chosen on the validation videos (never the test set); the test part's
    metrics at the run's rule's threshold, and the warnings that say when not to trust them. With
    ``landmarks``, validation also holds the pseudo-fakes of its real videos. ``input_warnings``
    (crops smaller than the model's input) head the warnings."""
    from workers.training.aggregate import aggregation_metrics, read_predictions, with_aggregation, write_predictions
    from workers.training.evaluate import compute_metrics
    from workers.training.inference import load_model, predict_probabilities
    from workers.training.threshold import run_warnings

    model = load_model(fitted["model_path"])
    val, test = split["val"], split["test"]
    val_probabilities = predict_probabilities(model, val["paths"], batch_size=config.batch_size)
    if landmarks is not None:
        from workers.training.sbi import scored_pseudo_fakes

        pseudo = scored_pseudo_fakes(val, landmarks[1], image_size=config.image_size, seed=config.seed)
        val = {key: list(val[key]) + pseudo[key] for key in ("paths", "labels", "video_ids")}
        val_probabilities = np.concatenate([val_probabilities, predict_probabilities(
            model, pseudo["images"], batch_size=config.batch_size)])
    probabilities = predict_probabilities(model, test["paths"], batch_size=config.batch_size)
    # Crops named by their keys under the storage root: the files stay true in a copied DATA_DIR.
    write_predictions(out_dir / VAL_PREDICTIONS_FILE, [storage_key(p) for p in val["paths"]], val["video_ids"],
                      val["labels"], val_probabilities)
    write_predictions(out_dir / PREDICTIONS_FILE, [storage_key(p) for p in test["paths"]], test["video_ids"],
                      test["labels"], probabilities)
    rule = config.aggregate
    aggregations = aggregation_metrics(read_predictions(out_dir / VAL_PREDICTIONS_FILE),
                                       read_predictions(out_dir / PREDICTIONS_FILE),
                                       fallback=config.threshold, seed=config.seed)
    chosen = aggregations[rule]
    metrics = compute_metrics(test["labels"], probabilities, test["video_ids"], threshold=chosen["threshold"])
    warnings = run_warnings(test_labels=test["labels"], test_probabilities=probabilities,
                            val_labels=val["labels"], val_probabilities=val_probabilities,
                            train_labels=fitted["train_labels"])
    warnings = list(input_warnings) + warnings
    one_class = any(w.startswith(("ONE-CLASS VALIDATION", "EMPTY VALIDATION")) for w in warnings)
    warnings += [w for w in chosen["warnings"] if not (one_class and w.startswith("threshold not chosen"))]
    val_metrics = compute_metrics(val["labels"], val_probabilities, val["video_ids"], threshold=chosen["threshold"])
    metrics.update(
        threshold_rule=chosen["threshold_rule"],
        val_video_balanced_accuracy=chosen["balanced_accuracy"],
        val_auc=val_metrics["auc"], val_video_auc=chosen["val_video_auc"],
        warnings=warnings, aggregations=aggregations,
    )
    metrics = with_aggregation(metrics, rule)
    if fitted.get("sbi"):
        sbi = fitted["sbi"]
        metrics["pseudo_fakes"] = {
            "per_epoch": sbi["pseudo_fakes_per_epoch"], "epochs_run": fitted["epochs_run"],
            "train_made": sbi["pseudo_fakes_per_epoch"] * fitted["epochs_run"],
            "validation": sbi["val_pseudo_fakes"]}
    metrics["train_images_per_s"] = fitted["train_images_per_s"]
    metrics["best_epoch"], metrics["epochs_run"] = fitted["best_epoch"], fitted["epochs_run"]
    return Scores(chosen, probabilities, metrics)


def _write_artifacts(out_dir: Path, split: dict, fitted: dict, scores: Scores, *, tensorboard: bool) -> dict:
    """The plots and metrics.json; returns every artifact's key relative to the storage root (the predictions are written by
    ``_score``, config.json and report.html by the caller)."""
    from workers.training.plots import plot_confusion_matrix, plot_history, plot_roc

    test, threshold = split["test"], scores.threshold["threshold"]
    plots = [
        plot_history(fitted["history"], out_dir / "history.png"),
        plot_confusion_matrix(scores.metrics["confusion_matrix"], out_dir / "confusion_matrix.png",
                              title=f"Test crops (threshold {threshold:.3f})"),
        plot_confusion_matrix(scores.metrics["video_confusion_matrix"], out_dir / "video_confusion_matrix.png",
                              title=f"Test videos (threshold {threshold:.3f})"),
        plot_roc(test["labels"], scores.test_probabilities, out_dir / "roc.png"),
    ]
    (out_dir / METRICS_FILE).write_text(json.dumps(scores.metrics, indent=2))
    return artifact_keys({
        "dir": str(out_dir),
        "model": fitted["model_path"],
        "config": str(out_dir / CONFIG_FILE),
        "metrics": str(out_dir / METRICS_FILE),
        "history": str(out_dir / "history.csv"),
        "predictions": str(out_dir / PREDICTIONS_FILE),
        "val_predictions": str(out_dir / VAL_PREDICTIONS_FILE),
        "sbi_examples": (fitted.get("sbi") or {}).get("examples"),
        "plots": [str(p) for p in plots],
        "tensorboard": str(out_dir / TENSORBOARD_DIR) if tensorboard else None,
        "report_html": str(out_dir / "report.html"),
    })


def _record_failure(run_id: str, exc: BaseException) -> None:
    message = " ".join(str(exc).split()) or type(exc).__name__
    try:
        with session_scope() as session:
            session.execute(update(Run).where(Run.id == run_id, Run.worker == process_name()).values(
                status=RUN_FAILED, error=f"{type(exc).__name__}: {message}"[:2000], finished_at=utcnow()))
    except Exception as db_exc:  # a full disk fails both: the run stays running under a gone holder, resumable
        log.error("run %s failed (%s: %s) and the failure could not be recorded: %s",
                  run_id, type(exc).__name__, message, db_exc)


def _tensorboard_callbacks(log_dir: Path) -> list:
    """Keras's TensorBoard callback (per-epoch scalars, the model graph) and ``BatchScalars``
    (every TENSORBOARD_EVERY_BATCHES batches); none when the tensorboard package is missing
    (tf.summary needs it; tensorflow-cpu does not install it, the project's cpu extra does).

    Keras's own ``update_freq=N`` is not used: its per-batch ``record_if`` stays active at epoch
    end, so epoch scalars were only written when the epoch ended on a multiple of N (seen with
    Keras 3.15: no ``epoch_loss`` at all in a 9-epoch run of 23 batches per epoch)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return []
    import keras
    import tensorflow as tf

    class BatchScalars(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.writer, self.step = None, 0

        def on_train_begin(self, logs=None):
            self.writer = tf.summary.create_file_writer(str(log_dir / "train_batches"))

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step % TENSORBOARD_EVERY_BATCHES == 0 and logs:
                with self.writer.as_default(step=self.step):
                    for name, value in logs.items():
                        tf.summary.scalar(f"batch_{name}", float(value))

        def on_train_end(self, logs=None):
            if self.writer is not None:
                self.writer.close()

    return [keras.callbacks.TensorBoard(log_dir=str(log_dir), update_freq="epoch", write_graph=True,
                                        profile_batch=0), BatchScalars()]
