"""VideoFetchTrigger run as an async generator against the simulator on 127.0.0.1, and the shared
event validation :func:`urls_from_event`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSensorTimeout

from modelslab_provider.client.aio import AsyncModelsLabClient, close_shared_session
from modelslab_provider.client.core import ClientSettings
from modelslab_provider.client.errors import ModelsLabConfigError
from modelslab_provider.simulator import start_simulator
from modelslab_provider.triggers.video import CLASSPATH, VideoFetchTrigger, urls_from_event

KEY = "sk-unit-trigger-5e1f0a77c2"
FAST = {"min_interval": 0.05, "max_interval": 0.2, "interval": 0.05, "max_empty_success_polls": 3}


class Sim:
    """The simulator on this test's event loop, plus helpers to submit jobs and set the connection."""

    def __init__(self, server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = server
        self.url = server.url
        self.state = server.state
        self._monkeypatch = monkeypatch
        self.connect(KEY)

    def connect(self, key: str, conn_id: str = "modelslab_default", **extra: Any) -> None:
        conn = {
            "conn_type": "modelslab",
            "password": key,
            "host": self.url,
            "extra": {"max_retries": 1, **extra},
        }
        self._monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))

    async def submit(self, scenario: str, endpoint: str = "text2video") -> dict[str, Any]:
        client = AsyncModelsLabClient(ClientSettings(api_key=KEY, base_url=self.url))
        payload = {"prompt": f"a cat [sim:{scenario}]"}
        if endpoint.startswith("v7/"):
            payload["model_id"] = "sim-video"
        result = await client.submit(endpoint, payload)
        assert result.request_id is not None
        return {"id": result.request_id, "eta": result.eta, "fetch_result": result.fetch_result}

    def polls(self, job_id: str) -> int:
        return self.state.jobs_snapshot()[str(job_id)]["polls"]

    def fetch_paths(self) -> list[str]:
        return [r["path"] for r in self.state.requests_snapshot() if "/fetch/" in r["path"]]


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Sim]:
    server = await start_simulator(duration=0.3, retry_after=0.05)
    try:
        yield Sim(server, monkeypatch)
    finally:
        await close_shared_session()
        await server.close()


async def run(trigger: VideoFetchTrigger) -> dict[str, Any]:
    """Run the trigger to its end; it must fire exactly one event, carrying no key."""
    events = [event async for event in trigger.run()]
    assert len(events) == 1, events
    payload = events[0].payload
    assert KEY not in json.dumps(payload)
    return payload


def trigger(job_id: Any, **kwargs: Any) -> VideoFetchTrigger:
    kwargs.setdefault("poll_policy", FAST)
    kwargs.setdefault("deadline", time.time() + 20)
    return VideoFetchTrigger(request_id=job_id, **kwargs)


# --------------------------------------------------------------------------- outcomes


async def test_success_gives_urls_details_and_stops_polling(sim: Sim) -> None:
    job = await sim.submit("duration=0.2 eta=0.1")
    event = await run(trigger(int(job["id"]), eta=job["eta"]))
    assert event["status"] == "success"
    assert event["request_id"] == job["id"]
    assert len(event["urls"]) == 1
    assert event["urls"][0].startswith(sim.url)
    assert event["details"]["request_id"] == job["id"]
    assert event["details"]["status"] == "success"
    assert event["polls"] >= 1
    assert event["elapsed"] > 0
    assert sim.polls(job["id"]) == event["polls"]
    assert sim.state.stats_snapshot()["fetches_after_terminal"] == 0


async def test_v7_job_is_polled_on_its_fetch_result(sim: Sim) -> None:
    job = await sim.submit("duration=0.1", endpoint="v7/text-to-video")
    event = await run(trigger(job["id"], api_version="v7", fetch_url=job["fetch_result"]))
    assert event["status"] == "success"
    assert sim.fetch_paths()
    assert all(path.startswith("/api/v7/video-fusion/fetch/") for path in sim.fetch_paths())


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        ("failed", "Processing failed: simulated failure"),
        ("error", "Generation failed: simulated error"),
        ("cancelled", "Request cancelled"),
        ("expired", "Request expired"),
    ],
)
async def test_terminal_failure_is_a_failed_event_with_the_api_message(
    sim: Sim, outcome: str, message: str
) -> None:
    job = await sim.submit(f"duration=0.1 outcome={outcome}")
    event = await run(trigger(job["id"]))
    assert event["status"] == "failed"
    assert event["api_status"] == outcome
    assert message in event["message"]
    assert sim.state.stats_snapshot()["fetches_after_terminal"] == 0


