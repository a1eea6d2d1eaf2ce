"""A small, synthetic dataset laid out exactly like Celeb-DF v2, for tests and demos.

Celeb-DF itself cannot be downloaded from our machines, so this module writes look-alike
videos from face images that ship inside installed packages (scikit-image, matplotlib):
nothing is downloaded at run time and the same seed gives the same files.

- ``Celeb-real/id{N}_{nnnn}.mp4``: identity N's face on a background, moving slightly.
- ``Celeb-synthesis/id{src}_id{tgt}_{nnnn}.mp4``: the real video ``Celeb-real/id{src}_{nnnn}.mp4``
  (same background, motion and face position) with identity tgt's face, or a colour-shifted,
  blurred, slightly scaled copy of the same face when tgt == src, blended into the face box
  through a feathered elliptical mask ("self-blended images", Shiohara & Yamasaki, CVPR 2022).
  The blending leaves the traces that real deepfake detectors learn, made strong enough to be
  learnt from a few hundred crops: a blend seam, a colour mismatch left after colour
  matching, and a resolution mismatch (the swapped face is rendered at 25-40 % of its size).
- ``YouTube-real/{nnnnn}.mp4``: real videos of people with no identity number.
- ``List_of_testing_videos.txt``: ``<label> <Folder>/<file>.mp4`` lines where 1 means real
  and 0 means fake (the inverse of our convention), no trailing newline.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from shared.labels import TEST_LIST_NAME

CELEB_REAL = "Celeb-real"
YOUTUBE_REAL = "YouTube-real"
CELEB_SYNTHESIS = "Celeb-synthesis"

# Face boxes (x, y, w, h) that MTCNN reports on the full package images.
_ASTRONAUT_FACE_BOX = (182, 64, 83, 107)
_CAMERA_FACE_BOX = (197, 116, 58, 81)
_GRACE_HOPPER_FACE_BOX = (178, 110, 173, 220)
# The LFW crops are tight 25x25 faces; MTCNN's box covers this fraction of the crop.
_LFW_FACE_BOX_FRACTION = (0.07, 0.0, 0.75, 0.97)
# LFW faces that MTCNN finds with confidence >= 0.99 once upscaled; used before the others.
_LFW_RELIABLE_FACES = (12, 18, 19, 29, 2, 3, 6, 20, 27, 11, 1, 7, 15, 23)
# Context kept around a face when cropping it from its source image, as a fraction of
# the face box: MTCNN needs some head and background around the face.
_CROP_MARGIN = 0.6


@dataclass(frozen=True)
class FaceImage:
    """A face crop (RGB) and where the face sits inside it."""

    name: str
    image: np.ndarray
    face_box: tuple[float, float, float, float]  # x, y, w, h in crop pixels


@dataclass(frozen=True)
class VideoPlan:
    """Everything that decides the frames of one real video."""

    face: FaceImage
    background: np.ndarray  # RGB, frame sized
    face_height: float  # pixels, height of the face box in the frame
    center: tuple[float, float]  # face box centre in the frame
    drift: tuple[float, float]  # amplitude of the slow movement, pixels
    drift_period_s: float
    phase: float
    scale_jitter: float  # relative change of the face size over time


@dataclass(frozen=True)
class FakePlan:
    """How a fake is made from its source real video."""

    source: VideoPlan
    donor: FaceImage | None  # None: a transformed copy of the source face (self-blend)
    colour_shift: tuple[float, float, float]
    blur_sigma: float
    donor_scale: float
    donor_shift: tuple[float, float]
    # The swapped face is made at this fraction of its size in the frame, then scaled up
    # (face-swap generators work at 64-256 px): a resolution mismatch with its surroundings.
    resolution: float = 1.0


def make_sample_dataset(
    dest: Path | str,
    *,
    reals_per_folder: int = 3,
    fakes: int = 4,
    seconds: float = 7.0,
    fps: float = 10.0,
    size: tuple[int, int] = (480, 270),
    seed: int = 0,
    identities: int | None = None,
    youtube_reals: int | None = None,
) -> dict:
    """Write a small Celeb-DF-shaped dataset into dest; return a summary dict.

    ``{"root": str(dest), "videos": {"Celeb-real": [...], "YouTube-real": [...],
    "Celeb-synthesis": [...]}, "test_list": [...lines...], "sources": {fake: real},
    "identities": {"id0": "astronaut", ...}, "faces_repeat": bool}``; video paths are relative to dest.

    ``reals_per_folder`` videos go into Celeb-real, and into YouTube-real unless ``youtube_reals``
    says otherwise; Celeb-real spreads them over ``identities`` identities (default
    ``max(2, ceil(n / 2))``, so with n >= 3 some identity has two videos). Every identity and every
    YouTube-real video has a face of its own while the package faces last (``len(load_face_images())``);
    beyond that faces repeat (``faces_repeat``), and a split grouped by identity can then hold the
    same face on both sides.
    The test list holds the last video of each real folder, every fake made from the
    test Celeb-real video, and one fake whose source real video is not in the test list,
    as the official list does (it is video-disjoint, not source-disjoint).
    """
    if reals_per_folder < 1:
        raise ValueError("reals_per_folder must be at least 1")
    youtube_reals = reals_per_folder if youtube_reals is None else youtube_reals
    if youtube_reals < 1:
        raise ValueError("youtube_reals must be at least 1")
    if identities is not None and not 1 <= identities <= reals_per_folder:
        raise ValueError("identities must be between 1 and the number of Celeb-real videos")
    frame_count = round(seconds * fps)
    if frame_count < 1:
        raise ValueError("seconds * fps must give at least one frame")
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    faces = load_face_images()

    identity_count = identities or max(2, -(-reals_per_folder // 2))
    identity_faces = [faces[i % len(faces)] for i in range(identity_count)]
    celeb_reals = [(k % identity_count, k // identity_count) for k in range(reals_per_folder)]
    fake_pairs = _choose_fake_pairs(celeb_reals, identity_count, fakes)

    videos: dict[str, list[str]] = {CELEB_REAL: [], YOUTUBE_REAL: [], CELEB_SYNTHESIS: []}
    plans: dict[str, VideoPlan] = {}
    for identity, number in celeb_reals:
        rel = f"{CELEB_REAL}/id{identity}_{number:04d}.mp4"
        plans[rel] = _plan_video(identity_faces[identity], size, seed, rel)
        _write_video(root / rel, (_render_real_frame(plans[rel], i / fps)[0] for i in range(frame_count)),
                     fps, size)
        videos[CELEB_REAL].append(rel)

    for k in range(youtube_reals):
        rel = f"{YOUTUBE_REAL}/{k:05d}.mp4"
        plan = _plan_video(faces[(identity_count + k) % len(faces)], size, seed, rel)
        _write_video(root / rel, (_render_real_frame(plan, i / fps)[0] for i in range(frame_count)), fps, size)
        videos[YOUTUBE_REAL].append(rel)

    sources: dict[str, str] = {}
    for (source_identity, number), target_identity in fake_pairs:
        source_rel = f"{CELEB_REAL}/id{source_identity}_{number:04d}.mp4"
        rel = f"{CELEB_SYNTHESIS}/id{source_identity}_id{target_identity}_{number:04d}.mp4"
        donor = None if target_identity == source_identity else identity_faces[target_identity]
        fake = _plan_fake(plans[source_rel], donor, seed, rel)
        _write_video(root / rel, (_render_fake_frame(fake, i / fps)[0] for i in range(frame_count)), fps, size)
        videos[CELEB_SYNTHESIS].append(rel)
        sources[rel] = source_rel

    test_list = _test_list_lines(videos, sources)
    (root / TEST_LIST_NAME).write_text("\n".join(test_list), newline="\n")
    return {
        "root": str(root),
        "videos": videos,
        "test_list": test_list,
        "sources": sources,
        "identities": {f"id{i}": face.name for i, face in enumerate(identity_faces)},
        "faces_repeat": identity_count + youtube_reals > len(faces),
    }


def write_blank_video(
    path: Path | str,
    seconds: float = 7.0,
    fps: float = 10.0,
    size: tuple[int, int] = (480, 270),
    *,
    seed: int = 0,
) -> Path:
    """Write a valid video with no face in it (a gradient that slowly brightens)."""
    path = Path(path)
    rng = np.random.default_rng([seed, zlib.crc32(b"blank")])
    background = _gradient(size, rng)
    frame_count = max(1, round(seconds * fps))
    frames = (
        np.clip(background.astype(np.int16) + int(20 * i / frame_count), 0, 255).astype(np.uint8)
        for i in range(frame_count)
    )
    _write_video(path, frames, fps, size)
    return path


def write_corrupt_video(path: Path | str, *, seed: int = 0) -> Path:
    """Write a file named like a video that no decoder can read: an MP4 header cut short
    and followed by random bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, zlib.crc32(b"corrupt")])
    path.write_bytes(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00" + rng.bytes(4096))
    return path


@lru_cache(maxsize=1)
def load_face_images() -> tuple[FaceImage, ...]:
    """Every face this module can use, the most reliably detected first."""
    import matplotlib.cbook
    import skimage.data

    astronaut = skimage.data.astronaut()
    camera = cv2.cvtColor(skimage.data.camera(), cv2.COLOR_GRAY2RGB)
    grace_path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    grace_hopper = cv2.cvtColor(cv2.imread(str(grace_path)), cv2.COLOR_BGR2RGB)
    # lfw_subset(): the first 100 images are faces, the last 100 are not.
    lfw = skimage.data.lfw_subset()[:100]
    lfw_faces = {index: _lfw_face(index, lfw[index]) for index in range(len(lfw))}
    return (
        _crop_around_face("astronaut", astronaut, _ASTRONAUT_FACE_BOX),
        _crop_around_face("grace_hopper", grace_hopper, _GRACE_HOPPER_FACE_BOX),
        *(lfw_faces.pop(index) for index in _LFW_RELIABLE_FACES),
        # A profile: MTCNN also finds the ear (confidence ~0.96) in some frames.
        _crop_around_face("camera", camera, _CAMERA_FACE_BOX),
        *lfw_faces.values(),
    )


def _lfw_face(index: int, image: np.ndarray) -> FaceImage:
    grey = np.round(image * 255).astype(np.uint8)
    side = grey.shape[0]
    fx, fy, fw, fh = _LFW_FACE_BOX_FRACTION
    return FaceImage(f"lfw_{index}", cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB),
                     (fx * side, fy * side, fw * side, fh * side))


