"""Self-blended images (SBI; Shiohara & Yamasaki, CVPR 2022, mapooon/SelfBlendedImages): training
on real videos only, each real crop also blended into a pseudo-fake of itself.

A pseudo-fake: two copies of one crop; one of them (the source or the target, at random) gets a
colour change (RGB shift, hue/saturation, brightness/contrast) and a frequency change (down- then
up-scaling by 2 or 4, or sharpening); the source is rescaled (0.95 to 1/0.95) and shifted (3 % of
the width, 1.5 % of the height); a face mask is filled from the crop's landmarks, moved with the
source, deformed (elastic displacement, random squash) and blurred twice (the first blur cut at its
maximum erodes it, the second softens the edge), then scaled by a blend ratio drawn from
{0.25, 0.5, 0.75, 1, 1, 1}: ``fake = mask * source + (1 - mask) * target``. The pair the model sees
is (target, fake): they differ only where the mask is above 0.

The mask: SBI fills the convex hull of 68/81 dlib landmarks; the ingest stores MTCNN's five (eyes,
nose, mouth corners), so the face's outline is drawn from them: an ellipse in the face's own frame
(its axes along the eye line and from the eyes to the mouth) from the forehead to the chin and
cheek to cheek, scaled at random (the hull's size is SBI's main mask variation). Kernel sizes and
shifts are SBI's at 256 px, scaled with the crop's side.

Every random choice comes from ``np.random.default_rng(seed)``: the same seed gives the same
pseudo-fake. In training the seeds come from ``tf.data.Dataset.random(seed=--seed)``, so a run is
reproducible and each epoch blends anew. SBI's final augmentation of both images (colour, JPEG) is
left to the model's own augmentation layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from workers.align import alignment_matrix, transform_points
from workers.faces import Box, square_crop_box

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
REFERENCE_SIDE = 256  # SBI's kernel sizes and shifts are for faces of about this side
# The face outline in the face's frame: x in inter-ocular distances from the eyes' midpoint along
# the eye line, y in eye-to-mouth distances (0 at the eyes, 1 at the mouth). Forehead to chin.
OUTLINE_CENTRE_Y, OUTLINE_HALF_HEIGHT, OUTLINE_HALF_WIDTH = 0.4, 1.25, 1.0
OUTLINE_SCALE = (0.8, 1.1)  # random size of the outline (per axis)
OUTLINE_POINTS = 24
EXAMPLES_FILE = "sbi_examples.png"


# --- landmarks in the crop's own pixels ------------------------------------------------------

def crop_landmarks(box: Box, landmarks, *, margin: float, size: int, align: bool,
                   frame_width: int | None, frame_height: int | None) -> np.ndarray | None:
    """The five landmarks (frame pixels, as stored) in the crop's pixels: through the alignment
    transform for aligned crops (workers/align.py), else through the square the crop was cut from
    (workers/faces.py, ``square_crop_box``). None when the detector gave no landmarks."""
    if landmarks is None or any(v is None for point in landmarks for v in point):
        return None
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if align:
        return transform_points(alignment_matrix(box, points, margin, size), points).astype(np.float32)
    width = frame_width or 1 << 30  # unknown frame size: the square was not moved by the frame's edge
    height = frame_height or 1 << 30
    square = square_crop_box(box, margin, width, height)
    return ((points - (square.x, square.y)) * (size / square.w)).astype(np.float32)


def split_landmarks(run_id: str, part: str, config: dict) -> np.ndarray:
    """(N, 5, 2) float32 landmarks of the run's ``part`` crops in the crops' pixels at the run's
    image size, in ``run.load_split``'s order (crop id); NaN where a crop has none."""
    from sqlalchemy import select

    from db.models import Crop, SplitMember, Video
    from db.session import session_scope
    from shared.labels import LANDMARK_COLUMNS

    ingest = config.get("ingest") or {}
    margin, size, align = float(ingest.get("margin", 0.3)), int(ingest.get("size", 128)), bool(ingest.get("align"))
    columns = [getattr(Crop, name) for name in LANDMARK_COLUMNS]
    with session_scope() as session:
        rows = session.execute(
            select(Crop.x, Crop.y, Crop.w, Crop.h, Video.width, Video.height, *columns)
            .join(SplitMember, SplitMember.crop_id == Crop.id).join(Video, Crop.video_id == Video.id)
            .where(SplitMember.run_id == run_id, SplitMember.part == part).order_by(Crop.id)
        ).all()
    out = np.full((len(rows), 5, 2), np.nan, dtype=np.float32)
    scale = config["image_size"] / size
    for i, row in enumerate(rows):
        x, y, w, h, width, height, *flat = row
        points = None if any(v is None for v in flat) else list(zip(flat[0::2], flat[1::2]))
        found = crop_landmarks(Box(x, y, w, h), points, margin=margin, size=size, align=align,
                               frame_width=width, frame_height=height)
        if found is not None:
            out[i] = found * scale
    return out