async def test_misspelt_messege_is_read(sim: Sim) -> None:
    job = await sim.submit("duration=0.1 outcome=failed messege=1")
    event = await run(trigger(job["id"]))
    assert event["status"] == "failed"
    assert "simulated failure" in event["message"]


@pytest.mark.parametrize(
    ("fault", "times"),
    [("502", 3), ("524", 3), ("empty", 3), ("truncated", 3), ("drop", 3), ("429", 1)],
)
async def test_transient_faults_then_success(sim: Sim, fault: str, times: int) -> None:
    """HTML 5xx pages, empty or cut bodies, resets and rate limits never end the wait."""
    fault_on = ",".join(str(i) for i in range(1, times + 1))
    job = await sim.submit(f"duration=0.1 fault={fault} fault_on={fault_on} retry_after=0.05")
    event = await run(trigger(job["id"]))
    assert event["status"] == "success", event
    assert sim.polls(job["id"]) >= times + 1  # each fault costs one poll (one HTTP attempt each)
    assert sim.state.stats_snapshot()["faults"] == times


async def test_deadline_gives_a_timeout_event(sim: Sim) -> None:
    job = await sim.submit("outcome=never")
    started = time.time()
    event = await run(trigger(job["id"], started_at=started, deadline=started + 0.3))
    assert event["status"] == "timeout"
    assert job["id"] in event["message"]
    assert sim.polls(job["id"]) >= 1


async def test_a_passed_deadline_times_out_without_polling(sim: Sim) -> None:
    job = await sim.submit("outcome=never")
    event = await run(trigger(job["id"], deadline=time.time() - 1))
    assert event["status"] == "timeout"
    assert sim.polls(job["id"]) == 0


async def test_a_slow_fetch_is_cut_short_at_the_deadline(sim: Sim) -> None:
    job = await sim.submit("outcome=never fault=slow fault_on=1 slow_s=0.8")
    sim.connect(KEY, timeout=30)
    event = await run(trigger(job["id"], deadline=time.time() + 0.3))
    assert event["status"] == "timeout"
    assert "(0 polls)" in event["message"]  # the 0.8 s answer was not waited for


async def test_unknown_request_is_a_not_found_error(sim: Sim) -> None:
    event = await run(trigger(999_999_999))
    assert event["status"] == "error"
    assert event["error_type"] == "not_found"
    assert "Request not found" in event["message"]


@pytest.mark.parametrize("status", [200, 401])
async def test_refused_key_is_an_auth_error_naming_the_connection(sim: Sim, status: int) -> None:
    sim.state.config.update(auth_error_status=status)
    job = await sim.submit("duration=0.1")
    bad_key = "invalid-key-0123456789"
    sim.connect(bad_key, conn_id="modelslab_bad")
    event = await run(trigger(job["id"], modelslab_conn_id="modelslab_bad"))
    assert event["status"] == "error"
    assert event["error_type"] == "auth"
    assert "modelslab_bad" in event["message"]
    assert bad_key not in json.dumps(event)


async def test_success_without_urls_is_bounded(sim: Sim) -> None:
    job = await sim.submit("duration=0 empty_polls=-1")
    event = await run(trigger(job["id"]))
    assert event["status"] == "failed"
    assert "no output URL" in event["message"]
    assert sim.polls(job["id"]) == FAST["max_empty_success_polls"] + 1


async def test_success_without_urls_for_a_while_then_urls(sim: Sim) -> None:
    job = await sim.submit("duration=0.1 empty_polls=2")
    event = await run(trigger(job["id"]))
    assert event["status"] == "success"
    assert event["urls"]


async def test_missing_connection_is_an_error_event(sim: Sim) -> None:
    event = await run(trigger(1, modelslab_conn_id="no_such_connection"))
    assert event["status"] == "error"
    assert "no_such_connection" in event["message"]


async def test_connection_without_key_is_a_config_error(sim: Sim) -> None:
    sim.connect("", conn_id="modelslab_nokey")
    event = await run(trigger(1, modelslab_conn_id="modelslab_nokey"))
    assert event["status"] == "error"
    assert event["error_type"] == "config"
    assert "modelslab_nokey" in event["message"]


