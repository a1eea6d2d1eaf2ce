"""The screening service with STORAGE_URL=s3://... on a real S3 server (SeaweedFS): uploads, the
model and the Grad-CAM sheets live in the object store, so the server, a `celery worker -Q predict`
and a `predict --queue` command each with a DATA_DIR of their own (no shared disk; only PostgreSQL,
Redis and the store in common) judge every video."""

from __future__ import annotations

import shutil

import pytest

from tests.judging_support import make_judging_run, pipeline_settings, sample_videos
from tests.serve_support import Server, upload, wait_finished
from tests.support import CeleryWorker, pipeline_env, run_cli, run_cli_json, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a server, a worker and a CLI: ~1-2 min


def listing(store) -> dict | None:
    from shared.storage import StorageError

    try:
        return store.list("")
    except StorageError:  # a restarted server may refuse a new connection for a moment
        return None


def files_under(folder) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def test_uploads_go_to_the_store_and_a_worker_with_no_shared_disk_judges_them(seaweed, tmp_path, pg_url, redis_url):
    from sqlalchemy import update

    from db.models import Run
    from db.session import session_scope
    from shared.storage import open_store
    from workers.planning.runs import find_run
    from workers.predict import judge_videos

    url = "s3://pipeline/data"
    server_dir, worker_dir, cli_dir = tmp_path / "server", tmp_path / "worker", tmp_path / "cli"
    run_id = make_judging_run(server_dir, pg_url)
    videos = sample_videos(tmp_path / "videos")
    face, other, blank = videos[0], videos[1], videos[-1]
    with pipeline_settings(DATA_DIR=server_dir, DATABASE_URL=pg_url):  # the verdicts to expect, in this process
        expected = {r["video"]: r for r in judge_videos([face, other], find_run(run_id))}
    # The model moves to the store, as a training worker with STORAGE_URL leaves it: no host keeps a copy.
    store = open_store(url)
    model_key = f"runs/{run_id}/model.keras"
    store.put_file(model_key, server_dir / model_key)
    with pipeline_settings(DATA_DIR=server_dir, DATABASE_URL=pg_url):
        with session_scope() as session:
            session.execute(update(Run).where(Run.id == run_id).values(artifacts={"model": model_key, "plots": []}))
    shutil.rmtree(server_dir / "runs")

    common = dict(DATABASE_URL=pg_url, CELERY_BROKER_URL=redis_url, STORAGE_URL=url, **seaweed.env())
    env_server, env_worker, env_cli = (pipeline_env(DATA_DIR=d, **common) for d in (server_dir, worker_dir, cli_dir))
    key = run_cli(["api-key", "create", "newsroom"], env_server).stdout.strip()
    with CeleryWorker(env_worker, queues="predict", concurrency=1, name="predict", log_dir=tmp_path), \
            Server(env_server, tmp_path) as server:
        with server.client(key) as client:
            sent = [upload(client, face, explain="true"), upload(client, blank)]
            assert [r.status_code for r in sent] == [202, 202], [r.text for r in sent]
            ids = [r.json()["id"] for r in sent]
            assert wait_finished(server_dir, ids, pg_url) == {ids[0]: "done", ids[1]: "no_face"}
            judged = client.get(f"/v1/judgements/{ids[0]}").json()
            sheet = client.get(judged["explanation_url"])
        # Another host's command line: its video goes to the store too, judged by the same worker.
        queued = run_cli_json(["predict", "--queue", "--explain", str(tmp_path / "why"), str(other)], env_cli)
        # The store down: an upload is refused with 503 (send it again later), nothing recorded or kept.
        seaweed.stop()
        with server.client(key) as client:
            refused = upload(client, videos[2])
            listed = client.get("/v1/judgements").json()["judgements"]
        seaweed.start()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "30", refused.text
    assert refused.json() == {"error": "the object store is unreachable: try again later"}
    assert len(listed) == 2  # the two uploads above, not the refused one

    assert judged["verdict"] == expected[str(face)]["label"]
    assert judged["fake_probability"] == pytest.approx(expected[str(face)]["fake_probability"], abs=1e-4)
    assert sheet.status_code == 200 and sheet.content[:8] == b"\x89PNG\r\n\x1a\n"
    (result,) = queued
    assert result["status"] == "done" and result["verdict"] == expected[str(other)]["label"]
    assert result["fake_probability"] == pytest.approx(expected[str(other)]["fake_probability"], abs=1e-4)
    assert (tmp_path / "why" / f"{other.stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Every video is an object under uploads/<sha256>; the sheets are objects of their judgements.
    objects = wait_until(lambda: listing(store), 60, 1, "the restarted store to list its objects")
    for path, sha in ((face, judged["video_sha256"]), (blank, sent[1].json()["video_sha256"]),
                      (other, result["video_sha256"])):
        assert objects[f"uploads/{sha}"] == path.stat().st_size
        assert store.get_bytes(f"uploads/{sha}") == path.read_bytes()
    assert [k for k in objects if k.startswith(f"judgements/{ids[0]}/") and k.endswith(".png")]
    assert [k for k in objects if k.startswith(f"judgements/{result['id']}/") and k.endswith(".png")]
    # Nothing kept on the hosts' disks: no upload in the server's DATA_DIR, the worker's temporary
    # copies of the videos and its scratch sheets gone; only the models fetched into the caches.
    assert not files_under(server_dir / "uploads") and not files_under(server_dir / "judgements")
    assert {f for f in files_under(worker_dir) if not f.startswith("logs/")} == {f"cache/{model_key}"}
    assert not files_under(cli_dir / "uploads") and not files_under(cli_dir / "judgements")
