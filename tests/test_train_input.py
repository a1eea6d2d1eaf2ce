"""Bad input to train / report / predict: one line, exit code 2, nothing recorded changes."""

import pytest
from sqlalchemy import func, insert, select

from db.models import Crop, Dataset, Run, Video
from db.session import session_scope
from tests.support import pipeline_env, run_cli


def one_line_error(result, code=2):
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def add_videos(videos):
    """videos: (rel_path, label, group_key) with two recorded crops each (files not needed to plan)."""
    with session_scope() as session:
        dataset = Dataset(root="/nowhere", name="nowhere")
        session.add(dataset)
        session.flush()
        for rel_path, label, group in videos:
            video = Video(dataset_id=dataset.id, rel_path=rel_path, folder=rel_path.split("/")[0], label=label,
                          group_key=group, status="done", attempts=1)
            session.add(video)
            session.flush()
            session.execute(insert(Crop), [dict(video_id=video.id, frame_index=i * 90, timestamp_s=i * 3.0,
                                                face_index=0, x=1, y=1, w=50, h=50, confidence=0.99,
                                                crop_path=f"crops/x/{video.id}_{i}.png") for i in range(2)])


def count_runs():
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Run))


@pytest.fixture
def env(local_db):
    return pipeline_env(DATA_DIR=local_db.data_dir)


def test_train_without_crops(env):
    assert "no crops" in one_line_error(run_cli(["train", "--weights", "none"], env))
    assert count_runs() == 0


def test_train_with_one_class(env):
    add_videos([(f"Celeb-real/id{i}_0000.mp4", 0, f"celeb:id{i}") for i in range(5)])
    assert "real" in one_line_error(run_cli(["train", "--weights", "none"], env))
    assert count_runs() == 0


def test_train_with_a_split_that_leaves_a_side_empty(env):
    add_videos([("Celeb-real/id0_0000.mp4", 0, "celeb:id0"), ("Celeb-synthesis/id0_id1_0000.mp4", 1, "celeb:id0")])
    assert "leaves the" in one_line_error(run_cli(["train", "--weights", "none"], env))
    assert count_runs() == 0


def test_train_with_a_missing_weights_file(env, tmp_path):
    add_videos([(f"Celeb-real/id{i}_0000.mp4", 0, f"celeb:id{i}") for i in range(5)]
               + [(f"Celeb-synthesis/id{i}_id9_0000.mp4", 1, f"celeb:id{i}") for i in range(5)])
    line = one_line_error(run_cli(["train", "--weights", str(tmp_path / "missing.h5")], env))
    assert "missing.h5" in line and "none" in line
    assert count_runs() == 0


def test_train_offline_imagenet_names_the_alternatives(env):
    from workers.training.models import _keras_models_dir, notop_weights_file

    if (_keras_models_dir() / notop_weights_file("resnet50")).exists():
        pytest.skip("ImageNet weights are cached here: nothing is downloaded")
    add_videos([(f"Celeb-real/id{i}_0000.mp4", 0, f"celeb:id{i}") for i in range(5)]
               + [(f"Celeb-synthesis/id{i}_id9_0000.mp4", 1, f"celeb:id{i}") for i in range(5)])
    line = one_line_error(run_cli(["train"], env))
    assert "--weights none" in line and "--weights PATH" in line
    assert count_runs() == 0


@pytest.mark.parametrize("args,needle", [
    (["report", "no-such-run"], "no run"),
    (["report"], "no training run"),
    (["predict", "--run", "no-such-run", "VIDEO"], "no run"),
    (["predict", "VIDEO"], "no finished training run"),
])
def test_unknown_or_missing_runs(env, sample_root, args, needle):
    video = str(sample_root / "Celeb-real" / "id0_0000.mp4")
    args = [video if a == "VIDEO" else a for a in args]
    assert needle in one_line_error(run_cli(args, env))


def test_predict_on_unreadable_videos(env, sample_root, tmp_path):
    assert "no such file" in one_line_error(run_cli(["predict", str(tmp_path / "none.mp4")], env))
    corrupt = sample_root / "Celeb-real" / "id9_0000.mp4"
    assert str(corrupt) in one_line_error(run_cli(["predict", str(corrupt)], env))


@pytest.mark.parametrize("option", [["--epochs", "0"], ["--batch-size", "0"], ["--lr", "-1"]])
def test_bad_train_options(env, option):
    assert option[0] in one_line_error(run_cli(["train", "--weights", "none", *option], env))
