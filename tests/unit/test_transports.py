"""The requests and aiohttp transports against the real simulator on 127.0.0.1.

Retries use millisecond delays so the suite stays fast; the behaviour under test (what is retried,
what is not, what reaches the server) does not depend on the delay length.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from modelslab_provider.client.aio import AsyncModelsLabClient, close_shared_session
from modelslab_provider.client.core import ClientSettings, Status
from modelslab_provider.client.errors import (
    ModelsLabAuthError,
    ModelsLabNotFoundError,
    ModelsLabRateLimitError,
    ModelsLabTransientError,
)
from modelslab_provider.client.policy import PollPolicy, RetryPolicy
from modelslab_provider.client.sync import ModelsLabClient
from modelslab_provider.simulator import Simulator

KEY = "sk-transport-test-5a4b3c2d1e"
FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05, max_retry_after=0.2)
QUICK_POLLS = PollPolicy(min_interval=0.05, max_interval=0.1)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(port=0, duration=0.2, retry_after=0.05) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _fresh_sim(sim: Simulator) -> None:
    """Forget earlier jobs, requests and per-marker fault counts: each test sees a clean server."""
    sim.reset()


class Sleeps(list[float]):
    """A ``sleep`` that records instead of sleeping long (retries become instant)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(min(seconds, 0.05))


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def settings(url: str, *, timeout: float = 5.0, key: str = KEY) -> ClientSettings:
    return ClientSettings(api_key=key, base_url=url, timeout=timeout, max_retries=FAST.max_attempts)


@pytest.fixture
def client(sim: Simulator, sleeps: Sleeps) -> Iterator[ModelsLabClient]:
    c = ModelsLabClient(settings(sim.url), retry=FAST, sleep=sleeps)
    yield c
    c.close()


@pytest.fixture
async def aclient(sim: Simulator) -> AsyncIterator[AsyncModelsLabClient]:
    yield AsyncModelsLabClient(settings(sim.url), retry=FAST, jitter=lambda: 0.0)
    await close_shared_session()


def prompt(markers: str = "") -> dict[str, Any]:
    """A unique prompt (so its requests can be found in the log) with optional ``[sim:...]`` markers."""
    tag = uuid.uuid4().hex[:12]
    return {"prompt": f"a cat {tag} [sim:{markers}]" if markers else f"a cat {tag}", "model_id": "wan2.2"}


def requests_with(sim: Simulator, text: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if text in str(r.get("body"))]


def polls(sim: Simulator, request_id: str | None) -> int:
    assert request_id is not None
    return int(sim.jobs()[request_id]["polls"])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- sync: happy paths


def test_submit_fetch_and_wait_v6(sim: Simulator, client: ModelsLabClient) -> None:
    submitted = client.submit("text2video", prompt("polls=2 eta=0.1"))
    assert submitted.status is Status.RUNNING
    assert submitted.request_id is not None
    assert submitted.request_id.isdigit()
    assert submitted.fetch_result == f"{sim.url}/api/v6/video/fetch/{submitted.request_id}"
    seen: list[Status] = []
    done = client.wait(
        submitted.request_id,
        fetch_url=submitted.fetch_result,
        eta=submitted.eta,
        poll=QUICK_POLLS,
        on_progress=lambda tracker, result, error: seen.append(result.status if result else Status.FAILED),
    )
    assert done.status is Status.DONE
    assert done.urls
    assert done.urls[0].startswith(f"{sim.url}/files/")
    assert seen == [Status.RUNNING, Status.DONE]
    assert sim.stats()["fetches_after_terminal_per_job"].get(submitted.request_id) is None


def test_v7_submit_and_fetch_use_the_v7_paths(sim: Simulator, client: ModelsLabClient) -> None:
    submitted = client.submit("v7/text-to-video", {**prompt(), "model_id": "seedance-t2v"})
    assert submitted.fetch_result is not None
    assert "/api/v7/video-fusion/fetch/" in submitted.fetch_result
    running = client.fetch(submitted.request_id, "v7")
    assert running.status in (Status.RUNNING, Status.DONE)
    paths = [r["path"] for r in sim.requests() if r.get("job_id") == int(submitted.request_id or 0)]
    assert paths[:2] == [
        "/api/v7/video-fusion/text-to-video",
        f"/api/v7/video-fusion/fetch/{submitted.request_id}",
    ]


def test_key_travels_in_the_body_only(sim: Simulator, client: ModelsLabClient) -> None:
    payload = prompt()
    submitted = client.submit("text2video", payload)
    client.fetch(submitted.request_id)
    client.wallet_balance()
    tag = payload["prompt"]
    entries = requests_with(sim, tag) + [r for r in sim.requests() if r["path"] == "/api/wallet_balance"]
    entries += [r for r in sim.requests() if r.get("job_id") == int(submitted.request_id or 0)]
    assert entries
    for entry in entries:
        assert entry["method"] == "POST"
        assert entry["key_present"]
        assert not entry["key_in_headers"]
        assert not entry["key_in_query"]
        assert KEY not in str(entry)


