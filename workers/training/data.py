"""Input pipelines: face crop files (or in-memory crops) -> batches a model can take.

Order of the steps, and why:
decode (parallel) -> cache (uint8, before any randomness, 4x smaller than float32)
-> shuffle (training) -> batch -> augment (training) -> ``preprocess`` -> prefetch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf
import keras

from shared.preprocessing import DEFAULT_BACKBONE, check_backbone, decode_crop, preprocess

AUTOTUNE = tf.data.AUTOTUNE

# The shuffle buffer holds decoded images (48 KiB each at 128x128): bound it. The file list
# is also permuted once up front, so the bounded buffer still mixes videos and classes.
MAX_SHUFFLE_BUFFER = 8192

# Augmentation strength, close to the notebook's ImageDataGenerator settings
# (rotation ~20 degrees, 10% shifts, horizontal flips).
ROTATION_FACTOR = 20 / 360
SHIFT_FACTOR = 0.1


def make_dataset(
    paths: Sequence[str | Path],
    labels: Sequence[int] | None = None,
    *,
    batch_size: int,
    backbone: str = DEFAULT_BACKBONE,
    training: bool,
    seed: int = 42,
    image_size: int = 128,
    cache: bool | str | Path = True,
) -> tf.data.Dataset:
    """Batches of ``(images, labels)`` (or images alone when ``labels`` is None) from crop files.

    ``training=True`` shuffles and augments; ``training=False`` keeps the order of ``paths``,
    so predictions line up with them. ``cache``: True keeps decoded crops in memory,
    a path caches them to that file, False decodes every epoch.
    """
    check_backbone(backbone)
    paths = [str(p) for p in paths]
    _check_labels(len(paths), labels)
    _check_files_exist(paths)
    label_array = None if labels is None else np.asarray(labels, dtype=np.float32)
    if training:
        order = np.random.default_rng(seed).permutation(len(paths))
        paths = [paths[i] for i in order]
        label_array = None if label_array is None else label_array[order]

    def read_crop(path):
        return decode_crop(tf.io.read_file(path), image_size)

    path_tensor = tf.constant(paths, dtype=tf.string, shape=[len(paths)])
    if label_array is None:
        dataset = tf.data.Dataset.from_tensor_slices(path_tensor).map(
            read_crop, num_parallel_calls=AUTOTUNE
        )
    else:
        dataset = tf.data.Dataset.from_tensor_slices((path_tensor, label_array)).map(
            lambda path, label: (read_crop(path), label), num_parallel_calls=AUTOTUNE
        )
    return _batch_and_preprocess(
        dataset,
        len(paths),
        batch_size=batch_size,
        backbone=backbone,
        training=training,
        seed=seed,
        cache=cache,
        with_labels=label_array is not None,
    )


def make_array_dataset(
    images: np.ndarray,
    labels: Sequence[int] | None = None,
    *,
    batch_size: int,
    backbone: str = DEFAULT_BACKBONE,
    training: bool,
    seed: int = 42,
    image_size: int = 128,
) -> tf.data.Dataset:
    """Same batches as ``make_dataset``, from RGB uint8 crops already in memory (N, H, W, 3).

    Crops of another size are resized to ``image_size`` the way files are.
    """
    check_backbone(backbone)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected RGB crops of shape (N, H, W, 3), got {images.shape}")
    _check_labels(len(images), labels)
    if images.shape[1:3] != (image_size, image_size):
        images = _resize_uint8(images, image_size)
    else:
        images = images.astype(np.uint8, copy=False)
    label_array = None if labels is None else np.asarray(labels, dtype=np.float32)
    if label_array is None:
        dataset = tf.data.Dataset.from_tensor_slices(images)
    else:
        dataset = tf.data.Dataset.from_tensor_slices((images, label_array))
    # The arrays are in memory already: caching them again would only double the memory.
    return _batch_and_preprocess(
        dataset,
        len(images),
        batch_size=batch_size,
        backbone=backbone,
        training=training,
        seed=seed,
        cache=False,
        with_labels=label_array is not None,
    )


def make_augmenter(seed: int = 42) -> keras.Sequential:
    """Random rotation, width/height shift and horizontal flip (Keras 3 has no ImageDataGenerator)."""
    return keras.Sequential(
        [
            keras.layers.RandomRotation(ROTATION_FACTOR, fill_mode="nearest", seed=seed),
            keras.layers.RandomTranslation(
                SHIFT_FACTOR, SHIFT_FACTOR, fill_mode="nearest", seed=seed + 1
            ),
            keras.layers.RandomFlip("horizontal", seed=seed + 2),
        ],
        name="augmentation",
    )


def count_batches(n_images: int, batch_size: int) -> int:
    return -(-n_images // batch_size)


def _batch_and_preprocess(
    dataset: tf.data.Dataset,
    n_images: int,
    *,
    batch_size: int,
    backbone: str,
    training: bool,
    seed: int,
    cache: bool | str | Path,
    with_labels: bool,
) -> tf.data.Dataset:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if cache is True:
        dataset = dataset.cache()
    elif cache:
        dataset = dataset.cache(str(cache))
    if training and n_images > 1:
        buffer = min(n_images, MAX_SHUFFLE_BUFFER)
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    augmenter = make_augmenter(seed) if training else None

    def to_model_input(images):
        images = tf.cast(images, tf.float32)
        if augmenter is not None:
            images = augmenter(images, training=True)
        return preprocess(images, backbone)

    if with_labels:
        dataset = dataset.map(
            lambda images, labels: (to_model_input(images), labels), num_parallel_calls=AUTOTUNE
        )
    else:
        dataset = dataset.map(to_model_input, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def _resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    resized = tf.image.resize(images, [size, size], method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8).numpy()


def _check_labels(n_images: int, labels) -> None:
    if labels is None:
        return
    labels = np.asarray(labels)
    if labels.shape != (n_images,):
        raise ValueError(f"{n_images} images but labels of shape {labels.shape}")
    if n_images and not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")


def _check_files_exist(paths: list[str]) -> None:
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise FileNotFoundError(f"{len(missing)} crop file(s) not found: {shown}")
