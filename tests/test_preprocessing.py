from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from shared.backbones import REGISTRY
from shared.preprocessing import BACKBONES, decode_crop, load_crop, preprocess

# OpenAI CLIP's normalisation, copied from its repository (clip/clip.py, _transform), not from ours.
CLIP_MEAN, CLIP_STD = np.array([0.48145466, 0.4578275, 0.40821073]), np.array([0.26862954, 0.26130258, 0.27577711])


def library_preprocess_input(backbone):
    """The preprocessing the backbone's library applies: what its registry entry's constants
    are checked against."""
    reference = REGISTRY[backbone].reference
    if reference.startswith("keras.applications."):
        return getattr(keras.applications, reference.rsplit(".", 1)[1]).preprocess_input
    assert reference == "OpenAI CLIP image mean/std"
    return lambda images: ((images / 255.0 - CLIP_MEAN) / CLIP_STD).astype(np.float32)


def random_images(shape=(3, 16, 16, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_png(path: Path, image: np.ndarray) -> Path:
    tf.io.write_file(str(path), tf.io.encode_png(image))
    return path


def test_backbones_are_the_registry_with_resnet50_first():
    assert BACKBONES == ("resnet50", "efficientnetb0", "mobilenetv2", "tiny", "xception", "efficientnetb4",
                         "clip-vit-b16", "clip-vit-l14")
    assert REGISTRY["xception"].reference == "keras.applications.xception"
    assert REGISTRY["efficientnetb4"].reference == "keras.applications.efficientnet"


@pytest.mark.parametrize("backbone", BACKBONES)
def test_preprocess_matches_keras_preprocess_input(backbone):
    images = random_images()
    expected = library_preprocess_input(backbone)(images.astype(np.float32))

    result = preprocess(images, backbone)

    assert isinstance(result, np.ndarray)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_preprocess_gives_the_same_for_numpy_and_tensor_input(backbone):
    images = random_images(seed=1)

    from_numpy = preprocess(images, backbone)
    from_tensor = preprocess(tf.constant(images), backbone)

    assert tf.is_tensor(from_tensor)
    assert from_tensor.dtype == tf.float32
    np.testing.assert_allclose(from_tensor.numpy(), from_numpy, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_preprocess_works_inside_a_tf_data_map(backbone):
    images = random_images(seed=2)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(2).map(lambda batch: preprocess(batch, backbone))

    mapped = np.concatenate([batch.numpy() for batch in dataset])

    np.testing.assert_allclose(mapped, preprocess(images, backbone), rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_the_models_preprocessing_layer_equals_preprocess(backbone):
    from workers.training.models import BackbonePreprocessing

    images = random_images((2, 32, 32, 3), seed=6)

    in_model = BackbonePreprocessing(backbone)(images)

    assert in_model.dtype == "float32"
    np.testing.assert_allclose(np.asarray(in_model), preprocess(images, backbone), rtol=1e-6, atol=1e-5)


def test_the_preprocessing_layer_survives_saving_in_safe_mode(tmp_path):
    from workers.training.models import BackbonePreprocessing

    inputs = keras.Input((8, 8, 3), dtype="uint8")
    model = keras.Model(inputs, BackbonePreprocessing("resnet50")(inputs))
    model.save(tmp_path / "p.keras")

    loaded = keras.models.load_model(tmp_path / "p.keras", safe_mode=True)

    images = random_images((1, 8, 8, 3), seed=7)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), preprocess(images, "resnet50"), atol=1e-5)


def test_preprocess_resnet50_is_caffe_mode_not_divide_by_255():
    pixel = np.array([[[255, 0, 0]]], dtype=np.uint8)  # pure red, RGB

    result = preprocess(pixel, "resnet50")

    # BGR order, ImageNet means (103.939, 116.779, 123.68) subtracted, no scaling.
    np.testing.assert_allclose(result[0, 0], [-103.939, -116.779, 255 - 123.68], atol=1e-3)


def test_preprocess_accepts_one_image_and_float_input_without_modifying_it():
    image = random_images((8, 8, 3)).astype(np.float32)
    original = image.copy()

    result = preprocess(image, "resnet50")

    assert result.shape == (8, 8, 3)
    np.testing.assert_array_equal(image, original)
    np.testing.assert_allclose(result, preprocess(image.astype(np.uint8)[None], "resnet50")[0], atol=1e-4)


def test_preprocess_rejects_unknown_backbone_and_non_rgb_input():
    with pytest.raises(ValueError, match="resnet50"):
        preprocess(random_images(), "vgg16")
    with pytest.raises(ValueError, match="RGB"):
        preprocess(np.zeros((2, 8, 8, 4), dtype=np.uint8), "resnet50")


def test_load_crop_reads_rgb_uint8_unchanged_at_its_size(tmp_path):
    image = random_images((128, 128, 3), seed=3)
    path = write_png(tmp_path / "crop.png", image)

    loaded = load_crop(path)

    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, image)


def test_load_crop_resizes_and_converts_grey_to_rgb(tmp_path):
    grey = random_images((40, 60, 1), seed=4)
    path = write_png(tmp_path / "grey.png", grey)

    loaded = load_crop(path, size=128)

    assert loaded.shape == (128, 128, 3)
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded[..., 0], loaded[..., 2])


def test_load_crop_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_crop(tmp_path / "nope.png")


def test_decode_crop_runs_in_graph_mode(tmp_path):
    path = write_png(tmp_path / "crop.png", random_images((32, 32, 3), seed=5))

    decoded = tf.function(lambda p: decode_crop(tf.io.read_file(p), 64))(tf.constant(str(path)))

    assert decoded.shape == (64, 64, 3)
    assert decoded.dtype == tf.uint8


def test_importing_shared_preprocessing_does_not_import_tensorflow():
    code = "import sys, shared.preprocessing; print('tensorflow' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
