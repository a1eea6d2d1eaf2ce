"""Bad input gets one line on stderr and exit code 2, never a traceback."""

from pathlib import Path

import pytest

from tests.support import pipeline_env, run_cli


@pytest.fixture
def env(tmp_path):
    return pipeline_env(DATA_DIR=tmp_path / "data")


def assert_one_line_error(result, code, *needles):
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_missing_dataset(env, tmp_path):
    assert_one_line_error(run_cli(["ingest", str(tmp_path / "nowhere")], env), 2, "no such directory")


def test_not_a_celeb_df_layout_names_the_expected_folders(env, tmp_path):
    (tmp_path / "stuff").mkdir()
    result = run_cli(["ingest", str(tmp_path / "stuff")], env)
    assert_one_line_error(result, 2, "Celeb-real/", "Celeb-synthesis/", "YouTube-real/")


@pytest.mark.parametrize("option", [["--every", "0"], ["--min-confidence", "1.5"], ["--size", "4"],
                                    ["--margin", "-1"], ["--workers", "0"]])
def test_bad_ingest_options(env, sample_root, option):
    assert_one_line_error(run_cli(["ingest", str(sample_root), *option], env), 2, option[0])


def test_unreachable_database_is_one_line(env, sample_root):
    env = dict(env, DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none",
               CELERY_BROKER_URL="redis://127.0.0.1:6379/14")
    result = run_cli(["status"], env)
    assert_one_line_error(result, 1, "database")


