"""The engine's deferred waits end in the triggerer with the very XComs the worker path pushes.

Each case defers a real operator against the simulator, rebuilds its trigger from the serialized
kwargs (as the triggerer does), runs it to its event, then hands the same event to both paths:
the worker's ``execute_complete`` and the trigger's :func:`~.task_end.end_event`. The real
triggerer run is tests/integration/test_trigger_end_live.py.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred
from airflow.triggers.base import TaskFailedEvent, TaskSuccessEvent

from modelslab_provider.operators.batch import ModelsLabVideoBatchOperator
from modelslab_provider.operators.video import ModelsLabTextToVideoOperator
from modelslab_provider.simulator import Simulator
from modelslab_provider.triggers import task_end
from modelslab_provider.triggers.task_end import ModelsLabEvent, end_event
from modelslab_provider.version_compat import AIRFLOW_V_3_3_PLUS
from tests.unit.test_batch_operator import context
from tests.unit.test_operators import run_trigger
from tests.unit.test_operators import server as server  # fixture
from tests.unit.test_operators import sim as sim  # fixture

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="tasks end in the triggerer from Airflow 3.3")

FAST: dict[str, Any] = {"poll_interval": 0.05, "max_poll_interval": 0.2, "deferrable": True}


class TriggerTI:
    dag_id, task_id, run_id, map_index = "dag", "generate", "run", -1


def defer(op: Any, ctx: dict[str, Any]) -> Any:
    """The trigger the task deferred to, rebuilt from its serialized kwargs (as the triggerer does)."""
    with pytest.raises(TaskDeferred) as info:
        op.execute(ctx)
    classpath, kwargs = info.value.trigger.serialize()
    assert info.value.method_name == "execute_complete"
    module, name = classpath.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**kwargs)


def end_in_triggerer(
    trigger: Any, event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, dict[str, Any]]:
    pushed: dict[str, Any] = {}

    async def push(ti: Any, spec: Any, key: str, value: Any, *, mapped: bool = False) -> None:
        pushed[key] = value

    monkeypatch.setattr(task_end, "_push", push)
    trigger.task_instance = TriggerTI()
    return asyncio.run(end_event(trigger, event, trigger.end_task)), pushed


def worker_xcoms(op: Any, ctx: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """What the worker path pushes after the wait, ``return_value`` included."""
    before = set(ctx["ti"].xcom)  # the record (ids, track ids) is pushed before the deferral
    value = op.execute_complete(ctx, event)
    pushed = {"return_value": value, **{k: v for k, v in ctx["ti"].xcom.items() if k not in before}}
    # then Airflow's finalize() stores the "ModelsLab Video" link: get_link's answer, the first URL
    for link in op.operator_extra_links:
        if "video_url" in pushed:
            pushed[link.xcom_key] = pushed["video_url"]
    return pushed


def test_a_video_ends_in_the_triggerer_with_the_worker_xcoms(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = ModelsLabTextToVideoOperator(task_id="generate", prompt="a cat [sim:duration=0.2]", **FAST)
    ctx = context()
    trigger = defer(op, ctx)
    assert trigger.end_task["kind"] == "video"
    event = run_trigger(trigger)
    ended, pushed = end_in_triggerer(trigger, event, monkeypatch)
    assert isinstance(ended, TaskSuccessEvent)
    expected = worker_xcoms(op, ctx, event)
    assert pushed == expected
    assert {"return_value", "video_url", "proxy_links"} <= set(pushed)


@pytest.mark.parametrize("count", [2, 3])
def test_a_partly_failed_batch_ends_in_the_triggerer_with_the_worker_xcoms(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """Ordered ``results``, ``video_url`` and the engine's return value (successful inputs only)."""
    inputs = [f"shot {i} [sim:duration=0.{i + 2}]" for i in range(count)]
    inputs[0] = "shot 0 [sim:duration=0.2 outcome=failed]"
    op = ModelsLabVideoBatchOperator(
        task_id="generate", model_id="wan2.2", prompts=inputs, allow_partial_failure=True, **FAST
    )
    ctx = context()
    trigger = defer(op, ctx)
    event = run_trigger(trigger)
    ended, pushed = end_in_triggerer(trigger, event, monkeypatch)
    assert isinstance(ended, TaskSuccessEvent)
    assert pushed == worker_xcoms(op, ctx, event)
    assert [r["status"] for r in pushed["results"]] == ["failed"] + ["success"] * (count - 1)
    assert len(pushed["return_value"]) == count - 1


def test_a_failed_entry_without_partial_failure_resumes_on_the_worker(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = ["a [sim:duration=0.2]", "b [sim:duration=0.2 outcome=failed]", "c [sim:duration=0.2]"]
    op = ModelsLabVideoBatchOperator(task_id="generate", model_id="wan2.2", prompts=inputs, **FAST)
    ctx = context()
    trigger = defer(op, ctx)
    event = run_trigger(trigger)
    ended, pushed = end_in_triggerer(trigger, event, monkeypatch)
    assert type(ended) is ModelsLabEvent  # the worker raises the final failure
    assert pushed == {}
    with pytest.raises(AirflowFailException, match="1 of 3 ModelsLab videos failed"):
        op.execute_complete(ctx, ended.payload)
    assert [r["status"] for r in ctx["ti"].xcom["results"]] == ["success", "failed", "success"]


def test_a_timeout_ends_failed_in_the_triggerer_with_the_worker_message(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    op = ModelsLabTextToVideoOperator(task_id="generate", prompt="slow [sim:duration=60]", timeout=1, **FAST)
    ctx = context()
    trigger = defer(op, ctx)
    event = run_trigger(trigger)
    assert event["status"] == "timeout"
    trigger._log = logging.getLogger("test.trigger_end")  # what the trigger logs, for caplog
    with caplog.at_level(logging.ERROR, logger="test.trigger_end"):
        ended, _ = end_in_triggerer(trigger, event, monkeypatch)
    assert isinstance(ended, TaskFailedEvent)  # Airflow retries it when a retry is left
    with pytest.raises(AirflowException) as worker:
        op.execute_complete(ctx, event)
    assert str(worker.value) in caplog.text
    assert "reconnects to request" in str(worker.value)


def test_end_from_trigger_false_keeps_the_worker_path(sim: Simulator) -> None:
    op = ModelsLabTextToVideoOperator(
        task_id="generate", prompt="a cat [sim:duration=0.2]", end_from_trigger=False, **FAST
    )
    assert defer(op, context()).end_task is None
