"""Judgement records without workers: stored verdicts given again, per-key visibility, paging, the
claim and the finish that make a judgement end once, and `predict --queue`'s bad input."""

from __future__ import annotations

import pytest

from tests.support import pipeline_env, run_cli

MODEL = {"run_id": "r1", "backbone": "tiny", "threshold": 0.5, "aggregation": "mean", "model_sha256": "m" * 64,
         "ingest_params": {"every": 1.0}}


def submit(sha="a" * 64, key=None, **options):
    from workers.planning.judgements import submit_judgement

    return submit_judgement(source=f"/videos/{sha[:4]}.mp4", sha256=sha, size=10, file_name="clip.mp4", model=MODEL,
                            api_key_id=key, requested_by="test", **options)


@pytest.fixture
def keys(local_db):
    from orchestrator.serve.keys import create_key, key_owner

    return [key_owner(create_key(name)["key"])[0] for name in ("a", "b")]


def judge(judgement_id, p=0.9):
    from workers.judge import claim, finish

    assert claim(judgement_id) is not None
    return finish(judgement_id, status="done", verdict="fake", fake_probability=p, faces=1, scores=[])


def test_the_same_bytes_and_model_are_judged_once_per_model_and_seen_only_by_their_key(keys):
    from workers.planning.judgements import find_judgement, list_judgements

    first, new = submit(key=keys[0])
    assert new and first["status"] == "queued"
    again, new_again = submit(key=keys[0])
    assert again["id"] == first["id"] and not new_again  # queued: not sent twice
    assert judge(first["id"])

    other, other_new = submit(key=keys[1])
    assert not other_new and other["id"] != first["id"] and other["status"] == "done"
    assert other["reused_from"] == first["id"] and other["fake_probability"] == 0.9
    forced, forced_new = submit(key=keys[0], force=True)
    assert forced_new and forced["id"] != first["id"] and forced["status"] == "queued"
    explained, explained_new = submit(key=keys[1], explain=True)  # no stored sheet: judged again
    assert explained_new
    other_model, other_model_new = submit(key=keys[0], sha="b" * 64)
    assert other_model_new

    assert find_judgement(first["id"], keys[1]) is None and find_judgement(first["id"], keys[0])["id"] == first["id"]
    assert find_judgement(first["id"], None) is None  # the command line's records are another owner
    mine = [j["id"] for j in list_judgements(keys[0], limit=10)]
    assert set(mine) == {first["id"], forced["id"], other_model["id"]} and other["id"] not in mine
    page = list_judgements(keys[0], limit=2)
    rest = list_judgements(keys[0], limit=2, before=page[-1]["id"])
    assert [j["id"] for j in page + rest] == mine


def test_a_judgement_is_claimed_again_after_a_death_but_finished_once(keys):
    from workers.judge import claim, finish, record_judgement_failure
    from workers.planning.judgements import find_judgement, mark_unsent

    report, _ = submit(key=keys[0])
    assert claim(report["id"]).attempts == 1
    assert claim(report["id"]).attempts == 2  # the message came back after a worker died
    assert finish(report["id"], status="done", verdict="real", fake_probability=0.1, faces=1, scores=[])
    assert not finish(report["id"], status="done", verdict="fake", fake_probability=0.9, faces=1, scores=[])
    assert not record_judgement_failure(report["id"], "late")
    assert claim(report["id"]) is None  # finished: a third delivery does nothing
    final = find_judgement(report["id"], keys[0])
    assert (final["status"], final["verdict"], final["attempts"]) == ("done", "real", 2)

    unsent, _ = submit(key=keys[1], sha="c" * 64)
    mark_unsent(unsent["id"], "connection refused")
    assert find_judgement(unsent["id"], keys[1])["status"] == "failed"
    assert submit(key=keys[1], sha="c" * 64)[1]  # a failed judgement gives no stored verdict


def test_predict_queue_bad_input_is_one_line_and_exit_2(tmp_path):
    env = pipeline_env(DATA_DIR=tmp_path / "data")
    (tmp_path / "empty").mkdir()
    for args, words in ((["predict", "--queue", str(tmp_path / "empty")], "no video files"),
                        (["predict", "--csv", str(tmp_path / "x.mp4")], "--force and --csv go with --queue"),
                        (["predict", "--queue", "--workers", "0", str(tmp_path)], "--workers must be at least 1")):
        result = run_cli(args, env)
        assert result.returncode == 2 and words in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "data").exists()  # nothing written for bad input


def test_a_judgement_records_the_runs_own_video_rule_and_its_threshold(tmp_path):
    from types import SimpleNamespace

    from workers.planning.judgements import judging_model

    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    config = {"backbone": "tiny", "threshold": 0.4, "aggregate": "max", "ingest": {"every": 1.0}}
    metrics = {"aggregations": {"mean": {"threshold": 0.4}, "max": {"threshold": 0.7}}}
    run = SimpleNamespace(id="r1", artifacts={"model": str(model)}, config=config, metrics=metrics)
    assert (judging_model(run)["aggregation"], judging_model(run)["threshold"]) == ("max", 0.7)

    older = SimpleNamespace(id="r0", artifacts={"model": str(model)}, metrics={},
                            config={"backbone": "tiny", "threshold": 0.35})  # a run from before --aggregate
    assert (judging_model(older)["aggregation"], judging_model(older)["threshold"]) == ("mean", 0.35)
