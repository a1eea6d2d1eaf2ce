"""`orchestrator serve` end to end: a real uvicorn server on 127.0.0.1 with its embedded predict
worker, API keys, limits, JSON errors, health and metrics."""

from __future__ import annotations

import pytest

from tests.chromium import CHROMIUM, Browser
from tests.judging_support import make_judging_run, pipeline_settings, sample_videos
from tests.serve_support import Server, upload, wait_finished
from tests.support import pipeline_env, run_cli

pytestmark = pytest.mark.integration

RATE = 40  # requests per key per minute in these tests


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    data_dir = root / "data"
    run_id = make_judging_run(data_dir)
    videos = sample_videos(root / "videos")
    env = pipeline_env(DATA_DIR=data_dir, API_REQUESTS_PER_MINUTE=RATE, API_MAX_UPLOAD_MB=1)
    keys = {}
    for name in ("alice", "bob", "carol", "gone"):
        made = run_cli(["api-key", "create", name], env)
        assert made.returncode == 0, made.stderr
        keys[name] = made.stdout.strip()
    assert run_cli(["api-key", "revoke", "gone"], env).returncode == 0
    with Server(env, root, ["--workers", "1"]) as server:
        yield {"server": server, "data_dir": data_dir, "run_id": run_id, "videos": videos, "keys": keys,
               "root": root, "env": env}


def test_health_metrics_and_schema(served):
    server = served["server"]
    with server.client() as client:
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["run_id"] == served["run_id"]
        assert health["checks"]["predict_worker"]["workers"], health
        schema = client.get("/openapi.json").json()
        assert {"/v1/judgements", "/v1/judgements/{judgement_id}", "/healthz", "/metrics"} <= set(schema["paths"])
        assert "multipart/form-data" in schema["paths"]["/v1/judgements"]["post"]["requestBody"]["content"]
        page = client.get("/")
        assert page.status_code == 200 and "<script src=\"/static/app.js\">" in page.text
        assert "http" not in page.text.split("<body>")[1]  # nothing fetched from elsewhere (no CDN)
        metrics = client.get("/metrics").text
    assert 'celebdf_judgements{status="done"}' in metrics and "celebdf_predict_queue_depth" in metrics
    # The server itself never loads TensorFlow (its workers do, in their own processes).
    assert "tensorflow" not in open(f"/proc/{server.process.pid}/maps").read()
    assert "celebdf_judgement_seconds_bucket" in metrics and "celebdf_http_requests_total" in metrics


def test_upload_gives_the_in_process_verdict_and_the_same_bytes_are_judged_once(served):
    from workers.planning.runs import find_run
    from workers.predict import judge_videos

    server, keys, videos = served["server"], served["keys"], served["videos"]
    face, blank = videos[0], videos[-1]
    with server.client(keys["alice"]) as alice:
        sent = [upload(alice, face, explain="true"), upload(alice, blank)]
        assert [r.status_code for r in sent] == [202, 202], [r.text for r in sent]
        ids = [r.json()["id"] for r in sent]
        assert sent[0].headers["location"] == f"/v1/judgements/{ids[0]}"
        assert wait_finished(served["data_dir"], ids) == {ids[0]: "done", ids[1]: "no_face"}
        judged, nothing = (alice.get(f"/v1/judgements/{i}").json() for i in ids)
        sheet = alice.get(judged["explanation_url"])
        again = upload(alice, face, explain="true")
        listed = alice.get("/v1/judgements", params={"limit": 1}).json()
    with pipeline_settings(DATA_DIR=served["data_dir"]):
        (expected,) = judge_videos([face], find_run(served["run_id"]))

    assert judged["verdict"] == expected["label"] and judged["file_name"] == face.name
    assert judged["fake_probability"] == pytest.approx(expected["fake_probability"], abs=1e-4)
    assert [s["p"] for s in judged["scores"]] == pytest.approx(expected["crop_probabilities"], abs=1e-4)
    assert judged["model"]["run_id"] == served["run_id"] and judged["requested_by"] == "key:alice"
    assert nothing["verdict"] is None and nothing["faces"] == 0
    assert sheet.status_code == 200 and sheet.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert again.status_code == 200 and again.json()["id"] == ids[0]  # stored verdict, same record
    assert [j["id"] for j in listed["judgements"]] == [ids[1]] and listed["next"]
    stored = served["data_dir"] / "uploads" / judged["video_sha256"]
    assert stored.read_bytes() == face.read_bytes()  # kept by content hash, never by the client's name

    with server.client(keys["bob"]) as bob:
        twin = upload(bob, face)
        assert twin.status_code == 200, twin.text
        assert twin.json()["id"] != ids[0] and twin.json()["reused_from"] == ids[0]
        assert twin.json()["fake_probability"] == judged["fake_probability"]
        # Another key's judgement does not exist for this one.
        assert bob.get(f"/v1/judgements/{ids[0]}").status_code == 404
        assert bob.get(f"/v1/judgements/{ids[0]}/explain.png").json() == {"error": f"no judgement {ids[0]!r}"}
        assert ids[0] not in {j["id"] for j in bob.get("/v1/judgements").json()["judgements"]}


