"""DeepfakeBench's preprocessing, rewritten step for step for the peers bench (runs in .venv-dfb).

    python bench/peers/dfb_preprocess.py DATASET OUT [--frames 32] [--workers N]

Read from `preprocessing/preprocess.py` of SCLBD/DeepfakeBench (commit 8a4a7bf) and kept as it is
there, including what costs time:
  - the sub-datasets (Celeb-real, Celeb-synthesis, YouTube-real) are processed one after the other,
    each with a ThreadPoolExecutor of os.cpu_count() threads over its videos (threads, not processes);
  - each video builds dlib's frontal face detector and loads the landmark predictor from disk;
  - every frame of the video is decoded with read() (decode and convert) up to the frame count, and
    only the frames at np.linspace(0, count - 1, 32, dtype=int) are looked at;
  - a frame: BGR -> RGB, dlib detector with one upsampling, the largest face, landmarks, five points
    (37, 44, 30, 49, 55), a similarity transform (skimage) to the ArcFace template with scale 1.3,
    warpAffine to 256 x 256; then the detector and the predictor run again on the aligned crop and
    the frame is dropped when no face is found there; PNG and the 68/81 landmarks (.npy) written.
One difference that cannot be helped: DeepfakeBench uses an 81-point predictor
(shape_predictor_81_face_landmarks.dat) that is not on any package registry; this uses the 68-point
predictor that the `face-recognition-models` package ships. The first 68 points of the 81-point model
are the 68 of iBUG, so the five points picked are the same ones; the file is larger (99.7 MB against
19.7 MB), so loading it per video costs more here than there (measured: `predictor_load_s`).

Besides the crops, writes OUT/peer.json: per sampled frame the first detection's largest box (frame
pixels, x y w h) and whether a crop was written, so the bench can compare detectors.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import threading
import time
from pathlib import Path

import cv2
import dlib
import face_recognition_models
import numpy as np
from imutils import face_utils
from skimage import transform as trans

PREDICTOR_PATH = face_recognition_models.pose_predictor_model_location()  # 68 points
SUBSETS = ["Celeb-real", "Celeb-synthesis", "YouTube-real"]  # the order of their __main__

_records: list[dict] = []
_loads: list[float] = []
_lock = threading.Lock()
_phases = {"decode_every_frame": 0.0, "detect_align_landmarks": 0.0, "write": 0.0}  # thread seconds


# Stages are timed in wall seconds summed over threads; with one thread (--workers 1, for profiling)
# in CPU seconds of the whole process instead, which other processes on the machine do not inflate.
_clock = time.perf_counter


def _add(phase: str, seconds: float) -> None:
    with _lock:
        _phases[phase] += seconds


def get_keypts(image, face, predictor, face_detector):
    shape = predictor(image, face)
    leye = np.array([shape.part(37).x, shape.part(37).y]).reshape(-1, 2)
    reye = np.array([shape.part(44).x, shape.part(44).y]).reshape(-1, 2)
    nose = np.array([shape.part(30).x, shape.part(30).y]).reshape(-1, 2)
    lmouth = np.array([shape.part(49).x, shape.part(49).y]).reshape(-1, 2)
    rmouth = np.array([shape.part(55).x, shape.part(55).y]).reshape(-1, 2)
    return np.concatenate([leye, reye, nose, lmouth, rmouth], axis=0)


def img_align_crop(img, landmark=None, outsize=None, scale=1.3, mask=None):
    target_size = [112, 112]
    dst = np.array([
        [30.2946, 51.6963],
        [65.5318, 51.5014],
        [48.0252, 71.7366],
        [33.5493, 92.3655],
        [62.7299, 92.2041]], dtype=np.float32)
    if target_size[1] == 112:
        dst[:, 0] += 8.0
    dst[:, 0] = dst[:, 0] * outsize[0] / target_size[0]
    dst[:, 1] = dst[:, 1] * outsize[1] / target_size[1]
    target_size = outsize
    margin_rate = scale - 1
    x_margin = target_size[0] * margin_rate / 2.
    y_margin = target_size[1] * margin_rate / 2.
    dst[:, 0] += x_margin
    dst[:, 1] += y_margin
    dst[:, 0] *= target_size[0] / (target_size[0] + 2 * x_margin)
    dst[:, 1] *= target_size[1] / (target_size[1] + 2 * y_margin)
    src = landmark.astype(np.float32)
    tform = trans.SimilarityTransform()
    tform.estimate(src, dst)
    M = tform.params[0:2, :]
    img = cv2.warpAffine(img, M, (target_size[1], target_size[0]))
    if outsize is not None:
        img = cv2.resize(img, (outsize[1], outsize[0]))
    return img, None


def extract_aligned_face_dlib(face_detector, predictor, image, res=256, mask=None):
    """Their function; also returns the first detection's box (for the bench's comparison only)."""
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    faces = face_detector(rgb, 1)
    if len(faces):
        face = max(faces, key=lambda rect: rect.width() * rect.height())
        box = [face.left(), face.top(), face.width(), face.height()]
        landmarks = get_keypts(rgb, face, predictor, face_detector)
        cropped_face, mask_face = img_align_crop(rgb, landmarks, outsize=(res, res), mask=mask)
        cropped_face = cv2.cvtColor(cropped_face, cv2.COLOR_RGB2BGR)
        face_align = face_detector(cropped_face, 1)
        if len(face_align) == 0:
            return None, None, None, box
        landmark = predictor(cropped_face, face_align[0])
        landmark = face_utils.shape_to_np(landmark)
        return cropped_face, landmark, mask_face, box
    return None, None, None, None


def video_manipulate(movie_path: Path, dataset_path: Path, save_root: Path, num_frames: int) -> None:
    face_detector = dlib.get_frontal_face_detector()
    t0 = _clock()
    face_predictor = dlib.shape_predictor(PREDICTOR_PATH)
    with _lock:
        _loads.append(_clock() - t0)
    rel = movie_path.relative_to(dataset_path).as_posix()
    save_path = save_root / movie_path.parent.relative_to(dataset_path)

    cap_org = cv2.VideoCapture(str(movie_path))
    if not cap_org.isOpened():
        print(f"Failed to open {movie_path}", file=sys.stderr)
        return
    frame_count_org = int(cap_org.get(cv2.CAP_PROP_FRAME_COUNT))
    frame_idxs = np.linspace(0, frame_count_org - 1, num_frames, endpoint=True, dtype=int)
    try:
        for cnt_frame in range(frame_count_org):
            t0 = _clock()
            ret_org, frame_org = cap_org.read()
            _add("decode_every_frame", _clock() - t0)
            if not ret_org:
                print(f"Failed to read frame {cnt_frame} of {movie_path}", file=sys.stderr)
                break
            if cnt_frame not in frame_idxs:
                continue
            t1 = _clock()
            cropped_face, landmarks, _, box = extract_aligned_face_dlib(face_detector, face_predictor, frame_org)
            t2 = _clock()
            _add("detect_align_landmarks", t2 - t1)
            with _lock:
                _records.append({"video": rel, "frame": int(cnt_frame), "box": box,
                                 "kept": cropped_face is not None and landmarks is not None})
            if cropped_face is None or landmarks is None:
                continue
            save_path_ = save_path / "frames" / movie_path.stem
            save_path_.mkdir(parents=True, exist_ok=True)
            image_path = save_path_ / f"{cnt_frame:03d}.png"
            if not image_path.is_file():
                cv2.imwrite(str(image_path), cropped_face)
            land_path = save_path / "landmarks" / movie_path.stem / f"{cnt_frame:03d}.npy"
            os.makedirs(os.path.dirname(land_path), exist_ok=True)
            np.save(str(land_path), landmarks)
            _add("write", _clock() - t2)
    except Exception as e:  # as theirs: a failing video is logged and the others go on
        print(f"Error processing video {movie_path}: {e}", file=sys.stderr)
    finally:
        cap_org.release()


def preprocess(dataset_path: Path, sub_path: Path, save_root: Path, num_frames: int, workers: int) -> None:
    movies = sorted(sub_path.rglob("*.mp4"))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as executor:
        futures = [executor.submit(video_manipulate, m, dataset_path, save_root, num_frames) for m in movies]
        for future in concurrent.futures.as_completed(futures):
            future.result()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="threads (theirs: os.cpu_count())")
    args = parser.parse_args()
    global _clock
    _clock = time.process_time if args.workers == 1 else time.perf_counter
    start = time.perf_counter()
    for name in SUBSETS:
        if (args.dataset / name).is_dir():
            preprocess(args.dataset, args.dataset / name, args.out, args.frames, args.workers)
    report = {"peer": "deepfakebench", "predictor": Path(PREDICTOR_PATH).name, "threads": args.workers,
              "seconds_after_imports": round(time.perf_counter() - start, 2),
              "predictor_load_s": {"videos": len(_loads), "total": round(sum(_loads), 2)},
              "thread_seconds": {k: round(v, 2) for k, v in _phases.items()},
              "stage_clock": "process CPU" if args.workers == 1 else "wall, summed over threads",
              "frames": sorted(_records, key=lambda r: (r["video"], r["frame"]))}
    (args.out / "peer.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
