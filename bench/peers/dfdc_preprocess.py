"""The DFDC winner's face extraction, rewritten for the peers bench (runs in .venv-dfdc, CPU torch).

    python bench/peers/dfdc_preprocess.py DATASET OUT [--frames 32] [--workers 6] [--size 256]

Read from selimsef/dfdc_deepfake_challenge (commit of the fetched snapshot): `kernel_utils.py`
(VideoReader, FaceExtractor, isotropically_resize_image, put_to_center, predict_on_video_set) and
`preprocessing/face_detector.py` + `extract_crops.py` (batched detection, PNG crops). Kept as there:
  - frames: np.linspace(0, count - 1, 32) indices; the video is walked with grab() from the first to
    the last index and only those frames are retrieve()d, converted to RGB (VideoReader);
  - facenet-pytorch's MTCNN(margin=0, thresholds=[0.7, 0.8, 0.8]) (FaceExtractor's; the training
    preprocessing uses [0.85, 0.95, 0.95], `--thresholds` sets them), each frame a PIL image shrunk
    to half its size with PIL's resize; the 32 frames of a video go through `detect` as one batch
    (face_detector.py's FacenetDetector batches; FaceExtractor calls it frame by frame);
  - every box found, scaled back x2, cropped from the full-size frame with a third of the box's
    width and height added on each side; crops isotropically resized to the protocol's 256 px and
    centred (their inference does this at 380), written as PNG (extract_crops.py);
  - videos run on a ThreadPoolExecutor of 6 threads sharing one detector (predict_on_video_set's
    num_workers=6), torch's own intra-op threads left at their default.

Writes OUT/peer.json: per sampled frame every box (frame pixels, x y w h) and its probability.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from facenet_pytorch.models.mtcnn import MTCNN
from PIL import Image

_records: list[dict] = []
_lock = threading.Lock()
_phases = {"read": 0.0, "detect": 0.0, "crop_and_write": 0.0}  # thread seconds, summed over videos


# Stages are timed in wall seconds summed over threads; with one thread (--workers 1, for profiling)
# in CPU seconds of the whole process instead, which other processes on the machine do not inflate.
_clock = time.perf_counter


def _add(phase: str, seconds: float) -> None:
    with _lock:
        _phases[phase] += seconds


class VideoReader:
    def read_frames(self, path, num_frames):
        capture = cv2.VideoCapture(path)
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if frame_count <= 0:
            return None
        frame_idxs = np.linspace(0, frame_count - 1, num_frames, endpoint=True, dtype=int)
        result = self._read_frames_at_indices(path, capture, frame_idxs)
        capture.release()
        return result

    def _read_frames_at_indices(self, path, capture, frame_idxs):
        try:
            frames, idxs_read = [], []
            for frame_idx in range(frame_idxs[0], frame_idxs[-1] + 1):
                ret = capture.grab()
                if not ret:
                    print("Error grabbing frame %d from movie %s" % (frame_idx, path), file=sys.stderr)
                    break
                current = len(idxs_read)
                if frame_idx == frame_idxs[current]:
                    ret, frame = capture.retrieve()
                    if not ret or frame is None:
                        break
                    frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                    idxs_read.append(frame_idx)
            if len(frames) > 0:
                return np.stack(frames), idxs_read
            return None
        except Exception:
            print("Exception while reading movie %s" % path, file=sys.stderr)
            return None


def isotropically_resize_image(img, size, interpolation_down=cv2.INTER_AREA, interpolation_up=cv2.INTER_CUBIC):
    h, w = img.shape[:2]
    if max(w, h) == size:
        return img
    if w > h:
        scale = size / w
        h = h * scale
        w = size
    else:
        scale = size / h
        w = w * scale
        h = size
    interpolation = interpolation_up if scale > 1 else interpolation_down
    return cv2.resize(img, (int(w), int(h)), interpolation=interpolation)


def put_to_center(img, input_size):
    img = img[:input_size, :input_size]
    image = np.zeros((input_size, input_size, 3), dtype=np.uint8)
    start_w = (input_size - img.shape[1]) // 2
    start_h = (input_size - img.shape[0]) // 2
    image[start_h:start_h + img.shape[0], start_w: start_w + img.shape[1], :] = img
    return image


def process_video(detector, reader, dataset: Path, video: Path, out: Path, frames: int, size: int) -> None:
    rel = video.relative_to(dataset).as_posix()
    t0 = _clock()
    result = reader.read_frames(str(video), num_frames=frames)
    if result is None:
        return
    my_frames, my_idxs = result
    images = []
    for frame in my_frames:
        img = Image.fromarray(frame.astype(np.uint8))
        images.append(img.resize(size=[s // 2 for s in img.size]))
    t1 = _clock()
    _add("read", t1 - t0)
    batch_boxes, batch_probs = detector.detect(images, landmarks=False)
    t2 = _clock()
    _add("detect", t2 - t1)
    folder = out / Path(rel).with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for frame, idx, boxes, probs in zip(my_frames, my_idxs, batch_boxes, batch_probs):
        found = []
        if boxes is not None:
            for j, (bbox, score) in enumerate(zip(boxes, probs)):
                xmin, ymin, xmax, ymax = [int(b * 2) for b in bbox]
                w, h = xmax - xmin, ymax - ymin
                p_h, p_w = h // 3, w // 3
                crop = frame[max(ymin - p_h, 0):ymax + p_h, max(xmin - p_w, 0):xmax + p_w]
                face = put_to_center(isotropically_resize_image(crop, size), size)
                cv2.imwrite(str(folder / f"{idx}_{j}.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
                found.append({"box": [xmin, ymin, w, h], "p": round(float(score), 4)})
        records.append({"video": rel, "frame": int(idx), "faces": found})
    _add("crop_and_write", _clock() - t2)
    with _lock:
        _records.extend(records)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--workers", type=int, default=6, help="threads over videos (theirs: 6)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--thresholds", type=float, nargs=3, default=[0.7, 0.8, 0.8])
    args = parser.parse_args()
    global _clock
    _clock = time.process_time if args.workers == 1 else time.perf_counter
    start = time.perf_counter()
    detector = MTCNN(margin=0, thresholds=args.thresholds, device="cpu")
    reader = VideoReader()
    videos = sorted(p for p in args.dataset.rglob("*.mp4"))
    with ThreadPoolExecutor(max_workers=args.workers) as ex:
        list(ex.map(lambda v: process_video(detector, reader, args.dataset, v, args.out, args.frames, args.size),
                    videos))
    report = {"peer": "dfdc-winner", "threads": args.workers, "torch_threads": torch.get_num_threads(),
              "thresholds": args.thresholds, "seconds_after_imports": round(time.perf_counter() - start, 2),
              "thread_seconds": {k: round(v, 2) for k, v in _phases.items()},
              "stage_clock": "process CPU" if args.workers == 1 else "wall, summed over threads",
              "frames": sorted(_records, key=lambda r: (r["video"], r["frame"]))}
    (args.out / "peer.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
