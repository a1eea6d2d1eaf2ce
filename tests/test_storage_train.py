"""Training and evaluating with STORAGE_URL=s3://... on a real S3 server (SeaweedFS), through the
real `orchestrator` commands and their worker processes: a dataset ingested with crop packs trains
from its packs fetched into CACHE_DIR (not from decoded PNGs), a dataset ingested with CROP_PACKS=0
trains from its PNGs, and another host that shares only the database and the store evaluates a run
on the other dataset: its model and crops read from the store, its results written there."""

from __future__ import annotations

import csv
import io
import shutil

import pytest

from tests.support import pipeline_env, run_cli, run_cli_json

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # two ingests, two trainings, one evaluation: ~2-3 min

TRAIN = ["train", "--epochs", "1", "--weights", "none", "--batch-size", "16", "--image-size", "32", "--backbone", "tiny"]


def crop_folders(env: dict, dataset: str) -> set[str]:
    rows = csv.DictReader(io.StringIO(run_cli(["export", "--dataset", dataset], env).stdout))
    return {row["crop_path"].rsplit("/", 1)[0] for row in rows}


def test_train_from_packs_or_pngs_and_evaluate_another_dataset_on_another_host(seaweed, tmp_path):
    from shared.sample_data import make_folders_sample, make_sample_dataset
    from shared.storage import open_store

    url, host = "s3://pipeline/data", tmp_path / "host-a"
    celebdf = make_sample_dataset(tmp_path / "celebdf", reals_per_folder=3, fakes=4, seconds=2.0)["root"]
    folders = make_folders_sample(tmp_path / "folders", people=3, seconds=1.0)["root"]
    env = pipeline_env(DATA_DIR=host, STORAGE_URL=url, **seaweed.env())
    ingested = run_cli_json(["ingest", str(celebdf), "--name", "celebdf", "--every", "1"], env)
    assert not ingested["status"]["failures"], ingested
    ingested = run_cli_json(["ingest", str(folders), "--name", "folders", "--every", "0.5"], {**env, "CROP_PACKS": "0"})
    assert not ingested["status"]["failures"], ingested

    store = open_store(url)
    objects = store.listing("crops")
    packed, unpacked = crop_folders(env, "celebdf"), crop_folders(env, "folders")
    assert packed and unpacked
    for folder in packed:  # each pack put after its PNGs: no older than any of them
        pngs = [m for k, (_, m) in objects.items() if k.startswith(f"{folder}/") and k.endswith(".png")]
        assert pngs and objects[f"{folder}/crops.pack"][1] >= max(pngs)
    assert not [k for k in objects if k.endswith("crops.pack") and k.rsplit("/", 1)[0] in unpacked]

    with_packs = run_cli_json([*TRAIN, "--dataset", "celebdf"], env)
    assert with_packs["status"] == "done", with_packs.get("error")
    assert with_packs["config"]["train_crops_from_packs"] == with_packs["split"]["train_crops"] > 0
    without_packs = run_cli_json([*TRAIN, "--dataset", "folders"], env)
    assert without_packs["status"] == "done", without_packs.get("error")
    assert without_packs["split"]["train_crops"] > 0 and without_packs["config"]["train_crops_from_packs"] == 0
    cached = {p.relative_to(host / "cache").as_posix() for p in (host / "cache").rglob("*") if p.is_file()}
    assert {k for k in objects if k.rsplit("/", 1)[0] in unpacked} <= cached  # the PNGs it read
    assert not list((host / "crops").rglob("*.png"))  # ingest's staging copies are gone

    # Another host: its own DATA_DIR with a copy of the database, nothing else. The run's model and
    # the other dataset's crops come from the store; the results go to the run's folder there.
    run_id = with_packs["run_id"]
    other = tmp_path / "host-b"
    other.mkdir()
    shutil.copy(host / "pipeline.db", other / "pipeline.db")
    env_other = {**env, "DATA_DIR": str(other)}
    evaluation = run_cli_json(["evaluate", run_id, "--dataset", "folders"], env_other)
    assert evaluation["status"] == "done", evaluation.get("error")
    folders_crops = {d["name"]: d for d in run_cli_json(["datasets"], env)}["folders"]["crops"]
    assert evaluation["part"] == "all" and evaluation["crops"] == folders_crops > 0
    assert evaluation["roc"] == f"{url}/runs/{run_id}/roc_folders.png"
    assert store.get_bytes(f"runs/{run_id}/roc_folders.png")[:4] == b"\x89PNG"
    assert store.exists(f"runs/{run_id}/evaluation_folders_all.json")
    rows = list(csv.DictReader(io.StringIO(store.get_bytes(f"runs/{run_id}/evaluation_folders_all.csv").decode())))
    assert len(rows) == folders_crops and all(r["crop_path"].startswith("crops/") for r in rows)  # crops by key
    assert (other / "cache" / "runs" / run_id / "model.keras").is_file()  # read from the store
    fetched = {p.relative_to(other / "cache").as_posix() for p in (other / "cache" / "crops").rglob("*.png")}
    assert len(fetched) == folders_crops and not (other / "crops").exists()
    report = run_cli_json(["report", run_id], env_other)
    assert [e["dataset"] for e in report["evaluations"]] == ["folders"]
    page = store.get_bytes(f"runs/{run_id}/report.html").decode()  # the run's page in the store, rewritten
    assert "Evaluations on other datasets" in page and "<td>folders</td>" in page
