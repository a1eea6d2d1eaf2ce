"""Issue 19's "nothing stuck" defects: leases of processes that are gone, refused model files,
explanation sheets that must not overwrite, training on a dataset still being ingested."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from shared.errors import InputError
from shared.process import process_name
from tests.test_lease import add_run, run_row
from workers.training import lease as leases


def dead_pid() -> int:
    """The pid of a real process of this host that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lease_whose_holder_process_is_gone_is_taken_back_at_once(local_db):
    """Ctrl-C on `train`, then `train --resume`: the holder's process is gone, its 14 s old
    heartbeat does not hold the run for the rest of the 300 s lease."""
    gone = process_name(dead_pid())
    add_run("gone", status="running", attempts=1, heartbeat_age_s=14, worker=gone)
    add_run("alive", status="running", attempts=1, heartbeat_age_s=14, worker=process_name())
    add_run("elsewhere", status="running", attempts=1, heartbeat_age_s=14, worker="another-host:1")
    for run_id, holder in (("alive", process_name()), ("elsewhere", "another-host:1")):
        with pytest.raises(InputError, match=f"held by {holder}"):
            leases.take_back_run(run_id, lambda *a: None)
        assert not leases.claim_run(run_id, holder="b:2").granted
    sent = []
    leases.take_back_run("gone", lambda run_id, config: sent.append(run_id))
    assert sent == ["gone"] and run_row("gone").status == "queued" and run_row("gone").worker is None
    claim = leases.claim_run("gone", holder="b:2")
    assert claim.granted and claim.attempts == 2


def test_the_sweep_and_a_claim_take_a_gone_holders_run(local_db):
    add_run("swept", status="running", attempts=1, heartbeat_age_s=1, worker=process_name(dead_pid()))
    add_run("claimed", status="running", attempts=1, heartbeat_age_s=1, worker=process_name(dead_pid()))
    add_run("alive", status="running", attempts=1, heartbeat_age_s=1, worker=process_name())
    assert leases.claim_run("claimed", holder="b:2").granted
    assert leases.take_back_expired_runs(lambda *a: None) == ["swept"]
    assert run_row("alive").status == "running" and run_row("claimed").worker == "b:2"


def lambda_model_run(tmp_path) -> str:
    """A finished run whose model file holds a Lambda layer (safe mode refuses to load it)."""
    import keras

    from db.models import Run
    from db.session import session_scope

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x), name="deepfake_mobilenetv2")
    path = tmp_path / "lambda.keras"
    model.save(path)
    with session_scope() as session:
        session.add(Run(id="lambda", status="done", config={"backbone": "mobilenetv2", "split": "video"},
                        artifacts={"model": str(path)}))
    return str(path)


@pytest.mark.integration
def test_a_model_refused_by_safe_mode_is_one_line_in_predict_and_export(local_db, sample_root, tmp_path):
    from tests.support import pipeline_env, run_cli

    path = lambda_model_run(tmp_path)
    env = pipeline_env(DATA_DIR=local_db.data_dir)
    video = str(sample_root / "Celeb-real" / "id0_0000.mp4")
    for args in (["predict", video, "--run", "lambda"], ["export-model", "lambda", str(tmp_path / "out")]):
        result = run_cli(args, env)
        assert result.returncode == 2, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: cannot load the model {path}:"), lines
        assert "Lambda" in lines[0] or "safe_mode" in lines[0]


def small_model_run(tmp_path) -> None:
    """A finished run with a small untrained model (shaped like test_export_explain's)."""
    import keras

    from db.models import Run
    from db.session import session_scope

    image = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(image)
    backbone = keras.Model(image, x, name="backbone")
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x), name="deepfake_mobilenetv2")
    model.save(tmp_path / "small.keras")
    with session_scope() as session:
        session.add(Run(id="small", status="done", config={"backbone": "mobilenetv2", "split": "video"},
                        artifacts={"model": str(tmp_path / "small.keras")}))


