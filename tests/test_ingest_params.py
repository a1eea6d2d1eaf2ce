"""Ingest options declared once (shared/ingest_params.py): one name from the flag to the worker."""

import base64
import json
from dataclasses import fields

import pytest
from sqlalchemy import create_engine, text

from orchestrator.commands.ingest import ingest_command
from shared.errors import InputError
from shared.ingest_params import IngestParams, option_fields
from tests.support import CeleryWorker, pipeline_env, run_cli, run_cli_json


def test_every_option_of_the_command_is_a_field_under_its_own_name():
    by_flag = {opt.opts[0]: opt.name for opt in ingest_command.params}
    for f in option_fields():
        assert by_flag["--" + f.name.replace("_", "-")] == f.name
    given = ingest_command.make_context("ingest", ["DATASET", "--every", "1.5", "--size", "64"]).params
    params = IngestParams.from_options({f.name: given[f.name] for f in option_fields()})
    assert (params.every, params.size, params.frames) == (1.5, 64, None)
    assert set(params.as_dict()) == {f.name for f in fields(IngestParams)}


def test_every_check_is_in_the_class():
    with pytest.raises(InputError, match="exclusive"):
        IngestParams.from_options({"every": 3.0, "frames": 8})
    for bad, needle in (({"every": 0.0}, "--every"), ({"frames": 0}, "--frames must be at least 1"),
                        ({"size": 4}, "--size"), ({"margin": float("inf")}, "--margin"),
                        ({"min_confidence": 1.5}, "--min-confidence"), ({"size": "64"}, "--size must be a whole number")):
        with pytest.raises(InputError, match=needle):
            IngestParams(**bad)
    assert IngestParams.from_dict({"every_s": 2.0}).every == 2.0  # older records and task messages


def test_exclusive_options_are_refused_with_exit_2_and_one_line(tmp_path, sample_root):
    env = pipeline_env(DATA_DIR=tmp_path / "data")
    result = run_cli(["ingest", str(sample_root), "--every", "2", "--frames", "4"], env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --frames and --every are exclusive: N frames over the whole video, or one every S seconds"]
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())  # nothing recorded


def queued_task_kwargs(redis) -> list[dict]:
    """The kwargs of the task messages waiting in the cpu queue, as a worker will read them."""
    kwargs = []
    for raw in redis.lrange("cpu", 0, -1):
        envelope = json.loads(raw)
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        kwargs.append(json.loads(body)[1])
    return kwargs


@pytest.mark.integration
def test_every_walks_from_the_flag_through_the_message_to_the_worker(tmp_path, pg_url, private_redis, sample_root):
    env = pipeline_env(DATA_DIR=tmp_path / "data", DATABASE_URL=pg_url, CELERY_BROKER_URL=private_redis.url)
    assert run_cli(["db", "upgrade"], env).returncode == 0
    queued = run_cli_json(["ingest", str(sample_root), "--every", "2.5"], env)  # no worker yet: messages wait

    messages = queued_task_kwargs(private_redis.client())
    assert len(messages) == queued["enqueued"] > 0
    for message in messages:
        assert message["params"]["every"] == 2.5 and "every_s" not in message["params"]
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        recorded = conn.execute(text("SELECT params FROM datasets")).scalar()
    assert recorded["every"] == 2.5 and "every_s" not in recorded

    with CeleryWorker(env, queues="cpu", concurrency=2, name="every", log_dir=tmp_path):
        run_cli_json(["ingest", str(sample_root), "--every", "2.5", "--wait"], env, expect_code=1)  # 1: the corrupt one
    with engine.connect() as conn:
        stamps = conn.execute(text(
            "SELECT DISTINCT c.timestamp_s FROM crops c JOIN videos v ON v.id = c.video_id "
            "WHERE v.rel_path = 'Celeb-real/id0_0000.mp4' ORDER BY c.timestamp_s")).scalars().all()
    engine.dispose()
    assert stamps == [0.0, 2.5, 5.0]  # a 7 s video sampled every 2.5 s by the worker


def test_protocol_deepfakebench_sets_the_fields_preprocessing_in_one_flag():
    from orchestrator.output import format_datasets

    params = IngestParams.from_options({"protocol": "DeepfakeBench", "every": None, "largest_face": False})
    assert (params.frames, params.largest_face, params.align, params.size, params.margin, params.min_confidence,
            params.protocol) == (32, True, True, 256, 0.3, 0.8, "deepfakebench")
    assert IngestParams.from_options({"protocol": "deepfakebench", "size": 256}).size == 256  # agreeing is fine
    for contradiction, flag in (({"size": 128}, "--size 256"), ({"frames": 8}, "--frames 32"),
                                ({"min_confidence": 0.95}, "--min-confidence 0.8"),
                                ({"every": 2.0}, "--frames and --every are exclusive")):
        with pytest.raises(InputError, match=flag):
            IngestParams.from_options({"protocol": "deepfakebench", **contradiction})
    with pytest.raises(InputError, match="--protocol must be one of deepfakebench"):
        IngestParams.from_options({"protocol": "ffpp"})
    row = {"name": "celeb", "format": "celebdf", "videos": 2, "by_label": {"real": 1, "fake": 1},
           "official_test_videos": 0, "crops": 64, "root": "/data/celeb", "params": params.as_dict()}
    assert "deepfakebench (32 frames, aligned, 256 px)" in format_datasets([row])
    assert IngestParams.from_dict(params.as_dict()) == params


def test_ingest_size_allows_the_fields_largest_512():
    assert IngestParams.from_options({"size": 512}).size == 512
