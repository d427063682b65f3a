"""Tests for the ModelsLab API simulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from modelslab_provider.simulator import SimConfig, SimState, Simulator, start_simulator
from modelslab_provider.simulator.scenario import MarkerError, scenario_from

KEY = "sk-live-SECRET-0123456789abcdef"
FP = hashlib.sha256(KEY.encode()).hexdigest()[:12]
T2V = "/api/v6/video/text2video"
V7_T2V = "/api/v7/video-fusion/text-to-video"


@pytest.fixture(scope="module")
def server() -> Iterator[Simulator]:
    with Simulator(port=0, duration=60, seed=7) as sim:
        yield sim


@pytest.fixture
def sim(server: Simulator) -> Iterator[Simulator]:
    server.reset()
    yield server
    server.reset()


def post(sim: Simulator, path: str, body: dict[str, Any] | None = None, **kw: Any) -> requests.Response:
    kw.setdefault("timeout", 5)
    return requests.post(sim.url + path, json=body, **kw)


def submit(
    sim: Simulator, prompt: str = "a cat surfing", path: str = T2V, key: str | None = KEY, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": prompt, "model_id": "wan2.2", **extra}
    if path.startswith("/api/v7"):
        body["model_id"] = extra.get("model_id", "seedance-t2v")
    if key is not None:
        body["key"] = key
    resp = post(sim, path, body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def fetch(sim: Simulator, job_id: Any, version: str = "v6", key: str = KEY, **kw: Any) -> requests.Response:
    prefix = "/api/v6/video" if version == "v6" else "/api/v7/video-fusion"
    return post(sim, f"{prefix}/fetch/{job_id}", {"key": key}, **kw)


def fetch_json(sim: Simulator, job_id: Any, version: str = "v6") -> dict[str, Any]:
    resp = fetch(sim, job_id, version)
    assert resp.status_code == 200, resp.text
    return resp.json()


# ----- job lifecycle and shapes ------------------------------------------------------------


def test_v6_submit_shape(sim: Simulator) -> None:
    sim.configure(duration=5)
    body = submit(sim, webhook="https://example.com/hook", track_id="t-1", num_frames=25)
    assert body["status"] == "processing"
    assert isinstance(body["id"], int)
    assert body["id"] >= 150000001
    assert body["eta"] == 5
    assert body["fetch_result"] == f"{sim.url}/api/v6/video/fetch/{body['id']}"
    assert body["output"] == []
    assert body["tip"]
    assert body["message"]
    assert len(body["future_links"]) == 1
    assert body["future_links"][0].startswith(sim.url + "/files/")
    meta = body["meta"]
    assert meta["id"] == str(body["id"])
    assert "key" not in meta
    assert meta["prompt"] == "a cat surfing"
    assert meta["num_frames"] == 25
    assert meta["webhook"] == "https://example.com/hook"
    assert meta["track_id"] == "t-1"
    assert meta["file_prefix"] in body["future_links"][0]


def test_ids_increment(sim: Simulator) -> None:
    first = submit(sim)["id"]
    second = submit(sim)["id"]
    assert second == first + 1


def test_v6_fetch_while_processing(sim: Simulator) -> None:
    job_id = submit(sim)["id"]
    body = fetch_json(sim, job_id)
    assert body == {
        "status": "processing",
        "message": "try again later.",
        "output": "",
        "tip": body["tip"],
    }


def test_v7_submit_and_fetch_shape(sim: Simulator) -> None:
    body = submit(sim, "a dog [sim:eta=10]", V7_T2V)
    assert body["fetch_result"] == f"{sim.url}/api/v7/video-fusion/fetch/{body['id']}"
    assert body["eta"] == 10
    running = fetch_json(sim, body["id"], "v7")
    assert running["status"] == "processing"
    assert running["output"] == ""
    assert running["id"] == body["id"]
    assert isinstance(running["eta"], int)
    assert 0 <= running["eta"] <= 10
    assert running["future_links"] == body["future_links"]


def test_fetch_result_uses_request_host(sim: Simulator) -> None:
    resp = post(sim, T2V, {"key": KEY, "prompt": "x"}, headers={"Host": "sim.example:9999"})
    body = resp.json()
    assert body["fetch_result"] == f"http://sim.example:9999/api/v6/video/fetch/{body['id']}"
    assert body["future_links"][0].startswith("http://sim.example:9999/files/")


def test_success_after_duration(sim: Simulator) -> None:
    body = submit(sim, "cat [sim:duration=0.5]")
    assert body["eta"] == 0.5
    assert fetch_json(sim, body["id"])["status"] == "processing"
    time.sleep(0.55)
    done = fetch_json(sim, body["id"])
    assert done["status"] == "success"
    assert done["id"] == body["id"]
    assert done["output"] == body["future_links"]
    assert done["future_links"] == body["future_links"]
    assert len(done["proxy_links"]) == 1
    assert "/proxy/" in done["proxy_links"][0]
    assert done["proxy_links"][0] != done["output"][0]
    assert isinstance(done["generationTime"], float)
    assert done["meta"]["id"] == str(body["id"])


def test_success_after_polls(sim: Simulator) -> None:
    job_id = submit(sim, "cat [sim:polls=3]")["id"]
    assert fetch_json(sim, job_id)["status"] == "processing"
    assert fetch_json(sim, job_id)["status"] == "processing"
    assert fetch_json(sim, job_id)["status"] == "success"
    assert sim.jobs()[str(job_id)]["polls"] == 3


def test_poll_counts_only_for_own_id(sim: Simulator) -> None:
    first = submit(sim, "cat [sim:polls=2]")["id"]
    second = submit(sim, "dog [sim:polls=2]")["id"]
    fetch_json(sim, second)
    fetch_json(sim, 999)
    assert fetch_json(sim, first)["status"] == "processing"
    assert fetch_json(sim, second)["status"] == "success"


def test_eta_float_and_large(sim: Simulator) -> None:
    assert submit(sim, "[sim:eta=2.5]")["eta"] == 2.5
    assert submit(sim, "[sim:eta=960]")["eta"] == 960
    assert submit(sim, "[sim:eta=0]")["eta"] == 0


def test_marker_in_nested_string_value(sim: Simulator) -> None:
    body = submit(sim, "plain", extra={"notes": ["x [sim:outcome=failed duration=0]"]})
    assert fetch_json(sim, body["id"])["status"] == "failed"


def test_unknown_id(sim: Simulator) -> None:
    assert fetch_json(sim, 123) == {"status": "error", "message": "Request not found"}
    assert fetch_json(sim, "abc") == {"status": "error", "message": "Request not found"}
    sim.configure(not_found_status=404)
    assert fetch(sim, 123).status_code == 404


def test_v6_and_v7_fetch_interchangeable_unless_strict(sim: Simulator) -> None:
    job_id = submit(sim)["id"]
    assert fetch_json(sim, job_id, "v7")["status"] == "processing"
    sim.configure(strict_fetch_version=True)
    assert fetch_json(sim, job_id, "v7")["message"] == "Request not found"


def test_running_status_word(sim: Simulator) -> None:
    job_id = submit(sim, "[sim:running_status=queued]")["id"]
    assert fetch_json(sim, job_id)["status"] == "queued"


# ----- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (T2V, {}, "prompt is required"),
        (T2V, {"prompt": "  "}, "prompt is required"),
        ("/api/v6/video/text2video_ultra", {}, "prompt is required"),
        (V7_T2V, {"model_id": "veo-3.1"}, "prompt is required"),
        ("/api/v6/video/img2video", {"prompt": "x"}, "init_image is required"),
        ("/api/v7/video-fusion/image-to-video", {"model_id": "kling-v1.6"}, "init_image is required"),
        (V7_T2V, {"prompt": "x", "model_id": "nope-9"}, "Model not found: nope-9"),
        (V7_T2V, {"prompt": "x"}, "model_id is required"),
    ],
)
def test_validation_errors(sim: Simulator, path: str, body: dict[str, Any], message: str) -> None:
    resp = post(sim, path, {"key": KEY, **body})
    assert resp.status_code == 200
    assert resp.json() == {"status": "error", "message": message}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (T2V, {"prompt": "x", "model_id": "made-up"}),
        ("/api/v6/video/img2video", {"init_image": "http://x/a.png"}),
        ("/api/v6/video/img2video_ultra", {"init_image": "http://x/a.png", "prompt": "x"}),
        ("/api/v6/video/video2video", {"init_video": "http://x/a.mp4", "init_image": "http://x/a.png"}),
        ("/api/v6/video/watermark_remover", {"init_video": "http://x/a.mp4"}),
        (V7_T2V, {"prompt": "x", "model_id": "sim-anything"}),
        ("/api/v7/video-fusion/image-to-video", {"init_image": ["http://x/a.png"], "model_id": "wan2.5"}),
        ("/api/v7/video-fusion/video-to-video", {"init_video": "http://x/a.mp4", "model_id": "sora-2"}),
        (
            "/api/v7/video-fusion/lip-sync",
            {"init_video": "http://x/a.mp4", "init_audio": "http://x/a.mp3", "model_id": "lipsync-2"},
        ),
        (
            "/api/v7/video-fusion/motion-control",
            {"init_image": "http://x/a.png", "init_video": "http://x/a.mp4", "model_id": "hailuo-2.3"},
        ),
    ],
)
def test_every_endpoint_accepts(sim: Simulator, path: str, body: dict[str, Any]) -> None:
    resp = post(sim, path, {"key": KEY, **body}).json()
    assert resp["status"] == "processing"
    version_prefix = path.rsplit("/", 1)[0]
    assert resp["fetch_result"] == f"{sim.url}{version_prefix}/fetch/{resp['id']}"


V7_I2V = "/api/v7/video-fusion/image-to-video"


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            V7_T2V,
            {"model_id": "veo-3.1-fast", "duration": "5"},
            "duration must be one of 4, 6, 8 for veo-3.1-fast",
        ),
        (V7_I2V, {"model_id": "kling-v1-6", "duration": 8}, "duration must be one of 5, 10 for kling-v1-6"),
        (V7_T2V, {"model_id": "sora-2", "duration": "eight"}, "The duration field must be a whole number"),
        (V7_T2V, {"model_id": "veo-3.1", "aspect_ratio": "1:1"}, "aspect_ratio must be one of 16:9, 9:16"),
        (V7_T2V, {"model_id": "veo-3.1", "resolution": 1080}, "resolution must be a string such as 720p"),
        (
            V7_T2V,
            {"model_id": "veo-3.1", "generate_audio": "yes"},
            "generate_audio field must be true or false",
        ),
        (V7_T2V, {"model_id": "veo-3.1", "init_audio": ["a"]}, "The init_audio field must be a string"),
        (V7_I2V, {"model_id": "kling-v1-6", "init_image": ["u", ""]}, "init_image must be an image URL"),
        (V7_I2V, {"model_id": "kling-v1-6", "init_image": ["u"] * 5}, "init_image accepts at most 4 images"),
    ],
)
def test_v7_model_fields_are_validated_as_the_model_pages_document(
    sim: Simulator, path: str, body: dict[str, Any], message: str
) -> None:
    full = {"key": KEY, "prompt": "x", "init_image": "http://x/a.png", **body}
    resp = post(sim, path, full).json()
    assert resp["status"] == "error"
    assert message in resp["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # the examples of https://modelslab.com/models/google/Veo-3.1-fast/api and
        # https://modelslab.com/models/klingai/Kling%20V1.6%20Multi%20Image%20To%20Video/api
        (
            V7_T2V,
            {
                "prompt": "x",
                "aspect_ratio": "16:9",
                "model_id": "veo-3.1-fast",
                "duration": "8",
                "generate_audio": True,
                "negative_prompt": None,
                "enhance_prompt": True,
            },
        ),
        (
            V7_I2V,
            {
                "init_image": ["http://x/1.jpg", "http://x/2.jpg", "http://x/3.jpg", "http://x/4.jpg"],
                "prompt": "x",
                "model_id": "kling-v1-6",
                "duration": "10",
                "aspect_ratio": "16:9",
            },
        ),
        (V7_T2V, {"prompt": "x", "model_id": "veo-3.1", "duration": 6, "resolution": "1080p"}),
        (V7_I2V, {"init_image": "http://x/a.png", "model_id": "wan2.6", "init_audio": "http://x/a.mp3"}),
    ],
)
def test_v7_model_page_examples_are_accepted(sim: Simulator, path: str, body: dict[str, Any]) -> None:
    assert post(sim, path, {"key": KEY, **body}).json()["status"] == "processing"


def test_a_queued_submit_can_still_answer_a_gateway_5xx(sim: Simulator) -> None:
    resp = post(sim, T2V, {"key": KEY, "prompt": "x [sim:submit_fault=502_after]", "model_id": "wan2.2"})
    assert resp.status_code == 502
    assert "<html>" in resp.text
    assert sim.stats()["jobs_created"] == 1  # queued (and billed) although the answer was a 502
    [entry] = [r for r in sim.requests() if r["path"] == T2V]
    assert entry["job_id"] is not None
    again = post(sim, T2V, {"key": KEY, "prompt": "x [sim:submit_fault=502_after]", "model_id": "wan2.2"})
    assert again.status_code == 200  # submit_fault_times=1: the fault fires once per marker


def test_bad_marker_and_bad_json(sim: Simulator) -> None:
    resp = post(sim, T2V, {"key": KEY, "prompt": "[sim:bogus=1]"})
    assert resp.status_code == 400
    assert "bogus" in resp.json()["message"]
    resp = requests.post(sim.url + T2V, data=b"{not json", timeout=5)
    assert resp.status_code == 400
    assert resp.json()["status"] == "error"


# ----- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "API key required"),
        ("", "API key required"),
        ("invalid-key-1", "Invalid API key"),
        ("my-nocredit-key", "Insufficient credits. Please add more credits to continue."),
    ],
)
def test_auth_errors_http_200(sim: Simulator, key: str | None, message: str) -> None:
    body: dict[str, Any] = {"prompt": "x"}
    if key is not None:
        body["key"] = key
    resp = post(sim, T2V, body)
    assert resp.status_code == 200
    assert resp.json() == {"status": "error", "message": message}


@pytest.mark.parametrize(
    ("key", "status"), [(None, 401), ("invalid-x", 401), ("nocredit-x", 402), (KEY, 200)]
)
def test_auth_errors_http_401(sim: Simulator, key: str | None, status: int) -> None:
    sim.configure(auth_error_status=401)
    body: dict[str, Any] = {"prompt": "x"}
    if key is not None:
        body["key"] = key
    assert post(sim, T2V, body).status_code == status


def test_auth_on_fetch_and_account_routes(sim: Simulator) -> None:
    job_id = submit(sim)["id"]
    assert fetch(sim, job_id, key="invalid").json()["message"] == "Invalid API key"
    assert post(sim, "/api/wallet_balance", {}).json()["message"] == "API key required"
    assert post(sim, "/api/v6/processing/request_count", {"key": "invalid"}).json()["status"] == "error"
    assert sim.stats()["fetches_per_job"][str(job_id)] == 0


def test_configured_api_key(sim: Simulator) -> None:
    sim.configure(api_key=KEY)
    assert submit(sim)["status"] == "processing"
    other = post(sim, T2V, {"key": "another-valid-looking-key", "prompt": "x"}).json()
    assert other == {"status": "error", "message": "Invalid API key"}
    cfg = sim.config()
    assert cfg["api_key_set"] is True
    assert cfg["api_key_fingerprint"] == FP
    assert KEY not in json.dumps(cfg)


def test_header_key_is_ignored_but_noted(sim: Simulator) -> None:
    resp = post(sim, T2V, {"prompt": "x"}, headers={"Authorization": f"Bearer {KEY}"})
    assert resp.json()["message"] == "API key required"
    entry = sim.requests()[-1]
    assert entry["key_present"] is False
    assert "Authorization" in entry["headers"]


# ----- account endpoints -------------------------------------------------------------------


def test_wallet_balance(sim: Simulator) -> None:
    body = post(sim, "/api/wallet_balance", {"key": KEY}).json()
    assert body["status"] == "success"
    assert isinstance(body["data"]["balance"], float)
    assert body["data"]["currency"] == "USD"


def test_request_count_get_and_post(sim: Simulator) -> None:
    submit(sim)
    submit(sim)
    submit(sim, "[sim:instant=1]")
    for method in ("GET", "POST"):
        resp = requests.request(
            method, sim.url + "/api/v6/processing/request_count", json={"key": KEY}, timeout=5
        )
        body = resp.json()
        assert body["status"] == "success"
        assert body["processing_count"] == 2
        assert body["message"]
    other = post(sim, "/api/v6/processing/request_count", {"key": "other-key"}).json()
    assert other["processing_count"] == 0


# ----- routes ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v6/video/fetch/150000001", "/api/v7/video-fusion/fetch/1"])
def test_get_on_fetch_is_405_html(sim: Simulator, path: str) -> None:
    resp = requests.get(sim.url + path, timeout=5)
    assert resp.status_code == 405
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "<html>" in resp.text


def test_unknown_route_is_404_json(sim: Simulator) -> None:
    for resp in (
        post(sim, "/api/v6/video/nonsense", {"key": KEY}),
        requests.get(sim.url + "/whatever", timeout=5),
    ):
        assert resp.status_code == 404
        assert resp.json() == {"status": "error", "message": "Not found"}


# ----- files -------------------------------------------------------------------------------


def test_file_serving_and_head(sim: Simulator) -> None:
    resp = requests.get(sim.url + "/files/anything.mp4", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "video/mp4"
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    assert 1000 < len(resp.content) < 20000
    assert resp.content[4:8] == b"ftyp"
    assert b"moov" in resp.content
    assert b"mdat" in resp.content
    head = requests.head(sim.url + "/files/anything.mp4", timeout=5)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == len(resp.content)
    assert head.content == b""
    assert requests.get(sim.url + "/files/anything.gif", timeout=5).status_code == 404


def test_job_file_available_only_when_ready(sim: Simulator) -> None:
    body = submit(sim, "[sim:duration=0.5]")
    url = body["future_links"][0]
    assert requests.get(url, timeout=5).status_code == 404
    time.sleep(0.55)
    done = fetch_json(sim, body["id"])
    assert requests.get(done["output"][0], timeout=5).status_code == 200
    assert requests.get(done["proxy_links"][0], timeout=5).status_code == 200


def test_file_delay_marker_and_config(sim: Simulator) -> None:
    body = submit(sim, "[sim:instant=1 file_delay=0.5]")
    url = body["output"][0]
    assert requests.get(url, timeout=5).status_code == 404
    time.sleep(0.55)
    assert requests.get(url, timeout=5).status_code == 200
    sim.configure(file_delay=0.5)
    url = submit(sim, "[sim:instant=1]")["output"][0]
    assert requests.get(url, timeout=5).status_code == 404


def test_file_ttl(sim: Simulator) -> None:
    url = submit(sim, "[sim:instant=1 file_ttl=0.5]")["output"][0]
    assert requests.get(url, timeout=5).status_code == 200
    time.sleep(0.55)
    assert requests.get(url, timeout=5).status_code == 404


# ----- outcomes and quirks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        ("failed", "Processing failed: simulated failure"),
        ("error", "Generation failed: simulated error"),
        ("cancelled", "Request cancelled: simulated cancellation"),
        ("expired", "Request expired: simulated expiry"),
    ],
)
def test_terminal_outcomes(sim: Simulator, outcome: str, message: str) -> None:
    job_id = submit(sim, f"[sim:outcome={outcome} duration=0]")["id"]
    body = fetch_json(sim, job_id)
    assert body["status"] == outcome
    assert body["message"] == message
    assert body["id"] == job_id


def test_outcome_never(sim: Simulator) -> None:
    job_id = submit(sim, "[sim:outcome=never duration=0 polls=1]")["id"]
    for _ in range(3):
        assert fetch_json(sim, job_id)["status"] == "processing"


def test_messege_spelling(sim: Simulator) -> None:
    running = submit(sim, "[sim:messege=1]")
    assert "messege" in running
    assert "message" not in running
    job_id = running["id"]
    assert fetch_json(sim, job_id)["messege"] == "try again later."
    failed = submit(sim, "[sim:messege=1 outcome=failed duration=0]")["id"]
    body = fetch_json(sim, failed)
    assert body["messege"].startswith("Processing failed")
    assert "message" not in body
    bad = post(sim, V7_T2V, {"key": KEY, "prompt": "[sim:messege=1]", "model_id": "zzz"}).json()
    assert bad == {"status": "error", "messege": "Model not found: zzz"}


def test_instant_success(sim: Simulator) -> None:
    body = submit(sim, "[sim:instant=1]")
    assert body["status"] == "success"
    assert body["output"][0].startswith(sim.url + "/files/")
    assert body["proxy_links"]
    assert body["future_links"]
    assert fetch_json(sim, body["id"])["status"] == "success"
    assert sim.stats()["fetches_after_terminal"] == 1


def test_empty_polls(sim: Simulator) -> None:
    job_id = submit(sim, "[sim:duration=0 empty_polls=2]")["id"]
    for _ in range(2):
        body = fetch_json(sim, job_id)
        assert body["status"] == "success"
        assert body["output"] == []
        assert body["proxy_links"] == []
        assert body["future_links"] == []
    body = fetch_json(sim, job_id)
    assert body["output"]
    assert sim.stats()["fetches_after_terminal"] == 0


def test_empty_polls_forever(sim: Simulator) -> None:
    job_id = submit(sim, "[sim:duration=0 empty_polls=-1]")["id"]
    for _ in range(4):
        assert fetch_json(sim, job_id)["output"] == []


def test_future_only_and_output_str(sim: Simulator) -> None:
    body = fetch_json(sim, submit(sim, "[sim:duration=0 future_only=1]")["id"])
    assert body["status"] == "success"
    assert body["output"] == []
    assert body["proxy_links"] == []
    assert len(body["future_links"]) == 1
    body = fetch_json(sim, submit(sim, "[sim:duration=0 output_str=1]")["id"])
    assert isinstance(body["output"], str)
    assert body["output"].startswith(sim.url)


def test_no_id_and_string_id(sim: Simulator) -> None:
    body = submit(sim, "[sim:no_id=1]", V7_T2V)
    assert "id" not in body
    assert body["fetch_result"].rsplit("/", 1)[1] == body["meta"]["id"]
    body = submit(sim, "[sim:string_id=1 duration=0]")
    assert body["id"] == body["meta"]["id"]
    assert isinstance(body["id"], str)
    assert fetch_json(sim, body["id"])["id"] == body["id"]


# ----- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["500", "502", "503", "520", "524"])
def test_html_faults_then_success(sim: Simulator, code: str) -> None:
    job_id = submit(sim, f"[sim:duration=0 fault={code}]")["id"]
    resp = fetch(sim, job_id)
    assert resp.status_code == int(code)
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "<html>" in resp.text
    assert fetch_json(sim, job_id)["status"] == "success"


def test_fault_on_selected_fetches(sim: Simulator) -> None:
    job_id = submit(sim, "[sim:duration=0 fault=502 fault_on=2,3]")["id"]
    statuses = [fetch(sim, job_id).status_code for _ in range(4)]
    assert statuses == [200, 502, 502, 200]
    assert sim.stats()["faults"] == 2


def test_empty_and_truncated_faults(sim: Simulator) -> None:
    job_id = submit(sim, "[sim:fault=empty]")["id"]
    resp = fetch(sim, job_id)
    assert resp.status_code == 200
    assert resp.content == b""
    job_id = submit(sim, "[sim:fault=truncated]")["id"]
    resp = fetch(sim, job_id)
    assert resp.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.content)


def test_slow_fault(sim: Simulator) -> None:
    job_id = submit(sim, "[sim:duration=0 fault=slow slow_s=0.6]")["id"]
    with pytest.raises(requests.exceptions.ReadTimeout):
        fetch(sim, job_id, timeout=0.2)
    assert fetch_json(sim, job_id)["status"] == "success"


def test_drop_fault(sim: Simulator) -> None:
    job_id = submit(sim, "[sim:duration=0 fault=drop]")["id"]
    with pytest.raises(requests.exceptions.ConnectionError):
        fetch(sim, job_id)
    assert fetch_json(sim, job_id)["status"] == "success"
    dropped = [e for e in sim.requests() if e["job_id"] == job_id and e["path"].endswith(str(job_id))]
    assert dropped[0]["status"] is None


def test_rate_limit_faults(sim: Simulator) -> None:
    job_id = submit(sim, "[sim:fault=429 retry_after=3]")["id"]
    resp = fetch(sim, job_id)
    assert resp.status_code == 429
    assert resp.json()["retry_after"] == 3
    job_id = submit(sim, "[sim:fault=429bare]")["id"]
    resp = fetch(sim, job_id)
    assert resp.status_code == 429
    assert "retry_after" not in resp.text
    with pytest.raises(requests.exceptions.JSONDecodeError):
        resp.json()
    job_id = submit(sim, "[sim:fault=ratelimit200]")["id"]
    body = fetch_json(sim, job_id)
    assert body["status"] == "error"
    assert "try again in 2 seconds" in body["message"]


def test_unknown_and_notfound_faults(sim: Simulator) -> None:
    job_id = submit(sim, "[sim:fault=unknown]")["id"]
    assert fetch_json(sim, job_id)["status"] == "weird_state"
    assert fetch_json(sim, job_id)["status"] == "processing"
    job_id = submit(sim, "[sim:fault=notfound]")["id"]
    assert fetch_json(sim, job_id) == {"status": "error", "message": "Request not found"}
    assert fetch_json(sim, job_id)["status"] == "processing"


def test_submit_fault_counts_per_marker(sim: Simulator) -> None:
    marker = "[sim:submit_fault=503 submit_fault_times=2]"
    body = {"key": KEY, "prompt": f"x {marker}"}
    assert post(sim, T2V, body).status_code == 503
    assert post(sim, T2V, body).status_code == 503
    assert post(sim, T2V, body).json()["status"] == "processing"
    other = {"key": KEY, "prompt": "[sim:submit_fault=ratelimit200]"}
    assert "try again in" in post(sim, T2V, other).json()["message"]
    assert post(sim, T2V, other).json()["status"] == "processing"
    assert sim.stats()["jobs_created"] == 2


def test_submit_drop_variants(sim: Simulator) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        post(sim, T2V, {"key": KEY, "prompt": "[sim:submit_fault=drop]"})
    assert sim.stats()["jobs_created"] == 0
    with pytest.raises(requests.exceptions.ConnectionError):
        post(sim, T2V, {"key": KEY, "prompt": "[sim:submit_fault=drop_after]"})
    assert sim.stats()["jobs_created"] == 1


def test_submit_slow_fault_still_creates_job(sim: Simulator) -> None:
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(sim, T2V, {"key": KEY, "prompt": "[sim:submit_fault=slow slow_s=0.5]"}, timeout=0.2)
    time.sleep(0.5)
    assert sim.stats()["jobs_created"] == 1


# ----- queue limit -------------------------------------------------------------------------


def test_queue_limit_429(sim: Simulator) -> None:
    sim.configure(queue_limit=2, retry_after=30)
    submit(sim)
    submit(sim)
    resp = post(sim, T2V, {"key": KEY, "prompt": "x"})
    assert resp.status_code == 429
    assert resp.json() == {
        "status": "error",
        "message": "Rate limit exceeded. Maximum 2 queued requests allowed.",
        "retry_after": 30,
    }
    assert submit(sim, key="a-different-key")["status"] == "processing"


def test_queue_limit_200_and_release(sim: Simulator) -> None:
    sim.configure(queue_limit=1, rate_limit_style="200", retry_after=5)
    first = submit(sim, "[sim:duration=0.5]")["id"]
    resp = post(sim, T2V, {"key": KEY, "prompt": "x"})
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "error",
        "message": "You have reached the maximum of 1 queued requests, try again in 5 seconds",
    }
    time.sleep(0.55)
    second = submit(sim)["id"]
    assert second == first + 1
    assert sim.fail(second)
    assert submit(sim)["status"] == "processing"
    assert sim.stats()["submit_rejected"]["queue_limit"] == 1


def test_queue_limit_via_admin_http(sim: Simulator) -> None:
    resp = requests.post(sim.url + "/_sim/config", json={"queue_limit": 1}, timeout=5)
    assert resp.json()["queue_limit"] == 1
    submit(sim)
    assert post(sim, T2V, {"key": KEY, "prompt": "x"}).status_code == 429
    bad = requests.post(sim.url + "/_sim/config", json={"queue_limit": -1}, timeout=5)
    assert bad.status_code == 400
    bad = requests.post(sim.url + "/_sim/config", json={"nope": 1}, timeout=5)
    assert bad.status_code == 400


# ----- admin and observability -------------------------------------------------------------


def test_admin_force_and_jobs(sim: Simulator) -> None:
    job_id = submit(sim)["id"]
    other = submit(sim)["id"]
    ok = requests.post(f"{sim.url}/_sim/jobs/{job_id}/complete", timeout=5)
    assert ok.json()["status"] == "ok"
    requests.post(f"{sim.url}/_sim/jobs/{other}/fail", timeout=5)
    assert requests.post(f"{sim.url}/_sim/jobs/1/fail", timeout=5).status_code == 404
    assert fetch_json(sim, job_id)["status"] == "success"
    assert fetch_json(sim, other)["status"] == "failed"
    jobs = requests.get(sim.url + "/_sim/jobs", timeout=5).json()
    entry = jobs[str(job_id)]
    assert entry["endpoint"] == "text2video"
    assert entry["version"] == "v6"
    assert entry["status"] == "success"
    assert entry["polls"] == 1
    assert entry["submitted_at"] <= entry["ready_at"]
    assert entry["scenario"]["outcome"] == "success"


def test_stats_fetches_after_terminal(sim: Simulator) -> None:
    job_id = submit(sim, "[sim:duration=0]")["id"]
    fetch_json(sim, job_id)
    fetch_json(sim, job_id)
    fetch_json(sim, job_id)
    stats = requests.get(sim.url + "/_sim/stats", timeout=5).json()
    assert stats["submits"] == 1
    assert stats["fetches_per_job"][str(job_id)] == 3
    assert stats["fetches_after_terminal"] == 2
    assert stats["fetches_after_terminal_per_job"] == {str(job_id): 2}


def test_reset_restores_config_and_clears(sim: Simulator) -> None:
    sim.configure(queue_limit=3)
    submit(sim)
    assert requests.post(sim.url + "/_sim/reset", timeout=5).json() == {"status": "ok"}
    assert sim.jobs() == {}
    assert sim.requests() == []
    assert sim.config()["queue_limit"] == 0


def test_default_scenario_config(sim: Simulator) -> None:
    sim.configure(scenario="outcome=failed duration=0")
    job_id = submit(sim)["id"]
    assert fetch_json(sim, job_id)["status"] == "failed"
    job_id = submit(sim, "[sim:outcome=success]")["id"]
    assert fetch_json(sim, job_id)["status"] == "success"


def test_request_log_entries(sim: Simulator) -> None:
    job_id = submit(sim, track_id="abc")["id"]
    fetch_json(sim, job_id)
    log = requests.get(sim.url + "/_sim/requests", timeout=5).json()
    assert [e["path"] for e in log] == [T2V, f"/api/v6/video/fetch/{job_id}"]
    first = log[0]
    assert first["method"] == "POST"
    assert first["job_id"] == job_id
    assert first["key_present"] is True
    assert first["key_fingerprint"] == FP
    assert first["key_in_headers"] is False
    assert first["key_in_query"] is False
    assert "Content-Type" in first["headers"]
    assert first["body"] == {"prompt": "a cat surfing", "model_id": "wan2.2", "track_id": "abc"}
    assert log[1]["job_id"] == job_id
    assert log[1]["body"] == {}
    assert isinstance(first["ts"], float)
    assert [e["seq"] for e in sim.requests(since=first["seq"])] == [log[1]["seq"]]
    later = requests.get(sim.url + "/_sim/requests", params={"since": log[1]["seq"]}, timeout=5).json()
    assert later == []


def test_key_never_exposed(
    sim: Simulator, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="modelslab_provider")
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    sim.configure(api_key=KEY)
    job = submit(sim, f"oops my key {KEY} in the prompt [sim:duration=0]")
    assert KEY not in json.dumps(job)
    fetch_json(sim, job["id"])
    post(sim, T2V, {"key": KEY, "prompt": "x"}, headers={"key": KEY}, params={"key": KEY})
    post(sim, T2V, {"key": "wrong" + KEY, "prompt": "x"})
    post(sim, "/api/wallet_balance", {"key": KEY})
    requests.post(sim.url + "/api/v6/video/unknown", data=json.dumps({"key": KEY}) + "junk", timeout=5)
    log = sim.requests()
    entry = log[2]
    assert entry["key_in_headers"] is True
    assert entry["key_in_query"] is True
    assert entry["query"] == ["key"]
    dumps = [
        json.dumps(log),
        json.dumps(sim.jobs()),
        json.dumps(sim.stats()),
        json.dumps(sim.config()),
        requests.get(sim.url + "/_sim/requests", timeout=5).text,
    ]
    for text in dumps:
        assert KEY not in text
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err
    assert KEY not in caplog.text
    assert any(FP in record.getMessage() for record in caplog.records)


# ----- pure state, perf, asyncio and CLI ---------------------------------------------------


def test_marker_parsing() -> None:
    sc = scenario_from("duration=5", ["[sim:polls=2 fault=502 fault_on=1,3 eta=2.5]"])
    assert sc.polls == 2
    assert sc.fault_on == frozenset({1, 3})
    assert sc.eta == 2.5
    assert scenario_from("polls=3", ["[sim:duration=1]"]).polls is None
    for bad in ("[sim:outcome=maybe]", "[sim:fault=teapot]", "[sim:polls=0]", "[sim:duration]"):
        with pytest.raises(MarkerError):
            scenario_from("", [bad])
    with pytest.raises(ValueError, match="rate_limit_style"):
        SimConfig().update(rate_limit_style="418")


def test_many_waiting_jobs_are_cheap() -> None:
    state = SimState(SimConfig(duration=3600, queue_limit=0), seed=1)
    started = time.perf_counter()
    for i in range(5000):
        reply = state.submit("v6", "text2video", {"prompt": f"job {i}"}, KEY, "http://sim")
        assert reply.status == 200
    assert state.processing_count(KEY) == 5000
    reply = state.fetch("v6", str(150000001 + 4999), KEY, "http://sim")
    assert reply.body["status"] == "processing"
    assert time.perf_counter() - started < 5


async def test_start_simulator_asyncio() -> None:
    import aiohttp

    server = await start_simulator(port=0, duration=0)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(server.url + T2V, json={"key": KEY, "prompt": "x"}) as resp:
                job = await resp.json()
            async with session.post(job["fetch_result"], json={"key": KEY}) as resp:
                assert (await resp.json())["status"] == "success"
    finally:
        await server.close()


def test_cli_subprocess() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelslab_provider.simulator", "--port", "0", "-v", "--api-key", KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("ModelsLab simulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        port = int(url.rsplit(":", 1)[1])
        assert port > 0
        resp = requests.post(url + "/api/wallet_balance", json={"key": KEY}, timeout=5)
        assert resp.json()["status"] == "success"
        assert requests.post(url + "/api/wallet_balance", json={"key": "x"}, timeout=5).json()["message"] == (
            "Invalid API key"
        )
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert KEY not in out + err
    assert FP in err


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_stopping_with_a_request_still_being_answered_leaves_no_pending_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client that gave up on a slow answer leaves its handler sleeping; stop() must still end it
    (it used to close the loop under it: "Task was destroyed but it is pending!" at the end of a run)."""
    import gc

    caplog.set_level(logging.ERROR, logger="asyncio")
    with Simulator(port=0):  # nothing in flight: the server thread still ends without an error
        pass
    with Simulator(port=0, duration=0) as sim:
        job = submit(sim, "slow answer [sim:duration=0 fault=slow slow_s=30 fault_on=1]")
        with pytest.raises(requests.Timeout):
            requests.post(f"{sim.url}/api/v6/video/fetch/{job['id']}", json={"key": KEY}, timeout=0.5)
    gc.collect()
    assert [r.getMessage() for r in caplog.records if "destroyed" in r.getMessage()] == []
