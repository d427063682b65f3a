"""The video operators against the simulator on 127.0.0.1, with a stand-in task context.

Each test drives ``execute`` / ``execute_resubmit`` / ``execute_complete`` the way the task
runner does, with a recording TI and an in-memory ``task_state_store``; deferrals run the real
trigger on an event loop. Submissions are counted on the simulator.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from modelslab_provider.client.aio import close_shared_session
from modelslab_provider.client.core import ClientSettings
from modelslab_provider.client.errors import (
    ModelsLabConfigError,
    ModelsLabRequestError,
    ModelsLabTransientError,
)
from modelslab_provider.client.sync import ModelsLabClient
from modelslab_provider.get_provider_info import get_provider_info
from modelslab_provider.operators.video import (
    STATE_KEY,
    ModelsLabImageToVideoOperator,
    ModelsLabTextToVideoOperator,
    ModelsLabVideoLink,
    ModelsLabVideoOperator,
)
from modelslab_provider.simulator import Simulator
from modelslab_provider.triggers.video import VideoFetchTrigger
from modelslab_provider.version_compat import AIRFLOW_V_3_3_PLUS
from tests.unit.fresh_import import loaded_after_import

KEY = "sk-unit-operators-9d3e7a61b4"
#: reconnecting needs ``task_state_store`` (Airflow 3.3+); below, every try submits (documented)
needs_store = pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="task_state_store arrived in Airflow 3.3")
FAST: dict[str, Any] = {"poll_interval": 0.05, "max_poll_interval": 0.2}


class FakeTI:
    """Records XCom pushes in order, like the task runner's TI."""

    stats_tags: dict[str, str] = {}

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}
        self.order: list[str] = []

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # XCom values must be JSON
        self.xcom[key] = value
        self.order.append(key)


