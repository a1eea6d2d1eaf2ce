"""extract_face_crops with --frames N, --largest-face and --align (workers/ingest.py)."""

import cv2
import numpy as np
import pytest

from workers.align import eye_angle
from workers.faces import Box
from workers.ingest import IngestParams, extract_face_crops
from workers.video import even_indices


class TwoFaces:
    """A detector stand-in: in every frame a small face and a larger one whose eyes slope 30 degrees."""

    big = {"box": [100, 60, 80, 100], "confidence": 0.97,
           "keypoints": {"left_eye": (125, 95), "right_eye": (160, 115.2), "nose": (140, 120),
                         "mouth_left": (125, 140), "mouth_right": (155, 150)}}
    small = {"box": [10, 10, 30, 30], "confidence": 0.99,
             "keypoints": {"left_eye": (18, 20), "right_eye": (32, 20), "nose": (25, 25),
                           "mouth_left": (19, 32), "mouth_right": (31, 32)}}

    def detect(self, images, min_face_pixels):
        """Rows as workers.detector.FastMTCNN.detect gives them: frame, x1, y1, x2, y2, confidence,
        the five landmarks' x, then their y."""
        names = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
        rows = []
        for frame in range(len(images)):
            for face in (self.small, self.big):
                x, y, w, h = face["box"]
                rows.append([frame, x, y, x + w, y + h, face["confidence"],
                             *(face["keypoints"][n][0] for n in names), *(face["keypoints"][n][1] for n in names)])
        return np.asarray(rows, dtype=float)


def write_video(path, frames: int, fps: float = 10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (240, 180))
    for i in range(frames):
        writer.write(np.full((180, 240, 3), 2 * i, np.uint8))
    writer.release()
    return path


def test_params_default_to_the_old_behaviour_and_reject_zero_frames():
    params = IngestParams()
    assert (params.frames, params.largest_face, params.align) == (None, False, False)
    assert {"frames", "largest_face", "align"} <= set(params.as_dict())
    with pytest.raises(ValueError):
        IngestParams(frames=0)


def test_every_n_seconds_reports_frames_expected_from_the_count(tmp_path):
    path = write_video(tmp_path / "v.avi", 95)
    result = extract_face_crops(path, IngestParams(every=3.0, detect_batch=2), detector=TwoFaces())
    assert result.frames_sampled == result.frames_expected == 4 and result.frames_walked == 95
    assert sorted({c.frame_index for c in result.crops}) == [0, 30, 60, 90]
    assert len(result.crops) == 8  # both faces kept by default


def test_frames_n_uses_evenly_spaced_frames_and_keeps_landmarks(tmp_path):
    path = write_video(tmp_path / "v.avi", 95)
    result = extract_face_crops(path, IngestParams(frames=8, detect_batch=3), detector=TwoFaces())
    assert sorted({c.frame_index for c in result.crops}) == even_indices(95, 8)
    assert result.frames_expected == result.frames_sampled == 8 and not result.frame_count_walked
    crop = result.crops[0]
    assert crop.landmarks is not None and len(crop.landmarks) == 5
    assert crop.timestamp_s == round(crop.frame_index / 10.0, 3)


def test_largest_face_and_align(tmp_path):
    path = write_video(tmp_path / "v.avi", 30)
    params = IngestParams(frames=4, largest_face=True, align=True, margin=0.3, size=64)
    result = extract_face_crops(path, params, detector=TwoFaces())
    assert len(result.crops) == 4
    for crop in result.crops:
        assert crop.face_index == 0 and crop.box == Box(100, 60, 80, 100)  # the detector's box, not the crop's
        assert crop.image_bgr.shape == (64, 64, 3)
        assert eye_angle(crop.landmarks) == pytest.approx(30, abs=0.5)  # stored as detected, in frame pixels
    unaligned = extract_face_crops(path, IngestParams(frames=4, largest_face=True, size=64), detector=TwoFaces())
    assert [c.box for c in unaligned.crops] == [c.box for c in result.crops]


def test_aligned_crops_of_a_real_video_have_level_eyes(tmp_path, detector):
    """A sample video turned by 20 degrees: aligned crops, detected again, have their eyes level."""
    from shared.sample_data import make_sample_dataset

    summary = make_sample_dataset(tmp_path / "ds", reals_per_folder=1, fakes=0, seconds=2.0)
    src = tmp_path / "ds" / summary["videos"]["Celeb-real"][0]
    capture = cv2.VideoCapture(str(src))
    turned = tmp_path / "turned.avi"
    writer = None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        if writer is None:
            writer = cv2.VideoWriter(str(turned), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
        writer.write(cv2.warpAffine(frame, cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0), (w, h),
                                    borderMode=cv2.BORDER_REPLICATE))
    writer.release()
    capture.release()

    params = IngestParams(frames=3, largest_face=True, align=True, min_confidence=0.9, size=160)
    result = extract_face_crops(turned, params, detector=detector)
    assert len(result.crops) == 3
    from workers.faces import detect_faces

    for crop, again in zip(result.crops, detect_faces([c.image_bgr for c in result.crops], min_confidence=0.8,
                                                         max_side=10_000, detector=detector)):
        assert abs(eye_angle(crop.landmarks)) > 10
        assert again and abs(eye_angle(again[0].landmarks)) < 3


def test_an_ffpp_sample_registers_and_ingests_with_the_new_options(tmp_path, local_db, detector):
    """What the CLI will wire: a non-Celeb-DF reader's scan goes through register_videos unchanged,
    and process_video honours frames / largest_face / align."""
    from sqlalchemy import select

    from db.models import Crop, Video
    from db.session import session_scope
    from workers.planning.ingest import register_videos
    from shared.sample_data import make_ffpp_sample
    from workers.datasets import read_dataset
    from workers.ingest import process_video

    sample = make_ffpp_sample(tmp_path / "ffpp", originals=2, methods=("Deepfakes",), actors=0, seconds=2.0)
    scan = read_dataset(sample["root"])
    params = IngestParams(frames=4, largest_face=True, align=True)
    plan = register_videos(scan, params.as_dict(), retry_failed=False, embedded=True)
    assert plan.total_videos == 4
    with session_scope() as session:
        rows = {v.rel_path: v for v in session.scalars(select(Video))}
        fake = rows["manipulated_sequences/Deepfakes/c23/videos/000_001.mp4"]
        assert (fake.label, fake.group_key, fake.official_test) == (1, "ffpp:000", True)
        vid = fake.id
    summary = process_video(vid, params, detector=detector)
    assert summary["status"] == "done" and summary["frames_sampled"] == summary["frames_expected"] == 4
    with session_scope() as session:
        crops = session.scalars(select(Crop).where(Crop.video_id == vid).order_by(Crop.frame_index)).all()
        assert [c.frame_index for c in crops] == even_indices(20, 4) and {c.face_index for c in crops} == {0}
    assert cv2.imread(str(local_db.data_dir / crops[0].crop_path)).shape == (128, 128, 3)
