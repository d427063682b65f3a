"""Ending a task in the triggerer: the decision, the XComs, the events, and the sensor's start there.

The worker-free path itself needs a real triggerer: tests/integration/test_trigger_end_live.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG, task
from airflow.triggers.base import TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent, TriggerEvent

from modelslab_provider.events import video_outputs
from modelslab_provider.operators.video import ModelsLabTextToVideoOperator
from modelslab_provider.sensors.video import VideoFetchSensor
from modelslab_provider.triggers import task_end
from modelslab_provider.triggers.task_end import (
    MESSAGE,
    START_TIMEOUT_MARGIN,
    ModelsLabEvent,
    end_event,
    end_spec,
    static_reason,
    summary,
)
from modelslab_provider.triggers.video import VideoFetchTrigger
from modelslab_provider.version_compat import AIRFLOW_V_3_3_PLUS

SUCCESS = {
    "status": "success",
    "request_id": "150000001",
    "urls": ["https://cdn.example/a.mp4"],
    "details": {
        "proxy_links": ["https://cdn.example/p.mp4", "ftp://x"],
        "generation_time": 12.5,
        "meta": {"prompt": "a cat", "seed": 7},
    },
    "polls": 3,
    "elapsed": 30.0,
}


class FakeTI:
    dag_id, task_id, run_id, map_index = "d", "t", "r", -1


class Recorder:
    """Stands in for the Task SDK's ``XCom.aset`` (the triggerer's supervisor is not here)."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, Any, int | None]] = []

    async def aset(self, key: str, value: Any, **kwargs: Any) -> None:
        self.pushed.append((key, value, kwargs.get("_mapped_length")))


@pytest.fixture
def xcoms(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()

    async def push(ti: Any, spec: Any, key: str, value: Any, *, mapped: bool = False) -> None:
        await recorder.aset(key, value, _mapped_length=len(value) if mapped else None)

    monkeypatch.setattr(task_end, "_push", push)
    return recorder


def trigger(spec: dict[str, Any] | None, ti: Any = None) -> VideoFetchTrigger:
    made = VideoFetchTrigger(request_id="150000001", end_task=spec)
    made.task_instance = ti
    return made


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_worker_and_the_triggerer_push_the_same_detail_xcoms() -> None:
    """Both paths call ``video_outputs`` (the engine's cases: tests/unit/test_task_end_engine.py)."""
    assert video_outputs(SUCCESS["urls"], SUCCESS["details"]) == (
        {
            "video_url": "https://cdn.example/a.mp4",
            "proxy_links": ["https://cdn.example/p.mp4"],
            "generation_time": 12.5,
            "meta": {"prompt": "a cat", "seed": 7},
        },
        ["https://cdn.example/a.mp4"],
    )


def test_success_pushes_the_xcoms_then_ends_the_task(xcoms: Recorder) -> None:
    spec = {"kind": "video", "push_return": True, "mapped_length": True}
    event = run(end_event(trigger(spec, FakeTI()), SUCCESS, spec))
    assert isinstance(event, TaskSuccessEvent)
    assert event.xcoms is None  # never the event's own xcoms: Airflow 3.3.2 encodes them twice
    pushed = {key: (value, mapped) for key, value, mapped in xcoms.pushed}
    assert pushed["return_value"] == (["https://cdn.example/a.mp4"], 1)  # a mapped downstream's length
    assert pushed["video_url"] == ("https://cdn.example/a.mp4", None)
    assert set(pushed) == {"return_value", "video_url", "proxy_links", "generation_time", "meta"}


def test_without_a_task_instance_the_plain_event_resumes_the_worker(xcoms: Recorder) -> None:
    """``airflow dags test`` runs the trigger inline, with no task instance, and resumes the task."""
    spec = {"kind": "video"}
    event = run(end_event(trigger(spec), SUCCESS, spec))
    assert type(event) is ModelsLabEvent
    assert event.payload == SUCCESS
    assert xcoms.pushed == []


def test_final_failures_resume_on_the_worker_and_retryable_ones_end_failed(xcoms: Recorder) -> None:
    spec = {"kind": "video", "timeout_message": f"{MESSAGE} No cancel API."}
    failed = {"status": "failed", "message": "bad prompt"}
    assert type(run(end_event(trigger(spec, FakeTI()), failed, spec))) is ModelsLabEvent
    final = {"status": "error", "error_type": "auth", "message": "key refused"}
    assert type(run(end_event(trigger(spec, FakeTI()), final, spec))) is ModelsLabEvent
    timeout = {"status": "timeout", "message": "not ready after 5 s."}
    assert isinstance(run(end_event(trigger(spec, FakeTI()), timeout, spec)), TaskFailedEvent)
    transient = {"status": "error", "error_type": "transient", "message": "502"}
    assert isinstance(run(end_event(trigger(spec, FakeTI()), transient, spec)), TaskFailedEvent)
    # the batch operator retries only unexpected errors
    batch = {"kind": "batch"}
    assert type(run(end_event(trigger(batch, FakeTI()), transient, batch))) is ModelsLabEvent


def test_sensor_soft_fail_skips_and_a_sensor_timeout_resumes(xcoms: Recorder) -> None:
    timeout = {"status": "timeout", "message": "not ready"}
    soft = {"kind": "sensor", "skip_on_failure": True}
    assert isinstance(run(end_event(trigger(soft, FakeTI()), timeout, soft)), TaskSkippedEvent)
    hard = {"kind": "sensor"}
    # AirflowSensorTimeout is not retried: only the worker can raise it
    assert type(run(end_event(trigger(hard, FakeTI()), timeout, hard))) is ModelsLabEvent


def test_a_failing_push_falls_back_to_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise ValueError("the XCom backend is down")

    monkeypatch.setattr(task_end, "_push", refuse)
    spec = {"kind": "video"}
    event = run(end_event(trigger(spec, FakeTI()), SUCCESS, spec))
    assert type(event) is ModelsLabEvent
    assert event.payload == SUCCESS


def test_the_event_log_line_is_a_summary() -> None:
    line = repr(ModelsLabEvent(SUCCESS))
    assert line.startswith("TriggerEvent<ModelsLab success, request 150000001, 1 URL(s)")
    assert "meta" not in line
    assert "x" * 161 not in summary({"status": "error", "message": "x" * 5000})
    assert isinstance(ModelsLabEvent(SUCCESS), TriggerEvent)


def _operator(**kwargs: Any) -> ModelsLabTextToVideoOperator:
    return ModelsLabTextToVideoOperator(task_id="gen", prompt="a cat", deferrable=True, **kwargs)


def test_tasks_that_need_the_worker_keep_resuming_there() -> None:
    if not AIRFLOW_V_3_3_PLUS:
        # below 3.3 a TaskFailedEvent skips the task's retries: every task resumes on a worker
        assert "older than 3.3" in str(static_reason(_operator()))
        assert end_spec(_operator(), {}, "video") is None
        return
    assert static_reason(_operator()) is None
    assert "on_success_callback" in str(static_reason(_operator(on_success_callback=lambda ctx: None)))
    assert "outlets" in str(static_reason(_operator(outlets=["file:///tmp/x"])))
    assert end_spec(_operator(end_from_trigger=False), {}, "video") is None
    spec = end_spec(_operator(), {}, "video", timeout_message="m")
    assert spec is not None
    assert spec["kind"] == "video"
    assert spec["timeout_message"] == "m"


# --------------------------------------------------------------------------- start_from_trigger


def _dag() -> DAG:
    return DAG(dag_id="start", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))