class FakeStore:
    """In-memory ``task_state_store`` (survives tries, like the real one)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        assert value is not None
        json.dumps(value)
        self.data[key] = value


def context(store: FakeStore | None = None) -> dict[str, Any]:
    """A fresh try: new TI (XCom is cleared between tries), the same store if given."""
    return {"ti": FakeTI(), "task_state_store": store if store is not None else FakeStore()}


@pytest.fixture(scope="module")
def server() -> Iterator[Simulator]:
    with Simulator(port=0, duration=0.2, retry_after=0.05) as simulator:
        yield simulator


@pytest.fixture
def sim(server: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    server.reset()
    conn = {
        "conn_type": "modelslab",
        "password": KEY,
        "host": server.url,
        "extra": {"timeout": 3, "max_retries": 1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MODELSLAB_DEFAULT", json.dumps(conn))
    return server


def text_op(prompt: str = "a cat", **kwargs: Any) -> ModelsLabTextToVideoOperator:
    return ModelsLabTextToVideoOperator(task_id="generate", prompt=prompt, **{**FAST, **kwargs})


def submits(sim: Simulator) -> int:
    return sum(1 for r in sim.requests() if "/fetch/" not in r["path"] and r["path"].startswith("/api/v"))


def fetches(sim: Simulator) -> int:
    return sum(1 for r in sim.requests() if "/fetch/" in r["path"])


def run_trigger(trigger: VideoFetchTrigger) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        try:
            events = [event async for event in trigger.run()]
        finally:
            await close_shared_session()
        assert len(events) == 1
        return events[0].payload

    return asyncio.run(go())


def run_deferrable(op: ModelsLabVideoOperator, ctx: dict[str, Any]) -> Any:
    """Execute and follow every deferral to its end, as the triggerer and a worker would."""
    method, kwargs = op.execute, {}
    for _ in range(50):
        try:
            return method(ctx, **kwargs)
        except TaskDeferred as deferred:
            event = run_trigger(deferred.trigger)
            method = getattr(op, deferred.method_name)
            kwargs = {"event": event, **(deferred.kwargs or {})}
    raise AssertionError("too many deferrals")


def client(sim: Simulator) -> ModelsLabClient:
    """A plain client on the same account, for jobs an earlier try (or another task) submitted."""
    return ModelsLabClient(ClientSettings(api_key=KEY, base_url=sim.url))


def stored_job(request_id: str, op: ModelsLabVideoOperator, **changes: Any) -> FakeStore:
    """A store as an earlier try of ``op`` left it, for ``request_id`` (the record before the engine).

    The old single-request record is still read, so a try that started on an older release
    reconnects after an upgrade.
    """
    body = op.job_spec(context()).submissions[0].body
    store = FakeStore()
    store.set(
        STATE_KEY,
        {
            "request_id": request_id,
            "api_version": "v6",
            "fetch_url": None,
            "submitted_at": time.time(),
            "eta": 0.3,
            "fingerprint": op.hook.client.fingerprint(op.endpoint, body),
            **changes,
        },
    )
    return store


# --------------------------------------------------------------------------- generation


def test_sync_generation_pushes_request_id_first_then_urls_and_details(sim: Simulator) -> None:
    ctx = context()
    op = text_op("a cat on a skateboard", model_id="wan2.2", seed=7)
    urls = op.execute(ctx)

    ti = ctx["ti"]
    assert isinstance(urls, list)
    assert len(urls) == 1
    assert urls[0].startswith(sim.url)
    assert urls[0].endswith(".mp4")
    assert isinstance(ti.xcom["request_id"], str)
    assert ti.xcom["api_version"] == "v6"
    assert ti.xcom["fetch_url"].endswith(f"/fetch/{ti.xcom['request_id']}")
    assert ti.xcom["video_url"] == urls[0]
    assert ti.xcom["proxy_links"]
    assert "/proxy/" in ti.xcom["proxy_links"][0]
    assert ti.xcom["generation_time"] > 0
    assert ti.xcom["meta"]["prompt"] == "a cat on a skateboard"
    assert "key" not in ti.xcom["meta"]
    # the id is out before anything about the result
    assert ti.order.index("request_id") < ti.order.index("video_url")
    if AIRFLOW_V_3_3_PLUS:
        assert ctx["task_state_store"].data[STATE_KEY]["jobs"][0]["id"] == ti.xcom["request_id"]

    body = next(r["body"] for r in sim.requests() if r["path"] == "/api/v6/video/text2video")
    assert body["output_type"] == "mp4"
    assert body["seed"] == 7
    assert body["model_id"] == "wan2.2"
    assert submits(sim) == 1
    assert KEY not in json.dumps(ti.xcom)


def test_request_id_is_in_xcom_before_the_first_poll(sim: Simulator) -> None:
    ctx = context()
    op = text_op()
    seen: list[Any] = []
    real_wait = op.hook.client.wait

    def checking_wait(*args: Any, **kwargs: Any) -> Any:
        seen.append(dict(ctx["ti"].xcom))
        assert fetches(sim) == 0
        return real_wait(*args, **kwargs)

    with mock.patch.object(op.hook.client, "wait", checking_wait):
        op.execute(ctx)
    assert seen[0]["request_id"] == ctx["ti"].xcom["request_id"]
    assert "eta" in seen[0]


def test_instant_success_returns_without_polling(sim: Simulator) -> None:
    ctx = context()
    urls = text_op("a cat [sim:instant=1]").execute(ctx)
    assert urls
    assert urls[0].endswith(".mp4")
    assert fetches(sim) == 0
    assert ctx["ti"].xcom["request_id"]


def test_deferrable_defers_to_the_shared_trigger_with_the_deadline_inside(sim: Simulator) -> None:
    ctx = context()
    op = text_op(deferrable=True, timeout=timedelta(minutes=5))
    before = time.time()
    with pytest.raises(TaskDeferred) as exc:
        op.execute(ctx)
    deferred = exc.value
    assert isinstance(deferred.trigger, VideoFetchTrigger)
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout is None
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == "modelslab_provider.triggers.video.VideoFetchTrigger"
    assert kwargs["request_id"] == ctx["ti"].xcom["request_id"]
    assert before + 299 <= kwargs["deadline"] <= time.time() + 301
    assert kwargs["poll_policy"]["min_interval"] == 0.05
    assert KEY not in json.dumps(kwargs)

    urls = op.execute_complete(ctx, event=run_trigger(deferred.trigger))
    assert urls[0].endswith(".mp4")
    assert ctx["ti"].xcom["video_url"] == urls[0]
    assert ctx["ti"].xcom["meta"]["prompt"] == "a cat"
    assert submits(sim) == 1


def test_deferrable_instant_success_does_not_defer(sim: Simulator) -> None:
    urls = text_op("[sim:instant=1] a dog", deferrable=True).execute(context())
    assert urls
    assert urls[0].endswith(".mp4")


def test_wait_for_completion_false_returns_after_submit(sim: Simulator) -> None:
    ctx = context()
    # the request id, so VideoFetchSensor(request_id=op.output) waits for it
    assert text_op(wait_for_completion=False, deferrable=True).execute(ctx) == ctx["ti"].xcom["request_id"]
    assert ctx["ti"].xcom["request_id"]
    assert "video_url" not in ctx["ti"].xcom
    assert fetches(sim) == 0


def test_generic_operator_v7_and_image_operator(sim: Simulator) -> None:
    ctx = context()
    op = ModelsLabVideoOperator(
        task_id="fusion",
        endpoint="v7/text-to-video",
        payload={"model_id": "veo-3", "prompt": "waves", "duration": "8", "odd_new_param": [1, 2]},
        **FAST,
    )
    assert op.execute(ctx)
    assert ctx["ti"].xcom["api_version"] == "v7"
    body = next(r["body"] for r in sim.requests() if r["path"] == "/api/v7/video-fusion/text-to-video")
    # passed through unchanged: no output_type added, unknown parameters kept (plus the try's track_id)
    track_id = ctx["ti"].xcom["track_id"]
    assert body == {
        "model_id": "veo-3",
        "prompt": "waves",
        "duration": "8",
        "odd_new_param": [1, 2],
        "track_id": track_id,
    }

    img = ModelsLabImageToVideoOperator(
        task_id="animate", init_image="https://example.com/a.png", parameters={"motion_bucket_id": 40}, **FAST
    )
    img_ctx = context()
    assert img.execute(img_ctx)
    body = next(r["body"] for r in sim.requests() if r["path"] == "/api/v6/video/img2video")
    assert body == {
        "init_image": "https://example.com/a.png",
        "output_type": "mp4",
        "motion_bucket_id": 40,
        "model_id": "wan2.2",  # issue 11.9: the documented default, sent when none is given
        "track_id": img_ctx["ti"].xcom["track_id"],
    }


def test_parameters_win_over_typed_fields(sim: Simulator) -> None:
    op = text_op(parameters={"output_type": "gif", "num_inference_steps": 30})
    assert op.build_payload() == {"prompt": "a cat", "output_type": "gif", "num_inference_steps": 30}
    assert "output_type" not in text_op(output_type=None).build_payload()


# --------------------------------------------------------------------------- failures


def test_job_failure_fails_without_retry_with_the_api_message(sim: Simulator) -> None:
    with pytest.raises(AirflowFailException, match="Processing failed: simulated failure"):
        text_op("a cat [sim:outcome=failed]").execute(context())


def test_deferred_failure_and_error_events(sim: Simulator) -> None:
    op = text_op()
    with pytest.raises(AirflowFailException, match="boom"):
        op.execute_complete(
            context(), {"status": "failed", "request_id": "1", "message": "boom", "api_status": "failed"}
        )
    with pytest.raises(AirflowFailException, match="bad key"):
        op.execute_complete(
            context(), {"status": "error", "request_id": "1", "message": "bad key", "error_type": "auth"}
        )
    with pytest.raises(AirflowException, match="weird") as exc:
        op.execute_complete(
            context(), {"status": "error", "request_id": "1", "message": "weird", "error_type": "unexpected"}
        )
    assert not isinstance(exc.value, AirflowFailException)
    with pytest.raises(AirflowException, match="unknown status"):
        op.execute_complete(context(), {"status": "bogus"})


def test_sync_timeout_is_retryable_and_says_a_retry_reconnects(sim: Simulator) -> None:
    with pytest.raises(AirflowException) as exc:
        text_op("a cat [sim:outcome=never]", timeout=0.4).execute(context())
    assert not isinstance(exc.value, AirflowFailException)
    assert "not ready after" in str(exc.value)
    if AIRFLOW_V_3_3_PLUS:
        assert "a retry of this task reconnects to request" in str(exc.value)
    else:
        # this stand-in TI names no task instance, so no Variable can hold the record
        assert "a retry of this task submits NEW, billed work" in str(exc.value)


def test_deferred_timeout_event_is_retryable(sim: Simulator) -> None:
    op = text_op("a cat [sim:outcome=never]", deferrable=True, timeout=0.4)
    with pytest.raises(AirflowException) as exc:
        run_deferrable(op, context())
    assert not isinstance(exc.value, AirflowFailException)
    assert "timeout of 0 s" in str(exc.value) or "timeout of" in str(exc.value)
    assert "no cancel API" in str(exc.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: text_op(""), "prompt must be a non-empty string"),
        (lambda: text_op("   "), "prompt must be a non-empty string"),
        (lambda: ModelsLabImageToVideoOperator(task_id="i", init_image=""), "init_image must be"),
        (lambda: ModelsLabImageToVideoOperator(task_id="i", init_image=[]), "init_image must be"),
        (lambda: ModelsLabImageToVideoOperator(task_id="i", init_image=None), "init_image must be"),  # type: ignore[arg-type]
        (lambda: ModelsLabVideoOperator(task_id="g", endpoint="text2video", payload="{'prompt': 1}"), "dict"),
        (lambda: ModelsLabVideoOperator(task_id="g", endpoint="text2video", payload=None), "dict"),
        (lambda: ModelsLabVideoOperator(task_id="g", endpoint="text2vid", payload={}), "Unknown ModelsLab"),
        (lambda: ModelsLabVideoOperator(task_id="g", endpoint="v7/text2video", payload={}), "belongs to API"),
        (
            lambda: ModelsLabVideoOperator(
                task_id="g", endpoint="text2video", payload={"prompt": "x", "key": "k"}
            ),
            "must not contain",
        ),
        (lambda: text_op(parameters=["x"]), "parameters must be a dict"),
    ],
)
def test_bad_input_fails_at_once_without_calling_the_api(make: Any, message: str, sim: Simulator) -> None:
    with pytest.raises(AirflowFailException, match=message):
        make().execute(context())
    assert sim.requests() == []


@pytest.mark.parametrize(
    ("endpoint", "payload", "message"),
    [
        ("text2video", {"negative_prompt": "blur"}, "prompt is required"),
        ("v7/text-to-video", {"model_id": "no-such-model", "prompt": "x"}, "Model not found: no-such-model"),
    ],
)
def test_api_validation_messages_fail_at_once(
    endpoint: str, payload: dict, message: str, sim: Simulator
) -> None:
    op = ModelsLabVideoOperator(task_id="g", endpoint=endpoint, payload=payload, **FAST)
    with pytest.raises(AirflowFailException, match=message):
        op.execute(context())
    assert submits(sim) == 1


@pytest.mark.parametrize("fault", ["drop", "524"])
def test_ambiguous_submit_failure_is_never_repeated(fault: str, sim: Simulator) -> None:
    with pytest.raises(AirflowFailException, match="never paid for twice"):
        text_op(f"a cat [sim:submit_fault={fault}]").execute(context())
    assert submits(sim) == 1


def test_submit_failure_mapping() -> None:
    from modelslab_provider.jobs.outcomes import submit_failure

    def mapped(exc: Exception) -> Exception:
        return submit_failure(exc, what="request to text2video", track_ids="t1", conn_id="c")  # type: ignore[arg-type]

    # issue 11: a 5xx may come after ModelsLab queued the job, so it is final, never "safe to retry"
    ambiguous = mapped(ModelsLabTransientError("HTTP 503", ambiguous=True, status_code=503))
    assert isinstance(ambiguous, AirflowFailException)
    assert "never paid for twice" in str(ambiguous)
    retryable = mapped(ModelsLabTransientError("connection refused"))
    assert type(retryable) is AirflowException
    assert "Nothing was submitted" in str(retryable)
    assert isinstance(mapped(ModelsLabTransientError("read timeout", ambiguous=True)), AirflowFailException)
    assert isinstance(mapped(ModelsLabRequestError("nope")), AirflowFailException)
    assert isinstance(mapped(ModelsLabConfigError("bad")), AirflowFailException)


def test_bad_key_fails_at_once_naming_the_connection(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "modelslab",
        "password": "invalid-key-123",
        "host": sim.url,
        "extra": {"max_retries": 1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MODELSLAB_DEFAULT", json.dumps(conn))
    with pytest.raises(AirflowFailException, match="modelslab_default"):
        text_op().execute(context())


@pytest.mark.parametrize(
    ("conn", "field"),
    [({"password": ""}, "API Key"), ({"password": KEY, "host": "https://"}, "Base URL")],
)
def test_broken_connection_fails_at_once_naming_the_field(
    conn: dict[str, Any], field: str, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MODELSLAB_DEFAULT", json.dumps({"conn_type": "modelslab", **conn}))
    with pytest.raises(AirflowFailException, match=field):
        text_op().execute(context())
    assert submits(sim) == 0


# --------------------------------------------------------------------------- rate limits


def test_queue_full_waits_and_resubmits_within_the_budget(
    sim: Simulator, capsys: pytest.CaptureFixture
) -> None:
    sim.configure(queue_limit=1, retry_after=0.1)
    client(sim).submit("text2video", {"prompt": "blocker [sim:duration=0.4]"})
    ctx = context()
    urls = text_op("mine").execute(ctx)
    assert urls
    logged = capsys.readouterr().out
    assert "the account's queue is full" in logged
    assert "then resubmitting" in logged
    mine = [
        r
        for r in sim.requests()
        if r["body"] and r["body"].get("prompt") == "mine" and "/fetch/" not in r["path"]
    ]
    assert len(mine) >= 2
    assert [r["status"] for r in mine].count(200) == 1  # paid once
    assert sim.stats()["jobs_created"] == 2


def test_queue_full_past_the_budget_fails_retryably(sim: Simulator) -> None:
    sim.configure(queue_limit=1, retry_after=0.1)
    client(sim).submit("text2video", {"prompt": "blocker [sim:outcome=never]"})
    with pytest.raises(AirflowException, match="queue is full") as exc:
        text_op("mine", timeout=0.5).execute(context())
    assert not isinstance(exc.value, AirflowFailException)
    assert "Nothing was submitted" in str(exc.value)
    assert sim.stats()["jobs_created"] == 1


def test_deferrable_queue_wait_happens_in_the_triggerer(sim: Simulator) -> None:
    sim.configure(queue_limit=1, retry_after=0.1)
    blocker = client(sim).submit("text2video", {"prompt": "blocker [sim:outcome=never]"})
    op = text_op("mine", deferrable=True, timeout=60)
    ctx = context()
    with pytest.raises(TaskDeferred) as exc:
        op.execute(ctx)
    assert exc.value.method_name == "execute_resubmit"
    assert type(exc.value.trigger).__name__ == "DateTimeTrigger"
    assert exc.value.kwargs["rate_limit_attempts"] == 1
    deadline = exc.value.kwargs["deadline"]
    assert "request_id" not in ctx["ti"].xcom

    sim.complete(blocker.request_id)
    with pytest.raises(TaskDeferred) as resumed:
        op.execute_resubmit(ctx, event=None, **exc.value.kwargs)
    assert resumed.value.method_name == "execute_complete"
    assert resumed.value.trigger.deadline == deadline  # same budget as before the queue wait
    assert ctx["ti"].xcom["request_id"]


# --------------------------------------------------------------------------- resuming (task_state_store)


@needs_store
def test_retry_reconnects_to_a_running_request_instead_of_submitting(sim: Simulator) -> None:
    job = client(sim).submit("text2video", {"prompt": "a cat"})
    op = text_op()
    store = stored_job(job.request_id, op)
    ctx = context(store)
    urls = op.execute(ctx)
    assert urls
    assert ctx["ti"].xcom["request_id"] == job.request_id
    assert submits(sim) == 1


@needs_store
def test_deferrable_retry_reconnects_by_deferring_on_the_stored_request(sim: Simulator) -> None:
    job = client(sim).submit("text2video", {"prompt": "a cat"})
    op = text_op(deferrable=True)
    ctx = context(stored_job(job.request_id, op))
    with pytest.raises(TaskDeferred) as exc:
        op.execute(ctx)
    assert exc.value.trigger.request_id == job.request_id
    assert ctx["ti"].xcom["request_id"] == job.request_id
    assert submits(sim) == 1


@needs_store
def test_retry_after_the_video_finished_returns_it_without_polling(sim: Simulator) -> None:
    job = client(sim).submit("text2video", {"prompt": "a cat [sim:instant=1]"})
    op = text_op()
    ctx = context(stored_job(job.request_id, op))
    urls = op.execute(ctx)
    assert urls == list(job.urls)
    assert ctx["ti"].xcom["request_id"] == job.request_id
    assert ctx["ti"].xcom["video_url"] == urls[0]
    assert submits(sim) == 1
    assert fetches(sim) == 1  # the one status check


@pytest.mark.parametrize("reason", ["failed", "unknown id", "other payload", "not durable"])
def test_retry_submits_anew_when_the_stored_request_cannot_be_reused(reason: str, sim: Simulator) -> None:
    scenario = "[sim:outcome=failed duration=0]" if reason == "failed" else ""
    job = client(sim).submit("text2video", {"prompt": f"a cat {scenario}"})
    op = text_op(durable=reason != "not durable")
    changes: dict[str, Any] = {}
    if reason == "unknown id":
        changes["request_id"] = "999999999"
    if reason == "other payload":
        changes["fingerprint"] = "0" * 32
    if reason == "failed":
        time.sleep(0.05)
    ctx = context(stored_job(changes.pop("request_id", job.request_id), op, **changes))
    urls = op.execute(ctx)
    assert urls
    assert ctx["ti"].xcom["request_id"] != job.request_id
    assert submits(sim) == 2


@needs_store
def test_unreachable_status_check_reconnects_rather_than_paying_again(sim: Simulator) -> None:
    job = client(sim).submit("text2video", {"prompt": "a cat"})
    op = text_op()
    store = stored_job(job.request_id, op)
    real_fetch = op.hook.client.fetch
    calls: list[str] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        if len(calls) == 1:
            raise ModelsLabTransientError("HTTP 503 with an HTML error page", status_code=503)
        return real_fetch(*args, **kwargs)

    with mock.patch.object(op.hook.client, "fetch", flaky):
        assert op.execute(context(store))
    assert calls[0] == job.request_id
    assert submits(sim) == 1


@needs_store
def test_retry_after_a_timeout_reconnects_and_pays_once(sim: Simulator) -> None:
    store = FakeStore()
    with pytest.raises(AirflowException):
        text_op("slow [sim:duration=0.6]", timeout=0.2).execute(context(store))
    urls = text_op("slow [sim:duration=0.6]", timeout=10).execute(context(store))
    assert urls
    assert submits(sim) == 1


@pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="documents the behaviour below Airflow 3.3")
def test_below_airflow_3_3_no_task_state_store_is_read(sim: Simulator) -> None:
    """Below 3.3 the record lives in an Airflow Variable (tests/unit/test_engine.py), never in a store."""
    job = client(sim).submit("text2video", {"prompt": "a cat"})
    op = text_op()
    ctx = context(stored_job(job.request_id, op))
    assert op.execute(ctx)
    assert ctx["ti"].xcom["request_id"] != job.request_id
    assert submits(sim) == 2


def test_triggerer_restart_rebuilds_the_same_wait_from_kwargs(sim: Simulator) -> None:
    op = text_op(deferrable=True)
    with pytest.raises(TaskDeferred) as exc:
        op.execute(context())
    classpath, kwargs = exc.value.trigger.serialize()
    first = VideoFetchTrigger(**json.loads(json.dumps(kwargs)))

    async def cut_short() -> None:
        try:
            runner = asyncio.ensure_future(first.run().__anext__())
            await asyncio.sleep(0.1)
            assert not runner.done()
            runner.cancel()  # the triggerer dies mid-wait
        finally:
            await close_shared_session()

    asyncio.run(cut_short())
    again = VideoFetchTrigger(**json.loads(json.dumps(kwargs)))
    assert again.serialize() == (classpath, kwargs)
    event = run_trigger(again)
    assert event["status"] == "success"
    assert submits(sim) == 1


# --------------------------------------------------------------------------- Airflow integration points


def test_extra_link_reads_the_video_url_xcom() -> None:
    link = ModelsLabVideoLink()
    assert link.name == "ModelsLab Video"
    assert link.xcom_key == "_link_ModelsLabVideoLink"
    key = mock.sentinel.ti_key
    with mock.patch(
        "modelslab_provider.operators.video.XCom.get_value", return_value="https://x/v.mp4"
    ) as get:
        assert link.get_link(text_op(), ti_key=key) == "https://x/v.mp4"
    get.assert_called_once_with(key="video_url", ti_key=key)
    for stored in (None, "", "javascript:alert(1)", ["https://x/v.mp4"]):
        with mock.patch("modelslab_provider.operators.video.XCom.get_value", return_value=stored):
            assert link.get_link(text_op(), ti_key=key) == ""
    assert "modelslab_provider.operators.video.ModelsLabVideoLink" in get_provider_info()["extra-links"]
    assert isinstance(text_op().operator_extra_links[0], ModelsLabVideoLink)


def test_templated_fields_and_mapping() -> None:
    from airflow.sdk import DAG

    assert {"prompt", "negative_prompt", "model_id", "parameters"} <= set(
        ModelsLabTextToVideoOperator.template_fields
    )
    assert "init_image" in ModelsLabImageToVideoOperator.template_fields
    assert {"endpoint", "payload"} <= set(ModelsLabVideoOperator.template_fields)
    for cls in (ModelsLabVideoOperator, ModelsLabTextToVideoOperator, ModelsLabImageToVideoOperator):
        assert not any("key" in field for field in cls.template_fields)
    with DAG("mapping_parse", schedule=None):
        mapped = ModelsLabTextToVideoOperator.partial(task_id="gen", deferrable=True, **FAST).expand(
            prompt=["a", "b", "c"]
        )
    assert mapped.expand_input.value == {"prompt": ["a", "b", "c"]}


def test_meta_is_compacted_and_keyless(sim: Simulator) -> None:
    ctx = context()
    huge = "A" * 10_000
    ModelsLabImageToVideoOperator(
        task_id="i", init_image="https://example.com/a.png", parameters={"base64_blob": huge}, **FAST
    ).execute(ctx)
    meta = ctx["ti"].xcom["meta"]
    assert len(meta["base64_blob"]) < 300
    assert "10000 characters" in meta["base64_blob"]


def test_typed_operators_refuse_a_payload_argument() -> None:
    with pytest.raises(TypeError, match="parameters="):
        text_op(payload={"prompt": "x"})


def test_invalid_intervals_are_refused_at_parse_time() -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        text_op(poll_interval=0)
    with pytest.raises(ValueError, match="timeout"):
        text_op(timeout=-1)


def test_importing_the_operators_loads_no_http_library() -> None:
    assert loaded_after_import("modelslab_provider.operators.video", ("requests", "aiohttp")) == []


def test_only_http_proxy_links_reach_xcom() -> None:
    ctx = context()
    event = {
        "status": "success",
        "request_id": "150000001",
        "urls": ["https://cdn.example/v.mp4"],
        "details": {"proxy_links": ["file:///etc/passwd", "https://proxy.example/v.mp4", 3]},
    }
    assert text_op().execute_complete(ctx, event) == ["https://cdn.example/v.mp4"]
    assert ctx["ti"].xcom["proxy_links"] == ["https://proxy.example/v.mp4"]


# --------------------------------------------------------------------------- issue 11: paying once, track_id


class RunTI(FakeTI):
    """A TI with the identity the task runner gives it (for the track_id)."""

    dag_id = "daily_videos"
    run_id = "manual__2026-11-30T10:00:00+00:00"
    task_id = "generate"
    map_index = 2
    try_number = 1


@pytest.mark.parametrize("fault", ["502_after", "500_after", "503_after", "504_after", "520_after", "524"])
@pytest.mark.parametrize("deferrable", [False, True])
def test_gateway_5xx_after_queueing_fails_at_once_naming_the_track_id(
    fault: str, deferrable: bool, sim: Simulator, capsys: pytest.CaptureFixture
) -> None:
    ctx = {"ti": RunTI(), "task_state_store": FakeStore()}
    with pytest.raises(AirflowFailException) as exc:
        text_op(f"a cat [sim:submit_fault={fault}]", deferrable=deferrable).execute(ctx)
    track_id = ctx["ti"].xcom["track_id"]
    # readable: the run id's ':' and '+' are replaced, nothing is hashed
    assert track_id == "daily_videos.generate.manual__2026-11-30T10_00_00_00_00.m2.t1"
    assert f"track_id {track_id}" in str(exc.value)
    assert "never paid for twice" in str(exc.value)
    assert submits(sim) == 1
    assert f"track_id {track_id}" in capsys.readouterr().out
    body = next(r["body"] for r in sim.requests() if r["path"] == "/api/v6/video/text2video")
    assert body["track_id"] == track_id


def test_opting_in_resubmits_an_ambiguous_submit(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "modelslab", "password": KEY, "host": sim.url, "extra": {"max_retries": 2}}
    monkeypatch.setenv("AIRFLOW_CONN_MODELSLAB_DEFAULT", json.dumps(conn))
    op = text_op("a cat [sim:submit_fault=502_after]", resubmit_on_ambiguous_failure=True)
    assert op.execute(context())
    assert submits(sim) == 2
    assert sim.stats()["jobs_created"] == 2


def test_track_id_is_pushed_sent_and_differs_per_try(sim: Simulator) -> None:
    first = {"ti": RunTI(), "task_state_store": FakeStore()}
    text_op(wait_for_completion=False, durable=False).execute(first)
    second_ti = RunTI()
    second_ti.try_number = 2
    second = {"ti": second_ti, "task_state_store": FakeStore()}
    text_op(wait_for_completion=False, durable=False).execute(second)
    ids = [first["ti"].xcom["track_id"], second["ti"].xcom["track_id"]]
    assert ids[0] != ids[1]
    sent = [r["body"]["track_id"] for r in sim.requests() if r["path"] == "/api/v6/video/text2video"]
    assert sent == ids
    # the id is out before the request id
    assert first["ti"].order.index("track_id") < first["ti"].order.index("request_id")
    # a track_id of the user's own is kept
    own = context()
    text_op(parameters={"track_id": "campaign-7"}, wait_for_completion=False).execute(own)
    assert own["ti"].xcom["track_id"] == "campaign-7"


@needs_store
def test_a_request_stored_against_another_server_is_not_reused(sim: Simulator) -> None:
    job = client(sim).submit("text2video", {"prompt": "a cat"})
    op = text_op()
    body = op.job_spec(context()).submissions[0].body
    here = op.hook.client.fingerprint(op.endpoint, body)
    # the same endpoint and payload, fingerprinted against another origin (e.g. production)
    from modelslab_provider.client.submit import request_fingerprint

    elsewhere = request_fingerprint("https://modelslab.com", "text2video", body)
    assert elsewhere != here
    ctx = context(stored_job(job.request_id, op, fingerprint=elsewhere))
    assert op.execute(ctx)
    assert ctx["ti"].xcom["request_id"] != job.request_id
    assert submits(sim) == 2
    stored = ctx["task_state_store"].data[STATE_KEY]["jobs"][0]
    assert stored["fingerprint"] == here
    assert stored["track_id"] == ctx["ti"].xcom["track_id"]


# ------------------------------------------------------------------ issue 11.9 / 13.2: models and v7 fields


def sent_body(sim: Simulator, path: str) -> dict[str, Any]:
    return dict(next(r["body"] for r in sim.requests() if r["path"] == path))


def test_v6_typed_operators_send_the_documented_default_model(sim: Simulator) -> None:
    text_op(wait_for_completion=False).execute(context())
    assert sent_body(sim, "/api/v6/video/text2video")["model_id"] == "wan2.2"
    ModelsLabImageToVideoOperator(
        task_id="i", init_image="https://example.com/a.png", wait_for_completion=False
    ).execute(context())
    assert sent_body(sim, "/api/v6/video/img2video")["model_id"] == "wan2.2"


@pytest.mark.parametrize("api", [{"api_version": "v7"}, {"endpoint": "v7/text-to-video"}])
def test_a_v7_call_without_model_id_fails_before_any_request(api: dict[str, str], sim: Simulator) -> None:
    with pytest.raises(AirflowFailException, match="model_id is required"):
        text_op(**api).execute(context())
    with pytest.raises(AirflowFailException, match="model_id is required"):
        ModelsLabVideoOperator(
            task_id="g", endpoint="v7/image-to-video", payload={"init_image": "u"}
        ).execute(context())
    assert sim.requests() == []


def test_v7_text_fields_are_sent_only_when_set_and_v6_fields_stay_out(sim: Simulator) -> None:
    ctx = context()
    op = text_op(
        "waves at dusk",
        api_version="v7",
        model_id="veo-3.1",
        duration=8,
        aspect_ratio="16:9",
        resolution="1080p",
        generate_audio=True,
        negative_prompt="blur",
        wait_for_completion=False,
    )
    assert op.endpoint == "text-to-video"
    op.execute(ctx)
    body = sent_body(sim, "/api/v7/video-fusion/text-to-video")
    assert body == {
        "prompt": "waves at dusk",
        "model_id": "veo-3.1",
        "duration": "8",
        "aspect_ratio": "16:9",
        "resolution": "1080p",
        "generate_audio": True,
        "negative_prompt": "blur",
        "track_id": ctx["ti"].xcom["track_id"],
    }
    assert ctx["ti"].xcom["api_version"] == "v7"
    # v6-only fields go to v7 only when passed
    explicit = text_op("x", api_version="v7", model_id="veo-3.1", output_type="mp4", fps=24).build_payload()
    assert explicit["output_type"] == "mp4"
    assert explicit["fps"] == 24
    # and the v6 default stays as it was
    assert text_op("x").build_payload()["output_type"] == "mp4"


def test_v7_image_operator_accepts_an_image_list_and_audio(sim: Simulator) -> None:
    images = ["https://example.com/first.png", "https://example.com/last.png"]
    op = ModelsLabImageToVideoOperator(
        task_id="animate",
        api_version="v7",
        model_id="kling-v2.1",
        init_image=images,
        init_audio="https://example.com/voice.mp3",
        prompt="a slow pan",
        duration="5",
        **FAST,
    )
    assert op.endpoint == "image-to-video"
    assert op.execute(context())
    body = sent_body(sim, "/api/v7/video-fusion/image-to-video")
    assert body["init_image"] == images
    assert body["init_audio"] == "https://example.com/voice.mp3"
    assert body["duration"] == "5"
    assert "output_type" not in body
    assert "num_frames" not in body


def test_api_version_and_endpoint_must_agree() -> None:
    with pytest.raises(ValueError, match="api_version must be one of"):
        text_op(api_version="v8")
    with pytest.raises(AirflowFailException, match="give one of them only"):
        text_op(api_version="v7", endpoint="text2video", model_id="m").build_payload()
    with pytest.raises(AirflowFailException, match="init_image must be"):
        text_op(api_version="v7", model_id="m", init_image=["ok", ""]).build_payload()
    assert {"init_image", "init_audio"} <= set(ModelsLabTextToVideoOperator.template_fields)


# --------------------------------------------------------------------------- issue 11 (4, 7, 8)


def test_deferred_wait_ends_at_execution_timeout_and_says_so(sim: Simulator) -> None:
    """Issue 11.7: Airflow 3 ignores execution_timeout while deferred; the trigger's deadline holds it."""
    ctx = context()
    before = time.time()
    op = text_op("never [sim:outcome=never]", deferrable=True, execution_timeout=timedelta(seconds=20))
    with pytest.raises(TaskDeferred) as exc:
        op.execute(ctx)
    kwargs = exc.value.trigger.serialize()[1]
    # counted from the try's execute, like Airflow's own execution_timeout
    assert before + 20 <= kwargs["deadline"] <= time.time() + 20
    assert kwargs["limit"] == "execution_timeout of 20 s"
    # the default timeout (3600 s) is the limit when execution_timeout is later or unset
    later = text_op(deferrable=True, execution_timeout=timedelta(hours=5))
    with pytest.raises(TaskDeferred) as exc:
        later.execute(context())
    assert exc.value.trigger.serialize()[1]["limit"] == "timeout of 3600 s"
    # the resumed task names the limit
    event = run_trigger(
        VideoFetchTrigger(**{**kwargs, "deadline": time.time() + 0.2, "poll_policy": {"min_interval": 0.05}})
    )
    with pytest.raises(AirflowException, match="execution_timeout of 20 s ran out") as failed:
        op.execute_complete(ctx, event)
    assert not isinstance(failed.value, AirflowFailException)