@pytest.mark.integration
def test_explain_never_overwrites_and_refuses_a_file_as_its_folder(local_db, sample_root, tmp_path):
    import json
    import shutil

    from tests.support import pipeline_env, run_cli

    small_model_run(tmp_path)
    env = pipeline_env(DATA_DIR=local_db.data_dir)
    videos = []
    for folder in ("a", "b"):  # two videos with the same base name
        (tmp_path / folder).mkdir()
        videos.append(str(shutil.copy(sample_root / "Celeb-real" / "id0_0000.mp4", tmp_path / folder)))
    explain = tmp_path / "explain"
    explain.mkdir()
    (explain / "id0_0000.png").write_bytes(b"the user's own file")

    not_a_folder = tmp_path / "a" / "id0_0000.mp4"
    result = run_cli(["predict", videos[0], "--run", "small", "--explain", str(not_a_folder)], env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: --explain {not_a_folder}: is a file, not a directory (the contact sheets go in a folder)"]

    result = run_cli(["predict", *videos, "--run", "small", "--explain", str(explain), "--json"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    sheets = [r["explanation"] for r in json.loads(result.stdout)]
    assert sheets == [str(explain / "id0_0000-2.png"), str(explain / "id0_0000-3.png")]
    assert (explain / "id0_0000.png").read_bytes() == b"the user's own file"
    assert all(open(s, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for s in sheets)


def dataset_being_ingested(done_labels=(0, 1, 0, 1), unfinished=("pending", "pending", "running")) -> None:
    """A dataset as an ingest under way leaves it: some videos done with crops, others not yet."""
    from db.models import Crop, Dataset, Video
    from db.session import session_scope

    with session_scope() as session:
        dataset = Dataset(root="/nowhere", name="busy")
        session.add(dataset)
        session.flush()
        videos = [(f"v{i}_done.mp4", label, "done") for i, label in enumerate(done_labels)]
        videos += [(f"v{i}_late.mp4", 1, status) for i, status in enumerate(unfinished)]
        for i, (name, label, status) in enumerate(videos):
            folder = "Celeb-synthesis" if label else "Celeb-real"
            video = Video(dataset_id=dataset.id, rel_path=f"{folder}/{name}", folder=folder, label=label,
                          group_key=f"id{i}", status=status, attempts=1)
            session.add(video)
            session.flush()
            for f in range(2 if status == "done" else 0):
                session.add(Crop(video_id=video.id, frame_index=f, timestamp_s=f, face_index=0, x=0, y=0, w=8, h=8,
                                 confidence=0.99, crop_path=f"crops/{i}/f{f}.png"))


@pytest.mark.integration
@pytest.mark.parametrize("done_labels", [(0, 0), (0, 1, 0, 1)], ids=["one-class-so-far", "both-classes"])
def test_train_during_an_ingest_is_refused_with_the_unfinished_counts(local_db, done_labels):
    from tests.support import pipeline_env, run_cli

    dataset_being_ingested(done_labels)
    result = run_cli(["train", "--backbone", "tiny", "--weights", "none", "--epochs", "1"],
                     pipeline_env(DATA_DIR=local_db.data_dir))
    total = len(done_labels) + 3
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: dataset 'busy': 3 of {total} videos are not finished (2 pending, 1 running): let its ingest "
        f"finish (`orchestrator status`; `orchestrator ingest` resumes an interrupted one), or add --partial "
        f"to train on the {len(done_labels)} finished ones"]
    from db.models import Run
    from db.session import session_scope

    with session_scope() as session:
        assert session.query(Run).count() == 0


def test_partial_trains_on_the_finished_videos_and_the_run_names_the_others(local_db):
    from orchestrator.output import format_report
    from shared.train_config import TrainConfig
    from workers.planning.runs import find_run, plan_run, run_report

    dataset_being_ingested(done_labels=(0, 1) * 5)
    run_id, summary = plan_run(TrainConfig.from_options({"partial": True, "backbone": "tiny", "weights": "none",
                                                         "test_size": 0.4}))
    late = ["Celeb-synthesis/v0_late.mp4", "Celeb-synthesis/v1_late.mp4", "Celeb-synthesis/v2_late.mp4"]
    assert summary["unfinished_videos"] == {"busy": late}
    assert summary["train_crops"] + summary["val_crops"] + summary["test_crops"] == 20  # the 10 done videos' crops
    report = run_report(find_run(run_id))
    assert report["config"]["partial"] is True
    assert "--partial: trained while 3 videos were unfinished: busy/Celeb-synthesis/v0_late.mp4" in format_report(report)


def linked_layout(tmp_path):
    """A Celeb-DF layout with a link to a video outside it, a link loop and a dangling link."""
    root = tmp_path / "linked"
    for rel in ("Celeb-real/id0_0000.mp4", "Celeb-synthesis/id0_id1_0000.mp4"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "id5_0000.mp4").write_bytes(b"x")
    (root / "Celeb-real" / "id5_0000.mp4").symlink_to(tmp_path / "elsewhere" / "id5_0000.mp4")
    (root / "Celeb-real" / "id6_0000.mp4").symlink_to(root / "Celeb-real" / "id7_0000.mp4")
    (root / "Celeb-real" / "id7_0000.mp4").symlink_to(root / "Celeb-real" / "id6_0000.mp4")  # a loop
    (root / "Celeb-real" / "id8_0000.mp4").symlink_to(root / "gone.mp4")
    (root / "Celeb-real" / "id9_0000.mp4").symlink_to("id0_0000.mp4")  # inside: read as any video
    return root


def test_links_outside_the_root_are_left_out_unless_followed_and_loops_are_counted(tmp_path):
    from workers.datasets import read_dataset

    root = linked_layout(tmp_path)
    scan = read_dataset(root, "celebdf")
    assert sorted(v.rel_path for v in scan.videos) == [
        "Celeb-real/id0_0000.mp4", "Celeb-real/id9_0000.mp4", "Celeb-synthesis/id0_id1_0000.mp4"]
    assert any(w.startswith("1 videos are links to files outside") and "left out" in w
               and "Celeb-real/id5_0000.mp4" in w for w in scan.warnings), scan.warnings
    assert ("3 symbolic links loop or point to nothing, skipped: Celeb-real/id6_0000.mp4, Celeb-real/id7_0000.mp4, "
            "Celeb-real/id8_0000.mp4") in scan.warnings
    followed = read_dataset(root, "celebdf", follow_outside_links=True)
    assert "Celeb-real/id5_0000.mp4" in [v.rel_path for v in followed.videos]
    assert any("followed" in w for w in followed.warnings)


@pytest.mark.integration
def test_ingest_says_what_it_did_with_links(tmp_path, sample_root):
    import json
    import shutil

    from tests.support import pipeline_env, run_cli

    root = tmp_path / "linked"
    for rel in ("Celeb-real/id0_0000.mp4", "Celeb-synthesis/id0_id1_0000.mp4"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_root / rel, root / rel)
    (root / "Celeb-real" / "id1_0000.mp4").symlink_to(sample_root / "Celeb-real" / "id1_0000.mp4")  # outside
    (root / "Celeb-real" / "id2_0000.mp4").symlink_to(root / "Celeb-real" / "id2_0000.mp4")  # loops on itself
    env = pipeline_env(DATA_DIR=tmp_path / "data")

    result = run_cli(["ingest", str(root), "--workers", "1", "--json"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    first = json.loads(result.stdout)
    assert first["new_videos"] == 2
    assert any("1 videos are links to files outside" in w and "left out" in w for w in first["warnings"])
    assert any(w.startswith("1 symbolic links loop") for w in first["warnings"])

    result = run_cli(["ingest", str(root), "--workers", "1", "--follow-outside-links"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: 1 videos are links to files outside" in result.stderr and "followed" in result.stderr
    assert "warning: 1 symbolic links loop or point to nothing, skipped: Celeb-real/id2_0000.mp4" in result.stderr
    result = run_cli(["ingest", str(root), "--workers", "1", "--follow-outside-links", "--json"], env)
    assert json.loads(result.stdout)["new_videos"] == 0  # the linked video was recorded by the run before


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 24 MiB tmpfs (unmounted at the end); skipped where mounting is refused."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder) -> int:
    """Write a file until the disk is full; its size."""
    written = 0
    with open(folder / "filler", "wb", buffering=0) as out:
        try:
            while True:
                written += out.write(b"\0" * 65536)
        except OSError:
            pass
    return written


@pytest.mark.integration
@pytest.mark.slow
def test_train_on_a_disk_that_fills_up_ends_with_one_line_and_a_resumable_run(small_tmpfs, monkeypatch):
    """The disk fills while the run trains: the checkpoint, the model and the failure's record all
    fail to be written. The command ends (it waited forever) with one line, exit 1, and the run,
    still `running` under a holder that is gone, is taken back by `train --resume`."""
    from db.migrate import upgrade_schema
    from db.models import Run
    from db.session import reset_engine, session_scope
    from shared.settings import reset_settings
    from tests.support import REPO, pipeline_env, run_cli, wait_until
    from tests.test_lease_faults import make_crops

    data_dir = small_tmpfs / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    reset_settings()
    reset_engine()
    upgrade_schema()
    make_crops(n_videos=12, per_video=8, size=48)
    env = pipeline_env(DATA_DIR=data_dir)

    def run_status():
        with session_scope() as session:
            return [(r.id, r.status, r.worker) for r in session.query(Run)]

    train = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "train", "--backbone", "tiny", "--weights",
                              "none", "--epochs", "6", "--batch-size", "4"], env=env, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: any(status == "running" for _, status, _ in run_status()), 180, 0.2, "the run to start")
        reset_engine()
        assert fill(small_tmpfs) > 0
        _, err = train.communicate(timeout=240)
    finally:
        if train.poll() is None:
            train.kill()
    (small_tmpfs / "filler").unlink()
    assert train.returncode == 1, err[-3000:]
    assert "Traceback" not in err
    [(run_id, status, holder)] = run_status()
    assert status == "running"
    assert err.strip().splitlines()[-1] == (
        f"error: run {run_id}: its worker ({holder}) stopped without recording an outcome (see "
        f"{data_dir / 'logs' / 'worker-train.log'}; a full disk?): fix that, then "
        f"`orchestrator train --resume {run_id}` continues it")
    resumed = run_cli(["train", "--resume", run_id, "--json"], env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run_status()[0][1] == "done"


def test_an_embedded_command_sends_to_its_own_queues_and_purges_only_gone_ones(local_db, monkeypatch):
    from orchestrator.embedded import LocalWorker, purge_embedded_queue
    from shared.process import COMMAND_QUEUES_ENV
    from workers.celery_app import TRAIN_TASK, route_task

    monkeypatch.setenv(COMMAND_QUEUES_ENV, "1")  # restored (absent) after the test
    monkeypatch.delenv(COMMAND_QUEUES_ENV)
    assert route_task(TRAIN_TASK, (), {}, {}) == {"queue": "gpu"}  # no command's own queue named
    queue_dir = local_db.broker_dir / "queue"
    queue_dir.mkdir(parents=True)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {"1_a.gpu.msg", f"2_b.gpu-{dead_pid()}.msg", f"3_c.gpu-{alive.pid}.msg", f"4_d.cpu-{alive.pid}.msg"}
        for name in names:
            (queue_dir / name).write_text("{}")
        assert purge_embedded_queue() == 2  # and names this command's queues
        assert {p.name for p in queue_dir.iterdir()} == {f"3_c.gpu-{alive.pid}.msg", f"4_d.cpu-{alive.pid}.msg"}
    finally:
        alive.kill()
    import os

    assert os.environ[COMMAND_QUEUES_ENV] == str(os.getpid())
    assert route_task(TRAIN_TASK, (), {}, {}) == {"queue": f"gpu-{os.getpid()}"}
    command = LocalWorker("gpu", 1, "train").command()
    assert command[command.index("-Q") + 1] == f"gpu-{os.getpid()}"


@pytest.mark.integration
@pytest.mark.slow
def test_two_trains_at_once_on_one_data_dir_each_get_their_run(local_db):
    """The second command's run was taken by the first command's worker, which then stopped: the
    message was gone and the second command waited forever."""
    from db.models import Run
    from db.session import session_scope
    from tests.support import REPO, pipeline_env, wait_until
    from tests.test_lease_faults import make_crops

    make_crops(n_videos=12, per_video=4, size=32)
    env = pipeline_env(DATA_DIR=local_db.data_dir)

    def statuses():
        with session_scope() as session:
            return [r.status for r in session.query(Run).order_by(Run.created_at)]

    def train(epochs):
        return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "train", "--backbone", "tiny", "--weights",
                                 "none", "--epochs", str(epochs), "--batch-size", "4", "--json"], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = train(3)
    second = None
    try:
        wait_until(lambda: statuses()[:1] == ["running"], 240, 0.2, "the first run to start")
        second = train(1)
        outs = [p.communicate(timeout=400) for p in (first, second)]
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
    assert [p.returncode for p in (first, second)] == [0, 0], [err[-2000:] for _, err in outs]
    assert statuses() == ["done", "done"]


@pytest.mark.integration
@pytest.mark.slow
def test_ctrl_c_on_train_then_resume_is_taken_at_once(local_db):
    """Ctrl-C while the run trains: the command says to run it again, and `train --resume` takes
    the run at once (a second attempt starts), not after the rest of the 300 s lease."""
    import signal

    from db.models import Run
    from db.session import session_scope
    from tests.support import REPO, pipeline_env, wait_until
    from tests.test_lease_faults import make_crops

    make_crops(n_videos=12, per_video=4, size=32)
    env = pipeline_env(DATA_DIR=local_db.data_dir)

    def run():
        with session_scope() as session:
            return [(r.id, r.status, r.progress, r.attempts) for r in session.query(Run)]

    def cli(*args):
        return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "train", *args], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    procs = [cli("--backbone", "tiny", "--weights", "none", "--epochs", "500", "--batch-size", "4")]
    try:
        wait_until(lambda: run() and run()[0][1] == "running" and run()[0][2], 240, 0.2, "the run to train")
        procs[0].send_signal(signal.SIGINT)
        _, err = procs[0].communicate(timeout=120)
        assert "run the command again" in err.strip().splitlines()[-1]
        [(run_id, status, _, attempts)] = run()
        assert status == "running" and attempts == 1  # its holder is gone, its lease not expired
        started = time.monotonic()
        procs.append(cli("--resume", run_id))
        wait_until(lambda: run()[0][3] == 2 and run()[0][1] == "running", 120, 0.2, "the second attempt")
        assert time.monotonic() - started < 120  # not the 300 s lease
        assert procs[1].poll() is None  # following the run, not refused
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.communicate(timeout=120)


@pytest.mark.integration
@pytest.mark.slow
def test_evaluate_while_a_train_runs_on_one_data_dir_is_done_by_its_own_worker(local_db, tmp_path):
    import json
    import signal

    from db.models import Run
    from db.session import session_scope
    from tests.support import REPO, pipeline_env, run_cli, wait_until
    from tests.test_lease_faults import make_crops

    make_crops(n_videos=12, per_video=4, size=32)
    small_model_run(tmp_path)
    env = pipeline_env(DATA_DIR=local_db.data_dir)

    def training():
        with session_scope() as session:
            return [r.status for r in session.query(Run).where(Run.id != "small")]

    train = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "train", "--backbone", "tiny", "--weights",
                              "none", "--epochs", "500", "--batch-size", "4"], env=env, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: training() == ["running"], 240, 0.2, "the training run to start")
        result = run_cli(["evaluate", "small", "--dataset", "nowhere", "--json"], env, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert json.loads(result.stdout)["status"] == "done"
        assert train.poll() is None and training() == ["running"]  # the training command goes on
    finally:
        if train.poll() is None:
            train.send_signal(signal.SIGINT)
            train.communicate(timeout=120)
