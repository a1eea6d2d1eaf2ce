from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from shared.preprocessing import load_crop, preprocess
from shared.train_config import TrainConfig
from workers.training import fit
from workers.training.data import make_dataset
from workers.training.fit import train
from workers.training.inference import load_model, model_backbone, model_input, predict_probabilities
from workers.training.models import (
    BackbonePreprocessing,
    CropAugmentation,
    WeightsUnavailableError,
    backbone_layer,
    build_model,
    notop_weights_file,
)

REPO = Path(__file__).resolve().parents[1]


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


def test_evaluation_dataset_keeps_order_and_gives_raw_uint8_crops(crops):
    paths, labels = crops["val_paths"], crops["val_labels"]

    batches = list(make_dataset(paths, labels, batch_size=3, training=False))

    images = np.concatenate([b[0].numpy() for b in batches])
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images, np.stack([load_crop(p) for p in paths]))
    assert np.concatenate([b[1].numpy() for b in batches]).tolist() == labels
    assert [len(b[0]) for b in batches] == [3, 3, 2]


def test_dataset_preprocesses_for_models_saved_before_preprocessing_moved_inside(crops):
    paths = crops["val_paths"]

    images = next(iter(make_dataset(paths, None, batch_size=8, training=False, preprocess_for="resnet50")))

    assert images.dtype == tf.float32
    np.testing.assert_allclose(images.numpy(), preprocess(np.stack([load_crop(p) for p in paths]), "resnet50"),
                               atol=1e-4)


def test_one_builder_gives_the_same_batches_from_arrays_and_from_files(crops):
    paths = crops["val_paths"]
    arrays = np.stack([load_crop(p) for p in paths])

    from_files = next(iter(make_dataset(paths, None, batch_size=8, training=False)))
    from_arrays = next(iter(make_dataset(arrays, None, batch_size=8, training=False)))
    # Arrays of another size are resized the way files of another size are.
    small = next(iter(make_dataset(arrays, None, batch_size=8, training=False, image_size=64)))

    np.testing.assert_array_equal(from_arrays.numpy(), from_files.numpy())
    assert small.shape == (8, 64, 64, 3) and small.dtype == tf.uint8


def test_training_dataset_shuffles_and_leaves_augmentation_to_the_model(crops):
    paths, labels = crops["train_paths"], crops["train_labels"]
    dataset = make_dataset(paths, labels, batch_size=16, training=True, seed=3)

    images, batch_labels = next(iter(dataset))

    assert images.shape == (16, 128, 128, 3) and images.dtype == tf.uint8
    assert sorted(batch_labels.numpy().tolist()) == sorted(labels)
    assert batch_labels.numpy().tolist() != labels  # shuffled
    # Not augmented on the input side: every image is one of the files, unchanged.
    plain = np.stack([load_crop(p) for p in paths])
    for image in images.numpy():
        assert min(np.abs(image.astype(int) - p).max() for p in plain) == 0


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
    assert model.input.dtype == "uint8"  # raw crops: augmentation and preprocessing are layers
    assert [type(layer) for layer in model.layers[1:3]] == [CropAugmentation, BackbonePreprocessing]
    assert backbone_layer(model).name == "resnet50"
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

    loaded_base = backbone_layer(model)
    for saved, loaded in zip(base.get_weights(), loaded_base.get_weights()):
        np.testing.assert_array_equal(saved, loaded)


def test_mixed_precision_build_restores_the_global_policy():
    model = build_model("mobilenetv2", weights="none", mixed_precision=True)

    assert backbone_layer(model).dtype_policy.name == "mixed_float16"
    assert model.get_layer("augmentation").dtype_policy.name == "float32"
    assert model.get_layer("preprocessing").dtype_policy.name == "float32"
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
    config = TrainConfig.from_options({"backbone": "resnet50", "weights": "none", "epochs": 1, "batch_size": 8,
                                       "seed": 7})

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
    probabilities = predict_probabilities(model, crops["val_paths"], batch_size=4)
    assert probabilities.shape == (8,)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    in_memory = predict_probabilities(
        model, np.stack([load_crop(p) for p in crops["val_paths"]]), batch_size=4
    )
    np.testing.assert_allclose(in_memory, probabilities, atol=1e-5)
    # The saved model takes raw crops: plain model.predict gives the same.
    direct = model.predict(np.stack([load_crop(p) for p in crops["val_paths"]]), verbose=0).reshape(-1)
    np.testing.assert_allclose(direct, probabilities, atol=1e-5)
    assert model_backbone(model) == "resnet50"
    np.testing.assert_allclose(predict_probabilities(model, crops["val_paths"]), probabilities, atol=1e-5)