async def test_unexpected_exception_is_an_error_event_without_the_key(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_fetch(self: AsyncModelsLabClient, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"boom near {self.settings.api_key}")

    monkeypatch.setattr(AsyncModelsLabClient, "fetch", broken_fetch)
    event = await run(trigger(1))
    assert event["status"] == "error"
    assert event["error_type"] == "unexpected"
    assert "RuntimeError" in event["message"]
    assert "boom near ***" in event["message"]


async def test_first_poll_is_jittered_like_every_later_one(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    """Triggers deferred together spread their first polls (a burst stalls the triggerer's loop)."""
    from modelslab_provider.triggers import video

    job = await sim.submit("duration=0.1")
    draw = [0.0]
    monkeypatch.setattr(video.random, "random", lambda: draw[0])
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(video.asyncio, "sleep", sleep)
    policy = {"min_interval": 0.5, "max_interval": 4.0, "interval": 2.0, "spread": 0.5}
    event = await run(trigger(job["id"], poll_policy=policy, started_at=time.time()))
    assert event["status"] == "success"
    assert slept[0] == pytest.approx(2.0 * (1 - 0.5 * 0.0), abs=0.05)  # draw 0.0: the full interval
    # a second trigger drawing 0.999 waits about half as long before its first poll
    draw[0] = 0.999
    event = await run(trigger(job["id"], poll_policy=policy, started_at=time.time()))
    assert slept[-1] == pytest.approx(2.0 * (1 - 0.5 * 0.999), abs=0.05)


async def test_cancellation_mid_sleep_stops_the_trigger(sim: Sim) -> None:
    job = await sim.submit("outcome=never")
    slow = {"min_interval": 30, "max_interval": 60, "interval": 30}
    task = asyncio.ensure_future(trigger(job["id"], poll_policy=slow).run().__anext__())
    await asyncio.sleep(0.2)
    assert not task.done()  # asleep until its first poll
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=2)
    assert sim.polls(job["id"]) == 0


async def test_no_poll_after_cancellation(sim: Sim) -> None:
    job = await sim.submit("outcome=never")
    task = asyncio.ensure_future(trigger(job["id"]).run().__anext__())
    for _ in range(300):
        if sim.polls(job["id"]) >= 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=2)
    polls = sim.polls(job["id"])
    assert polls >= 2
    await asyncio.sleep(0.3)
    assert sim.polls(job["id"]) == polls


async def test_running_twice_is_harmless(sim: Sim) -> None:
    """Triggerer failover may run the same trigger twice: polling is read-only."""
    job = await sim.submit("duration=0.1")
    original = trigger(job["id"])
    again = VideoFetchTrigger(**original.serialize()[1])
    first, second = await asyncio.gather(run(original), run(again))
    assert first["urls"] == second["urls"]
    assert sim.state.stats_snapshot()["submits"] == 1


# --------------------------------------------------------------------------- serialization


def test_serialize_round_trips_exactly_with_json_only_kwargs() -> None:
    original = VideoFetchTrigger(
        request_id=150000001,
        modelslab_conn_id="my_conn",
        api_version="v7",
        fetch_url="https://modelslab.com/api/v7/video-fusion/fetch/150000001",
        started_at=1_800_000_000.5,
        eta=42,
        deadline=1_800_003_600.0,
        poll_policy={"min_interval": 2, "max_interval": 30},
    )
    classpath, kwargs = original.serialize()
    assert classpath == CLASSPATH == "modelslab_provider.triggers.video.VideoFetchTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs["request_id"] == "150000001"
    rebuilt = VideoFetchTrigger(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)
    assert set(kwargs) == {
        "request_id",
        "modelslab_conn_id",
        "api_version",
        "fetch_url",
        "started_at",
        "eta",
        "deadline",
        "poll_policy",
        "limit",
        "end_task",
    }


def test_defaults_are_resolved_once_so_a_restart_keeps_the_clock() -> None:
    before = time.time()
    kwargs = VideoFetchTrigger(request_id="7").serialize()[1]
    assert before <= kwargs["started_at"] <= time.time()
    assert kwargs["deadline"] is None
    assert kwargs["poll_policy"]["min_interval"] > 0
    assert VideoFetchTrigger(**kwargs).serialize()[1] == kwargs


async def test_kwargs_never_hold_the_key(sim: Sim) -> None:
    job = await sim.submit("duration=0.1")
    t = trigger(job["id"])
    await run(t)
    assert KEY not in json.dumps(t.serialize()[1])
    assert KEY not in repr(t)


