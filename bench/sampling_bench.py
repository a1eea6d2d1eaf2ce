"""Frame sampling cost: N frames evenly spaced (seek, grab-walk, or both) vs one frame every 3 s.

    python bench/sampling_bench.py [--videos 2] [--repeat 5] [--out bench/out/sampling.json]

Writes Celeb-DF-like clips with shared/sample_data.py (944x500, 30 fps, 13 s: the dataset's typical
video; mp4v, which OpenCV writes with a keyframe every 12 frames, ignoring
VIDEOWRITER_PROP_KEY_INTERVAL), a copy of each transcoded to H.264 by ffmpeg with x264's defaults
(a keyframe every 250 frames at most, as in downloaded datasets) and one ~130 s H.264 video made by
looping a clip. Prints milliseconds per video to open it and decode the sampled frames (no face
detection), median and minimum over the repeats: these machines are noisy, the minimum is the
steadier number. Modes: "walk" grab()s every frame up to each sampled one, "seek" sets
CAP_PROP_POS_FRAMES before each, "auto" is what EvenFrames does by default (seek only across gaps
longer than workers.video.SEEK_MIN_GAP frames).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402

from workers.video import SEEK_MIN_GAP, EvenFrames, SampledFrames, open_video  # noqa: E402

WALK = 10**9  # seek_min_gap that never seeks


def make_clips(root: Path, videos: int, long_s: float) -> dict[str, list[Path]]:
    from shared.sample_data import make_sample_dataset

    summary = make_sample_dataset(root, reals_per_folder=max(1, videos // 2), fakes=0, seconds=13.0, fps=30.0,
                                  size=(944, 500), seed=3)
    mp4v = [root / rel for paths in summary["videos"].values() for rel in paths][:videos]
    clips = {"mp4v (OpenCV writer, keyframe every 12)": mp4v}
    if shutil.which("ffmpeg"):
        h264 = [path.with_name(f"{path.stem}_h264.mp4") for path in mp4v]
        for src, dest in zip(mp4v, h264):
            # x264's defaults, as most downloaded datasets have them: keyframe every <= 250 frames, B-frames.
            subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-c:v", "libx264",
                            "-preset", "veryfast", "-an", str(dest)], check=True)
        clips["H.264 (x264 defaults, keyframe every 250)"] = h264
        if long_s > 0:  # the first clip looped into one long video: where seeking pays off
            loops = max(1, round(long_s / 13.0))
            longer = root / f"long_{loops * 13}s_h264.mp4"
            subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", str(loops - 1),
                            "-i", str(mp4v[0]), "-c:v", "libx264", "-preset", "ultrafast", "-an", str(longer)],
                           check=True)
            clips[f"H.264, one {loops * 13} s video"] = [longer]
    else:
        print("ffmpeg not found: H.264 clips skipped (OpenCV cannot write H.264 here)", file=sys.stderr)
    return clips


def run_once(path: Path, how: str) -> tuple[float, int]:
    start = time.perf_counter()
    capture, info = open_video(path)
    try:
        if how == "every 3 s":
            frames = SampledFrames(capture, info.fps, 3.0)
        elif how == "every frame":
            frames = SampledFrames(capture, info.fps, 1e-9)
        else:
            n, mode = how.split(" ", 1)  # "8 seek" / "32 walk" / "8 auto"
            gap = {"walk": WALK, "seek": 0, "auto": None}.get(mode) if not mode.startswith("gap") else int(mode[3:])
            frames = EvenFrames(capture, info.fps, int(n), info.reported_frames, seek_min_gap=gap)
        count = sum(1 for _ in frames)
    finally:
        capture.release()
    return (time.perf_counter() - start) * 1000, count


def detect_costs(clips: dict[str, list[Path]], repeat: int) -> dict:
    """Whole per-video work of an ingest (decode, MTCNN, crop; no database, no PNGs) with each sampling."""
    from workers.faces import get_detector
    from workers.ingest import IngestParams, extract_face_crops

    detector = get_detector()
    extract_face_crops(next(iter(clips.values()))[0], IngestParams(frames=2), detector=detector)  # trace
    results = {}
    for kind, paths in clips.items():
        if "one " in kind:
            continue  # the long video: sampling alone shows the point
        results[kind] = {}
        for name, params in (("every 3 s", IngestParams(every=3.0)), ("8 frames", IngestParams(frames=8)),
                             ("32 frames", IngestParams(frames=32))):
            times, crops = [], set()
            for _ in range(repeat):
                for path in paths:
                    start = time.perf_counter()
                    result = extract_face_crops(path, params, detector=detector)
                    times.append((time.perf_counter() - start) * 1000)
                    crops.add(len(result.crops))
            results[kind][name] = {"ms_per_video_median": round(statistics.median(times), 1),
                                   "ms_per_video_min": round(min(times), 1), "crops": sorted(crops)}
            print(f"detect {kind:44s} {name:10s} median {statistics.median(times):7.1f}  min {min(times):7.1f} "
                  f"ms/video  crops {sorted(crops)}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--detect", action="store_true",
                        help="also time the whole per-video work (decode + MTCNN + crop) of each sampling")
    parser.add_argument("--long-s", type=float, default=130.0, help="length of the looped long video (0: none)")
    parser.add_argument("--frames", type=int, nargs="*", default=[], help="extra N to try with --gaps")
    parser.add_argument("--gaps", type=int, nargs="*", default=[], help="seek_min_gap values to try")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    hows = ["every frame", "every 3 s", "8 walk", "8 seek", "8 auto", "32 walk", "32 seek", "32 auto"]
    hows += [f"{n} gap{g}" for n in args.frames for g in args.gaps]
    results, detect = {}, None
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(Path(tmp), args.videos, args.long_s)
        for kind, paths in clips.items():
            results[kind] = {}
            for how in hows:
                times, counts = [], set()
                for _ in range(args.repeat):
                    for path in paths:
                        ms, count = run_once(path, how)
                        times.append(ms)
                        counts.add(count)
                results[kind][how] = {"ms_per_video_median": round(statistics.median(times), 1),
                                      "ms_per_video_min": round(min(times), 1), "frames": sorted(counts)}
                print(f"{kind:44s} {how:12s} median {statistics.median(times):7.1f}  min {min(times):7.1f} "
                      f"ms/video  frames {sorted(counts)}", flush=True)
        if args.detect:
            detect = detect_costs(clips, max(1, args.repeat // 2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "started": started, "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(),
                                            "python": platform.python_version(), "opencv": cv2.__version__},
            "videos": args.videos, "repeat": args.repeat, "seek_min_gap": SEEK_MIN_GAP,
            "sampling_ms_per_video": results, "whole_video_work_ms": detect}, indent=2))

if __name__ == "__main__":
    main()