def tiny_base(image_size=128):
    """A two-layer convolutional backbone with no batch norm: fast, and deterministic."""
    return keras.Sequential(
        [keras.Input((image_size, image_size, 3)),
         keras.layers.Conv2D(4, 3, strides=4, activation="relu"),
         keras.layers.Conv2D(8, 3, strides=2, activation="relu")],
        name="tiny",
    )


def tiny_model(backbone="resnet50", weights=None, image_size=128, **options):
    """build_model on a tiny backbone, for tests about the training loop, not the backbone."""
    return build_model(backbone, weights="none", image_size=image_size, base=tiny_base(image_size), **options)


def test_train_without_validation_runs_every_epoch_and_saves_the_final_model(crops, tmp_path, monkeypatch):
    monkeypatch.setattr(fit, "build_model", tiny_model)
    events = []
    config = TrainConfig.from_options({"weights": "none", "epochs": 2, "batch_size": 4, "class_weight": "none"})

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


def test_train_config_rejects_bad_options():
    with pytest.raises(ValueError, match="class_weight"):
        TrainConfig.from_options({"class_weight": "auto"})
    with pytest.raises(ValueError, match="backbone"):
        TrainConfig.from_options({"backbone": "vgg"})


def test_predict_on_nothing_returns_an_empty_array():
    model = tiny_model()
    assert predict_probabilities(model, [], batch_size=4).shape == (0,)
    assert predict_probabilities(model, np.zeros((0, 128, 128, 3), np.uint8)).shape == (0,)


def test_dataset_cache_settings(tmp_path):
    from workers.training.fit import dataset_cache

    assert dataset_cache("memory", tmp_path / "run1", "train") is True
    assert dataset_cache("none", tmp_path / "run1", "train") is False
    path = dataset_cache(str(tmp_path / "cache"), tmp_path / "run1", "val")
    assert path == str(tmp_path / "cache" / "run1-val") and (tmp_path / "cache").is_dir()


# --- augmentation and preprocessing inside the model ------------------------------------


def test_augmentation_is_active_only_in_training_and_stays_within_the_crop_values():
    images = np.random.default_rng(0).integers(20, 200, (4, 32, 32, 3), dtype=np.uint8)
    layer = CropAugmentation(seed=1)

    assert np.array_equal(layer(images, training=False).numpy(), images)
    augmented = layer(images, training=True).numpy()

    assert augmented.shape == images.shape and augmented.dtype == np.float32
    assert not np.allclose(augmented, images)
    # Bilinear interpolation with edge pixels repeated: never outside the crop's own values.
    assert augmented.min() >= images.min() - 1e-3 and augmented.max() <= images.max() + 1e-3


def test_augmentation_without_rotation_or_shift_is_an_exact_flip_or_nothing():
    images = np.random.default_rng(1).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)

    out = CropAugmentation(rotation_degrees=0, shift_fraction=0, seed=2)(images, training=True).numpy()

    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)]
    unchanged = [np.array_equal(o, i) for o, i in zip(out, images)]
    assert all(f or u for f, u in zip(flipped, unchanged))
    assert 0 < sum(flipped) < len(images)


def test_model_saved_and_loaded_in_safe_mode_predicts_the_same(tmp_path):
    model = tiny_model("mobilenetv2", image_size=32, seed=5)
    images = np.random.default_rng(2).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    model.save(tmp_path / "model.keras")

    loaded = load_model(tmp_path / "model.keras")  # safe_mode=True: no Lambda, registered layers only

    assert model_backbone(loaded) == "mobilenetv2"
    np.testing.assert_allclose(predict_probabilities(loaded, images), model.predict(images, verbose=0).ravel(),
                               atol=1e-6)