def test_sample_data_refuses_a_non_empty_directory(env, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert_one_line_error(run_cli(["sample-data", str(tmp_path / "full")], env), 2, "not an empty directory")


@pytest.mark.parametrize("option", [["--every", "nan"], ["--every", "inf"], ["--size", "1000000"],
                                    ["--margin", "inf"]])
def test_non_finite_or_absurd_ingest_options(env, sample_root, option):
    result = run_cli(["ingest", str(sample_root), *option], env)
    assert_one_line_error(result, 2, option[0])
    assert not (Path(env["DATA_DIR"]) / "broker").exists()  # bad input leaves DATA_DIR alone


def test_a_usage_error_is_one_line(env):
    assert_one_line_error(run_cli(["ingest"], env), 2, "Missing argument", "orchestrator ingest --help")


@pytest.mark.parametrize("url, needle", [
    ("notaurl", "not a database URL"),
    ("mysql://user@host/db", "no driver"),
    ("sqlite:////nonexistent-celebdf/x/y.db", "does not exist"),
])
def test_bad_database_urls(env, url, needle):
    assert_one_line_error(run_cli(["status"], dict(env, DATABASE_URL=url)), 2, "DATABASE_URL", needle)
    assert not Path("/nonexistent-celebdf").exists()


def test_data_dir_that_is_a_file(env, tmp_path):
    (tmp_path / "file").write_text("x")
    assert_one_line_error(run_cli(["status"], dict(env, DATA_DIR=str(tmp_path / "file"))), 2, "not a directory")


def test_data_dir_under_a_file_is_not_writable(env, tmp_path, sample_root):
    """Root can write anywhere chmod forbids: a folder under a regular file is unwritable for anyone."""
    (tmp_path / "file").write_text("x")
    result = run_cli(["ingest", str(sample_root)], dict(env, DATA_DIR=str(tmp_path / "file" / "data")))
    assert_one_line_error(result, 2, "file")


def test_broker_down_is_one_line_and_marks_nothing_enqueued(env, tmp_path, sample_root):
    from sqlalchemy import create_engine, text

    db = tmp_path / "pipeline.db"
    env = dict(env, DATABASE_URL=f"sqlite:///{db}", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    assert run_cli(["db", "upgrade"], env).returncode == 0
    assert_one_line_error(run_cli(["ingest", str(sample_root)], env), 1, "broker", "refused")
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        enqueued = conn.execute(text("SELECT count(*) FROM videos WHERE enqueued_at IS NOT NULL")).scalar()
    engine.dispose()
    assert enqueued == 0  # nothing is marked sent: the next run sends every video


def test_a_failed_send_leaves_the_video_unmarked(local_db, monkeypatch):
    """The broker fails after the first message: only that video is marked enqueued."""
    from kombu.exceptions import OperationalError
    from sqlalchemy import select

    from db.models import Dataset, Video
    from db.session import session_scope
    from shared.errors import WorkFailed
    from workers.planning import ingest

    with session_scope() as session:
        session.add(Dataset(id=1, root="/x", name="x"))
        session.flush()
        for i in (1, 2, 3):
            session.add(Video(id=i, dataset_id=1, rel_path=f"a/{i}.mp4", folder="a", label=0, group_key=str(i)))
    calls = []

    def send_task(*args, **kwargs):
        calls.append(kwargs["kwargs"]["video_id"])
        if len(calls) > 1:
            raise OperationalError("connection refused")

    monkeypatch.setattr(ingest.app, "send_task", send_task)
    with pytest.raises(WorkFailed, match="1 of 3 videos sent"):
        ingest.enqueue_videos(None, [(1, "a/1.mp4"), (2, "a/2.mp4"), (3, "a/3.mp4")], {})
    with session_scope() as session:
        marked = session.scalars(select(Video.id).where(Video.enqueued_at.is_not(None))).all()
    assert marked == [1]


def test_predict_a_directory(env, tmp_path):
    assert_one_line_error(run_cli(["predict", str(tmp_path)], env), 2, "is a directory")


def test_predict_on_the_queue_takes_no_other_video_rule(env, tmp_path):
    """A queued verdict is reused per model, so the queue judges by the run's own rule only."""
    assert_one_line_error(run_cli(["predict", "--queue", "--aggregate", "max", str(tmp_path)], env), 2,
                          "--aggregate goes without --queue")


def test_read_only_commands_work_on_a_read_only_data_dir(env, tmp_path):
    """An immutable DATA_DIR (chattr +i binds root too; skipped where the filesystem refuses it)."""
    import subprocess

    assert run_cli(["db", "upgrade"], env).returncode == 0
    data_dir = Path(env["DATA_DIR"])
    if subprocess.run(["chattr", "+i", str(data_dir)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here: no folder is read-only for root")
    try:
        for command in (["status"], ["export"], ["runs"]):
            result = run_cli(command, env)
            assert result.returncode == 0 and result.stderr.strip() == "", (command, result.stderr)
    finally:
        subprocess.run(["chattr", "-i", str(data_dir)], check=True)


def test_resume_an_unknown_run(env):
    assert_one_line_error(run_cli(["train", "--resume", "no-such-run"], env), 2, "no run 'no-such-run'")


def test_a_setting_that_is_not_a_number(env):
    assert_one_line_error(run_cli(["status"], dict(env, TRAIN_LEASE_S="abc")), 2, "TRAIN_LEASE_S='abc': not a float")


def test_bad_dataset_input_of_every_new_kind_is_one_line_and_records_nothing(env, tmp_path):
    import json

    from tests.support import run_cli_json

    broken = tmp_path / "dfdc"
    (broken / "part0").mkdir(parents=True)
    (broken / "part0" / "metadata.json").write_text('{"a.mp4": {"label": "FAKE",')
    ffpp = tmp_path / "ffpp"
    (ffpp / "original_sequences" / "youtube" / "c23" / "videos").mkdir(parents=True)
    (tmp_path / "real").mkdir()
    folders = tmp_path
    cases = [
        (["ingest", str(ffpp), "--format", "nope"], "unknown --format 'nope'"),
        (["ingest", str(broken)], "metadata.json: invalid JSON"),
        (["ingest", str(ffpp), "--splits", str(tmp_path / "no-splits")], "no such splits directory"),
        (["ingest", str(ffpp), "--compression", "c99"], "unknown FF++ compression"),
        (["ingest", str(folders), "--format", "folders", "--compression", "c40"], "only apply to --format ffpp"),
        (["ingest", str(ffpp), "--frames", "8", "--every", "3"], "exclusive"),
        (["ingest", str(ffpp), "--frames", "0"], "--frames must be at least 1"),
        (["evaluate", "--dataset", "celebdf"], "no finished training run"),
        (["evaluate"], "--dataset NAME is required"),
        (["status", "--dataset", "nope"], "no dataset 'nope'"),
        (["sample-data", str(tmp_path / "new"), "--format", "nope"], "unknown --format 'nope'"),
        (["sample-data", str(tmp_path / "new"), "--reals", "4", "--identities", "5"], "--identities must be between"),
        (["sample-data", str(tmp_path / "new"), "--youtube", "0"], "--youtube must be at least 1"),
    ]
    for args, needle in cases:
        assert_one_line_error(run_cli(args, env), 2, needle)
    assert run_cli_json(["datasets"], env) == []
    assert json.loads(run_cli(["status", "--json"], env).stdout)["videos"]["total"] == 0


def test_a_full_database_disk_says_to_free_space_and_run_again(capsys, monkeypatch, tmp_path):
    """SQLite on a full disk: one line that names the database and says what to do (issue 19)."""
    from sqlalchemy.exc import OperationalError

    from orchestrator.cli import fail_on_service_or_os_error
    from shared.settings import reset_settings

    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    reset_settings()
    try:
        with pytest.raises(SystemExit) as exited:
            fail_on_service_or_os_error(OperationalError("INSERT ...", {}, Exception("database or disk is full")))
    finally:
        reset_settings()
    assert exited.value.code == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: database sqlite:") and "database or disk is full" in line
    assert line.endswith("free space and run the same command again: what was recorded is kept")
