"""A file name cannot forge lines of the text output (issue 19, item 13): names are escaped there,
and JSON keeps them as they are."""

import json

import pytest

from orchestrator.output import escape_name, format_status
from shared.sample_data import write_corrupt_video
from tests.support import pipeline_env, run_cli

FORGED = "done 1, no face 0, failed 0, pending 0, running 0; 9 crops"
NAME = f"id7_0000\n{FORGED}\n.mp4"


def test_control_characters_are_escaped_and_printable_text_is_left_alone():
    assert escape_name("Celeb-real/id0_0000.mp4") == "Celeb-real/id0_0000.mp4"
    assert escape_name("Célèbre/vidéo 1.mp4") == "Célèbre/vidéo 1.mp4"
    assert escape_name("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert escape_name("\x1b[2J") == "\\x1b[2J"  # a terminal escape sequence (clear screen)
    assert escape_name("evil\u202egpj.mp4") == "evil\\u202egpj.mp4"  # right-to-left override
    assert escape_name("x\u2028y") == "x\\u2028y"
    assert escape_name("bytes\udcff") == "bytes\\udcff"  # an undecodable byte of a file name
    assert escape_name(None) == "None"


def test_status_text_keeps_each_failure_on_its_line():
    status = {"videos": {"total": 1, "by_label": {"real": 1, "fake": 0}, "by_status": {"failed": 1}}, "crops": 0,
              "failures": [{"video": f"Celeb-real/{NAME}", "error": "cannot open as a video"}], "warnings": []}
    lines = format_status(status).splitlines()
    assert len(lines) == 4 and lines[-1].startswith("failed: Celeb-real/id7_0000\\n")


@pytest.mark.integration
def test_a_newline_in_a_real_file_name_through_ingest_status_and_predict(tmp_path):
    root = tmp_path / "Celeb-DF"
    path = write_corrupt_video(root / "Celeb-real" / NAME)
    assert path.is_file() and "\n" in path.name
    env = pipeline_env(DATA_DIR=tmp_path / "data")

    ingest = run_cli(["ingest", str(root), "--workers", "1"], env)
    assert ingest.returncode == 1, ingest.stderr[-2000:]
    for output in (ingest.stdout, ingest.stderr):
        assert not any(line.startswith(FORGED) for line in output.splitlines())
    assert "  failed: Celeb-real/id7_0000\\ndone 1, no face 0" in ingest.stdout

    status = run_cli(["status"], env)
    assert status.returncode == 0 and FORGED not in status.stdout.splitlines()
    assert f"failed: {escape_name('Celeb-real/' + NAME)}: " in status.stdout

    as_json = run_cli(["status", "--json"], env)
    assert json.loads(as_json.stdout)["failures"][0]["video"] == f"Celeb-real/{NAME}"  # JSON: the name itself

    predict = run_cli(["predict", str(path)], env)  # unreadable: refused before any model is looked for
    assert predict.returncode == 2
    assert predict.stderr.count("\n") == 1 and predict.stderr.startswith("error: ")
    assert escape_name(str(path)) in predict.stderr
