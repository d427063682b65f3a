"""A paid job's wait for its videos: in the worker, or deferred to the trigger, cut at the try's deadline.

Deferred, every job waits on the one trigger,
:class:`~modelslab_provider.triggers.video.VideoFetchTrigger`: a single-video job with its
``request_id`` (polls follow the API's ETA), a batch task's job with its ``jobs`` (one fetch per
unfinished submission per round). The trigger uses the same trackers as the worker's loops, so a
deferred and a sync wait decide alike.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from airflow.providers.common.compat.sdk import AirflowException

from modelslab_provider.client.batch import BatchWait, EntryResult, InputResult, entry_from_single
from modelslab_provider.client.core import Status, VideoResult
from modelslab_provider.client.errors import ModelsLabError
from modelslab_provider.client.policy import WaitTracker
from modelslab_provider.events import batch_event, urls_from_event
from modelslab_provider.jobs import outcomes

if TYPE_CHECKING:
    from modelslab_provider.client.policy import PollPolicy
    from modelslab_provider.hooks.modelslab import ModelsLabHook

__all__ = ["InputResult", "JobOperator", "defer_wait", "read_event", "wait_here"]

Finished = dict[str, tuple[EntryResult, ...]]


class JobOperator(Protocol):
    """What the engine reads of the operator running it (``ModelsLabBaseOperator``)."""

    modelslab_conn_id: str
    wait_for_completion: bool
    deferrable: bool
    end_in_triggerer: bool
    timeout: float
    execution_timeout: Any

    @property
    def hook(self) -> ModelsLabHook: ...

    @property
    def log(self) -> Any: ...

    def _poll_policy(self) -> PollPolicy: ...

    def defer(
        self, *, trigger: Any, method_name: str, kwargs: Any = None, timeout: Any = None
    ) -> NoReturn: ...


class PaidJob(Protocol):
    """What a wait reads of the job it waits for (:class:`~modelslab_provider.jobs.engine.PaidJob`)."""

    op: JobOperator
    context: Any
    spec: Any  # JobSpec: ``video``, ``size_text``, ``accept_failures``
    jobs: list[dict[str, Any]]
    finished: dict[str, tuple[EntryResult, ...]]
    deadline: float
    limit: str

    @property
    def remembered(self) -> bool: ...

    def ids_text(self) -> str: ...

    def unexpected(self, event: Any) -> AirflowException: ...


def _started_at(job: PaidJob) -> float:
    return min(float(j.get("submitted_at") or time.time()) for j in job.jobs)


def defer_wait(job: PaidJob) -> NoReturn:
    """Hand the wait to the triggerer; its deadline is the try's, so a timeout there is an event."""
    from modelslab_provider.triggers.task_end import MESSAGE, end_spec

    op = job.op
    deadline_text = datetime.fromtimestamp(job.deadline, UTC).isoformat(timespec="seconds")
    # how the trigger ends the task itself when the wait is over (None: the task resumes here)
    end_task = end_spec(
        op,
        job.context,
        "video" if job.spec.video else "batch",
        timeout_message=outcomes.timeout_message(MESSAGE, job.ids_text(), remembered=job.remembered),
        allow_partial_failure=job.spec.accept_failures,
    )
    from modelslab_provider.triggers.video import VideoFetchTrigger

    # what every wait gives the one trigger; a job adds its request or its submissions
    common: dict[str, Any] = {
        "modelslab_conn_id": op.modelslab_conn_id,
        "deadline": job.deadline,
        "poll_policy": op._poll_policy().to_dict(),
        "limit": job.limit,
        "end_task": end_task,
    }
    if job.spec.video:
        record = job.jobs[0]
        what = f"ModelsLab request {record['id']}"
        trigger = VideoFetchTrigger(
            request_id=record["id"],
            api_version=record.get("api_version") or "v6",
            fetch_url=record.get("fetch_url"),
            started_at=record.get("submitted_at"),
            eta=record.get("eta"),
            **common,
        )
    else:
        what = job.spec.size_text
        trigger = VideoFetchTrigger(
            jobs=[dict(j) for j in job.jobs],
            started_at=_started_at(job),
            finished={k: [e.to_dict() for e in v] for k, v in job.finished.items()},
            **common,
        )
    op.log.info("Deferring: the triggerer waits for %s until %s (%s)", what, deadline_text, job.limit)
    # the deadline lives in the trigger: it reports a timeout event instead of vanishing
    op.defer(trigger=trigger, method_name="execute_complete", timeout=None)


