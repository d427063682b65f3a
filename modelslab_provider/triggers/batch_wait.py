"""The wait of :class:`~modelslab_provider.triggers.video.VideoFetchTrigger` for a job of many submissions.

A batch task's job is k submissions (batches of 3-20 entries, or single requests when there were
too few inputs for a batch). Each round fetches every unfinished submission once (one batch fetch
per batch, never one fetch per video), then waits as
:class:`~modelslab_provider.client.batch.BatchWait` says, the same tracker the synchronous wait
uses. Read-only and free, so running it twice after a triggerer failover is harmless. The job
list is JSON only and holds no secret: ids, sizes, times.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelslab_provider.client.batch import BatchWait, EntryResult
from modelslab_provider.client.core import V6, normalise_request_id
from modelslab_provider.client.errors import ModelsLabConfigError, ModelsLabTimeoutError
from modelslab_provider.client.job import describe
from modelslab_provider.client.policy import Action
from modelslab_provider.triggers.base import ProgressLog

if TYPE_CHECKING:
    from modelslab_provider.client.aio import AsyncModelsLabClient
    from modelslab_provider.triggers.video import VideoFetchTrigger

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


def check_finished(finished: Any, jobs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Final entries (``EntryResult.to_dict``) of submissions a new try found finished, by job id."""
    known = {job["id"] for job in jobs}
    return {
        str(k): [dict(e) for e in v if isinstance(e, Mapping)]
        for k, v in (finished or {}).items()
        if str(k) in known and isinstance(v, list)
    }


def jobs_tracker(trigger: VideoFetchTrigger) -> BatchWait:
    """A fresh tracker of ``trigger``'s submissions; finished ones are not fetched again."""
    assert trigger.jobs is not None
    tracker = BatchWait(
        jobs={job["id"]: job["size"] for job in trigger.jobs},
        started_at=trigger.started_at,
        deadline=trigger.deadline,
        poll=trigger.poll_policy,
        limit=trigger.limit,
    )
    for job_id, entries in (trigger.finished or {}).items():
        tracker.finished[job_id] = tuple(EntryResult.from_dict(e) for e in entries)
    return tracker


async def poll_jobs(
    trigger: VideoFetchTrigger, client: AsyncModelsLabClient, tracker: BatchWait
) -> dict[str, Any]:
    """Fetch every unfinished submission once a round until all entries end; the event's payload."""
    assert trigger.jobs is not None
    jobs, log = trigger.jobs, trigger.log
    by_id = {job["id"]: job for job in jobs}
    what = describe([job["kind"] for job in jobs], [job["size"] for job in jobs])
    delay = tracker.first_delay(time.time())
    log.info("Waiting for %s of connection %s; first poll in %.1f s", what, trigger.modelslab_conn_id, delay)
    progress = ProgressLog()
    while True:
        if delay > 0:
            await asyncio.sleep(delay)
        pending = tracker.pending()
        calls = asyncio.gather(*(client.fetch_job(by_id[i]) for i in pending), return_exceptions=True)
        try:
            answers = await trigger.before_deadline(calls, tracker)
        except ModelsLabTimeoutError:
            return trigger.timeout_event(tracker)
        errors: list[BaseException] = []
        for job_id, answer in zip(pending, answers, strict=True):
            if isinstance(answer, BaseException):
                errors.append(answer)
            else:
                tracker.on_status(job_id, answer)
        decision = tracker.next_round(time.time(), errors, random.random())  # noqa: S311
        if decision.action is Action.DONE:
            elapsed = round(time.time() - tracker.started_at, 3)
            log.info(
                "All %s finished after %d rounds (%d fetches), %.0f s",
                what,
                tracker.rounds,
                tracker.fetches,
                elapsed,
            )
            return {
                "status": "success",
                "finished": finished_entries(tracker),
                "jobs": [dict(job) for job in jobs],
                "rounds": tracker.rounds,
                "fetches": tracker.fetches,
                "elapsed": elapsed,
            }
        if decision.action is Action.FAIL:
            assert decision.error is not None
            if isinstance(decision.error, ModelsLabTimeoutError):
                return trigger.timeout_event(tracker)
            return trigger.error_event(decision.error)
        running = tracker.running()
        info = progress.is_info((len(tracker.finished), running), time.time(), notable=bool(errors))
        (log.info if info else log.debug)(
            "ModelsLab: %d of %d submission(s) done, %d videos running (round %d%s); next poll in %.1f s",
            len(tracker.finished),
            len(jobs),
            running,
            tracker.rounds,
            f", {len(errors)} transient error(s): {errors[0]}" if errors else "",
            decision.delay,
        )
        delay = decision.delay


def finished_entries(tracker: BatchWait) -> dict[str, list[dict[str, Any]]]:
    return {i: [e.to_dict() for e in entries] for i, entries in tracker.finished.items()}