def _crop_around_face(name: str, image: np.ndarray, box: tuple[int, int, int, int]) -> FaceImage:
    x, y, w, h = box
    left = max(0, int(x - _CROP_MARGIN * w))
    top = max(0, int(y - _CROP_MARGIN * h))
    right = min(image.shape[1], int(x + w + _CROP_MARGIN * w))
    bottom = min(image.shape[0], int(y + h + _CROP_MARGIN * h))
    crop = np.ascontiguousarray(image[top:bottom, left:right])
    return FaceImage(name, crop, (float(x - left), float(y - top), float(w), float(h)))


def _choose_fake_pairs(
    celeb_reals: list[tuple[int, int]], identity_count: int, fakes: int
) -> list[tuple[tuple[int, int], int]]:
    """Pick (source video, target identity) pairs: first a swap with another identity
    for every real video, then further rounds, the last of which self-blends."""
    pairs = [
        (video, (video[0] + offset) % identity_count)
        for offset in range(1, identity_count + 1)
        for video in celeb_reals
    ]
    if fakes < 0 or fakes > len(pairs):
        raise ValueError(f"fakes must be between 0 and {len(pairs)} for these real videos")
    return pairs[:fakes]


def _test_list_lines(videos: dict[str, list[str]], sources: dict[str, str]) -> list[str]:
    test_reals = [videos[CELEB_REAL][-1], videos[YOUTUBE_REAL][-1]]
    test_fakes = [fake for fake in videos[CELEB_SYNTHESIS] if sources[fake] in test_reals]
    # Like the official list, one test fake whose source real video is in the training part.
    leaking = [fake for fake in videos[CELEB_SYNTHESIS] if sources[fake] not in test_reals]
    if leaking:
        test_fakes.append(leaking[-1])
    return [f"1 {rel}" for rel in test_reals] + [f"0 {rel}" for rel in test_fakes]


