from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import csv
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from shared.preprocessing import load_crop, preprocess
from workers.training import fit
from workers.training.data import make_array_dataset, make_dataset
from workers.training.fit import load_model, predict_arrays, predict_probabilities, train
from workers.training.models import WeightsUnavailableError, build_model, notop_weights_file


def synthetic_crop(label: int, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """Real: dark noise. Fake: the same with bright horizontal stripes (easy to tell apart)."""
    image = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
    if label == 1:
        image[::8] = 240
    return image


def write_crops(folder: Path, labels: list[int], seed: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, label in enumerate(labels):
        path = folder / f"crop_{i:03d}_{label}.png"
        tf.io.write_file(str(path), tf.io.encode_png(synthetic_crop(label, rng)))
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """16 training crops (10 fake, 6 real: imbalanced like Celeb-DF) and 8 validation crops."""
    root = tmp_path_factory.mktemp("crops")
    train_labels = [1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1]
    val_labels = [0, 1, 0, 1, 0, 1, 0, 1]
    return {
        "train_paths": write_crops(root / "train", train_labels, seed=1),
        "train_labels": train_labels,
        "val_paths": write_crops(root / "val", val_labels, seed=2),
        "val_labels": val_labels,
    }


# --- data -------------------------------------------------------------------------------


def test_evaluation_dataset_keeps_order_and_applies_the_shared_preprocessing(crops):
    paths, labels = crops["val_paths"], crops["val_labels"]

    batches = list(make_dataset(paths, labels, batch_size=3, backbone="resnet50", training=False))

    images = np.concatenate([b[0].numpy() for b in batches])
    expected = preprocess(np.stack([load_crop(p) for p in paths]), "resnet50")
    np.testing.assert_allclose(images, expected, atol=1e-4)
    assert np.concatenate([b[1].numpy() for b in batches]).tolist() == labels
    assert [len(b[0]) for b in batches] == [3, 3, 2]


def test_array_dataset_feeds_the_same_input_as_files(crops):
    paths = crops["val_paths"]
    arrays = np.stack([load_crop(p) for p in paths])

    options = dict(batch_size=8, backbone="mobilenetv2", training=False)
    from_files = next(iter(make_dataset(paths, None, **options)))
    from_arrays = next(iter(make_array_dataset(arrays, None, **options)))

    np.testing.assert_allclose(from_arrays.numpy(), from_files.numpy(), atol=1e-5)


def test_training_dataset_shuffles_and_augments(crops):
    paths, labels = crops["train_paths"], crops["train_labels"]
    dataset = make_dataset(paths, labels, batch_size=16, backbone="mobilenetv2", training=True, seed=3)

    images, batch_labels = next(iter(dataset))

    assert images.shape == (16, 128, 128, 3) and images.dtype == tf.float32
    assert sorted(batch_labels.numpy().tolist()) == sorted(labels)
    assert batch_labels.numpy().tolist() != labels  # shuffled
    # Augmented: no training image equals the plainly preprocessed version of its file.
    plain = preprocess(np.stack([load_crop(p) for p in paths]), "mobilenetv2")
    for image in images.numpy():
        assert min(np.abs(image - p).mean() for p in plain) > 1e-3


def test_missing_crop_file_is_reported_before_training(crops, tmp_path):
    with pytest.raises(FileNotFoundError, match="1 crop file"):
        make_dataset(crops["val_paths"] + [str(tmp_path / "gone.png")], None, batch_size=4, training=False)


def test_labels_must_match_paths_and_be_binary(crops):
    with pytest.raises(ValueError):
        make_dataset(crops["val_paths"], [0, 1], batch_size=4, training=False)
    with pytest.raises(ValueError, match="0 \\(real\\) or 1 \\(fake\\)"):
        make_dataset(crops["val_paths"][:2], [0, 2], batch_size=4, training=False)


# --- models -----------------------------------------------------------------------------


def test_build_model_without_weights_outputs_one_probability():
    model = build_model("resnet50", weights="none")

    assert model.input_shape == (None, 128, 128, 3)
    assert model.output_shape == (None, 1)
    assert model.loss == "binary_crossentropy"
    assert model.optimizer.learning_rate.numpy() == pytest.approx(1e-4)
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"


def test_build_model_rejects_unknown_backbone():
    with pytest.raises(ValueError, match="mobilenetv2"):
        build_model("vgg16", weights="none")


def test_missing_weights_file_raises_weights_unavailable(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="not found"):
        build_model("resnet50", weights=str(tmp_path / "absent_notop.h5"))


def test_local_weights_file_is_loaded(tmp_path):
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(128, 128, 3))
    weights_path = tmp_path / "mobilenetv2_notop.weights.h5"
    base.save_weights(str(weights_path))

    model = build_model("mobilenetv2", weights=weights_path)

    loaded_base = model.layers[1]
    for saved, loaded in zip(base.get_weights(), loaded_base.get_weights()):
        np.testing.assert_array_equal(saved, loaded)


def test_mixed_precision_build_restores_the_global_policy():
    model = build_model("mobilenetv2", weights="none", mixed_precision=True)

    assert model.layers[1].dtype_policy.name == "mixed_float16"
    assert model.output.dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"


def imagenet_weights_cached(backbone: str = "resnet50") -> bool:
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return (keras_home / "models" / notop_weights_file(backbone)).exists()


@pytest.mark.skipif(imagenet_weights_cached(), reason="ImageNet weights already in the Keras cache")
def test_imagenet_weights_offline_raise_weights_unavailable_quickly():
    started = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as error:
        build_model("resnet50", weights="imagenet")

    message = str(error.value)
    assert "--weights none" in message and "--weights PATH" in message
    assert "\n" not in message
    assert time.monotonic() - started < 30


# --- training and prediction ------------------------------------------------------------


def test_train_end_to_end_with_resnet50(crops, tmp_path):
    events = []
    config = {"backbone": "resnet50", "weights": "none", "epochs": 1, "batch_size": 8, "seed": 7}

    result = train(
        crops["train_paths"],
        crops["train_labels"],
        crops["val_paths"],
        crops["val_labels"],
        config,
        tmp_path / "run",
        on_progress=events.append,
    )

    assert Path(result["model_path"]) == tmp_path / "run" / "model.keras"
    assert Path(result["model_path"]).is_file()
    with open(tmp_path / "run" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and "val_loss" in rows[0]
    assert {"loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"} <= set(result["history"])
    assert result["epochs_run"] == 1 and result["best_epoch"] == 1
    assert result["train_images_per_s"] > 0
    assert result["class_weight"] == pytest.approx({0: 16 / 12, 1: 16 / 20})
    assert result["config"]["backbone"] == "resnet50" and result["config"]["class_weight"] == "balanced"

    phases = [e["phase"] for e in events]
    assert phases[0] == "epoch_begin" and phases[-1] == "epoch_end"
    for event in events:
        assert event["epoch"] == 1 and event["epochs"] == 1 and event["batches"] == 2
        assert 0 <= event["batch"] <= 2
    assert "loss" in events[-1] and "accuracy" in events[-1] and "val_loss" in events[-1]

    model = load_model(result["model_path"])
    probabilities = predict_probabilities(model, crops["val_paths"], batch_size=4, backbone="resnet50")
    assert probabilities.shape == (8,)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    in_memory = predict_arrays(
        model, np.stack([load_crop(p) for p in crops["val_paths"]]), backbone="resnet50", batch_size=4
    )
    np.testing.assert_allclose(in_memory, probabilities, atol=1e-5)
    assert fit.model_backbone(model) == "resnet50"
    np.testing.assert_allclose(predict_probabilities(model, crops["val_paths"]), probabilities, atol=1e-5)
    with pytest.raises(ValueError, match="built on resnet50"):
        predict_probabilities(model, crops["val_paths"], backbone="mobilenetv2")


def tiny_model(backbone="resnet50", weights=None, image_size=128, dropout=0.3, learning_rate=1e-4, **_):
    """Stands in for build_model where a test is about the training loop, not the backbone."""
    inputs = keras.Input(shape=(image_size, image_size, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    return model


def test_train_without_validation_runs_every_epoch_and_saves_the_final_model(crops, tmp_path, monkeypatch):
    monkeypatch.setattr(fit, "build_model", tiny_model)
    events = []
    config = {"weights": "none", "epochs": 2, "batch_size": 4, "class_weight": "none"}

    result = train(crops["train_paths"], crops["train_labels"], [], [], config, tmp_path, events.append)

    assert Path(result["model_path"]).is_file()
    assert result["epochs_run"] == 2 and result["best_epoch"] == 2
    assert "val_loss" not in result["history"] and len(result["history"]["loss"]) == 2
    assert result["class_weight"] is None
    assert [e["epoch"] for e in events if e["phase"] == "epoch_end"] == [1, 2]
    assert all(e["batches"] == 4 for e in events)


def test_progress_reports_are_throttled_between_epoch_events():
    events = []
    reporter = fit.ProgressReporter(events.append, epochs=1, batches=100, min_interval_s=60)

    reporter.on_epoch_begin(0)
    for batch in range(100):
        reporter.on_train_batch_end(batch, {"loss": 0.5, "accuracy": np.float32(0.75)})
    reporter.on_epoch_end(0, {"loss": 0.4, "val_loss": 0.6})

    assert [e["phase"] for e in events] == ["epoch_begin", "epoch_end"]
    assert events[-1]["val_loss"] == 0.6 and events[-1]["batch"] == 100


def test_train_rejects_bad_config(crops, tmp_path):
    with pytest.raises(ValueError, match="class_weight"):
        train(crops["train_paths"], crops["train_labels"], [], [], {"class_weight": "auto"}, tmp_path)
    with pytest.raises(ValueError, match="backbone"):
        train(crops["train_paths"], crops["train_labels"], [], [], {"backbone": "vgg"}, tmp_path)


def test_predict_on_nothing_returns_an_empty_array():
    model = tiny_model()
    assert predict_probabilities(model, [], batch_size=4, backbone="resnet50").shape == (0,)
    assert predict_arrays(model, np.zeros((0, 128, 128, 3), np.uint8), backbone="resnet50").shape == (0,)


def test_dataset_cache_settings(tmp_path):
    from workers.training.fit import dataset_cache

    assert dataset_cache("memory", tmp_path / "run1", "train") is True
    assert dataset_cache("none", tmp_path / "run1", "train") is False
    path = dataset_cache(str(tmp_path / "cache"), tmp_path / "run1", "val")
    assert path == str(tmp_path / "cache" / "run1-val") and (tmp_path / "cache").is_dir()
