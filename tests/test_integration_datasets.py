"""Every dataset layout in one PostgreSQL database, on real workers (Redis broker): ingest each with
the field's sampling and alignment, list them, train on FF++'s official split, evaluate the model on
Celeb-DF (the field's cross-dataset recipe), and read the result back in `report`, `runs`, `export`."""

import csv
import io
from pathlib import Path

import pytest

from tests.support import CeleryWorker, pipeline_env, run_cli, run_cli_json

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # three layouts ingested, a run trained and evaluated: ~2-4 min

# The field's protocol, shrunk: a few evenly spaced frames, one face per frame, aligned crops.
INGEST = ["--frames", "3", "--largest-face", "--align", "--wait"]
TRAIN = ["train", "--epochs", "1", "--weights", "none", "--backbone", "mobilenetv2", "--batch-size", "8"]


def one_line_error(result, *needles):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    from shared.sample_data import make_dfdc_sample, make_ffpp_sample, make_folders_sample, make_sample_dataset

    root = tmp_path_factory.mktemp("layouts")
    return {
        "celebdf": make_sample_dataset(root / "Celeb-DF-v2", reals_per_folder=2, fakes=2, seconds=2.0),
        "ffpp": make_ffpp_sample(root / "ffpp", originals=4, methods=("Deepfakes",), actors=0, seconds=1.0),
        "dfdc": make_dfdc_sample(root / "dfdc", parts=1, originals_per_part=2, fakes_per_original=1,
                                 test_videos=2, seconds=1.0),
        "folders": make_folders_sample(root / "folders", people=2, seconds=1.0),
    }