def _video_rng(seed: int, rel: str) -> np.random.Generator:
    # Keyed by the file name: a video's background and motion do not depend on how many
    # other videos are made.
    return np.random.default_rng([seed, zlib.crc32(rel.encode())])


def _plan_video(face: FaceImage, size: tuple[int, int], seed: int, rel: str) -> VideoPlan:
    rng = _video_rng(seed, rel)
    width, height = size
    face_height = rng.uniform(0.37, 0.48) * height  # 100-130 px in a 270 px frame
    return VideoPlan(
        face=face,
        background=_background(size, rng),
        face_height=face_height,
        center=(rng.uniform(0.3, 0.7) * width, rng.uniform(0.46, 0.54) * height),
        drift=(rng.uniform(4, 10), rng.uniform(2, 5)),
        drift_period_s=rng.uniform(3, 6),
        phase=rng.uniform(0, 2 * np.pi),
        scale_jitter=rng.uniform(0.02, 0.05),
    )


def _plan_fake(source: VideoPlan, donor: FaceImage | None, seed: int, rel: str) -> FakePlan:
    rng = _video_rng(seed, rel)
    # Colour mismatch left after colour matching: a few per cent per channel, as real swaps show
    # (lighting and skin tone never match exactly). The earlier 3-6 levels were below the noise
    # of an mp4v frame once resized to a model's input: no model could learn from it.
    shift_size = 28 if donor is not None else 32
    return FakePlan(
        source=source,
        donor=donor,
        colour_shift=tuple(rng.choice([-1, 1]) * rng.uniform(0.5, 1.0) * shift_size for _ in range(3)),
        blur_sigma=rng.uniform(0.8, 1.6),
        donor_scale=rng.uniform(1.02, 1.06),
        donor_shift=(rng.uniform(-2, 2), rng.uniform(-2, 2)),
        resolution=rng.uniform(0.25, 0.4),
    )