def test_the_sensor_starts_in_the_triggerer_with_a_plain_upstream_output() -> None:
    with _dag():

        @task
        def submit() -> str:
            return "1"

        upstream = submit()
        wait = VideoFetchSensor(task_id="wait", request_id=upstream, start_from_trigger=True, timeout=60)
    assert wait.deferrable  # whenever a worker runs it, it defers at once
    if not AIRFLOW_V_3_3_PLUS:
        # 3.1/3.2's scheduler starts every task on a worker, which renders the upstream output
        assert wait.request_id is upstream
        assert "submit" in wait.upstream_task_ids
        return
    args = wait.start_trigger_args
    assert args is not None
    assert args.trigger_cls == "modelslab_provider.triggers.video.VideoFetchTrigger"
    assert args.next_method == "execute_complete"
    assert args.timeout == timedelta(seconds=60 + START_TIMEOUT_MARGIN)
    kwargs = args.trigger_kwargs or {}
    # one GetXCom request, which the triggerer serves; the dependency is kept
    assert kwargs["request_id"] == "{{ ti.xcom_pull(task_ids='submit', key='return_value', map_indexes=-1) }}"
    assert "submit" in wait.upstream_task_ids
    assert kwargs["end_task"]["started_in_triggerer"] is True
    # the trigger accepts the raw template and checks the id once rendered
    made = VideoFetchTrigger(**kwargs)
    made.request_id = "None"  # what a missing XCom renders to
    with pytest.raises(Exception, match="rendered to 'None'"):
        made.tracker()


def test_start_from_trigger_refuses_what_the_triggerer_cannot_render() -> None:
    template = "{{ ti.xcom_pull('submit') }}"
    if not AIRFLOW_V_3_3_PLUS:  # nothing is rendered in the triggerer there: a worker renders it
        assert VideoFetchSensor(task_id="w", request_id=template, start_from_trigger=True).deferrable
        return
    with pytest.raises(ValueError, match="map_indexes"):
        VideoFetchSensor(task_id="w", request_id=template, start_from_trigger=True)
    with _dag():

        @task
        def ids() -> list[str]:
            return ["1"]

        with pytest.raises(ValueError, match=r"cannot be rendered in the triggerer"):
            VideoFetchSensor(task_id="w", request_id=ids().map(str), start_from_trigger=True)


def test_a_started_sensor_uses_airflows_stored_timeout_less_the_margin() -> None:
    made = VideoFetchTrigger(request_id="1", end_task={"kind": "sensor", "started_in_triggerer": True})
    made.timeout_after = datetime(2026, 1, 1, tzinfo=UTC)
    assert task_end.start_deadline(made) == made.timeout_after.timestamp() - START_TIMEOUT_MARGIN
    assert task_end.start_deadline(VideoFetchTrigger(request_id="1")) is None


def test_airflow_sees_no_end_from_trigger_attribute_so_listeners_never_break_parsing() -> None:
    """Airflow's DagBag refuses a task whose ``end_from_trigger`` is true when listeners exist.

    Ours decides at defer time (listeners: resume on a worker), so the attribute Airflow reads
    stays false whatever the argument says; the choice lives in ``end_in_triggerer``.
    """
    from modelslab_provider.operators.video import ModelsLabTextToVideoOperator
    from modelslab_provider.sensors.video import VideoFetchSensor

    op = ModelsLabTextToVideoOperator(task_id="t", prompt="p", deferrable=True, end_from_trigger=True)
    sensor = VideoFetchSensor(task_id="s", request_id="1", deferrable=True, end_from_trigger=True)
    for operator in (op, sensor):
        assert getattr(operator, "end_from_trigger", False) is False
        assert operator.end_in_triggerer is True
