"""Input pipelines: face crop files or in-memory crops -> batches of RGB uint8 crops.

One builder, ``make_dataset``, for both sources (as timm's dataset factory). It does only
what belongs to the host CPU: read (a video's crop pack, or its PNGs decoded; parallel) ->
cache (uint8, before any randomness, 4x smaller than float32) -> shuffle (training) -> batch ->
prefetch. Augmentation and the
backbone's preprocessing are layers of the model (``workers/training/models.py``) and run
on the accelerator; ``preprocess_for`` applies the preprocessing here instead, only for
models saved before it moved into the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Sequence

import numpy as np
import tensorflow as tf

from shared.preprocessing import check_backbone, decode_crop, preprocess, resize_crops
from workers.crop_pack import PACK_NAME, PackHeader, read_pack_header

AUTOTUNE = tf.data.AUTOTUNE

# The shuffle buffer holds decoded images (48 KiB each at 128x128): bound it (~400 MiB). The
# videos (or crop files) are also permuted once up front, so the bounded buffer still mixes
# videos and classes.
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
    larger than RAM; not used when every crop has a pack), False decodes every epoch.

    A video folder with a valid pack (``workers/crop_pack.py``: its crops decoded, written by the
    ingest) is read from it, one file per video; the other crops are decoded from their PNGs.
    ``preprocess_for``: a backbone whose ``preprocess`` to apply here, giving float32 batches
    (models saved before preprocessing moved into the model).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if preprocess_for is not None:
        preprocess_for = check_backbone(preprocess_for)
    if isinstance(source, np.ndarray):
        dataset, label_array = _from_arrays(source, labels, image_size)
        cache = False
    else:
        dataset, label_array, all_packed = _from_files(source, labels, training=training, seed=seed,
                                                       image_size=image_size)
        if all_packed and cache not in (True, False):
            cache = False  # the packs are the decoded crops on disk already: a file cache would copy them
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
    mtimes = _stat_files(paths)
    label_array = None if labels is None else np.asarray(labels, dtype=np.float32)
    groups = plan_crop_groups(paths, mtimes, keep_order=not training)
    if not any(group.pack for group in groups):
        return (*_from_crop_files(paths, label_array, training=training, seed=seed, image_size=image_size), False)
    if training:
        # Whole videos are permuted up front; the bounded shuffle buffer then mixes their crops.
        groups = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))]
    all_packed = all(group.pack for group in groups)
    return _from_groups(groups, paths, label_array, image_size), label_array, all_packed


@dataclass(frozen=True)
class CropGroup:
    """Crops of one video folder read together: from its pack when it has a valid one, else its PNGs."""

    indices: list[int]  # positions in the caller's list of paths
    pack: PackHeader | None = None
    pack_rows: list[int] = field(default_factory=list)  # with a pack: each crop's row in it


def plan_crop_groups(paths: list[str], mtimes: list[int] | None = None, *, keep_order: bool) -> list[CropGroup]:
    """The crops grouped by folder (runs of consecutive paths with ``keep_order``, else one group
    per folder), each with the folder's pack when that pack holds every crop of the group and was
    written after all of their PNGs (a pack older than a PNG describes other pixels)."""
    if mtimes is None:
        mtimes = _stat_files(paths)
    runs: list[tuple[str, list[int]]] = []
    by_folder: dict[str, list[int]] = {}
    for i, path in enumerate(paths):
        folder = os.path.dirname(path)
        if not keep_order:
            by_folder.setdefault(folder, []).append(i)
        elif runs and runs[-1][0] == folder:
            runs[-1][1].append(i)
        else:
            runs.append((folder, [i]))
    if not keep_order:
        runs = list(by_folder.items())
    headers: dict[str, PackHeader | None] = {}
    groups = []
    for folder, indices in runs:
        if folder not in headers:
            headers[folder] = read_pack_header(Path(folder) / PACK_NAME)
        header = headers[folder]
        if header is None or header.mtime_ns < max(mtimes[i] for i in indices):
            groups.append(CropGroup(indices))
            continue
        row_of = header.index()
        rows = [row_of.get(os.path.basename(paths[i]), -1) for i in indices]
        groups.append(CropGroup(indices, header, rows) if min(rows) >= 0 else CropGroup(indices))
    return groups


def crops_from_packs(paths: Sequence[str | Path]) -> int:
    """How many of these crops training reads from packs rather than PNGs (for the run's record)."""
    groups = plan_crop_groups([str(p) for p in paths], keep_order=False)
    return sum(len(group.indices) for group in groups if group.pack)


def _from_groups(groups: list[CropGroup], paths: list[str], label_array, image_size: int) -> tf.data.Dataset:
    """One element per group, read in parallel and in order, then one per crop."""
    def ragged(rows: list[list], dtype):
        flat = [value for row in rows for value in row]
        return tf.RaggedTensor.from_row_lengths(tf.constant(flat, dtype=dtype, shape=[len(flat)]),
                                                tf.constant([len(row) for row in rows], dtype=tf.int64))

    packs = [group.pack for group in groups]
    columns = {
        "pack": tf.constant([str(p.path) if p else "" for p in packs], tf.string, shape=[len(groups)]),
        "offset": tf.constant([p.offset if p else 0 for p in packs], tf.int64, shape=[len(groups)]),
        "shape": tf.constant([[len(p.names), p.height, p.width] if p else [0, 0, 0] for p in packs],
                             tf.int64, shape=[len(groups), 3]),
        "rows": ragged([group.pack_rows for group in groups], tf.int64),
        "whole": tf.constant([bool(g.pack) and g.pack_rows == list(range(len(g.pack.names))) for g in groups],
                             tf.bool, shape=[len(groups)]),
        "files": ragged([[] if group.pack else [paths[i] for i in group.indices] for group in groups],
                        tf.string),
    }
    if label_array is not None:
        columns["labels"] = ragged([[float(label_array[i]) for i in group.indices] for group in groups],
                                   tf.float32)

    def read_group(element):
        def from_pack():
            count, height, width = element["shape"][0], element["shape"][1], element["shape"][2]
            raw = tf.strings.substr(tf.io.read_file(element["pack"]), element["offset"], count * height * width * 3)
            crops = tf.reshape(tf.io.decode_raw(raw, tf.uint8), tf.stack([count, height, width, 3]))
            # A group is usually the whole video in the pack's order: no gather (one copy less).
            crops = tf.cond(element["whole"], lambda: crops, lambda: tf.gather(crops, element["rows"]))
            return resize_crops(crops, image_size)

        def from_files():
            return tf.map_fn(lambda path: decode_crop(tf.io.read_file(path), image_size), element["files"],
                             fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.uint8))

        crops = tf.cond(tf.strings.length(element["pack"]) > 0, from_pack, from_files)
        return crops if label_array is None else (crops, element["labels"])

    dataset = tf.data.Dataset.from_tensor_slices(columns).map(
        read_group, num_parallel_calls=AUTOTUNE, deterministic=True).unbatch()
    return dataset.apply(tf.data.experimental.assert_cardinality(len(paths)))


def _from_crop_files(paths: list[str], label_array, *, training: bool, seed: int, image_size: int):
    """One element per crop file, decoded in parallel (no packs)."""
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
        images = resize_crops(images, image_size).numpy()
    else:
        images = images.astype(np.uint8, copy=False)
    label_array = None if labels is None else np.asarray(labels, dtype=np.float32)
    if label_array is None:
        return tf.data.Dataset.from_tensor_slices(images), None
    return tf.data.Dataset.from_tensor_slices((images, label_array)), label_array


def _check_labels(n_images: int, labels) -> None:
    if labels is None:
        return
    labels = np.asarray(labels)
    if labels.shape != (n_images,):
        raise ValueError(f"{n_images} images but labels of shape {labels.shape}")
    if n_images and not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")


def _stat_files(paths: list[str]) -> list[int]:
    """Each crop file's modification time (ns); one error naming the missing ones."""
    mtimes, missing = [], []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            missing.append(path)
            continue
        if not S_ISREG(stat.st_mode):
            missing.append(path)
        mtimes.append(stat.st_mtime_ns)
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise FileNotFoundError(f"{len(missing)} crop file(s) not found: {shown}")
    return mtimes
