"""Training on several datasets: the split is made per dataset and joined; bad choices are input
errors that record nothing."""

import pytest
from sqlalchemy import func, insert, select

from db.models import Crop, Dataset, Run, Video
from db.session import session_scope
from shared.errors import InputError
from workers.planning.runs import plan_run

PARAMS = {"every": 3.0, "frames": 8, "min_confidence": 0.95, "margin": 0.3, "size": 128,
          "detect_max_side": 480, "largest_face": True, "align": True, "detect_batch": 8}


def add_dataset(name, fmt, videos, params=PARAMS):
    """videos: (rel_path, label, group_key, official_test), two crops each."""
    with session_scope() as session:
        dataset = Dataset(root=f"/data/{name}", name=name, format=fmt, params=params)
        session.add(dataset)
        session.flush()
        for rel_path, label, group, official in videos:
            video = Video(dataset_id=dataset.id, rel_path=rel_path, folder="x", label=label, group_key=group,
                          official_test=official, status="done", attempts=1)
            session.add(video)
            session.flush()
            session.execute(insert(Crop), [dict(video_id=video.id, frame_index=i, timestamp_s=i / 10, face_index=0,
                                                x=1, y=1, w=50, h=50, confidence=0.99,
                                                crop_path=f"crops/{video.id}_{i}.png") for i in range(2)])


def people(prefix, n, official=()):
    """n groups, each a real and a fake video; groups in ``official`` are marked official test."""
    return [video for k in range(n) for video in (
        (f"{prefix}/real{k}.mp4", 0, f"g{k}", k in official), (f"{prefix}/fake{k}.mp4", 1, f"g{k}", k in official))]


def runs():
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Run))


def test_official_split_per_dataset_joined(local_db):
    add_dataset("ffpp", "ffpp", people("a", 6, official=(5,)))
    add_dataset("dfdc", "dfdc", people("b", 6, official=(0, 1)))
    run_id, summary = plan_run({"split": "official", "weights": "none"})
    assert summary["datasets"]["ffpp"]["test_videos"] == 2 and summary["datasets"]["dfdc"]["test_videos"] == 4
    assert summary["test_videos"] == 6 and summary["shared_sources"] == 0  # "g0" of each dataset is its own group
    with session_scope() as session:
        run = session.get(Run, run_id)
        assert run.config["datasets"] == ["ffpp", "dfdc"] and run.config["ingest"] == PARAMS

    _, only = plan_run({"split": "video", "weights": "none"}, datasets=["dfdc"])
    assert list(only["datasets"]) == ["dfdc"] and only["test_videos"] + only["train_videos"] + only["val_videos"] == 12


def test_bad_dataset_choices_record_nothing(local_db):
    add_dataset("ffpp", "ffpp", people("a", 6, official=(5,)))
    add_dataset("own", "folders", people("c", 6))
    add_dataset("other", "folders", people("d", 6), params={**PARAMS, "align": False})
    with pytest.raises(InputError, match="'own' \\(folders\\) has no official test set"):
        plan_run({"split": "official", "weights": "none"}, datasets=["ffpp", "own"])
    with pytest.raises(InputError, match="no dataset 'nope'"):
        plan_run({"weights": "none"}, datasets=["nope"])
    with pytest.raises(InputError, match="different parameters \\(align True vs False\\)"):
        plan_run({"weights": "none"}, datasets=["own", "other"])
    assert runs() == 0


def test_evaluation_choices_and_a_failed_evaluation_is_recorded(local_db):
    from db.models import Evaluation
    from workers.planning.evaluations import plan_evaluation
    from workers.planning.runs import find_run
    from workers.training.cross_eval import execute_evaluation

    add_dataset("ffpp", "ffpp", people("a", 6, official=(5,)))
    add_dataset("other", "folders", people("c", 3), params={**PARAMS, "margin": 0.5})
    run_id, _ = plan_run({"split": "official", "weights": "none"}, datasets=["ffpp"])
    with pytest.raises(InputError, match="only a finished run"):
        plan_evaluation(find_run(run_id), "other")
    with session_scope() as session:
        run = session.get(Run, run_id)
        run.status, run.artifacts = "done", {"model": str(local_db.data_dir / "missing.keras")}
    run = find_run(run_id)
    with pytest.raises(InputError, match="only --part test"):
        plan_evaluation(run, "ffpp", "all")
    with pytest.raises(InputError, match="no dataset 'nope'"):
        plan_evaluation(run, "nope")
    with pytest.raises(InputError, match="--part must be one of"):
        plan_evaluation(run, "other", "half")
    evaluation_id, warnings = plan_evaluation(run, "other")
    assert "margin 0.3 vs 0.5" in warnings[0]
    with pytest.raises(Exception):
        execute_evaluation(evaluation_id)  # no model file: recorded as failed, so waiting ends
    with session_scope() as session:
        evaluation = session.get(Evaluation, evaluation_id)
        assert (evaluation.status, evaluation.part) == ("failed", "all") and evaluation.error


def test_a_second_folder_cannot_take_a_dataset_name_in_use(local_db):
    from pathlib import Path

    from shared.errors import InputError
    from workers.planning.ingest import register_videos
    from workers.datasets import DatasetScan

    register_videos(DatasetScan(root=Path("/data/a/celeb"), videos=[]), {}, retry_failed=False, embedded=True)
    with pytest.raises(InputError, match="named 'celeb' already exists \\(/data/a/celeb\\)"):
        register_videos(DatasetScan(root=Path("/data/b/celeb"), videos=[]), {}, retry_failed=False, embedded=True)
    # the same folder again is the same dataset
    register_videos(DatasetScan(root=Path("/data/a/celeb"), videos=[]), {}, retry_failed=False, embedded=True)