def test_keys_are_required_and_errors_are_json(served):
    server, keys = served["server"], served["keys"]
    with server.client() as anonymous:
        for path in ("/v1/judgements", "/v1/judgements/abc"):
            answer = anonymous.get(path)
            assert answer.status_code == 401 and set(answer.json()) == {"error"}
        assert anonymous.get("/nowhere").json() == {"error": "Not Found"}
    for key in ("cdf_not-a-key", keys["gone"]):
        with server.client(key) as client:
            assert client.get("/v1/judgements").status_code == 401
    with server.client(keys["carol"]) as carol:
        assert carol.get("/v1/judgements", params={"limit": 0}).status_code == 422
        assert "error" in carol.get("/v1/judgements", params={"limit": 0}).json()


def test_limits_413_415_422_429(served):
    server, keys, root = served["server"], served["keys"], served["root"]
    big = root / "big.mp4"
    big.write_bytes(b"\0" * (1024 * 1024 + 1))
    text = root / "notes.mp4"
    text.write_text("not a video, whatever its name says")
    with server.client(keys["carol"]) as carol:
        too_big = upload(carol, big)
        assert too_big.status_code == 413 and "larger than" in too_big.json()["error"]
        not_multipart = carol.post("/v1/judgements", json={"video": "x"})
        assert not_multipart.status_code == 415 and "multipart" in not_multipart.json()["error"]
        unreadable = upload(carol, text)
        assert unreadable.status_code == 422 and unreadable.json()["error"].startswith("not a readable video")
        assert "\n" not in unreadable.json()["error"]
        codes = [carol.get("/v1/judgements").status_code for _ in range(RATE + 1)]
    assert codes.count(429) >= 1 and codes[0] == 200
    assert not list((served["data_dir"] / "uploads").glob(".upload-*"))  # refused uploads leave nothing


def test_serve_refuses_to_start_without_keys_or_open_without_auth(tmp_path):
    env = pipeline_env(DATA_DIR=tmp_path / "data")
    no_run = run_cli(["serve", "--no-auth"], env)
    assert no_run.returncode == 2 and no_run.stderr.count("\n") == 1 and "no finished training run" in no_run.stderr
    open_wide = run_cli(["serve", "--no-auth", "--host", "0.0.0.0"], env)
    assert open_wide.returncode == 2 and "127.0.0.1" in open_wide.stderr
    no_key = run_cli(["serve"], env)
    assert no_key.returncode == 2 and "api-key create" in no_key.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_the_web_page_signs_in_uploads_and_shows_the_verdict(served, tmp_path):
    server, videos = served["server"], served["videos"]
    key = run_cli(["api-key", "create", "page"], served["env"]).stdout.strip()
    browser = Browser(tmp_path / "profile").open(f"{server.url}/")
    try:
        browser.wait_for("document.readyState === 'complete' && document.getElementById('signin-form') !== null")
        browser.evaluate(f"document.getElementById('key').value = {key!r}; "
                         "document.getElementById('signin-form').requestSubmit(); true")
        browser.wait_for("!document.getElementById('app').hidden", 30)
        browser.evaluate("document.getElementById('explain').checked = true")
        browser.choose_files("#files", [videos[1]])
        judgement_id = browser.wait_for("document.body.dataset.lastVerdict", 180)
        row = browser.evaluate(f"(() => {{ const r = document.querySelector('tr[data-id=\"{judgement_id}\"]');"
                               " return [r.cells[0].textContent, r.dataset.status, r.cells[2].textContent]; })()")
        browser.evaluate(f"document.querySelector('tr[data-id=\"{judgement_id}\"]').click()")
        browser.wait_for("!document.getElementById('sheet').hidden && document.getElementById('sheet').naturalWidth > 0", 30)
        points = browser.evaluate("document.querySelectorAll('#plot circle').length")
        summary = browser.evaluate("document.getElementById('detail-summary').textContent")
        shot = browser.screenshot(tmp_path / "page.png")
    finally:
        browser.close()

    with server.client(key) as client:
        judged = client.get(f"/v1/judgements/{judgement_id}").json()
    assert row == [videos[1].name, "done", judged["verdict"].upper()]
    assert points == judged["faces"] > 0
    assert summary.startswith(f"{judged['verdict'].upper()}: fake probability {judged['fake_probability']:.3f}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20000


def test_embedded_a_local_worker_child_killed_while_judging_is_sent_again_and_ends_done_once(served):
    import os
    import signal

    from tests.support import wait_until
    from tests.test_serve_faults import running_judgement

    server, data_dir, video = served["server"], served["data_dir"], served["videos"][4]
    key = run_cli(["api-key", "create", "killed"], served["env"]).stdout.strip()
    with server.client(key) as client:
        judgement_id = upload(client, video, explain="true").json()["id"]
        running_id, pid = wait_until(lambda: running_judgement(data_dir, None), 120, 0.01, "a running judgement")
        os.kill(pid, signal.SIGKILL)
        assert wait_finished(data_dir, [judgement_id]) == {judgement_id: "done"}
        judged = client.get(f"/v1/judgements/{judgement_id}").json()
    assert running_id == judgement_id and judged["attempts"] == 2 and judged["explanation_url"]