def legacy_model(name: str, image_size: int = 32) -> keras.Model:
    """A model as saved before preprocessing moved into the model: float input, already preprocessed."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    features = keras.layers.GlobalAveragePooling2D()(tiny_base(image_size)(inputs))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(features), name=name)


def test_model_saved_before_the_change_still_predicts_with_outside_preprocessing(tmp_path):
    images = np.random.default_rng(3).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    legacy_model("deepfake_mobilenetv2").save(tmp_path / "old.keras")

    old = load_model(tmp_path / "old.keras")
    probabilities = predict_probabilities(old, images)

    expected = old.predict(preprocess(images, "mobilenetv2"), verbose=0).ravel()
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)


def test_model_that_does_not_say_its_preprocessing_fails_with_one_line(tmp_path):
    images = np.zeros((2, 32, 32, 3), np.uint8)
    anonymous = legacy_model("some_model")

    with pytest.raises(ValueError) as error:
        predict_probabilities(anonymous, images)
    assert "does not say for which backbone" in str(error.value) and "\n" not in str(error.value)

    (tmp_path / "broken.keras").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load the model") as error:
        load_model(tmp_path / "broken.keras")
    assert "\n" not in str(error.value)


# --- XLA, mixed precision, replicas ------------------------------------------------------


def one_step(model, images, labels):
    history = model.fit(make_dataset(images, labels, batch_size=len(images), training=False,
                                     image_size=images.shape[1]), epochs=1, shuffle=False, verbose=0)
    return history.history["loss"][0], model.get_weights()


def test_xla_step_matches_the_step_without_it():
    rng = np.random.default_rng(4)
    images, labels = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), np.array([0, 1] * 4)
    options = dict(image_size=32, augment=False, dropout=0.0, learning_rate=1e-2)
    plain, xla = tiny_model(**options), tiny_model(jit_compile=True, **options)
    xla.set_weights(plain.get_weights())

    loss_plain, weights_plain = one_step(plain, images, labels)
    loss_xla, weights_xla = one_step(xla, images, labels)

    assert xla.jit_compile is True
    assert loss_xla == pytest.approx(loss_plain, rel=1e-5)
    for a, b in zip(weights_plain, weights_xla):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_mixed_precision_on_cpu_predicts_like_float32_and_trains():
    rng = np.random.default_rng(5)
    images, labels = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), np.array([0, 1] * 4)
    full, mixed = tiny_model(image_size=32), tiny_model(image_size=32, mixed_precision=True)
    mixed.set_weights(full.get_weights())

    np.testing.assert_allclose(mixed.predict(images, verbose=0), full.predict(images, verbose=0), atol=2e-3)
    loss, _ = one_step(mixed, images, labels)
    assert np.isfinite(loss)
    assert isinstance(mixed.optimizer, keras.optimizers.LossScaleOptimizer)


def test_train_records_xla_replicas_and_global_batch(crops, tmp_path, monkeypatch):
    monkeypatch.setattr(fit, "build_model", tiny_model)
    config = TrainConfig.from_options({"weights": "none", "epochs": 1, "batch_size": 4, "jit": "on",
                                       "class_weight": "none"})

    result = train(crops["train_paths"], crops["train_labels"], crops["val_paths"], crops["val_labels"],
                   config, tmp_path)

    recorded = result["config"]
    assert recorded["jit"] is True and recorded["jit_used"] is True
    assert recorded["replicas"] == "auto" and recorded["replicas_used"] == 1
    assert recorded["global_batch_size"] == 4 and recorded["mixed_precision_used"] is False
    assert predict_probabilities(load_model(result["model_path"]), crops["val_paths"]).shape == (8,)


def test_train_config_checks_jit_and_replicas():
    assert TrainConfig.from_options({}).jit == "auto" and TrainConfig.from_options({}).replicas == "auto"
    assert TrainConfig.from_options({"jit": "off"}).jit is False
    assert TrainConfig.from_options({"jit": True, "replicas": "2"}).replicas == 2
    with pytest.raises(ValueError, match="jit"):
        TrainConfig.from_options({"jit": "maybe"})
    with pytest.raises(ValueError, match="replicas"):
        TrainConfig.from_options({"replicas": 0})
    with pytest.raises(ValueError, match="device"):
        fit.distribution_strategy(64)


def test_two_replicas_take_the_same_step_as_one_on_the_same_global_batch(tmp_path):
    """MirroredStrategy over two logical CPU devices (they must be made before TensorFlow
    starts, hence a fresh process): same loss and weights as one replica, for a CNN and for a CLIP
    encoder tuned by its LayerNorms; then train() on them."""
    out = tmp_path / "replicas.json"
    subprocess.run([sys.executable, "bench/train_bench.py", "--replica-check", "--out", str(out)],
                   cwd=REPO, check=True, capture_output=True, timeout=300)

    report = json.loads(out.read_text())["replica_check"]
    assert report["replicas"] == 2 and report["strategy"] == "MirroredStrategy"
    assert report["loss_two_replicas"] == pytest.approx(report["loss_one_replica"], rel=1e-5)
    assert report["max_weight_difference"] < 1e-5
    assert report["train"]["replicas_used"] == 2 and report["train"]["global_batch_size"] == 8
    # The same for a keras-hub CLIP encoder with --tune layernorm (the new backbones' other family).
    clip = report["clip_layernorm"]
    assert clip["loss_two_replicas"] == pytest.approx(clip["loss_one_replica"], rel=1e-5)
    assert clip["max_weight_difference"] < 1e-5 < clip["max_weight_change_of_the_step"]


def test_augment_option_defaults_by_fakes_and_decides_the_models_augmentation_layer(crops, tmp_path, monkeypatch):
    assert TrainConfig.from_options({}).augment == "on"
    assert TrainConfig.from_options({"fakes": "sbi"}).augment == "off"  # auto: it would blur the blend seams
    assert TrainConfig.from_options({"fakes": "both"}).augment == "off"
    assert TrainConfig.from_options({"fakes": "sbi", "augment": "on"}).augment == "on"
    assert TrainConfig.parse_pairs(["augment=OFF"]) == {"augment": "off"}
    # keep auto: the average of the last epochs with sbi (its validation holds pseudo-fakes only).
    assert [TrainConfig.from_options({"fakes": f}).keep for f in ("real", "sbi", "both")] == ["best", "average", "best"]
    with pytest.raises(ValueError, match="--augment"):
        TrainConfig.from_options({"augment": "maybe"})

    monkeypatch.setattr(fit, "build_model", tiny_model)
    images = np.random.default_rng(3).integers(0, 256, (4, 128, 128, 3), dtype=np.uint8)
    for augment, has_layer in (("off", False), ("on", True)):
        config = TrainConfig.from_options({"weights": "none", "epochs": 1, "batch_size": 8, "augment": augment})
        result = train(crops["train_paths"], crops["train_labels"], crops["val_paths"], crops["val_labels"],
                       config, tmp_path / augment)
        assert result["config"]["augment"] == augment
        loaded = load_model(result["model_path"])
        assert any(isinstance(layer, CropAugmentation) for layer in loaded.layers) is has_layer
        # Without the layer the model still says what it takes and predicts as it did.
        assert model_input(loaded).preprocesses_itself and model_input(loaded).image_size == 128
        probabilities = predict_probabilities(loaded, images)
        assert probabilities.shape == (4,) and np.all((probabilities >= 0) & (probabilities <= 1))


def test_keep_average_puts_the_mean_of_the_last_epochs_weights_into_the_model(crops, tmp_path, monkeypatch):
    model = tiny_model(image_size=32, augment=False)
    average = fit.WeightAverage(first_epoch=2)
    average.set_model(model)
    floats = [v for v in model.weights if "float" in str(v.dtype)]
    for epoch, scale in enumerate((5.0, 1.0, 2.0)):
        for variable in floats:
            variable.assign(np.full(variable.shape, scale, dtype="float32"))
        average.on_epoch_end(epoch)
    average.on_train_end()
    assert average.averaged == 2  # epochs 2 and 3
    assert all(np.allclose(keras.ops.convert_to_numpy(v), 1.5) for v in floats)
    assert fit.average_from(30) == 21 and fit.average_from(2) == 2

    monkeypatch.setattr(fit, "build_model", tiny_model)
    config = TrainConfig.from_options({"weights": "none", "epochs": 3, "batch_size": 8, "keep": "average",
                                       "lr_schedule": "cosine"})
    result = train(crops["train_paths"], crops["train_labels"], crops["val_paths"], crops["val_labels"],
                   config, tmp_path)
    # No early stopping and no best-epoch checkpoint: every epoch runs; the average of the last is saved.
    assert result["epochs_run"] == 3 and result["best_epoch"] == 3 and result["config"]["averaged_epochs"] == 1
    assert Path(result["model_path"]).is_file()

    schedule = fit.learning_rate(config, steps_per_epoch=4)
    assert float(schedule(0)) == pytest.approx(1e-4) and float(schedule(12)) == pytest.approx(0, abs=1e-9)
    assert fit.learning_rate(TrainConfig.from_options({"learning_rate": 0.01}), 4) == 0.01

    config = TrainConfig.from_options({"weights": "none", "epochs": 3, "batch_size": 8, "keep": "best-auc"})
    result = train(crops["train_paths"], crops["train_labels"], crops["val_paths"], crops["val_labels"],
                   config, tmp_path / "auc")
    val_auc = result["history"]["val_auc"]
    assert result["best_epoch"] == int(np.argmax(val_auc)) + 1