# --- the mask --------------------------------------------------------------------------------

def face_outline(landmarks: np.ndarray, scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """(OUTLINE_POINTS, 2) points of the face's outline drawn from its five landmarks."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    eyes, mouth = points[:2].mean(axis=0), points[3:].mean(axis=0)
    across = points[1] - points[0]
    ocular = float(np.hypot(*across)) or 1.0
    down = mouth - eyes
    drop = float(np.hypot(*down)) or ocular
    # Axes: along the eye line, and perpendicular to it towards the mouth.
    ax = across / ocular
    ay = np.array([-ax[1], ax[0]])
    if np.dot(ay, down) < 0:
        ay = -ay
    angles = np.linspace(0, 2 * math.pi, OUTLINE_POINTS, endpoint=False)
    xs = OUTLINE_HALF_WIDTH * scale[0] * ocular * np.cos(angles)
    ys = (OUTLINE_CENTRE_Y + OUTLINE_HALF_HEIGHT * scale[1] * np.sin(angles)) * drop
    return eyes + np.outer(xs, ax) + np.outer(ys, ay)


def hard_mask(landmarks: np.ndarray, side: int, scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """float32 (side, side): 1 inside the convex hull of the face outline, 0 outside."""
    mask = np.zeros((side, side), dtype=np.float32)
    hull = cv2.convexHull(np.round(face_outline(landmarks, scale)).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1.0)
    return mask


def _odd(value: float) -> int:
    return max(3, int(value) // 2 * 2 + 1)


def _elastic(mask: np.ndarray, rng: np.random.Generator, k: float) -> np.ndarray:
    """The mask displaced by a smooth random field (albumentations' ElasticTransform, alpha 50,
    sigma 7 at 256 px). The field is smooth, so it is drawn and blurred at a quarter of the side
    and scaled up: the same deformation at a fraction of the cost."""
    side = mask.shape[0]
    low = max(8, side // 4)
    sigma = max(0.5, 7 * k * low / side)
    field = rng.uniform(-1, 1, (2, low, low)).astype(np.float32)
    # Blurred white noise shrinks as 1 / sigma: at a quarter of the side it comes out 4x larger.
    strength = 50 * k * low / side
    dx = cv2.resize(cv2.GaussianBlur(field[0], (0, 0), sigma), (side, side)) * strength
    dy = cv2.resize(cv2.GaussianBlur(field[1], (0, 0), sigma), (side, side)) * strength
    grid_x, grid_y = _grid(side)
    return cv2.remap(mask, grid_x + dx, grid_y + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


@lru_cache(maxsize=8)
def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    return tuple(np.meshgrid(np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32)))


def blend_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SBI's ``get_blend_mask``: squash to a random size, blur and cut (erode), blur again, back to
    size, normalised to a maximum of 1."""
    side = mask.shape[0]
    k = side / REFERENCE_SIDE
    small_h = max(4, int(side * rng.uniform(0.75, 1.0)))
    small_w = max(4, int(side * rng.uniform(0.75, 1.0)))
    m = cv2.resize(mask, (small_w, small_h))
    m = cv2.GaussianBlur(m, (_odd(rng.integers(5, 26) * k),) * 2, 0)
    if m.max() > 0:
        m = m / m.max()
    m[m < 1] = 0
    m = cv2.GaussianBlur(m, (_odd(rng.integers(5, 26) * k),) * 2, max(0.5, rng.integers(5, 46) * k))
    if m.max() > 0:
        m = m / m.max()
    return cv2.resize(m, (side, side))


# --- colour and frequency --------------------------------------------------------------------

_LEVELS = np.arange(256, dtype=np.float32)


def _lut(channels) -> np.ndarray:
    """A (1, 256, 3) uint8 look-up table from three per-level curves."""
    return np.clip(np.stack(channels, axis=-1) + 0.5, 0, 255).astype(np.uint8)[None]


def _colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB shift (p = 0.3, up to 20 levels a channel), hue (±5 of OpenCV's 180), saturation (±15 %)
    and value (±10 %), then contrast (±10 %) about the mean and brightness (±10 % of 255): each a
    look-up table on uint8 pixels."""
    out = image
    if rng.random() < 0.3:
        shift = rng.uniform(-20, 20, 3)
        out = cv2.LUT(out, _lut([_LEVELS + shift[c] for c in range(3)]))
    hue, saturation, value = rng.uniform(-5, 5), rng.uniform(0.85, 1.15), rng.uniform(0.9, 1.1)
    hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
    hsv = cv2.LUT(hsv, _lut([np.where(_LEVELS < 180, (_LEVELS + hue) % 180, _LEVELS),
                             _LEVELS * saturation, _LEVELS * value]))
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    contrast, brightness = rng.uniform(0.9, 1.1), rng.uniform(-0.1, 0.1) * 255
    mean = float(np.mean(cv2.mean(out)[:3]))
    curve = (_LEVELS - mean) * contrast + mean + brightness
    return cv2.LUT(out, _lut([curve] * 3))


def _frequency(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = image.shape[0]
    if rng.random() < 0.5:  # SBI's RandomDownScale: nearest down by 2 or 4, linear back up
        r = (2, 4)[rng.integers(2)]
        small = cv2.resize(image, (max(1, side // r),) * 2, interpolation=cv2.INTER_NEAREST)
        return cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR)
    alpha, lightness = rng.uniform(0.2, 0.5), rng.uniform(0.5, 1.0)  # albumentations' Sharpen
    effect = np.array([[-1, -1, -1], [-1, 8 + lightness, -1], [-1, -1, -1]], dtype=np.float32)
    identity = np.zeros((3, 3), dtype=np.float32)
    identity[1, 1] = 1
    kernel = (1 - alpha) * identity + alpha * effect
    return cv2.filter2D(image, -1, kernel)


def _source_transform(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _frequency(_colour(image, rng), rng)


# --- the blend -------------------------------------------------------------------------------

@dataclass
class Blend:
    real: np.ndarray  # uint8 (S, S, 3): the target, as the model sees the real side of the pair
    fake: np.ndarray  # uint8 (S, S, 3)
    mask: np.ndarray  # float32 (S, S): the blend weight of the source at each pixel, 0..1


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def pair_augmentation(real: np.ndarray, fake: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """SBI's training transforms of a pair (``get_transforms``, albumentations with ``image1`` as an
    additional target: one draw, applied to both images): RGB shift up to 20 levels (p = 0.3),
    brightness and contrast +-30 % (p = 0.3), JPEG at quality 40-100 (p = 0.5). Its
    HueSaturationValue (p = 0.3, limits +-0.3 on uint8 channels) changes no pixel and is left out.
    What the JPEG step is for: the blend is made after the video's compression, so without it the
    pseudo-fake's inside carries another noise than its outside (a cue real swaps, compressed after
    blending, do not have). On the sample data it moved no AUC measurably (docs/detectors.md)."""
    curves = [_LEVELS] * 3
    if rng.random() < 0.3:
        shift = rng.uniform(-20, 20, 3)
        curves = [curves[c] + shift[c] for c in range(3)]
    if rng.random() < 0.3:  # albumentations' brightness_by_max: x * (1 + contrast) + brightness * 255
        contrast, brightness = rng.uniform(-0.3, 0.3, 2)
        curves = [np.clip(curve, 0, 255) * (1 + contrast) + brightness * 255 for curve in curves]
    out = [cv2.LUT(image, _lut(curves)) for image in (real, fake)]
    if rng.random() < 0.5:
        quality = int(rng.integers(40, 101))
        out = [_jpeg(image, quality) for image in out]
    return out[0], out[1]


def self_blend(image: np.ndarray, landmarks: np.ndarray, seed, *, augment: bool = False) -> Blend:
    """One pseudo-fake of an RGB uint8 square crop from its five landmarks (crop pixels).
    ``augment``: then SBI's training transforms of the pair (``pair_augmentation``), drawn after
    the blend, so the blend itself is the same with or without."""
    rng = np.random.default_rng(seed)
    side = image.shape[0]
    k = side / REFERENCE_SIDE
    scale = tuple(rng.uniform(*OUTLINE_SCALE, 2))
    mask = hard_mask(landmarks, side, scale)
    target, source = image, image.copy()
    if rng.random() < 0.5:
        source = _source_transform(source, rng)
    else:
        target = _source_transform(target, rng)
    # The source and its mask: rescaled about the centre and shifted (SBI's randaffine).
    zoom = rng.uniform(0.95, 1 / 0.95)
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), 0, zoom)
    matrix[:, 2] += (rng.uniform(-0.03, 0.03) * side, rng.uniform(-0.015, 0.015) * side)
    source = cv2.warpAffine(source, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpAffine(mask, matrix, (side, side), flags=cv2.INTER_LINEAR)
    mask = _elastic(mask, rng, k)
    mask = blend_mask(mask, rng) * BLEND_RATIOS[rng.integers(len(BLEND_RATIOS))]
    mask = mask.astype(np.float32)
    base = target.astype(np.float32)
    # target + mask * (source - target), rounded: exactly the target where the mask is 0.
    fake = cv2.add(base, cv2.multiply(source.astype(np.float32) - base, cv2.merge([mask] * 3)))
    fake = np.clip(fake + 0.5, 0, 255).astype(np.uint8)
    if augment:
        target, fake = pair_augmentation(target, fake, rng)
    return Blend(real=target, fake=fake, mask=mask)


def can_blend(landmarks: np.ndarray) -> np.ndarray:
    """(N,) bool: crops with five finite landmarks."""
    return np.isfinite(np.asarray(landmarks, dtype=np.float32).reshape(len(landmarks), -1)).all(axis=1)


def element_seed(seed: int, index: int) -> list[int]:
    return [int(seed) & 0xFFFFFFFF, int(index)]


def validation_pseudo_fakes(images: np.ndarray, landmarks: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pseudo-fakes, indices of the crops they came from): one per crop that has landmarks, each
    from a fixed seed, so validation is the same every epoch and when the run scores it later."""
    indices = np.flatnonzero(can_blend(landmarks))
    fakes = np.stack([self_blend(images[i], landmarks[i], element_seed(seed + 1, i)).fake for i in indices]) \
        if len(indices) else np.zeros((0, *images.shape[1:]), dtype=np.uint8)
    return fakes, indices


