"""The paid submit below the operator: its retry rule, queue-full wait, track_id and record.

Pure parts (policy, track ids, fingerprints, request defaults, ``SubmittedRequest``) are tested
as functions; ``ModelsLabClient.submit_request`` runs against the simulator on 127.0.0.1 and the
submits are counted there.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from modelslab_provider.client.core import ClientSettings, Status
from modelslab_provider.client.errors import (
    ModelsLabAmbiguousSubmitError,
    ModelsLabConfigError,
    ModelsLabJobFailedError,
    ModelsLabRateLimitError,
    ModelsLabRequestError,
    ModelsLabTransientError,
)
from modelslab_provider.client.policy import RetryPolicy, never_reached
from modelslab_provider.client.submit import (
    DEFAULT_V6_MODEL,
    SubmittedRequest,
    make_track_id,
    prepare_payload,
    request_fingerprint,
)
from modelslab_provider.client.sync import ModelsLabClient
from modelslab_provider.simulator import Simulator

KEY = "sk-paid-submit-test-7f6e5d4c3b"
FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05, max_retry_after=0.2)

# --------------------------------------------------------------------------- the paid-call rule

GATEWAY_CODES = (500, 502, 503, 504, 520, 524)


@pytest.mark.parametrize(
    ("error", "reached"),
    [
        *[(ModelsLabTransientError(f"HTTP {c}", ambiguous=True, status_code=c), True) for c in GATEWAY_CODES],
        # a 5xx built without the ambiguous flag still counts: it has a status code
        (ModelsLabTransientError("HTTP 502", status_code=502), True),
        (ModelsLabTransientError("HTTP 408", ambiguous=True, status_code=408), True),
        (ModelsLabTransientError("read timeout", ambiguous=True), True),
        (ModelsLabTransientError("connection reset", ambiguous=True), True),
        (ModelsLabTransientError("unreadable 200", ambiguous=True, status_code=200), True),
        (ModelsLabTransientError("Could not connect: connection refused"), False),
        (ModelsLabRateLimitError("HTTP 429", status_code=429, retry_after=1), False),
    ],
)
def test_only_refused_connections_and_429_never_reached_modelslab(error: Exception, reached: bool) -> None:
    assert never_reached(error) is not reached


@pytest.mark.parametrize("code", GATEWAY_CODES)
def test_a_paid_call_is_not_repeated_after_any_5xx_but_a_free_call_is(code: int) -> None:
    error = ModelsLabTransientError(f"HTTP {code}", ambiguous=True, status_code=code)
    assert RetryPolicy().delay(1, error, idempotent=False, jitter=0.5) is None
    assert RetryPolicy().delay(1, error, idempotent=True, jitter=0.5) is not None
    opted_in = RetryPolicy(resubmit_on_ambiguous_failure=True)
    assert opted_in.delay(1, error, idempotent=False, jitter=0.5) is not None


def test_paid_calls_repeat_refused_connections_and_rate_limits_unless_told_not_to() -> None:
    refused = ModelsLabTransientError("connection refused")
    limited = ModelsLabRateLimitError("429", retry_after=2.0, status_code=429)
    assert RetryPolicy().delay(1, refused, idempotent=False, jitter=0.0) is not None
    assert RetryPolicy().delay(1, limited, idempotent=False, jitter=0.0) == pytest.approx(2.0)
    assert RetryPolicy(retry_rate_limits=False).delay(1, limited, idempotent=False, jitter=0.0) is None
    assert RetryPolicy(retry_rate_limits=False).delay(1, refused, idempotent=False, jitter=0.0) is not None


def test_queue_wait_uses_retry_after_spreads_with_jitter_and_stays_in_the_budget() -> None:
    wait = RetryPolicy.queue_wait
    assert wait(1, 10.0, 100.0, 0.0) == pytest.approx(10.0)
    assert wait(1, 10.0, 100.0, 0.999) == pytest.approx(14.995)
    assert wait(1, 10.0, 3.0, 0.5) == pytest.approx(3.0)
    assert wait(1, 10.0, 0.0, 0.5) is None
    assert wait(1, None, -1.0, 0.5) is None
    # without retry_after: 5 s doubling, capped at 60 s
    assert [wait(n, None, 1e9, 0.0) for n in (1, 2, 3, 4, 5, 9)] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


# --------------------------------------------------------------------------- track_id, fingerprint, defaults

SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def test_track_id_is_deterministic_short_url_safe_and_unique_per_try() -> None:
    parts = ("daily_videos", "scheduled__2026-01-01T00:00:00+00:00", "generate", 3, 1)
    first = make_track_id(*parts)
    assert first == make_track_id(*parts)
    assert SAFE.match(first), first
    assert first.startswith("daily_videos.generate")
    others = {
        make_track_id(*parts[:4], 2),
        make_track_id(*parts[:3], 4, 1),
        make_track_id(parts[0], "manual__2026-01-02", *parts[2:]),
        make_track_id("other", *parts[1:]),
    }
    assert first not in others
    assert len(others) == 4


def test_track_id_stays_readable_when_short_and_is_hashed_when_long() -> None:
    assert make_track_id("d", "r1", "t", -1, 1) == "d.t.r1.m-1.t1"
    long = make_track_id("d" * 200, "run", "t" * 200, -1, 1)
    assert SAFE.match(long)
    assert len(long) <= 64


def test_fingerprint_includes_the_servers_origin_and_never_the_key() -> None:
    payload = {"prompt": "a cat", "model_id": "wan2.2"}
    prod = request_fingerprint("https://modelslab.com", "text2video", payload)
    assert prod == request_fingerprint("https://modelslab.com/", "v6/text2video", dict(payload))
    assert prod != request_fingerprint("http://127.0.0.1:8765", "text2video", payload)
    assert prod != request_fingerprint("https://eu.modelslab.com", "text2video", payload)
    assert prod != request_fingerprint("https://modelslab.com", "img2video", payload)
    assert prod != request_fingerprint("https://modelslab.com", "text2video", {**payload, "seed": 1})
    client = ModelsLabClient(ClientSettings(api_key=KEY, base_url="https://modelslab.com"))
    assert client.fingerprint("text2video", {"prompt": "a cat"}) == prod  # the default model included
    assert KEY not in prod


def test_v6_text_and_image_get_the_documented_model_unless_given() -> None:
    assert prepare_payload("text2video", {"prompt": "x"})["model_id"] == DEFAULT_V6_MODEL == "wan2.2"
    assert prepare_payload("img2video", {"init_image": "u", "model_id": ""})["model_id"] == "wan2.2"
    assert prepare_payload("text2video", {"prompt": "x", "model_id": "cogvideox"})["model_id"] == "cogvideox"
    assert "model_id" not in prepare_payload("text2video_ultra", {"prompt": "x"})
    assert "model_id" not in prepare_payload("watermark_remover", {"init_video": "u"})


@pytest.mark.parametrize("endpoint", ["v7/text-to-video", "image-to-video", "lip-sync"])
def test_a_v7_call_without_model_id_fails_at_once_naming_it(endpoint: str) -> None:
    with pytest.raises(ModelsLabConfigError, match="model_id is required"):
        prepare_payload(endpoint, {"prompt": "x", "model_id": " "})
    assert prepare_payload(endpoint, {"model_id": "veo-3.1"}) == {"model_id": "veo-3.1"}


def test_submitted_request_round_trips_through_the_store_and_rejects_junk() -> None:
    job = SubmittedRequest("150000001", "v7", "https://x.test/f/1", 1700000000.0, 42.0, "ab" * 16, "t-1")
    assert SubmittedRequest.from_dict(job.to_dict()) == job
    with pytest.raises(AttributeError):
        job.request_id = "2"  # type: ignore[misc]
    old = {"request_id": "1", "api_version": "v6", "fingerprint": "f", "eta": True, "submitted_at": "x"}
    restored = SubmittedRequest.from_dict(old)
    assert restored is not None
    assert restored.eta is None
    assert restored.track_id is None
    assert abs(restored.submitted_at - time.time()) < 5
    v8 = {"request_id": "1", "api_version": "v8", "fingerprint": "f"}
    for junk in (None, "150", {"request_id": 1}, v8):
        assert SubmittedRequest.from_dict(junk) is None


# --------------------------------------------------------------------------- submit_request on the simulator


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(port=0, duration=0.2, retry_after=0.05) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").reset()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(min(seconds, 0.02))


def make_client(url: str, sleeps: Sleeps | None = None) -> ModelsLabClient:
    settings = ClientSettings(api_key=KEY, base_url=url, timeout=2, max_retries=FAST.max_attempts)
    return ModelsLabClient(settings, retry=FAST, sleep=sleeps if sleeps is not None else Sleeps())


def prompt(markers: str = "") -> dict[str, Any]:
    tag = uuid.uuid4().hex[:12]
    return {"prompt": f"paid {tag} [sim:{markers}]" if markers else f"paid {tag}"}


def submits(sim: Simulator, payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if "/fetch/" not in r["path"] and payload["prompt"] in str(r["body"])]


def test_submit_request_sends_the_track_id_and_records_the_request(sim: Simulator) -> None:
    client = make_client(sim.url)
    payload = prompt("eta=7")
    job, result = client.submit_request("text2video", payload, track_id="d.t.r.m-1.t1")
    assert result.status is Status.RUNNING
    assert isinstance(job, SubmittedRequest)
    assert job.request_id == result.request_id
    assert job.api_version == "v6"
    assert job.track_id == "d.t.r.m-1.t1"
    assert job.eta == 7
    assert job.fetch_url is not None
    assert job.fetch_url.endswith(f"/fetch/{job.request_id}")
    assert job.fingerprint == client.fingerprint("text2video", payload)
    [sent] = submits(sim, payload)
    assert sent["body"]["track_id"] == "d.t.r.m-1.t1"
    assert sent["body"]["model_id"] == "wan2.2"
    # a track_id in the payload wins
    own = {**prompt(), "track_id": "mine-1"}
    job, _ = client.submit_request("text2video", own, track_id="ignored")
    assert job.track_id == "mine-1"
    assert submits(sim, own)[0]["body"]["track_id"] == "mine-1"


@pytest.mark.parametrize("fault", ["502_after", "500_after", "503", "520_after", "524", "drop_after"])
def test_an_ambiguous_submit_is_sent_once_and_names_the_track_id(sim: Simulator, fault: str) -> None:
    sleeps = Sleeps()
    payload = prompt(f"submit_fault={fault}")
    with pytest.raises(ModelsLabAmbiguousSubmitError, match=r"track_id d\.t\.r\.m-1\.t1") as exc_info:
        make_client(sim.url, sleeps).submit_request("text2video", payload, track_id="d.t.r.m-1.t1")
    assert "never paid for twice" in str(exc_info.value)
    assert exc_info.value.track_id == "d.t.r.m-1.t1"
    assert len(submits(sim, payload)) == 1
    assert sleeps == []
    if fault.endswith("_after"):
        assert sim.stats()["jobs_created"] == 1  # the gateway's 5xx came after the job was queued


def test_the_opt_in_resubmits_after_an_ambiguous_failure(sim: Simulator) -> None:
    payload = prompt("submit_fault=502_after")
    job, _ = make_client(sim.url).submit_request(
        "text2video", payload, track_id="t", resubmit_on_ambiguous_failure=True
    )
    assert job.request_id
    assert len(submits(sim, payload)) == 2
    assert sim.stats()["jobs_created"] == 2  # the documented price of the opt-in: possibly paid twice


def test_a_refused_connection_is_retried_and_stays_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    with pytest.raises(ModelsLabTransientError, match="Could not connect") as exc_info:
        make_client(f"http://127.0.0.1:{port}", sleeps).submit_request("text2video", prompt(), track_id="t")
    assert not isinstance(exc_info.value, ModelsLabAmbiguousSubmitError)
    assert never_reached(exc_info.value)
    assert len(sleeps) == FAST.max_attempts - 1


def test_queue_full_waits_through_the_callback_and_resubmits(sim: Simulator) -> None:
    sleeps = Sleeps()
    payload = prompt("submit_fault=ratelimit200 submit_fault_times=2 retry_after=0.05")
    seen: list[tuple[float, int]] = []
    job, _ = make_client(sim.url, sleeps).submit_request(
        "text2video",
        payload,
        track_id="t",
        deadline=time.time() + 30,
        on_queue_full=lambda exc, delay, attempts: seen.append((delay, attempts)),
    )
    assert job.request_id
    assert [a for _, a in seen] == [1, 2]
    assert all(0.05 <= d <= 0.075 for d, _ in seen), seen
    assert sleeps == [d for d, _ in seen]  # the client's own retry did not touch rate limits
    assert len(submits(sim, payload)) == 3
    assert sim.stats()["jobs_created"] == 1


def test_queue_full_past_the_deadline_or_without_one_fails_retryably(sim: Simulator) -> None:
    payload = prompt("submit_fault=429 submit_fault_times=50 retry_after=0.05")
    client = make_client(sim.url)
    with pytest.raises(ModelsLabRateLimitError, match="Nothing was submitted") as exc_info:
        client.submit_request("text2video", payload, track_id="t")
    assert "gave up after 1 attempt" in str(exc_info.value)
    with pytest.raises(ModelsLabRateLimitError, match="queue is full"):
        client.submit_request("text2video", payload, track_id="t", deadline=time.time() + 0.3)
    assert sim.stats()["jobs_created"] == 0


def test_a_callback_can_take_the_wait_over(sim: Simulator) -> None:
    class Deferred(Exception):
        pass

    def defer(exc: ModelsLabRateLimitError, delay: float, attempts: int) -> None:
        raise Deferred(attempts)

    payload = prompt("submit_fault=429 retry_after=0.05")
    with pytest.raises(Deferred):
        make_client(sim.url).submit_request(
            "text2video", payload, track_id="t", deadline=time.time() + 30, on_queue_full=defer
        )
    assert len(submits(sim, payload)) == 1


def test_refused_and_failed_at_once_submits_raise_their_typed_errors(sim: Simulator) -> None:
    client = make_client(sim.url)
    with pytest.raises(ModelsLabRequestError, match="prompt is required"):
        client.submit_request("text2video", {"negative_prompt": "x"}, track_id="t")
    with pytest.raises(ModelsLabConfigError, match="model_id is required"):
        client.submit_request("v7/text-to-video", prompt(), track_id="t")
    payload = prompt("instant=1 outcome=failed")
    with pytest.raises(ModelsLabJobFailedError, match="failed at once"):
        client.submit_request("text2video", payload, track_id="t")


async def test_plain_submits_fill_in_the_default_model_too(sim: Simulator) -> None:
    from modelslab_provider.client.aio import AsyncModelsLabClient, close_shared_session

    sync_payload, async_payload = prompt(), prompt()
    make_client(sim.url).submit("text2video", sync_payload)
    try:
        settings = ClientSettings(api_key=KEY, base_url=sim.url, timeout=2)
        await AsyncModelsLabClient(settings, retry=FAST).submit(
            "img2video", {**async_payload, "init_image": "u"}
        )
        with pytest.raises(ModelsLabConfigError, match="model_id is required"):
            await AsyncModelsLabClient(settings, retry=FAST).submit("v7/text-to-video", prompt())
    finally:
        await close_shared_session()
    assert submits(sim, sync_payload)[0]["body"]["model_id"] == "wan2.2"
    assert submits(sim, async_payload)[0]["body"]["model_id"] == "wan2.2"


# --------------------------------------------------------------------------- the batch submit, same rule


def batch_body(markers: str, n: int = 3) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:12]
    return {
        "model_id": "wan2.2",
        "requests": [
            {"prompt": f"batch {tag} {i} [sim:{markers}]", "track_id": f"bt-{tag}-{i}"} for i in range(n)
        ],
    }


def batch_submits(sim: Simulator, body: dict[str, Any]) -> list[dict[str, Any]]:
    tag = body["requests"][0]["track_id"]
    return [r for r in sim.requests() if r["path"] == "/api/v6/video/batch" and tag in str(r["body"])]


@pytest.mark.parametrize("fault", ["503", "502_after", "drop_after"])
def test_an_ambiguous_batch_submit_is_sent_once_and_names_every_track_id(sim: Simulator, fault: str) -> None:
    sleeps = Sleeps()
    body = batch_body(f"submit_fault={fault}")
    with pytest.raises(ModelsLabAmbiguousSubmitError, match=r"batch for inputs 0\.\.2") as exc_info:
        make_client(sim.url, sleeps).submit_batch(body, what="batch for inputs 0..2")
    for entry in body["requests"]:
        assert entry["track_id"] in str(exc_info.value)
    assert len(batch_submits(sim, body)) == 1
    assert sleeps == []


def test_a_full_queue_refusing_a_batch_is_waited_out_within_the_deadline(sim: Simulator) -> None:
    body = batch_body("duration=0.2 submit_fault=429 submit_fault_times=2 retry_after=0.05")
    seen: list[int] = []
    submitted = make_client(sim.url).submit_batch(
        body, deadline=time.time() + 30, on_queue_full=lambda exc, delay, attempts: seen.append(attempts)
    )
    assert submitted.batch_id
    assert seen == [1, 2]
    assert len(batch_submits(sim, body)) == 3
    # without a deadline (or past it) the refusal comes back at once, retryable: nothing was queued
    refused = batch_body("submit_fault=429 submit_fault_times=50 retry_after=0.05")
    with pytest.raises(ModelsLabRateLimitError, match="Nothing was submitted"):
        make_client(sim.url).submit_batch(refused)
    assert len(batch_submits(sim, refused)) == 1