def test_sync_wait_never_overshoots_its_deadline(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11.8: one fetch with its retries (4 x 20 s here) is cut at the task's timeout."""
    conn = {
        "conn_type": "modelslab",
        "password": KEY,
        "host": sim.url,
        "extra": {"timeout": 30, "max_retries": 4},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MODELSLAB_SLOW", json.dumps(conn))
    op = text_op(
        "slow [sim:duration=0 fault=slow slow_s=20 fault_on=1,2,3,4]",
        modelslab_conn_id="modelslab_slow",
        timeout=2,
    )
    started = time.monotonic()
    with pytest.raises(AirflowException, match="timeout of 2 s ran out"):
        op.execute(context())
    assert time.monotonic() - started < 5


@needs_store
def test_a_stored_job_that_failed_with_rate_limit_words_is_not_reconnected_to(sim: Simulator) -> None:
    """Issue 11.4 on 3.3+: the failed job is not mistaken for a rate limit (a live job to wait for)."""
    job = client(sim).submit(
        "text2video", {"prompt": "a cat [sim:duration=0 outcome=failed fail_text=ratelimit]"}
    )
    time.sleep(0.1)
    op = text_op(timeout=5)
    store = stored_job(job.request_id, op)
    ctx = context(store)
    assert op.execute(ctx)
    assert ctx["ti"].xcom["request_id"] != job.request_id  # submitted anew, not reconnected
    assert submits(sim) == 2