def test_wallet_balance(client: ModelsLabClient) -> None:
    assert str(client.wallet_balance()) == "43.60 USD"


def test_refused_key_is_an_auth_error_everywhere(sim: Simulator) -> None:
    bad = ModelsLabClient(settings(sim.url, key="invalid-key-123"), retry=FAST)
    with pytest.raises(ModelsLabAuthError):
        bad.submit("text2video", prompt())
    with pytest.raises(ModelsLabAuthError):
        bad.fetch(150000001)
    with pytest.raises(ModelsLabAuthError):
        bad.wallet_balance()


def test_refused_key_as_http_401(sim: Simulator) -> None:
    sim.configure(auth_error_status=401)
    try:
        bad = ModelsLabClient(settings(sim.url, key="invalid-key-123"), retry=FAST)
        with pytest.raises(ModelsLabAuthError):
            bad.wallet_balance()
        with pytest.raises(ModelsLabAuthError):
            bad.fetch(150000001)
    finally:
        sim.configure(auth_error_status=200)


def test_unknown_request_is_not_found_without_retries(
    sim: Simulator, client: ModelsLabClient, sleeps: Sleeps
) -> None:
    with pytest.raises(ModelsLabNotFoundError):
        client.fetch(999999999)
    assert sleeps == []


# --------------------------------------------------------------------------- sync: faults and retries


@pytest.mark.parametrize(
    "fault", ["502", "520", "524", "empty", "truncated", "drop", "429", "429bare", "ratelimit200"]
)
def test_fetch_fault_is_retried_then_succeeds(
    sim: Simulator, client: ModelsLabClient, sleeps: Sleeps, fault: str
) -> None:
    submitted = client.submit("text2video", prompt(f"instant=1 fault={fault} fault_on=1,2 retry_after=0.05"))
    result = client.fetch(submitted.request_id)
    assert result.status is Status.DONE
    assert polls(sim, submitted.request_id) == 3
    assert len(sleeps) == 2
    # capped backoff (<= max_delay) or the server's retry_after (0.05 s) plus up to 1 s of jitter
    assert all(0 < s <= 1.05 for s in sleeps)
    if fault in ("429", "ratelimit200"):
        assert all(s >= 0.05 for s in sleeps)


def test_fetch_fault_on_every_attempt_raises_a_transient_error(
    sim: Simulator, client: ModelsLabClient, sleeps: Sleeps
) -> None:
    submitted = client.submit("text2video", prompt("fault=503 fault_on=1,2,3,4"))
    with pytest.raises(ModelsLabTransientError, match="503") as exc_info:
        client.fetch(submitted.request_id)
    assert "HTML" in str(exc_info.value)
    assert polls(sim, submitted.request_id) == FAST.max_attempts
    assert len(sleeps) == FAST.max_attempts - 1


def test_read_timeout_on_fetch_is_retried(sim: Simulator, sleeps: Sleeps) -> None:
    client = ModelsLabClient(settings(sim.url, timeout=1.0), retry=FAST, sleep=sleeps)
    submitted = client.submit("text2video", prompt("instant=1 fault=slow slow_s=3"))
    result = client.fetch(submitted.request_id)
    assert result.status is Status.DONE
    # the slow first answer timed out and was retried (>= so a loaded machine cannot flake it)
    assert polls(sim, submitted.request_id) >= 2
    assert sleeps


@pytest.mark.parametrize("fault", ["drop", "slow", "524", "empty", "truncated", "500", "502", "503", "520"])
def test_ambiguous_submit_failure_is_not_repeated(sim: Simulator, sleeps: Sleeps, fault: str) -> None:
    """A paid submit that may have reached ModelsLab is never sent twice (no double billing)."""
    client = ModelsLabClient(settings(sim.url, timeout=0.5), retry=FAST, sleep=sleeps)
    payload = prompt(f"submit_fault={fault} slow_s=1")
    with pytest.raises(ModelsLabTransientError) as exc_info:
        client.submit("text2video", payload)
    assert exc_info.value.ambiguous
    assert len(requests_with(sim, payload["prompt"])) == 1
    assert sleeps == []


@pytest.mark.parametrize("fault", ["429", "429bare", "ratelimit200"])
def test_rejected_submit_is_retried_then_accepted(
    sim: Simulator, client: ModelsLabClient, fault: str
) -> None:
    payload = prompt(f"submit_fault={fault} retry_after=0.05")
    submitted = client.submit("text2video", payload)
    assert submitted.status is Status.RUNNING
    assert submitted.request_id is not None
    assert len(requests_with(sim, payload["prompt"])) == 2


def test_rate_limit_that_outlasts_the_attempts_raises_with_the_wait(
    sim: Simulator, client: ModelsLabClient
) -> None:
    payload = prompt("submit_fault=429 submit_fault_times=5 retry_after=0.05")
    with pytest.raises(ModelsLabRateLimitError) as exc_info:
        client.submit("text2video", payload)
    assert exc_info.value.retry_after == pytest.approx(0.05)
    assert len(requests_with(sim, payload["prompt"])) == FAST.max_attempts