# --- tf.data ---------------------------------------------------------------------------------

@dataclass
class SbiData:
    dataset: object  # tf.data.Dataset of (uint8 images, float32 labels) batches
    labels: np.ndarray  # the label of every element one epoch yields (class weights, counts)
    pseudo_fakes: int  # per epoch


def load_images(paths: Sequence[str], image_size: int) -> np.ndarray:
    """Every crop, decoded once (uint8, (N, S, S, 3)), read as training reads them (packs or PNGs)."""
    from workers.training.data import make_dataset

    if not len(paths):
        return np.zeros((0, image_size, image_size, 3), dtype=np.uint8)
    batches = make_dataset(list(paths), None, batch_size=256, training=False, image_size=image_size, cache=False)
    return np.concatenate([batch.numpy() for batch in batches])


def training_dataset(images: np.ndarray, labels: np.ndarray, landmarks: np.ndarray, *, batch_size: int,
                     seed: int) -> SbiData:
    """Shuffled batches in which every real crop with landmarks comes with its pseudo-fake (a fresh
    blend every epoch); fake crops (``--fakes both``) and crops without landmarks come alone. The
    blending runs in tf.data's parallel map on the host's cores."""
    import tensorflow as tf

    labels = np.asarray(labels, dtype=np.float32)
    blendable = can_blend(landmarks) & (labels == 0)
    n = len(images)

    def make_pair(index, element_random):
        i = int(index)
        if not blendable[i]:
            return images[i], images[i], np.array([labels[i], 1], np.float32), np.array([True, False])
        made = self_blend(images[i], landmarks[i], [int(element_random) & 0xFFFFFFFFFFFF, i], augment=True)
        return made.real, made.fake, np.array([0, 1], np.float32), np.array([True, True])

    def blend(index, element_random):
        real, fake, pair_labels, keep = tf.numpy_function(
            make_pair, [index, element_random], [tf.uint8, tf.uint8, tf.float32, tf.bool], stateful=False)
        shape = images.shape[1:]
        pair = tf.ensure_shape(tf.stack([real, fake]), (2, *shape))
        return pair, tf.ensure_shape(pair_labels, (2,)), tf.ensure_shape(keep, (2,))

    order = tf.data.Dataset.range(n).shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
    randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    dataset = (tf.data.Dataset.zip((order, randoms))
               .map(blend, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .unbatch()
               .filter(lambda image, label, keep: keep)
               .map(lambda image, label, keep: (image, label)))
    epoch_labels = np.concatenate([labels, np.ones(int(blendable.sum()), np.float32)])
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(epoch_labels)))
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return SbiData(dataset, epoch_labels, int(blendable.sum()))