def _gradient(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    width, height = size
    start, end = rng.uniform(30, 225, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (xs * np.cos(angle) + ys * np.sin(angle)).astype(np.float32)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    image = start[None, None, :] * (1 - t[..., None]) + end[None, None, :] * t[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def _background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A gradient, a few soft shapes and a little grain: different for every video."""
    width, height = size
    image = _gradient(size, rng)
    for _ in range(int(rng.integers(2, 5))):
        colour = tuple(int(c) for c in rng.integers(20, 236, size=3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            axes = (int(rng.integers(30, 120)), int(rng.integers(20, 80)))
            cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        else:
            corner = (centre[0] + int(rng.integers(40, 160)), centre[1] + int(rng.integers(30, 100)))
            cv2.rectangle(image, centre, corner, colour, -1)
    image = cv2.GaussianBlur(image, (0, 0), 3)
    grain = rng.normal(0, 4, size=image.shape)
    return np.clip(image + grain, 0, 255).astype(np.uint8)


def _face_box_at(plan: VideoPlan, t: float) -> tuple[float, float, float, float]:
    """Face box (x, y, w, h) in the frame at time t seconds."""
    angle = 2 * np.pi * t / plan.drift_period_s + plan.phase
    scale = 1 + plan.scale_jitter * np.sin(0.7 * angle)
    h = plan.face_height * scale
    w = h * plan.face.face_box[2] / plan.face.face_box[3]
    cx = plan.center[0] + plan.drift[0] * np.sin(angle)
    cy = plan.center[1] + plan.drift[1] * np.cos(angle)
    return cx - w / 2, cy - h / 2, w, h


def _render_real_frame(plan: VideoPlan, t: float) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The frame at time t (RGB) and the face box in it."""
    frame = plan.background.copy()
    box = _face_box_at(plan, t)
    fx, fy, fw, fh = plan.face.face_box
    scale = box[3] / fh
    crop_h, crop_w = plan.face.image.shape[:2]
    out_w, out_h = max(1, round(crop_w * scale)), max(1, round(crop_h * scale))
    left, top = round(box[0] - fx * scale), round(box[1] - fy * scale)
    face = cv2.resize(plan.face.image, (out_w, out_h), interpolation=cv2.INTER_CUBIC)
    # Soften the edges of the pasted crop so it does not sit in a hard rectangle.
    ramp = max(2.0, 0.04 * min(out_w, out_h))
    alpha = np.minimum.outer(_edge_ramp(out_h, ramp), _edge_ramp(out_w, ramp))
    _paste(frame, face, alpha, left, top)
    return frame, box


def _edge_ramp(length: int, ramp: float) -> np.ndarray:
    distance = np.minimum(np.arange(length), np.arange(length)[::-1]) + 0.5
    return np.clip(distance / ramp, 0, 1).astype(np.float32)


def _paste(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, left: int, top: int) -> None:
    """Alpha-blend patch into frame at (left, top), clipped to the frame."""
    height, width = frame.shape[:2]
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(width, left + patch.shape[1]), min(height, top + patch.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    src = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    a = np.ascontiguousarray(alpha[src])
    frame[y0:y1, x0:x1] = cv2.blendLinear(np.ascontiguousarray(patch[src]), frame[y0:y1, x0:x1], a, 1 - a)


def _render_fake_frame(fake: FakePlan, t: float) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    frame, box = _render_real_frame(fake.source, t)
    # All the work happens in a region around the face; the rest of the frame stays real.
    x0, y0, x1, y1 = _region_around(box, frame.shape, margin=0.35)
    region = frame[y0:y1, x0:x1]
    size = (x1 - x0, y1 - y0)
    x, y, w, h = box[0] - x0, box[1] - y0, box[2], box[3]
    if fake.donor is None:
        donor = region  # self-blend: a transformed copy of the same face
    else:
        donor = _donor_face_in_box(fake.donor, (x, y, w, h), size)
    # Slightly scaled and shifted about the face centre, so edges inside the mask misalign.
    matrix = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), 0.0, fake.donor_scale)
    matrix[:, 2] += fake.donor_shift
    donor = cv2.warpAffine(donor, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    donor = cv2.GaussianBlur(donor, (0, 0), fake.blur_sigma)
    if fake.resolution < 1.0:
        small = (max(1, round(size[0] * fake.resolution)), max(1, round(size[1] * fake.resolution)))
        donor = cv2.resize(cv2.resize(donor, small, interpolation=cv2.INTER_AREA), size,
                           interpolation=cv2.INTER_LINEAR)
    donor = donor.astype(np.float32)
    mask = _feathered_ellipse(size, (x, y, w, h))
    if fake.donor is not None:
        donor = _match_colour(donor, region, mask > 0.5)
    donor += np.asarray(fake.colour_shift, dtype=np.float32)
    donor = np.clip(donor, 0, 255).astype(np.uint8)
    frame[y0:y1, x0:x1] = cv2.blendLinear(donor, region, mask, 1 - mask)
    return frame, box


def _region_around(box: tuple[float, float, float, float], shape: tuple[int, ...],
                   margin: float) -> tuple[int, int, int, int]:
    x, y, w, h = box
    x0 = max(0, int(x - margin * w))
    y0 = max(0, int(y - margin * h))
    x1 = min(shape[1], int(np.ceil(x + w + margin * w)))
    y1 = min(shape[0], int(np.ceil(y + h + margin * h)))
    return x0, y0, x1, y1


def _donor_face_in_box(donor: FaceImage, box: tuple[float, float, float, float],
                       size: tuple[int, int]) -> np.ndarray:
    """The donor face crop warped so that its face box lands on ``box`` in an image of ``size``."""
    dx, dy, dw, dh = donor.face_box
    x, y, w, h = box
    sx, sy = w / dw, h / dh
    matrix = np.float32([[sx, 0, x - dx * sx], [0, sy, y - dy * sy]])
    return cv2.warpAffine(donor.image, matrix, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _feathered_ellipse(size: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    """A soft elliptical mask (float32, 0..1) over the inner face of ``box``."""
    width, height = size
    x, y, w, h = box
    mask = np.zeros((height, width), np.float32)
    centre = (round(x + w / 2), round(y + 0.55 * h))
    axes = (max(1, round(0.40 * w)), max(1, round(0.45 * h)))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
    # A narrow feather: the blend seam stays visible, as in real swaps.
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.035 * h))


def _match_colour(donor: np.ndarray, target: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Give the donor the per-channel mean and spread of the target inside the mask,
    as face-swap pipelines do before blending."""
    inside = inside.astype(np.uint8)
    donor_mean, donor_std = (v.ravel() for v in cv2.meanStdDev(donor, mask=inside))
    target_mean, target_std = (v.ravel() for v in cv2.meanStdDev(target, mask=inside))
    gain = (target_std / (donor_std + 1e-3)).astype(np.float32)
    return (donor - donor_mean.astype(np.float32)) * gain + target_mean.astype(np.float32)


def _write_video(path: Path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int]) -> None:
    """Write RGB frames to an MPEG-4 Part 2 (``mp4v``) file; OpenCV here cannot write H.264."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter cannot write {path}")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


# --- Other datasets' layouts (FaceForensics++, DFDC, real/fake folders), for workers/datasets/ ---
# Small and made on the spot like the Celeb-DF look-alike above: the same faces, backgrounds, motion
# and blended fakes, only named and listed as those datasets name and list them.

FFPP_SPLIT_NAMES = ("train", "val", "test")


def _write_layout_video(root: Path, rel: str, face: FaceImage, donor: FaceImage | None, *, fake: bool,
                        seconds: float, fps: float, size: tuple[int, int], seed: int, footage_rel: str) -> None:
    """One video of a layout: ``face`` on the background and motion keyed by ``footage_rel`` (a fake
    and the real video it is made from share it); a fake blends ``donor`` (None: the same face,
    transformed) into the face box."""
    frame_count = max(1, round(seconds * fps))
    plan = _plan_video(face, size, seed, footage_rel)
    if fake:
        fake_plan = _plan_fake(plan, donor, seed, rel)
        frames = (_render_fake_frame(fake_plan, i / fps)[0] for i in range(frame_count))
    else:
        frames = (_render_real_frame(plan, i / fps)[0] for i in range(frame_count))
    _write_video(root / rel, frames, fps, size)


def make_ffpp_sample(
    dest: Path | str,
    *,
    originals: int = 6,
    methods: tuple[str, ...] = ("Deepfakes", "FaceSwap"),
    compression: str = "c23",
    actors: int = 2,
    seconds: float = 1.0,
    fps: float = 10.0,
    size: tuple[int, int] = (320, 180),
    seed: int = 0,
) -> dict:
    """Write a small FaceForensics++-shaped dataset into dest; return a summary dict.

    - ``original_sequences/youtube/<c>/videos/000.mp4 ...``: ``originals`` (even) real videos, in pairs
      (000, 001), (002, 003), ...
    - ``manipulated_sequences/<Method>/<c>/videos/TTT_SSS.mp4``: for every pair and method both fakes
      (TTT's footage with SSS's face, and the other way round).
    - with ``actors`` >= 2: ``original_sequences/actors/<c>/videos/NN__talking_still.mp4`` and
      DeepFakeDetection fakes ``manipulated_sequences/DeepFakeDetection/<c>/videos/NN_MM__talking_still__<ID>.mp4``
      (actor NN's footage with MM's face) for consecutive actors.
    - ``splits/train.json``, ``val.json``, ``test.json``: the pairs, as FF++ publishes them; the last pair
      is the test set, the one before it (with three pairs or more) the validation set.

    ``{"root", "videos": {folder: [rel, ...]}, "splits": {"train": [[a, b], ...], ...},
    "test_videos": [rel, ...], "compression"}``; paths relative to dest.
    """
    if originals < 2 or originals % 2:
        raise ValueError("originals must be an even number, at least 2")
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    faces = load_face_images()
    options = dict(seconds=seconds, fps=fps, size=size, seed=seed)
    names = [f"{k:03d}" for k in range(originals)]
    face_of = {name: faces[k % len(faces)] for k, name in enumerate(names)}
    pairs = [[names[k], names[k + 1]] for k in range(0, originals, 2)]

    youtube = f"original_sequences/youtube/{compression}/videos"
    videos: dict[str, list[str]] = {youtube: []}
    for name in names:
        rel = f"{youtube}/{name}.mp4"
        _write_layout_video(root, rel, face_of[name], None, fake=False, footage_rel=rel, **options)
        videos[youtube].append(rel)
    for method in methods:
        folder = f"manipulated_sequences/{method}/{compression}/videos"
        videos[folder] = []
        for a, b in pairs:
            for target, source in ((a, b), (b, a)):
                rel = f"{folder}/{target}_{source}.mp4"
                _write_layout_video(root, rel, face_of[target], face_of[source], fake=True,
                                    footage_rel=f"{youtube}/{target}.mp4", **options)
                videos[folder].append(rel)

    if actors >= 2:
        actor_folder = f"original_sequences/actors/{compression}/videos"
        dfd_folder = f"manipulated_sequences/DeepFakeDetection/{compression}/videos"
        videos[actor_folder], videos[dfd_folder] = [], []
        actor_ids = [f"{k + 1:02d}" for k in range(actors)]
        actor_face = {a: faces[(originals + k) % len(faces)] for k, a in enumerate(actor_ids)}
        for actor in actor_ids:
            rel = f"{actor_folder}/{actor}__talking_still.mp4"
            _write_layout_video(root, rel, actor_face[actor], None, fake=False, footage_rel=rel, **options)
            videos[actor_folder].append(rel)
        rng = np.random.default_rng([seed, zlib.crc32(b"dfd")])
        for first, second in zip(actor_ids, actor_ids[1:]):
            tag = "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), 8))
            rel = f"{dfd_folder}/{first}_{second}__talking_still__{tag}.mp4"
            _write_layout_video(root, rel, actor_face[first], actor_face[second], fake=True,
                                footage_rel=f"{actor_folder}/{first}__talking_still.mp4", **options)
            videos[dfd_folder].append(rel)

    splits = {"test": pairs[-1:], "val": pairs[-2:-1] if len(pairs) >= 3 else [],
              "train": pairs[:-2] if len(pairs) >= 3 else pairs[:-1]}
    (root / "splits").mkdir(exist_ok=True)
    for split in FFPP_SPLIT_NAMES:
        (root / "splits" / f"{split}.json").write_text(json.dumps(splits[split]))
    test_stems = {s for a, b in splits["test"] for s in (a, b, f"{a}_{b}", f"{b}_{a}")}
    test_videos = [rel for folder, rels in videos.items()
                   if folder.startswith(("original_sequences/youtube", "manipulated_sequences"))
                   and "DeepFakeDetection" not in folder
                   for rel in rels if Path(rel).stem in test_stems]
    return {"root": str(root), "videos": videos, "splits": splits, "test_videos": test_videos,
            "compression": compression}


def _dfdc_name(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 10)) + ".mp4"


def make_dfdc_sample(
    dest: Path | str,
    *,
    parts: int = 2,
    originals_per_part: int = 2,
    fakes_per_original: int = 2,
    test_videos: int = 3,
    seconds: float = 1.0,
    fps: float = 10.0,
    size: tuple[int, int] = (320, 180),
    seed: int = 0,
) -> dict:
    """Write a small DFDC-shaped dataset into dest; return a summary dict.

    - ``dfdc_train_part_K/``: ``originals_per_part`` real videos and ``fakes_per_original`` fakes of each
      (the original's footage with another identity's face), random 10-letter names, and
      ``metadata.json``: ``{"abc.mp4": {"label": "FAKE", "split": "train", "original": "xyz.mp4"}}``
      (reals have no ``original``).
    - ``test_videos/``: ``test_videos`` videos (reals and fakes alternating) and ``labels.csv``
      (``filename,label``, 1 = fake), as the public test set ships.

    ``{"root", "videos": {rel: label}, "originals": {fake rel: original rel}, "test_videos": [rel, ...]}``.
    """
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    faces = load_face_images()
    rng = np.random.default_rng([seed, zlib.crc32(b"dfdc")])
    options = dict(seconds=seconds, fps=fps, size=size, seed=seed)
    labels: dict[str, int] = {}
    originals: dict[str, str] = {}
    face_index = 0
    for part in range(parts):
        folder = f"dfdc_train_part_{part}"
        metadata: dict[str, dict] = {}
        for _ in range(originals_per_part):
            name = _dfdc_name(rng)
            face = faces[face_index % len(faces)]
            face_index += 1
            rel = f"{folder}/{name}"
            _write_layout_video(root, rel, face, None, fake=False, footage_rel=rel, **options)
            metadata[name] = {"label": "REAL", "split": "train"}
            labels[rel] = 0
            for k in range(fakes_per_original):
                fake_name = _dfdc_name(rng)
                donor = faces[(face_index + k) % len(faces)]
                fake_rel = f"{folder}/{fake_name}"
                _write_layout_video(root, fake_rel, face, donor, fake=True, footage_rel=rel, **options)
                metadata[fake_name] = {"label": "FAKE", "split": "train", "original": name}
                labels[fake_rel] = 1
                originals[fake_rel] = rel
        (root / folder / "metadata.json").write_text(json.dumps(metadata, indent=1))

    test_rels = []
    lines = ["filename,label"]
    for k in range(test_videos):
        name = _dfdc_name(rng)
        rel = f"test_videos/{name}"
        face = faces[(face_index + k) % len(faces)]
        fake = k % 2 == 1
        _write_layout_video(root, rel, face, faces[(face_index + k + 1) % len(faces)] if fake else None,
                            fake=fake, footage_rel=rel, **options)
        lines.append(f"{name},{int(fake)}")
        labels[rel] = int(fake)
        test_rels.append(rel)
    if test_videos:
        (root / "test_videos" / "labels.csv").write_text("\n".join(lines) + "\n")
    return {"root": str(root), "videos": labels, "originals": originals, "test_videos": test_rels}


def make_folders_sample(
    dest: Path | str,
    *,
    people: int = 3,
    seconds: float = 1.0,
    fps: float = 10.0,
    size: tuple[int, int] = (320, 180),
    seed: int = 0,
) -> dict:
    """Write ``real/`` and ``fake/`` folders into dest, with a ``groups.csv``; return a summary dict.

    For every person k: ``real/person{k}.mp4`` and ``fake/swapped/person{k}_swap.mp4`` (that footage with
    the next person's face), both in group ``person{k}`` of ``groups.csv`` (``video,group``); plus
    ``real/extra.mp4``, a video that no line names (its own group).

    ``{"root", "videos": {rel: label}, "groups": {rel: group}}``.
    """
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    faces = load_face_images()
    options = dict(seconds=seconds, fps=fps, size=size, seed=seed)
    labels: dict[str, int] = {}
    groups: dict[str, str] = {}
    for k in range(people):
        real = f"real/person{k}.mp4"
        fake = f"fake/swapped/person{k}_swap.mp4"
        _write_layout_video(root, real, faces[k % len(faces)], None, fake=False, footage_rel=real, **options)
        _write_layout_video(root, fake, faces[k % len(faces)], faces[(k + 1) % len(faces)], fake=True,
                            footage_rel=real, **options)
        labels[real], labels[fake] = 0, 1
        groups[real] = groups[fake] = f"person{k}"
    extra = "real/extra.mp4"
    _write_layout_video(root, extra, faces[people % len(faces)], None, fake=False, footage_rel=extra, **options)
    labels[extra] = 0
    (root / "groups.csv").write_text("video,group\n" + "".join(f"{rel},{group}\n" for rel, group in groups.items()))
    return {"root": str(root), "videos": labels, "groups": groups}


SAMPLE_FORMATS = ("celebdf", "ffpp", "dfdc", "folders")


def make_sample(dest: Path | str, format: str = "celebdf", *, reals_per_folder: int = 3, fakes: int = 4,
                seconds: float | None = None, seed: int = 0, identities: int | None = None,
                youtube_reals: int | None = None) -> dict:
    """A sample dataset in one of ``SAMPLE_FORMATS`` (``sample-data --format``): the writer's summary
    plus ``"format"`` and ``"counts"``: ``{"real", "fake", "official_test"}`` videos."""
    if format == "celebdf":
        summary = make_sample_dataset(dest, reals_per_folder=reals_per_folder, fakes=fakes,
                                      seconds=seconds or 7.0, seed=seed, identities=identities,
                                      youtube_reals=youtube_reals)
        real = len(summary["videos"]["Celeb-real"]) + len(summary["videos"]["YouTube-real"])
        counts = {"real": real, "fake": len(summary["videos"]["Celeb-synthesis"]),
                  "official_test": len(summary["test_list"])}
    elif format == "ffpp":
        summary = make_ffpp_sample(dest, seconds=seconds or 1.0, seed=seed)
        fake = sum(len(rels) for folder, rels in summary["videos"].items() if folder.startswith("manipulated"))
        real = sum(len(rels) for folder, rels in summary["videos"].items() if folder.startswith("original"))
        counts = {"real": real, "fake": fake, "official_test": len(summary["test_videos"])}
    elif format == "dfdc":
        summary = make_dfdc_sample(dest, seconds=seconds or 1.0, seed=seed)
        fake = sum(summary["videos"].values())
        counts = {"real": len(summary["videos"]) - fake, "fake": fake, "official_test": len(summary["test_videos"])}
    elif format == "folders":
        summary = make_folders_sample(dest, seconds=seconds or 1.0, seed=seed)
        fake = sum(summary["videos"].values())
        counts = {"real": len(summary["videos"]) - fake, "fake": fake, "official_test": 0}
    else:
        raise ValueError(f"unknown sample format {format!r}; choose one of {', '.join(SAMPLE_FORMATS)}")
    return {**summary, "format": format, "counts": counts}
