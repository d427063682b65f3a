"""BatchFetchTrigger: waits for all of one task's ModelsLab batches in the triggerer.

One trigger per task: each round fetches every unfinished job once (one batch fetch per batch,
never one fetch per video; a single-video job, used when there were too few inputs for a batch,
is one fetch too), then waits as :class:`~modelslab_provider.client.batch.BatchWait` says, the
same tracker the synchronous wait uses. Read-only and free, so running it twice after a triggerer
failover is harmless. Kwargs are JSON only and hold no secret: ids, sizes, times, the conn id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from modelslab_provider.client.batch import BatchWait, EntryResult, entry_from_single
from modelslab_provider.client.core import V6, normalise_request_id
from modelslab_provider.client.errors import ModelsLabConfigError, ModelsLabTimeoutError
from modelslab_provider.client.policy import Action, PollPolicy
from modelslab_provider.events import error_message, error_type

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
            }
        )
    return out


async def fetch_job(client: AsyncModelsLabClient, job: Mapping[str, Any]) -> list[EntryResult]:
    """One fetch of one job, as that job's entries."""
    if job["kind"] == "batch":
        status = await client.fetch_batch(job["id"], job["size"])
        return list(status.entries)
    result = await client.fetch(job["id"], job["api_version"], job["fetch_url"])
    return [entry_from_single(result, job.get("track_id"))]


class BatchFetchTrigger(BaseTrigger):
    """Poll every job of a batch task until all entries are terminal; fire one event.

    :param jobs: ``[{"id", "kind": "batch"|"single", "size", "api_version", "fetch_url", "track_id"}]``.
    :param modelslab_conn_id: the Airflow connection with the API key (looked up asynchronously).
    :param started_at: wall-clock epoch seconds of the first submit.
    :param deadline: wall-clock epoch seconds after which a ``timeout`` event is sent.
    :param poll_policy: :meth:`PollPolicy.to_dict` output.
    """

    def __init__(
        self,
        jobs: list[dict[str, Any]],
        modelslab_conn_id: str = "modelslab_default",
        started_at: float | None = None,
        deadline: float | None = None,
        poll_policy: dict | None = None,
    ) -> None:
        super().__init__()
        self.jobs = check_jobs(jobs)
        self.modelslab_conn_id = modelslab_conn_id
        self.started_at = float(time.time() if started_at is None else started_at)
        self.deadline = None if deadline is None else float(deadline)
        try:
            self.poll_policy = PollPolicy(**(poll_policy or {}))
        except TypeError as exc:
            raise ModelsLabConfigError(f"poll_policy has an unknown setting: {exc}") from None
        self._secret: str | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            CLASSPATH,
            {
                "jobs": [dict(job) for job in self.jobs],
                "modelslab_conn_id": self.modelslab_conn_id,
                "started_at": self.started_at,
                "deadline": self.deadline,
                "poll_policy": self.poll_policy.to_dict(),
            },
        )

    def _tracker(self) -> BatchWait:
        return BatchWait(
            jobs={job["id"]: job["size"] for job in self.jobs},
            started_at=self.started_at,
            deadline=self.deadline,
            poll=self.poll_policy,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        tracker = self._tracker()
        try:
            event = await self._wait(tracker)
        except Exception as exc:  # one event, never a crashed trigger
            event = self._error_event(exc)
        yield TriggerEvent(event)

    async def _wait(self, tracker: BatchWait) -> dict[str, Any]:
        from modelslab_provider.hooks.modelslab import ModelsLabHook

        if tracker.timed_out(time.time()):
            return self._timeout_event(tracker)
        client = await ModelsLabHook(modelslab_conn_id=self.modelslab_conn_id).aget_client()
        async with client:
            self._secret = client.settings.api_key
            tracker.retry = dataclasses.replace(
                client.retry, initial_delay=min(client.retry.initial_delay, self.poll_policy.min_interval)
            )
            return await self._poll(client, tracker)

    async def _poll(self, client: AsyncModelsLabClient, tracker: BatchWait) -> dict[str, Any]:
        by_id = {job["id"]: job for job in self.jobs}
        delay = tracker.first_delay(time.time())
        self.log.info(
            "Waiting for %d ModelsLab job(s) (%d entries) of connection %s; first poll in %.1f s",
            len(self.jobs),
            sum(job["size"] for job in self.jobs),
            self.modelslab_conn_id,
            delay,
        )
        while True:
            if delay > 0:
                await asyncio.sleep(delay)
            pending = tracker.pending()
            try:
                answers = await self._fetch_round(client, [by_id[i] for i in pending], tracker)
            except ModelsLabTimeoutError:
                return self._timeout_event(tracker)
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
                    return self._timeout_event(tracker)
                return self._error_event(decision.error)
            self.log.info(
                "ModelsLab jobs: %d of %d finished, %d entries running (round %d%s); next poll in %.1f s",
                len(tracker.finished),
                len(self.jobs),
                sum(1 for i in tracker.pending() for e in tracker.latest.get(i, ()) if not e.is_terminal),
                tracker.rounds,
                f", {len(errors)} transient error(s): {errors[0]}" if errors else "",
                decision.delay,
            )
            delay = decision.delay

    async def _fetch_round(
        self, client: AsyncModelsLabClient, jobs: list[dict[str, Any]], tracker: BatchWait
    ) -> list[list[EntryResult] | BaseException]:
        """One fetch per pending job, concurrently, cut short at the deadline."""
        calls = asyncio.gather(*(fetch_job(client, job) for job in jobs), return_exceptions=True)
        if tracker.deadline is None:
            return list(await calls)
        remaining = tracker.deadline - time.time()
        if remaining <= 0:
            calls.cancel()
            raise tracker.timeout_error(time.time())
        try:
            async with asyncio.timeout(remaining):
                return list(await calls)
        except TimeoutError:
            raise tracker.timeout_error(time.time()) from None

    def _success_event(self, tracker: BatchWait) -> dict[str, Any]:
        elapsed = round(time.time() - tracker.started_at, 3)
        self.log.info(
            "All %d ModelsLab job(s) finished after %d rounds (%d fetches), %.0f s",
            len(self.jobs),
            tracker.rounds,
            tracker.fetches,
            elapsed,
        )
        return {
            "status": "success",
            "finished": {i: [e.to_dict() for e in entries] for i, entries in tracker.finished.items()},
            "jobs": [dict(job) for job in self.jobs],
            "rounds": tracker.rounds,
            "fetches": tracker.fetches,
            "elapsed": elapsed,
        }

    def _error_event(self, exc: BaseException) -> dict[str, Any]:
        message = error_message(exc, self.modelslab_conn_id)
        if self._secret:
            message = message.replace(self._secret, "***")
        kind = error_type(exc)
        if kind == "unexpected":
            self.log.error("Waiting for ModelsLab batches failed unexpectedly", exc_info=exc)
        else:
            self.log.error("Waiting for ModelsLab batches failed: %s", message)
        return {"status": "error", "message": message, "error_type": kind}

    def _timeout_event(self, tracker: BatchWait) -> dict[str, Any]:
        message = str(tracker.timeout_error(time.time()))
        self.log.warning("%s", message)
        return {
            "status": "timeout",
            "message": message,
            "finished": {i: [e.to_dict() for e in entries] for i, entries in tracker.finished.items()},
        }