def validation_arrays(images: np.ndarray, labels: np.ndarray, landmarks: np.ndarray, seed: int,
                      *, keep_fakes: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, source index) of validation: its real crops, their pseudo-fakes, and its
    fake crops with ``keep_fakes`` (``--fakes both``)."""
    labels = np.asarray(labels, dtype=np.float32)
    real = np.flatnonzero(labels == 0)
    keep = np.flatnonzero(labels == 1) if keep_fakes else np.zeros(0, dtype=int)
    fakes, made_from = validation_pseudo_fakes(images[real], landmarks[real], seed)
    made_from = real[made_from]
    chosen = np.concatenate([real, keep]).astype(int)
    out = np.concatenate([images[chosen], fakes]) if len(fakes) else images[chosen]
    out_labels = np.concatenate([labels[chosen], np.ones(len(fakes), np.float32)])
    return out, out_labels, np.concatenate([chosen, made_from]).astype(int)


def write_examples(images: np.ndarray, labels: np.ndarray, landmarks: np.ndarray, path: Path, *,
                   seed: int, count: int = 16) -> Path | None:
    """A sheet of ``count`` real crops, each beside its pseudo-fake and the blend mask, so a person
    sees what the model is taught to find. None when no crop can be blended."""
    from matplotlib.figure import Figure

    candidates = np.flatnonzero(can_blend(landmarks) & (np.asarray(labels) == 0))
    if not len(candidates):
        return None
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(candidates, min(count, len(candidates)), replace=False))
    columns = 4  # four (real, fake, mask) triples a row
    rows = -(-len(chosen) // columns)
    figure = Figure(figsize=(columns * 3 * 1.3, rows * 1.45))
    for n, i in enumerate(chosen):
        made = self_blend(images[i], landmarks[i], element_seed(seed + 2, int(i)))
        for k, (picture, title) in enumerate(((made.real, "real"), (made.fake, "pseudo-fake"),
                                              (made.mask, "mask"))):
            axis = figure.add_subplot(rows, columns * 3, n * 3 + k + 1)
            axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0,
                        vmax=1 if picture.ndim == 2 else None)
            axis.set_title(title, fontsize=7)
            axis.axis("off")
    figure.suptitle("Self-blended training pairs: real crop, its pseudo-fake, the blend mask", fontsize=9)
    figure.tight_layout()
    figure.savefig(str(path), dpi=80)
    return Path(path)


def sbi_inputs(train_paths, train_labels, val_paths, val_labels, landmarks, *, fakes: str, image_size: int,
               batch_size: int, seed: int, out_dir: Path | None = None) -> dict:
    """fit.train's datasets for ``--fakes sbi|both``: {"train", "val" (None without validation
    crops), "train_labels" (one epoch's, pseudo-fakes included), "pseudo_fakes_per_epoch",
    "val_pseudo_fakes", "examples" (the sheet's path in ``out_dir``, or None)}.
    ``landmarks``: (train, val) arrays from ``split_landmarks``."""
    from workers.training.data import make_dataset

    train_landmarks, val_landmarks = landmarks
    images = load_images(train_paths, image_size)
    labels = np.asarray(train_labels, dtype=np.float32)
    made = training_dataset(images, labels, train_landmarks, batch_size=batch_size, seed=seed)
    if not made.pseudo_fakes:
        raise ValueError("--fakes sbi: no training crop of a real video has landmarks to blend with "
                         "(ingest records them from the detector)")
    examples = write_examples(images, labels, train_landmarks, Path(out_dir) / EXAMPLES_FILE, seed=seed) \
        if out_dir is not None else None
    val, val_pseudo = None, 0
    if len(val_paths):
        val_images, val_out_labels, _ = validation_arrays(load_images(val_paths, image_size),
                                                          np.asarray(val_labels), val_landmarks, seed,
                                                          keep_fakes=fakes == "both")
        val_pseudo = int(len(val_out_labels) - np.sum(np.asarray(val_labels) == 0)
                         - (np.sum(np.asarray(val_labels) == 1) if fakes == "both" else 0))
        val = make_dataset(val_images, val_out_labels, batch_size=batch_size, training=False, image_size=image_size)
    return {"train": made.dataset, "val": val, "train_labels": made.labels.astype(int),
            "pseudo_fakes_per_epoch": made.pseudo_fakes, "val_pseudo_fakes": val_pseudo,
            "examples": str(examples) if examples else None}


def scored_pseudo_fakes(val: dict, val_landmarks: np.ndarray, *, image_size: int, seed: int) -> dict:
    """The validation pseudo-fakes training validated on (same seeds), as a part the run scores to
    choose its threshold: {"images", "paths" ("sbi:" + the crop's path), "labels" (1), "video_ids"
    (minus the real video's id: a pseudo-fake video of its own)}."""
    labels = np.asarray(val["labels"])
    real = np.flatnonzero(labels == 0)
    images = load_images([val["paths"][i] for i in real], image_size)
    fakes, made_from = validation_pseudo_fakes(images, val_landmarks[real], seed)
    sources = real[made_from]
    return {"images": fakes, "paths": [f"sbi:{val['paths'][i]}" for i in sources],
            "labels": [1] * len(sources), "video_ids": [-int(val["video_ids"][i]) for i in sources]}
