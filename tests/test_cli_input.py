"""Bad input gets one line on stderr and exit code 2, never a traceback."""

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
    ]
    for args, needle in cases:
        assert_one_line_error(run_cli(args, env), 2, needle)
    assert run_cli_json(["datasets"], env) == []
    assert json.loads(run_cli(["status", "--json"], env).stdout)["videos"]["total"] == 0