def test_formats_ingest_train_on_one_evaluate_on_another(layouts, tmp_path, pg_url, redis_url):
    data_dir = tmp_path / "data"
    env = pipeline_env(DATA_DIR=data_dir, DATABASE_URL=pg_url, CELERY_BROKER_URL=redis_url)
    assert run_cli(["db", "upgrade"], env).returncode == 0
    with CeleryWorker(env, queues="cpu", concurrency=2, name="cpu", log_dir=tmp_path):
        ffpp = run_cli_json(["ingest", layouts["ffpp"]["root"], *INGEST], env)
        dfdc = run_cli_json(["ingest", layouts["dfdc"]["root"], "--format", "dfdc", "--name", "dfdc-a", *INGEST], env)
        folders = run_cli_json(["ingest", layouts["folders"]["root"], *INGEST], env)
        celebdf = run_cli_json(["ingest", layouts["celebdf"]["root"], "--name", "celebdf", *INGEST], env)
    assert (ffpp["format"], ffpp["format_detected"], ffpp["name"]) == ("ffpp", True, "ffpp")
    assert (dfdc["format"], dfdc["format_detected"], dfdc["name"]) == ("dfdc", False, "dfdc-a")
    assert folders["format"] == "folders" and not folders["status"]["failures"]
    assert celebdf["format"] == "celebdf" and not celebdf["status"]["failures"]
    # The same folder under another name, or another folder under a taken name: refused, nothing changes.
    one_line_error(run_cli(["ingest", layouts["dfdc"]["root"], "--name", "other"], env), "already dataset 'dfdc-a'")
    one_line_error(run_cli(["ingest", layouts["folders"]["root"], "--frames", "5"], env), "other parameters")

    datasets = {d["name"]: d for d in run_cli_json(["datasets"], env)}
    assert list(datasets) == ["ffpp", "dfdc-a", "folders", "celebdf"]
    assert datasets["ffpp"]["by_label"] == {"real": 4, "fake": 4} and datasets["ffpp"]["official_test_videos"] == 4
    assert datasets["dfdc-a"]["by_label"] == {"real": 3, "fake": 3} and datasets["dfdc-a"]["official_test_videos"] == 2
    assert datasets["folders"]["by_label"] == {"real": 3, "fake": 2} and datasets["folders"]["official_test_videos"] == 0
    assert datasets["celebdf"]["by_label"] == {"real": 4, "fake": 2}
    assert datasets["celebdf"]["official_test_videos"] == len(layouts["celebdf"]["test_list"])
    for d in datasets.values():
        assert d["crops"] > 0 and d["params"]["frames"] == 3 and d["params"]["align"] is True
        assert d["videos"] == sum(d["by_label"].values())
    assert run_cli_json(["status", "--dataset", "dfdc-a"], env)["videos"]["total"] == 6

    rows = list(csv.DictReader(io.StringIO(run_cli(["export", "--dataset", "ffpp"], env).stdout)))
    assert {r["method"] for r in rows if r["label"] == "1"} == {"Deepfakes"}
    assert {r["method"] for r in rows if r["label"] == "0"} == {""}
    assert all(float(r["left_eye_x"]) < float(r["right_eye_x"]) for r in rows)
    assert max(int(r["frame_index"]) for r in rows) > 0 and {r["face_index"] for r in rows} == {"0"}

    one_line_error(run_cli([*TRAIN, "--dataset", "folders", "--split", "official"], env),
                   "'folders'", "no official test set")
    one_line_error(run_cli([*TRAIN, "--dataset", "nowhere"], env), "no dataset 'nowhere'")

    with CeleryWorker(env, queues="gpu", concurrency=1, name="gpu", log_dir=tmp_path,
                      extra=["--max-tasks-per-child", "1"]) as gpu:
        report = run_cli_json([*TRAIN, "--dataset", "ffpp", "--split", "official", "--wait"], env)
        assert report["status"] == "done", report["error"]
        assert report["config"]["datasets"] == ["ffpp"]
        split = report["split"]
        # FF++'s test.json: the last pair, its two originals and both fakes of it: every one of them
        # that has crops (a sample fake's pasted face can be too small for MTCNN) and nothing else.
        with_crops = {r["video"] for r in rows}
        official = [v for v in layouts["ffpp"]["test_videos"] if v in with_crops]
        assert len(official) >= 3, (official, sorted(with_crops))
        assert split["test_videos"] == len(official)
        assert split["shared_sources"] == 0 and list(split["datasets"]) == ["ffpp"]

        one_line_error(run_cli(["evaluate", report["run_id"], "--dataset", "ffpp", "--part", "all"], env),
                       "only --part test")
        one_line_error(run_cli(["evaluate", "--dataset", "nowhere"], env), "no dataset 'nowhere'")
        one_line_error(run_cli(["evaluate", "no-such-run", "--dataset", "dfdc-a"], env), "no run 'no-such-run'")
        evaluation = run_cli_json(["evaluate", report["run_id"], "--dataset", "celebdf", "--wait"], env)
        assert "train.evaluate" in gpu.log()

    assert evaluation["status"] == "done", evaluation["error"]
    assert (evaluation["run_id"], evaluation["dataset"], evaluation["part"]) == (report["run_id"], "celebdf", "all")
    assert evaluation["crops"] == datasets["celebdf"]["crops"] and evaluation["videos"] >= 5
    # Every metric of the run's own, but those of its training and its validation part.
    assert set(report["metrics"]) <= set(evaluation["metrics"]) | {
        "train_images_per_s", "best_epoch", "epochs_run", "val_auc", "val_video_auc", "val_video_balanced_accuracy"}
    assert evaluation["metrics"]["n_videos"] == evaluation["videos"]
    roc = data_dir / "runs" / report["run_id"] / "roc_celebdf.png"
    assert Path(evaluation["roc"]) == roc and roc.read_bytes()[:4] == b"\x89PNG"

    again = run_cli_json(["report", report["run_id"]], env)
    assert again["evaluations"] == [evaluation]
    (row,) = run_cli_json(["runs"], env)
    assert row["evaluations"] == [evaluation]
    assert "celebdf(all) v_auc" in run_cli(["runs"], env).stdout
    assert "on celebdf (all" in run_cli(["report"], env).stdout
