"""Recorded files are keys relative to the storage root (issue #19 item 4): a copied DATA_DIR, the
original deleted, reads its own model and writes into its own run folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shared.storage import artifact_keys, legacy_key, resolve, resolve_artifacts, storage_key
from tests.support import pipeline_env, run_cli_json


def test_keys_are_relative_and_old_absolute_paths_are_re_rooted(tmp_path):
    root = tmp_path / "copy"
    assert storage_key(root / "runs" / "ab" / "model.keras", root) == "runs/ab/model.keras"
    assert resolve("runs/ab/model.keras", root) == root / "runs" / "ab" / "model.keras"
    # A row an older version wrote in the original DATA_DIR names the copy's file.
    assert resolve("/gone/data/runs/ab/model.keras", root) == root / "runs" / "ab" / "model.keras"
    assert resolve("/gone/data/crops/1/Celeb-real/id0/f000001_00.png", root) == root / "crops/1/Celeb-real/id0/f000001_00.png"
    assert legacy_key("/srv/runs/data/runs/ab/roc.png") == "runs/ab/roc.png"  # the last owned folder
    assert legacy_key("/elsewhere/model.keras") is None and resolve("/elsewhere/model.keras", root) == Path("/elsewhere/model.keras")
    artifacts = {"dir": str(root / "runs" / "ab"), "plots": [str(root / "runs" / "ab" / "roc.png")], "tensorboard": None}
    keys = artifact_keys(artifacts, root)
    assert keys == {"dir": "runs/ab", "plots": ["runs/ab/roc.png"], "tensorboard": None}
    assert resolve_artifacts(keys, root) == artifacts


def test_migration_0008_rewrites_absolute_paths_as_keys(tmp_path, monkeypatch):
    import sqlalchemy as sa
    from alembic import command
    from sqlalchemy import create_engine

    from db.migrate import alembic_config
    from shared.settings import reset_settings

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    reset_settings()
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0005")
    engine = create_engine(url)
    runs = sa.table("runs", *(sa.column(c) for c in ("id", "status", "attempts", "created_at")),
                    sa.column("config", sa.JSON), sa.column("artifacts", sa.JSON))
    old = {"dir": "/old/data/runs/r1", "model": "/old/data/runs/r1/model.keras",
           "plots": ["/old/data/runs/r1/roc.png"], "tensorboard": None}
    with engine.begin() as conn:
        conn.execute(runs.insert().values(id="r1", status="done", attempts=1, created_at=sa.func.now(), config={},
                                          artifacts=old))
    command.upgrade(config, "0008")
    with engine.connect() as conn:
        assert conn.execute(sa.select(runs.c.artifacts)).scalar() == {
            "dir": "runs/r1", "model": "runs/r1/model.keras", "plots": ["runs/r1/roc.png"], "tensorboard": None}
    command.downgrade(config, "0005")
    with engine.connect() as conn:
        assert conn.execute(sa.select(runs.c.artifacts)).scalar()["model"] == str(tmp_path / "data/runs/r1/model.keras")
    engine.dispose()
    reset_settings()


@pytest.mark.integration
@pytest.mark.slow
def test_a_copied_data_dir_works_on_itself_with_the_original_gone(sample_root, tmp_path):
    original = tmp_path / "data"
    env = pipeline_env(DATA_DIR=original)
    run_cli_json(["ingest", str(sample_root)], env, expect_code=1)  # its corrupt video fails
    report = run_cli_json(["train", "--epochs", "1", "--weights", "none", "--batch-size", "16", "--image-size", "32",
                           "--backbone", "tiny"], env)
    assert report["status"] == "done", report.get("error")
    run_id, dataset = report["run_id"], report["config"]["datasets"][0]

    copy = tmp_path / "moved"
    shutil.copytree(original, copy, ignore=shutil.ignore_patterns("broker", "logs"))
    shutil.rmtree(original)
    env = pipeline_env(DATA_DIR=copy)
    run_dir = copy / "runs" / run_id

    copied = run_cli_json(["report", run_id], env)
    assert copied["artifacts"]["model"] == str(run_dir / "model.keras")
    assert all(Path(p).parent == run_dir and Path(p).is_file() for p in copied["artifacts"]["plots"])
    judged = run_cli_json(["predict", str(sample_root / "Celeb-real" / "id0_0000.mp4")], env)  # the copy's model
    assert len(judged) == 1
    evaluation = run_cli_json(["evaluate", run_id, "--dataset", dataset, "--wait"], env)
    assert evaluation["status"] == "done", evaluation.get("error")
    assert Path(evaluation["roc"]).parent == run_dir and Path(evaluation["roc"]).is_file()
    assert "Evaluations on other datasets" in (run_dir / "report.html").read_text()  # the run's page, rewritten
    assert not original.exists()  # nothing was written where the original was
