"""The synthetic Celeb-DF look-alike: layout, decodability, test list, fakes, determinism, faces."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import re
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from shared.labels import FAKE, FOLDER_LABELS, REAL, TEST_LIST_LABELS, TEST_LIST_NAME
from shared.sample_data import make_sample_dataset, write_blank_video, write_corrupt_video

SECONDS = 7.0
FPS = 10.0
SIZE = (480, 270)
CELEB_REAL_NAME = re.compile(r"^id(\d+)_(\d{4})\.mp4$")
FAKE_NAME = re.compile(r"^id(\d+)_id(\d+)_(\d{4})\.mp4$")
YOUTUBE_NAME = re.compile(r"^\d{5}\.mp4$")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    return make_sample_dataset(tmp_path_factory.mktemp("celeb-df"))


@pytest.fixture(scope="module")
def detector():
    from mtcnn import MTCNN

    return MTCNN()


def all_videos(dataset: dict) -> list[str]:
    return [rel for folder in dataset["videos"].values() for rel in folder]


def first_frame_rgb(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    assert ok, f"cannot read a frame from {path}"
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def count_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"cannot open {path}"
    try:
        frames = 0
        while capture.grab():
            frames += 1
        return frames
    finally:
        capture.release()


def test_layout_and_file_names(dataset):
    root = Path(dataset["root"])
    assert sorted(p.name for p in root.iterdir()) == sorted([*FOLDER_LABELS, TEST_LIST_NAME])
    for folder, videos in dataset["videos"].items():
        assert sorted(p.relative_to(root).as_posix() for p in (root / folder).iterdir()) == sorted(videos)

    real_names = [Path(rel).name for rel in dataset["videos"]["Celeb-real"]]
    assert len(real_names) == 3 and all(CELEB_REAL_NAME.match(name) for name in real_names)
    videos_per_identity = Counter(CELEB_REAL_NAME.match(name).group(1) for name in real_names)
    assert len(videos_per_identity) >= 2
    assert max(videos_per_identity.values()) >= 2
    assert set(dataset["identities"]) == {f"id{n}" for n in videos_per_identity}

    youtube_names = [Path(rel).name for rel in dataset["videos"]["YouTube-real"]]
    assert len(youtube_names) == 3 and all(YOUTUBE_NAME.match(name) for name in youtube_names)

    fake_names = [Path(rel).name for rel in dataset["videos"]["Celeb-synthesis"]]
    assert len(fake_names) == 4 and all(FAKE_NAME.match(name) for name in fake_names)
    assert len(set(fake_names)) == len(fake_names)


def test_every_video_decodes_with_the_expected_frames(dataset):
    root = Path(dataset["root"])
    for rel in all_videos(dataset):
        capture = cv2.VideoCapture(str(root / rel))
        assert capture.isOpened(), rel
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS, abs=0.01), rel
        assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == SIZE, rel
        capture.release()
        assert abs(count_frames(root / rel) - SECONDS * FPS) <= 1, rel


def test_test_list_uses_the_official_format_and_inverted_labels(dataset):
    root = Path(dataset["root"])
    raw = (root / TEST_LIST_NAME).read_bytes()
    assert not raw.endswith(b"\n") and b"\r" not in raw
    lines = raw.decode().split("\n")
    assert lines == dataset["test_list"]
    assert len(set(lines)) == len(lines)

    labels = []
    for line in lines:
        match = re.fullmatch(r"([01]) ((Celeb-real|YouTube-real|Celeb-synthesis)/[^ /]+\.mp4)", line)
        assert match, line
        label, rel, folder = match.groups()
        assert (root / rel).is_file(), line
        # 1 means real and 0 means fake there; our convention is the opposite.
        assert TEST_LIST_LABELS[label] == FOLDER_LABELS[folder], line
        assert label == ("1" if FOLDER_LABELS[folder] == REAL else "0"), line
        labels.append(TEST_LIST_LABELS[label])
    assert set(labels) == {REAL, FAKE}


def test_every_fake_is_made_from_an_existing_real_video(dataset):
    root = Path(dataset["root"])
    fakes = dataset["videos"]["Celeb-synthesis"]
    assert set(dataset["sources"]) == set(fakes)
    for rel in fakes:
        source_identity, _, number = FAKE_NAME.match(Path(rel).name).groups()
        source = f"Celeb-real/id{source_identity}_{number}.mp4"
        assert dataset["sources"][rel] == source
        assert (root / source).is_file(), f"{rel}: source {source} is missing"

        # Same background and motion: the frames differ only around the face.
        changed = np.abs(
            first_frame_rgb(root / rel).astype(np.int16) - first_frame_rgb(root / source).astype(np.int16)
        ).max(axis=2) > 24
        assert 0.003 < changed.mean() < 0.15, rel


def test_same_seed_gives_the_same_files(tmp_path):
    options = dict(reals_per_folder=3, fakes=4, seconds=1.0)
    first = make_sample_dataset(tmp_path / "first", seed=7, **options)
    second = make_sample_dataset(tmp_path / "second", seed=7, **options)
    other = make_sample_dataset(tmp_path / "other", seed=8, **options)
    assert first["videos"] == second["videos"] == other["videos"]
    for rel in all_videos(first):
        assert (tmp_path / "first" / rel).read_bytes() == (tmp_path / "second" / rel).read_bytes(), rel
        assert (tmp_path / "first" / rel).read_bytes() != (tmp_path / "other" / rel).read_bytes(), rel


def test_too_many_fakes_for_the_real_videos_is_refused(tmp_path):
    with pytest.raises(ValueError, match="fakes"):
        make_sample_dataset(tmp_path, reals_per_folder=1, fakes=3)


def test_identities_and_youtube_videos_are_chosen_and_faces_repeat_only_when_they_must(tmp_path):
    """`sample-data --identities --youtube`: more videos per face, and no face on both sides of a split
    grouped by identity while the package faces last (the SBI guard's sample relies on it)."""
    from shared.sample_data import load_face_images

    summary = make_sample_dataset(tmp_path / "spread", reals_per_folder=6, identities=2, youtube_reals=1,
                                  fakes=2, seconds=0.2)
    celeb = summary["videos"]["Celeb-real"]
    assert len(celeb) == 6 and len(summary["videos"]["YouTube-real"]) == 1
    assert Counter(rel.split("/")[1].split("_")[0] for rel in celeb) == {"id0": 3, "id1": 3}
    assert summary["identities"] == {"id0": "astronaut", "id1": "grace_hopper"} and not summary["faces_repeat"]

    faces = len(load_face_images())
    tiny = dict(reals_per_folder=2, identities=2, fakes=1, seconds=0.1, size=(96, 54))  # one small frame a video
    assert make_sample_dataset(tmp_path / "all", youtube_reals=faces - 2, **tiny)["faces_repeat"] is False
    assert make_sample_dataset(tmp_path / "one-more", youtube_reals=faces - 1, **tiny)["faces_repeat"] is True
    with pytest.raises(ValueError, match="identities"):
        make_sample_dataset(tmp_path / "bad", reals_per_folder=2, identities=3)


def test_blank_video_decodes(tmp_path):
    path = write_blank_video(tmp_path / "blank.mp4", 2.0, FPS, SIZE)
    assert count_frames(path) == 20


def test_corrupt_video_does_not_decode(tmp_path):
    path = write_corrupt_video(tmp_path / "corrupt.mp4")
    assert path.suffix == ".mp4" and path.stat().st_size > 0
    capture = cv2.VideoCapture(str(path))
    try:
        assert not capture.isOpened() or not capture.read()[0]
    finally:
        capture.release()


def test_mtcnn_finds_a_face_in_every_video_and_none_in_the_blank_one(dataset, detector, tmp_path):
    root = Path(dataset["root"])
    videos = all_videos(dataset)
    blank = write_blank_video(tmp_path / "blank.mp4", 1.0, FPS, SIZE)
    frames = [first_frame_rgb(root / rel) for rel in videos] + [first_frame_rgb(blank)]

    results = detector.detect_faces(frames)

    for rel, faces in zip(videos, results[:-1]):
        best = max((face["confidence"] for face in faces), default=0.0)
        assert best >= 0.95, f"{rel}: best face confidence {best:.3f}"
        _, _, _, height = max(faces, key=lambda face: face["confidence"])["box"]
        assert 80 <= height <= 170, f"{rel}: face {height} px tall"
    assert results[-1] == [], f"blank video: {results[-1]}"


def test_sample_data_command_writes_each_layout_that_ingest_recognises(tmp_path):
    from tests.support import pipeline_env, run_cli_json
    from workers.datasets import read_dataset

    env = pipeline_env(DATA_DIR=tmp_path / "data")
    for fmt in ("ffpp", "dfdc", "folders"):
        summary = run_cli_json(["sample-data", str(tmp_path / fmt), "--format", fmt], env)
        scan = read_dataset(tmp_path / fmt)  # auto
        labels = Counter(video.label for video in scan.videos)
        assert scan.format == fmt and not scan.warnings
        assert (labels[REAL], labels[FAKE]) == (summary["counts"]["real"], summary["counts"]["fake"])
        assert sum(video.official_test for video in scan.videos) == summary["counts"]["official_test"]