@pytest.mark.parametrize(
    "bad",
    [
        {"api_version": "v5"},
        {"request_id": "not an id!"},
        {"request_id": None},
        {"poll_policy": {"min_interval": 1, "bogus": 2}},
        {"poll_policy": {"min_interval": 10, "max_interval": 1}},
    ],
)
def test_bad_arguments_fail_when_deferring_not_in_the_triggerer(bad: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {"request_id": "7", **bad}
    with pytest.raises((ModelsLabConfigError, ValueError)):
        VideoFetchTrigger(**kwargs)


# --------------------------------------------------------------------------- urls_from_event


def check(event: Any, **kwargs: Any) -> list[str]:
    return urls_from_event(event, conn_id="modelslab_default", **kwargs)


def test_urls_from_a_success_event() -> None:
    assert check({"status": "success", "request_id": "7", "urls": ["https://x/a.mp4"]}) == ["https://x/a.mp4"]


@pytest.mark.parametrize(
    ("event", "error", "text"),
    [
        ({"status": "success", "request_id": "7", "urls": []}, AirflowFailException, "without output URLs"),
        ({"status": "failed", "request_id": "7", "message": "GPU fire"}, AirflowFailException, "GPU fire"),
        ({"status": "error", "message": "bad key", "error_type": "auth"}, AirflowFailException, "bad key"),
        ({"status": "error", "message": "gone", "error_type": "not_found"}, AirflowFailException, "gone"),
        ({"status": "error", "message": "oops", "error_type": "unexpected"}, AirflowException, "oops"),
        ({"status": "timeout", "message": "too slow"}, AirflowException, "too slow"),
        ({"request_id": "7"}, AirflowException, "unknown status None"),
        ({"status": "weird"}, AirflowException, "unknown status 'weird'"),
        (None, AirflowException, "got NoneType"),
    ],
)
def test_urls_from_other_events_raise(event: Any, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text) as info:
        check(event)
    if error is AirflowException:
        assert not isinstance(info.value, AirflowFailException)  # retries still apply


def test_timeout_exception_is_chosen_by_the_caller() -> None:
    raise_timeout: Callable[[], Any] = lambda: check(  # noqa: E731
        {"status": "timeout", "message": "late"}, timeout_exception=AirflowSensorTimeout
    )
    with pytest.raises(AirflowSensorTimeout, match="late"):
        raise_timeout()


# --------------------------------------------------------------------------- issue 11 (6, 7, 13, 4)


async def test_missing_connection_is_a_final_config_error_naming_it(sim: Sim) -> None:
    """Issue 11.6: not an "unexpected", retryable error: the message names the connection to create."""
    job = await sim.submit("duration=0")
    event = await run(trigger(job["id"], modelslab_conn_id="no_such_modelslab_conn"))
    assert event["status"] == "error"
    assert event["error_type"] == "config"
    assert "no_such_modelslab_conn" in event["message"]
    assert "is not defined" in event["message"]
    with pytest.raises(AirflowFailException, match="no_such_modelslab_conn"):
        urls_from_event(event, conn_id="no_such_modelslab_conn")


async def test_timeout_event_names_the_limit_that_was_hit(sim: Sim) -> None:
    """Issue 11.7: the trigger's deadline may come from execution_timeout; the message says which."""
    job = await sim.submit("outcome=never")
    event = await run(trigger(job["id"], deadline=time.time() + 0.3, limit="execution_timeout of 20 s"))
    assert event["status"] == "timeout"
    assert "when the task's execution_timeout of 20 s ran out" in event["message"]


async def test_success_event_carries_compacted_meta(sim: Sim) -> None:
    """Issue 11.13: a huge echoed field (e.g. a base64 init_image) is shortened in the stored event."""
    client = AsyncModelsLabClient(ClientSettings(api_key=KEY, base_url=sim.url))
    blob = "data:image/png;base64," + "A" * 50_000
    result = await client.submit("img2video", {"init_image": blob, "prompt": "a cat [sim:duration=0.1]"})
    event = await run(trigger(result.request_id))
    assert event["status"] == "success"
    meta = event["details"]["meta"]
    assert meta["init_image"].endswith("characters, shortened)")
    assert len(json.dumps(event)) < 5_000


@pytest.mark.parametrize("fail_text", ["ratelimit", "refunded", "auth"])
async def test_failed_job_with_misleading_words_ends_at_once(sim: Sim, fail_text: str) -> None:
    """Issue 11.4: a failed job whose message mentions a rate limit is not polled until the deadline."""
    job = await sim.submit(f"polls=2 eta=0.1 outcome=failed fail_text={fail_text}")
    started = time.monotonic()
    event = await run(trigger(job["id"], deadline=time.time() + 30))
    assert event["status"] == "failed"
    assert sim.polls(job["id"]) == 2
    assert time.monotonic() - started < 10
    with pytest.raises(AirflowFailException):
        urls_from_event(event, conn_id="modelslab_default")


async def test_403_ends_the_wait_with_a_final_plan_error(sim: Sim) -> None:
    """Issue 11.5: 403 is "feature not on your plan": final, and not a key problem."""
    job = await sim.submit("duration=5 fault=403 fault_on=1,2,3,4,5,6")
    event = await run(trigger(job["id"]))
    assert event["status"] == "error"
    assert event["error_type"] == "plan"
    assert "current plan" in event["message"]
    assert sim.polls(job["id"]) == 1
    with pytest.raises(AirflowFailException, match="current plan"):
        urls_from_event(event, conn_id="modelslab_default")