def test_connection_refused_is_retried_and_explained(sleeps: Sleeps) -> None:
    client = ModelsLabClient(settings(f"http://127.0.0.1:{closed_port()}"), retry=FAST, sleep=sleeps)
    with pytest.raises(ModelsLabTransientError, match="Could not connect") as exc_info:
        client.submit("text2video", prompt())
    assert not exc_info.value.ambiguous
    assert len(sleeps) == FAST.max_attempts - 1
    assert KEY not in str(exc_info.value)


# --------------------------------------------------------------------------- async


async def test_async_submit_fetch_and_balance(sim: Simulator, aclient: AsyncModelsLabClient) -> None:
    submitted = await aclient.submit("text2video", prompt("instant=1"))
    assert submitted.status is Status.DONE
    fetched = await aclient.fetch(submitted.request_id, fetch_url=submitted.fetch_result)
    assert fetched.status is Status.DONE
    assert fetched.urls == submitted.urls
    assert str(await aclient.wallet_balance()) == "43.60 USD"


@pytest.mark.parametrize("fault", ["502", "empty", "drop", "429", "ratelimit200"])
async def test_async_fetch_fault_is_retried_then_succeeds(
    sim: Simulator, aclient: AsyncModelsLabClient, fault: str
) -> None:
    submitted = await aclient.submit(
        "text2video", prompt(f"instant=1 fault={fault} fault_on=1 retry_after=0.05")
    )
    result = await aclient.fetch(submitted.request_id)
    assert result.status is Status.DONE
    assert polls(sim, submitted.request_id) == 2


async def test_async_timeout_is_retried(sim: Simulator) -> None:
    aclient = AsyncModelsLabClient(settings(sim.url, timeout=1.0), retry=FAST)
    try:
        submitted = await aclient.submit("text2video", prompt("instant=1 fault=slow slow_s=3"))
        result = await aclient.fetch(submitted.request_id)
    finally:
        await close_shared_session()
    assert result.status is Status.DONE
    assert polls(sim, submitted.request_id) >= 2


@pytest.mark.parametrize("fault", ["drop", "slow", "502", "503"])
async def test_async_ambiguous_submit_failure_is_not_repeated(sim: Simulator, fault: str) -> None:
    aclient = AsyncModelsLabClient(settings(sim.url, timeout=0.5), retry=FAST)
    payload = prompt(f"submit_fault={fault} slow_s=1")
    try:
        with pytest.raises(ModelsLabTransientError) as exc_info:
            await aclient.submit("text2video", payload)
    finally:
        await close_shared_session()
    assert exc_info.value.ambiguous
    assert len(requests_with(sim, payload["prompt"])) == 1


async def test_async_connection_refused() -> None:
    aclient = AsyncModelsLabClient(settings(f"http://127.0.0.1:{closed_port()}"), retry=FAST)
    try:
        with pytest.raises(ModelsLabTransientError, match="Could not connect") as exc_info:
            await aclient.fetch(1)
    finally:
        await close_shared_session()
    assert KEY not in str(exc_info.value)


async def test_async_refused_key(sim: Simulator) -> None:
    aclient = AsyncModelsLabClient(settings(sim.url, key="invalid-key-456"), retry=FAST)
    try:
        with pytest.raises(ModelsLabAuthError):
            await aclient.wallet_balance()
        with pytest.raises(ModelsLabAuthError):
            await aclient.fetch(150000001)
    finally:
        await close_shared_session()


async def test_async_clients_on_one_loop_share_one_session(sim: Simulator) -> None:
    from modelslab_provider.client import aio

    try:
        first = AsyncModelsLabClient(settings(sim.url), retry=FAST)
        second = AsyncModelsLabClient(settings(sim.url), retry=FAST)
        await first.wallet_balance()
        session = aio.shared_session()
        await second.wallet_balance()
        assert aio.shared_session() is session
    finally:
        await close_shared_session()


async def test_both_clients_poll_a_batch_tasks_jobs_alike(
    client: ModelsLabClient, aclient: AsyncModelsLabClient
) -> None:
    """A batch task's job, a Video Batch or a single request, reads as the same entries either way."""
    from modelslab_provider.client import batch

    plan = batch.plan_batches([prompt() for _ in range(3)], ["t0", "t1", "t2"])[0]
    submitted = client.submit_batch(batch.build_batch_body("wan2.2", plan))
    single, _ = client.submit_request("text2video", prompt(), track_id="t9")
    time.sleep(0.4)  # the simulator's jobs take 0.2 s
    jobs = [
        {"id": submitted.batch_id, "kind": "batch", "size": 3, "api_version": "v6", "fetch_url": None},
        {
            "id": single.request_id,
            "kind": "single",
            "size": 1,
            "api_version": "v6",
            "fetch_url": None,
            "track_id": "t9",
        },
    ]
    for job in jobs:
        entries = client.fetch_job(job)
        assert entries == await aclient.fetch_job(job)
        assert len(entries) == job["size"]
        assert all(e.status is Status.DONE and e.urls for e in entries)
    assert client.fetch_job(jobs[1])[0].track_id == "t9"
