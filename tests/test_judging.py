"""`predict --queue`: one task per video on the `predict` queue, every verdict recorded once, the
same verdicts as in-process `predict`, stored verdicts given again unless --force."""

from __future__ import annotations

import csv
import io

import pytest

from tests.judging_support import make_judging_run, pipeline_settings, sample_videos
from tests.support import pipeline_env, run_cli, run_cli_json

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~1 min alone, 3 on a busy machine


def in_process_verdicts(data_dir, videos, run_id):
    from workers.planning.runs import find_run
    from workers.predict import judge_videos

    with pipeline_settings(DATA_DIR=data_dir):
        return judge_videos(videos, find_run(run_id))


def test_queue_predict_equals_in_process_and_judges_each_video_once(tmp_path):
    data_dir = tmp_path / "data"
    run_id = make_judging_run(data_dir)
    videos = sample_videos(tmp_path / "videos")
    env = pipeline_env(DATA_DIR=data_dir)

    judged = run_cli_json(["predict", "--queue", "--workers", "1", str(tmp_path / "videos")], env)

    expected = {r["video"]: r for r in in_process_verdicts(data_dir, videos, run_id)}
    assert sorted(r["video"] for r in judged) == sorted(str(v) for v in videos)
    for result in judged:
        want = expected[result["video"]]
        assert result["model"]["run_id"] == run_id and len(result["model"]["sha256"]) == 64
        assert result["attempts"] == 1 and result["reused_from"] is None
        if want["label"] is None:
            assert result["status"] == "no_face" and result["verdict"] is None and result["faces"] == 0
            continue
        assert result["status"] == "done" and result["verdict"] == want["label"]
        assert result["fake_probability"] == pytest.approx(want["fake_probability"], abs=1e-4)
        assert [s["p"] for s in result["scores"]] == pytest.approx(want["crop_probabilities"], abs=1e-4)
        assert [s["t"] for s in result["scores"]] == sorted(s["t"] for s in result["scores"])
    probabilities = [r["fake_probability"] for r in judged if r["fake_probability"] is not None]
    assert max(probabilities) - min(probabilities) > 1e-3  # the comparison means something

    again = run_cli_json(["predict", "--queue", "--workers", "1", *map(str, videos)], env)
    before = {r["video"]: (r["id"], r["attempts"], r["fake_probability"]) for r in judged}
    assert {r["video"]: (r["id"], r["attempts"], r["fake_probability"]) for r in again} == before
    assert all(r["stored"] for r in again) and not any(r["stored"] for r in judged)

    forced = run_cli(["predict", "--queue", "--force", "--csv", "--workers", "1", "--explain", str(tmp_path / "why"),
                      str(videos[0])], env)
    assert forced.returncode == 0, forced.stderr
    (row,) = list(csv.DictReader(io.StringIO(forced.stdout)))
    first = next(r for r in judged if r["video"] == str(videos[0]))
    assert row["id"] != first["id"] and row["status"] == "done" and row["run_id"] == run_id
    assert float(row["fake_probability"]) == pytest.approx(first["fake_probability"], abs=1e-6)
    assert (tmp_path / "why" / f"{videos[0].stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    text = run_cli(["predict", "--queue", str(videos[0]), str(tmp_path / "missing.mp4")], env)
    assert text.returncode == 1 and "stored verdict" in text.stdout and "not judged" in text.stdout
    assert text.stderr.strip().splitlines()[-1] == "error: 1 of 2 videos could not be judged"