def wait_here(job: PaidJob) -> tuple[Finished, Mapping[str, Any] | None]:
    """Poll in the worker until every entry ends, or the try's deadline."""
    op = job.op
    try:
        if job.spec.video:
            record = job.jobs[0]
            op.log.info(
                "Waiting for ModelsLab request %s in the worker (%s left before the task's %s runs out)",
                record["id"],
                f"{max(job.deadline - time.time(), 0):.0f} s",
                job.limit,
            )
            result = op.hook.client.wait(
                record["id"],
                api_version=record.get("api_version") or "v6",
                fetch_url=record.get("fetch_url"),
                started_at=record.get("submitted_at"),
                eta=record.get("eta"),
                deadline=job.deadline,
                poll=op._poll_policy(),
                on_progress=lambda tracker, result, error: _log_progress(op, tracker, result, error),
                limit=job.limit,
            )
            return {str(record["id"]): (entry_from_single(result, record.get("track_id")),)}, result.details()
        pending = [j for j in job.jobs if str(j["id"]) not in job.finished]
        op.log.info(
            "Waiting for %s in the worker (until the task's %s runs out)", job.spec.size_text, job.limit
        )
        done = op.hook.client.wait_batches(
            pending,
            started_at=_started_at(job),
            deadline=job.deadline,
            poll=op._poll_policy(),
            on_round=lambda tracker, delay: _log_round(op, tracker, delay),
            limit=job.limit,
        )
        return {**job.finished, **done}, None
    except ModelsLabError as exc:
        raise outcomes.wait_failure(
            exc, op.modelslab_conn_id, job.ids_text(), remembered=job.remembered
        ) from exc


def _log_progress(op: JobOperator, tracker: WaitTracker, result: VideoResult | None, error: Any) -> None:
    if error is not None:
        op.log.warning(
            "ModelsLab request %s: poll %d failed (%s); still waiting",
            tracker.request_id,
            tracker.polls + 1,
            error,
        )
    elif result is not None and not result.is_terminal:
        op.log.info(*tracker.describe(result, time.time()))


def _log_round(op: JobOperator, tracker: BatchWait, delay: float) -> None:
    op.log.info(
        "ModelsLab: %d of %d submission(s) finished, %d videos running (round %d); next poll in %.1f s",
        len(tracker.finished),
        len(tracker.jobs),
        tracker.running(),
        tracker.rounds,
        delay,
    )


def read_event(job: PaidJob, event: Any) -> tuple[Finished, Mapping[str, Any] | None]:
    """The finished entries from a trigger's event; a failure or timeout raises its exception."""
    if not isinstance(event, Mapping):
        raise job.unexpected(event)
    if event.get("status") == "timeout":
        raise AirflowException(
            outcomes.timeout_message(
                str(event.get("message") or ""), job.ids_text(), remembered=job.remembered
            )
        )
    if job.spec.video:
        urls = urls_from_event(dict(event), conn_id=job.op.modelslab_conn_id)
        given = event.get("details")
        details: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        if not job.jobs:
            raise job.unexpected(event)
        record = job.jobs[0]
        entry = EntryResult(0, Status.DONE, "success", record.get("track_id"), str(record["id"]), tuple(urls))
        return {str(record["id"]): (entry,)}, {
            **details,
            "request_id": details.get("request_id") or record["id"],
        }
    status = event.get("status")
    if status not in ("success", "error"):
        raise job.unexpected(event)
    if status == "error":
        message = str(event.get("message") or "")
        if event.get("error_type") == "unexpected":
            raise AirflowException(f"{message} (connection {job.op.modelslab_conn_id!r})")
        from airflow.providers.common.compat.sdk import AirflowFailException

        raise AirflowFailException(message)
    parsed = batch_event(event)  # the same reading as a trigger that ends the task itself
    if parsed is None:
        raise AirflowException("The ModelsLab batch trigger event lacks its results")
    return {**job.finished, **parsed[1]}, None
