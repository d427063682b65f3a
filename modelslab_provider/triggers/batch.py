"""BatchFetchTrigger: waits for all of one task's ModelsLab batches in the triggerer.

One trigger per task: each round fetches every unfinished job once (one batch fetch per batch,
never one fetch per video; a single-video job, used when there were too few inputs for a batch,
is one fetch too), then waits as :class:`~modelslab_provider.client.batch.BatchWait` says, the
same tracker the synchronous wait uses. Read-only and free, so running it twice after a triggerer
failover is harmless. Kwargs are JSON only and hold no secret: ids, sizes, times, the conn id.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelslab_provider.client.batch import BatchWait, EntryResult
from modelslab_provider.client.core import DEFAULT_CONN_ID, V6, normalise_request_id
from modelslab_provider.client.errors import ModelsLabConfigError, ModelsLabTimeoutError
from modelslab_provider.client.job import describe
from modelslab_provider.client.policy import Action
from modelslab_provider.triggers.base import ModelsLabTrigger, ProgressLog

if TYPE_CHECKING:
    from modelslab_provider.client.aio import AsyncModelsLabClient

CLASSPATH = "modelslab_provider.triggers.batch.BatchFetchTrigger"
KINDS = ("batch", "single")


def check_jobs(jobs: Any) -> list[dict[str, Any]]:
    """The trigger's job list, validated: ``id``, ``kind``, ``size`` (+ ``api_version``, ``fetch_url``)."""
    if not isinstance(jobs, list) or not jobs:
        raise ModelsLabConfigError(f"jobs must be a non-empty list, got {jobs!r}")
    out = []
    for job in jobs:
        if not isinstance(job, Mapping) or job.get("kind") not in KINDS:
            raise ModelsLabConfigError(f"unusable job record {job!r}")
        size = job.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ModelsLabConfigError(f"job size must be a positive integer, got {size!r}")
        out.append(
            {
                "id": normalise_request_id(job.get("id")),
                "kind": job["kind"],
                "size": size,
                "api_version": job.get("api_version") or V6,
                "fetch_url": job.get("fetch_url") or None,
                "track_id": job.get("track_id") or None,
                # echoed in the event so the resumed task can put entries back in input order
                "offset": int(job.get("offset") or 0),
                "track_ids": [str(t) for t in job.get("track_ids") or []],
                "number": int(job.get("number") or 0),
                "submitted_at": job.get("submitted_at"),
            }
        )
    return out


class BatchFetchTrigger(ModelsLabTrigger[BatchWait]):
    """Poll every job of a batch task until all entries are terminal; fire one event.

    :param jobs: ``[{"id", "kind": "batch"|"single", "size", "api_version", "fetch_url", "track_id"}]``.
    :param modelslab_conn_id: the Airflow connection with the API key (looked up asynchronously).
    :param started_at: wall-clock epoch seconds of the first submit.
    :param deadline: wall-clock epoch seconds after which a ``timeout`` event is sent.
    :param poll_policy: :meth:`PollPolicy.to_dict` output.
    :param finished: final entries (``EntryResult.to_dict``) of jobs already finished, by job id.
    :param limit: which of the task's limits set ``deadline``, named in the timeout message.
    """

    classpath = CLASSPATH
    wait_name = "ModelsLab batches"

    def __init__(
        self,
        jobs: list[dict[str, Any]],
        modelslab_conn_id: str = DEFAULT_CONN_ID,
        started_at: float | None = None,
        deadline: float | None = None,
        poll_policy: dict | None = None,
        finished: dict[str, list[dict[str, Any]]] | None = None,
        limit: str | None = None,
        end_task: dict | None = None,
    ) -> None:
        super().__init__(modelslab_conn_id, started_at, deadline, poll_policy, end_task)
        self.jobs = check_jobs(jobs)
        known = {job["id"] for job in self.jobs}
        self.finished = {
            str(k): [dict(e) for e in v if isinstance(e, Mapping)]
            for k, v in (finished or {}).items()
            if str(k) in known and isinstance(v, list)
        }
        self.limit = limit or None

    def own_kwargs(self) -> dict[str, Any]:
        return {"jobs": [dict(job) for job in self.jobs], "finished": self.finished, "limit": self.limit}

    def tracker(self) -> BatchWait:
        tracker = BatchWait(
            jobs={job["id"]: job["size"] for job in self.jobs},
            started_at=self.started_at,
            deadline=self.deadline,
            poll=self.poll_policy,
            limit=self.limit,
        )
        # submissions a new try found finished are not fetched again
        for job_id, entries in self.finished.items():
            tracker.finished[job_id] = tuple(EntryResult.from_dict(e) for e in entries)
        return tracker

    def timeout_fields(self, tracker: BatchWait) -> dict[str, Any]:
        return {"finished": _finished(tracker)}

    async def poll(self, client: AsyncModelsLabClient, tracker: BatchWait) -> dict[str, Any]:
        by_id = {job["id"]: job for job in self.jobs}
        delay = tracker.first_delay(time.time())
        self.log.info(
            "Waiting for %s of connection %s; first poll in %.1f s",
            describe([job["kind"] for job in self.jobs], [job["size"] for job in self.jobs]),
            self.modelslab_conn_id,
            delay,
        )
        progress = ProgressLog()
        while True:
            if delay > 0:
                await asyncio.sleep(delay)
            pending = tracker.pending()
            calls = asyncio.gather(*(client.fetch_job(by_id[i]) for i in pending), return_exceptions=True)
            try:
                answers = await self.before_deadline(calls, tracker)
            except ModelsLabTimeoutError:
                return self.timeout_event(tracker)
            errors: list[BaseException] = []
            for job_id, answer in zip(pending, answers, strict=True):
                if isinstance(answer, BaseException):
                    errors.append(answer)
                else:
                    tracker.on_status(job_id, answer)
            decision = tracker.next_round(time.time(), errors, random.random())  # noqa: S311
            if decision.action is Action.DONE:
                return self._success_event(tracker)
            if decision.action is Action.FAIL:
                assert decision.error is not None
                if isinstance(decision.error, ModelsLabTimeoutError):
                    return self.timeout_event(tracker)
                return self.error_event(decision.error)
            running = tracker.running()
            info = progress.is_info((len(tracker.finished), running), time.time(), notable=bool(errors))
            (self.log.info if info else self.log.debug)(
                "ModelsLab: %d of %d submission(s) done, %d videos running (round %d%s); next poll in %.1f s",
                len(tracker.finished),
                len(self.jobs),
                running,
                tracker.rounds,
                f", {len(errors)} transient error(s): {errors[0]}" if errors else "",
                decision.delay,
            )
            delay = decision.delay

    def _success_event(self, tracker: BatchWait) -> dict[str, Any]:
        elapsed = round(time.time() - tracker.started_at, 3)
        self.log.info(
            "All %s finished after %d rounds (%d fetches), %.0f s",
            describe([job["kind"] for job in self.jobs], [job["size"] for job in self.jobs]),
            tracker.rounds,
            tracker.fetches,
            elapsed,
        )
        return {
            "status": "success",
            "finished": _finished(tracker),
            "jobs": [dict(job) for job in self.jobs],
            "rounds": tracker.rounds,
            "fetches": tracker.fetches,
            "elapsed": elapsed,
        }


def _finished(tracker: BatchWait) -> dict[str, list[dict[str, Any]]]:
    return {i: [e.to_dict() for e in entries] for i, entries in tracker.finished.items()}
