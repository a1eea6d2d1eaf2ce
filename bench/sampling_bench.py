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
import shutil
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402

from workers.video import EvenFrames, SampledFrames, open_video  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--long-s", type=float, default=130.0, help="length of the looped long video (0: none)")
    parser.add_argument("--frames", type=int, nargs="*", default=[], help="extra N to try with --gaps")
    parser.add_argument("--gaps", type=int, nargs="*", default=[], help="seek_min_gap values to try")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    hows = ["every frame", "every 3 s", "8 walk", "8 seek", "8 auto", "32 walk", "32 seek", "32 auto"]
    hows += [f"{n} gap{g}" for n in args.frames for g in args.gaps]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, paths in make_clips(Path(tmp), args.videos, args.long_s).items():
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
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"videos": args.videos, "repeat": args.repeat, "results": results}, indent=2))


if __name__ == "__main__":
    main()
