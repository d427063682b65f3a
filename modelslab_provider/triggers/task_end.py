"""End a deferred ModelsLab task in the triggerer, so the end of a wait costs no worker.

A trigger's final event becomes ``TaskSuccessEvent`` (after pushing the XComs a worker would
push), ``TaskSkippedEvent`` (a sensor with ``soft_fail``/``never_fail``) or ``TaskFailedEvent``
(a retryable failure, on lines that route it to a retry); anything else keeps today's path: the
task resumes on a worker and ``execute_complete`` reads the plain event. The worker decides at
defer time (:func:`end_spec`) and falls back to resuming whenever something needs it there
(docs/waiting-modes.md, "Ending in the triggerer").

XComs are written through the Task SDK (``XCom.aset``, apache/airflow PR 53514), as a worker
writes them. The event's own ``xcoms`` field is not used: Airflow 3.3.2 stores it with
``XComModel.set``, which JSON-encodes the value once more, so a downstream task would receive
the string ``'["http://..."]'`` instead of the list.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow.triggers.base import TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent, TriggerEvent

from modelslab_provider.events import (
    FINAL_ERROR_TYPES,
    VIDEO_LINK_NAME,
    XCOM_VIDEO_URL,
    batch_event,
    batch_outputs,
    urls_from_event,
    video_outputs,
)
from modelslab_provider.version_compat import AIRFLOW_V_3_3_PLUS

log = logging.getLogger(__name__)

#: a sensor started in the triggerer asks Airflow for a trigger timeout this much later than its own
#: ``timeout``, and ends its wait at ``timeout_after`` minus this: the trigger's own timeout event
#: (a skip under ``soft_fail``, without a worker) comes first, and the clock survives a restart
START_TIMEOUT_MARGIN = 30.0
#: where an operator's timeout text takes the trigger's message (see :func:`end_spec`)
MESSAGE = "\x00message\x00"
KINDS = ("video", "sensor", "batch")


class ModelsLabEvent(TriggerEvent):
    """A trigger event whose log form is a one-line summary, not the whole payload (issue 25)."""

    def __init__(self, payload: Any, **kwargs: Any) -> None:
        super().__init__(payload, **kwargs)

    def __repr__(self) -> str:
        return f"TriggerEvent<{summary(self.payload)}>"


def summary(payload: Any) -> str:
    """``status``, the ids and a count or a shortened message: what a log line needs of an event."""
    if not isinstance(payload, Mapping):
        return repr(payload)[:200]
    parts = [f"ModelsLab {payload.get('status')}"]
    if payload.get("request_id") is not None:
        parts.append(f"request {payload['request_id']}")
    if isinstance(payload.get("urls"), list):
        parts.append(f"{len(payload['urls'])} URL(s)")
    if isinstance(payload.get("jobs"), list):
        parts.append(f"{len(payload['jobs'])} job(s)")
    for key in ("polls", "rounds", "elapsed", "error_type"):
        if payload.get(key) is not None:
            parts.append(f"{key} {payload[key]}")
    message = payload.get("message")
    if message:
        text = str(message)
        parts.append(repr(text if len(text) <= 160 else text[:160] + "..."))
    return ", ".join(parts)


def static_reason(task: Any) -> str | None:
    """Why ``task`` must resume on a worker, from what the DAG file says (None: it need not)."""
    if not AIRFLOW_V_3_3_PLUS:
        # 3.1/3.2 fail a TaskFailedEvent without retry routing; their success path is untested here
        return "this Airflow line is older than 3.3"
    if getattr(task, "on_success_callback", None) or getattr(task, "has_on_success_callback", False):
        # Airflow's DAG processor runs only failure and retry callbacks of a task ended in the triggerer
        return "on_success_callback runs only on a worker"
    if getattr(task, "outlets", None):
        return "outlets: only a worker records their asset events"
    if getattr(task, "multiple_outputs", False):
        return "multiple_outputs"
    return None


def worker_needed(task: Any) -> str | None:
    """Why ``task`` must resume on a worker after its wait; None when the triggerer may end it."""
    reason = static_reason(task)
    if reason is None and _lineage_reader():
        reason = "a hook lineage reader is installed (lineage is reported by the worker)"
    if reason is None and _listeners():
        reason = "Airflow listeners are registered (they are called by the worker)"
    return reason


def _lineage_reader() -> bool:
    try:
        from modelslab_provider.lineage import _active, _collector

        return _active(_collector())
    except Exception:
        return False


def _listeners() -> bool:
    try:
        from airflow.sdk.listener import get_listener_manager

        return bool(get_listener_manager().has_listeners)
    except Exception:
        return False


def end_spec(task: Any, context: Any, kind: str, **options: Any) -> dict[str, Any] | None:
    """The trigger's ``end_task`` kwarg: how to end ``task`` there, or None to resume on a worker.

    ``options``: ``timeout_message`` (the worker's timeout text with :data:`MESSAGE` where the
    trigger's message goes), ``allow_partial_failure`` (batch). The engine calls it where it builds
    the trigger (:func:`modelslab_provider.jobs.waits.defer_wait`), the sensor where it defers.
    """
    if not getattr(task, "end_in_triggerer", True):
        return None
    reason = worker_needed(task)
    if reason is not None:
        task.log.info("The task resumes on a worker after the wait: %s", reason)
        return None
    ti = context.get("ti") if isinstance(context, Mapping) else None
    return {
        "kind": kind,
        "push_return": bool(getattr(task, "do_xcom_push", True)),
        "mapped_length": _mapped_dependants(task, getattr(ti, "map_index", -1)),
        "dag_result": bool(getattr(task, "returns_dag_result", False)),
        "skip_on_failure": bool(getattr(task, "soft_fail", False) or getattr(task, "never_fail", False)),
        # the "ModelsLab Video" button: a worker stores it in finalize(), after the task's last run
        "link_keys": [
            str(link.xcom_key)
            for link in getattr(task, "operator_extra_links", ())
            if getattr(link, "name", None) == VIDEO_LINK_NAME
        ],
        **options,
    }


def _mapped_dependants(task: Any, map_index: Any) -> bool:
    """Whether a downstream task maps over this one's ``return_value`` (Airflow then needs its length)."""
    if isinstance(map_index, int) and map_index >= 0:
        return False
    try:
        return next(task.iter_mapped_dependants(), None) is not None
    except Exception:
        return False


async def end_event(trigger: Any, payload: dict[str, Any], spec: Mapping[str, Any] | None) -> TriggerEvent:
    """The event that ends the task for ``payload``, or the plain event (resume on a worker)."""
    ti = getattr(trigger, "task_instance", None)
    # ``airflow dags test`` runs triggers inline with no task instance and ignores task-end events
    if not spec or getattr(ti, "run_id", None) is None:
        return ModelsLabEvent(payload)
    try:
        event = await _end(trigger, ti, payload, spec)
    except Exception:  # e.g. an XCom backend refusing the value: the worker path still works
        trigger.log.exception("Could not end the task in the triggerer; it resumes on a worker")
        return ModelsLabEvent(payload)
    return event or ModelsLabEvent(payload)


async def _end(
    trigger: Any, ti: Any, payload: dict[str, Any], spec: Mapping[str, Any]
) -> TriggerEvent | None:
    if spec.get("started_in_triggerer"):  # only the triggerer knows these for a task it started
        task = getattr(ti, "task", None)
        if task is None or _lineage_reader() or _listeners():
            return None
        mapped = _mapped_dependants(task, getattr(ti, "map_index", -1))
        dag_result = bool(getattr(task, "returns_dag_result", False))
        spec = {**spec, "mapped_length": mapped, "dag_result": dag_result}
    status, kind = payload.get("status"), spec.get("kind")
    if status == "success":
        result = _success_xcoms(payload, spec)
        if result is None:  # e.g. failed batch entries without allow_partial_failure: a final failure
            return _skip(trigger, spec, "the job did not succeed")
        xcoms, return_value = result
        if spec.get("push_return", True):
            xcoms = {"return_value": return_value, **xcoms}
        mapped = bool(spec.get("mapped_length"))
        for key, value in xcoms.items():
            await _push(ti, spec, key, value, mapped=mapped and key == "return_value")
        trigger.log.info("Ended the task in the triggerer: success, XComs %s", ", ".join(xcoms))
        return TaskSuccessEvent()
    message = str(payload.get("message") or f"event status {status}")
    if spec.get("skip_on_failure"):
        return _skip(trigger, spec, message)
    # the same split as the worker's execute_complete (the batch operator retries only unexpected errors)
    kind_of_error = payload.get("error_type")
    final = kind_of_error != "unexpected" if kind == "batch" else kind_of_error in FINAL_ERROR_TYPES
    retryable = status == "timeout" or (status == "error" and not final)
    if kind != "sensor" and retryable:
        if status == "timeout":  # the worker's text: the job may still finish, what a retry does
            text = str(spec.get("timeout_message") or MESSAGE)
        else:
            text = f"{MESSAGE} (connection {getattr(trigger, 'modelslab_conn_id', '?')!r})"
        trigger.log.error("%s", text.replace(MESSAGE, message))
        trigger.log.info("Ended the task in the triggerer: failed (retried if a retry is left)")
        return TaskFailedEvent()
    # a final failure (no retry) or a sensor timeout: the worker raises it with the same message
    return None


def _skip(trigger: Any, spec: Mapping[str, Any], message: str) -> TriggerEvent | None:
    if not spec.get("skip_on_failure"):
        return None
    trigger.log.warning("Skipping (soft_fail/never_fail): %s", message)
    return TaskSkippedEvent()


def _success_xcoms(payload: Mapping[str, Any], spec: Mapping[str, Any]) -> tuple[dict[str, Any], Any] | None:
    """The XComs and ``return_value`` a worker would push for a success event (None: let it fail).

    From the same functions the worker's ``publish`` calls (:func:`.events.video_outputs`,
    :func:`.events.batch_outputs`), so the two paths cannot drift apart.
    """
    if spec.get("kind") == "batch":
        from modelslab_provider.client.batch import assemble

        parsed = batch_event(payload)
        if parsed is None:
            return None
        jobs, finished = parsed
        results = assemble(jobs, finished, sum(int(j["size"]) for j in jobs))
        if any(r.status != "success" for r in results) and not spec.get("allow_partial_failure"):
            return None  # the worker pushes 'results', then fails the task naming each failed input
        return _with_links(batch_outputs(results, bool(spec.get("allow_partial_failure"))), spec)
    try:
        urls = urls_from_event(dict(payload), conn_id="")
    except Exception:
        return None  # the worker raises the same check with its message
    if spec.get("kind") == "sensor":
        return {}, urls
    details = payload.get("details")
    return _with_links(video_outputs(urls, details if isinstance(details, Mapping) else {}), spec)


def _with_links(outputs: tuple[dict[str, Any], Any], spec: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """Add the extra link's stored value (the first video's URL), as a worker's finalize() would."""
    xcoms, value = outputs
    url = xcoms.get(XCOM_VIDEO_URL)
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        xcoms = {**xcoms, **{key: url for key in spec.get("link_keys") or ()}}
    return xcoms, value


def start_deadline(trigger: Any) -> float | None:
    """A started-in-the-triggerer sensor's deadline: Airflow's stored trigger timeout, less the margin."""
    spec = getattr(trigger, "end_task", None) or {}
    timeout_after = getattr(trigger, "timeout_after", None)
    if not spec.get("started_in_triggerer") or not isinstance(timeout_after, datetime):
        return None
    return timeout_after.timestamp() - START_TIMEOUT_MARGIN


async def _push(ti: Any, spec: Mapping[str, Any], key: str, value: Any, *, mapped: bool = False) -> None:
    """One XCom, written as a worker writes it (Task SDK, the configured XCom backend)."""
    from airflow.sdk.execution_time.xcom import XCom

    await XCom.aset(
        key=key,
        value=value,
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=ti.run_id,
        map_index=ti.map_index,
        dag_result=bool(spec.get("dag_result")),
        _mapped_length=len(value) if mapped and isinstance(value, list) else None,
    )
