"""Input pipelines: face crop files or in-memory crops -> batches of RGB uint8 crops.

One builder, ``make_dataset``, for both sources (as timm's dataset factory). It does only
what belongs to the host CPU: decode (parallel) -> cache (uint8, before any randomness,
4x smaller than float32) -> shuffle (training) -> batch -> prefetch. Augmentation and the
backbone's preprocessing are layers of the model (``workers/training/models.py``) and run
on the accelerator; ``preprocess_for`` applies the preprocessing here instead, only for
models saved before it moved into the model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from shared.preprocessing import check_backbone, decode_crop, preprocess

AUTOTUNE = tf.data.AUTOTUNE

# The shuffle buffer holds decoded images (48 KiB each at 128x128): bound it (~400 MiB). The
# file list is also permuted once up front, so the bounded buffer still mixes videos and classes.
MAX_SHUFFLE_BUFFER = 8192


def make_dataset(
    source: Sequence[str | Path] | np.ndarray,
    labels: Sequence[int] | None = None,
    *,
    batch_size: int,
    training: bool,
    seed: int = 42,
    image_size: int = 128,
    cache: bool | str | Path = True,
    preprocess_for: str | None = None,
) -> tf.data.Dataset:
    """Batches of ``(images, labels)`` (or images alone when ``labels`` is None).

    ``source``: crop file paths (PNG/JPEG), or RGB uint8 crops already in memory as one array
    (N, H, W, 3); crops of another size are resized to ``image_size`` the same way for both.
    Batches are uint8 (N, image_size, image_size, 3); labels float32.
    ``training=True`` shuffles (the model augments); ``training=False`` keeps the order of
    ``source``, so predictions line up with it. ``cache`` (files only; arrays are in memory
    already): True keeps decoded crops in memory, a path caches them to that file (for data
    larger than RAM), False decodes every epoch. ``preprocess_for``: a backbone whose
    ``preprocess`` to apply here, giving float32 batches (models saved before preprocessing
    moved into the model).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if preprocess_for is not None:
        preprocess_for = check_backbone(preprocess_for)
    if isinstance(source, np.ndarray):
        dataset, label_array = _from_arrays(source, labels, image_size)
        cache = False
    else:
        dataset, label_array = _from_files(source, labels, training=training, seed=seed,
                                           image_size=image_size)
    n_images = int(dataset.cardinality())
    if cache is True:
        dataset = dataset.cache()
    elif cache:
        dataset = dataset.cache(str(cache))
    if training and n_images > 1:
        buffer = min(n_images, MAX_SHUFFLE_BUFFER)
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if preprocess_for is not None:
        if label_array is None:
            dataset = dataset.map(lambda images: preprocess(images, preprocess_for), num_parallel_calls=AUTOTUNE)
        else:
            dataset = dataset.map(lambda images, labels: (preprocess(images, preprocess_for), labels),
                                  num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def count_batches(n_images: int, batch_size: int) -> int:
    return -(-n_images // batch_size)


def _from_files(paths, labels, *, training: bool, seed: int, image_size: int):
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
        dataset = tf.data.Dataset.from_tensor_slices(path_tensor).map(read_crop, num_parallel_calls=AUTOTUNE)
    else:
        dataset = tf.data.Dataset.from_tensor_slices((path_tensor, label_array)).map(
            lambda path, label: (read_crop(path), label), num_parallel_calls=AUTOTUNE
        )
    return dataset, label_array


def _from_arrays(images: np.ndarray, labels, image_size: int):
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected RGB crops of shape (N, H, W, 3), got {images.shape}")
    _check_labels(len(images), labels)
    if images.shape[1:3] != (image_size, image_size):
        images = _resize_uint8(images, image_size)
    else:
        images = images.astype(np.uint8, copy=False)
    label_array = None if labels is None else np.asarray(labels, dtype=np.float32)
    if label_array is None:
        return tf.data.Dataset.from_tensor_slices(images), None
    return tf.data.Dataset.from_tensor_slices((images, label_array)), label_array


def _resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    if len(images) == 0:
        return np.zeros((0, size, size, 3), np.uint8)
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
