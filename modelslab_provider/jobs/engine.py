"""PaidJob: the life of one paid ModelsLab job in one try of an Airflow task.

A single video is a job of one submission with one entry; a batch task is a job of k
submissions of 3-20 entries (1-2 inputs: the single endpoint's submissions). For every job,
once: each submission is built and validated before anything is paid for; a stored submission
from an earlier try is checked before it is adopted (running: reconnect; done: reuse; not
found, failed, or made for another server or payload: submit anew); the rest are submitted under
the paid-call rule and recorded (XCom, and the :mod:`~modelslab_provider.jobs.store`) right
after each one; queue-full waits and the wait for the videos defer when ``deferrable=True``; one
deadline per try cuts every wait and fetch; the outcome maps to one Airflow exception. The
operators only build the :class:`JobSpec` and push the entries to XCom.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from modelslab_provider.client import job as core_job
from modelslab_provider.client.batch import (
    BATCH_PATH,
    EntryResult,
    InputResult,
    PlannedSubmit,
    assemble,
    entry_from_single,
    failure_summary,
)
from modelslab_provider.client.core import Status, VideoResult
from modelslab_provider.client.errors import (
    ModelsLabError,
    ModelsLabNotFoundError,
    ModelsLabRateLimitError,
    ModelsLabTimeoutError,
    ModelsLabTransientError,
)
from modelslab_provider.events import batch_outputs, failure
from modelslab_provider.jobs import outcomes, waits
from modelslab_provider.jobs.keys import (
    XCOM_API_VERSION,
    XCOM_BATCH_IDS,
    XCOM_ETA,
    XCOM_FETCH_URL,
    XCOM_REQUEST_ID,
    XCOM_REQUEST_IDS,
    XCOM_RESULTS,
    XCOM_TRACK_ID,
)
from modelslab_provider.jobs.store import RecordStore, record_store

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from modelslab_provider.jobs.waits import JobOperator


@dataclass(frozen=True)
class JobSpec:
    """What one try of a task pays for: its submissions, built and validated, in input order.

    ``video``: the single-video operator's job (one request; its wait follows the API's ETA and
    its outcome keeps the request's details). ``accept_failures``: failed entries are an outcome,
    not a task failure (``allow_partial_failure``).
    """

    submissions: tuple[PlannedSubmit, ...]
    state_key: str
    video: bool = False
    accept_failures: bool = False

    @property
    def count(self) -> int:
        return sum(s.size for s in self.submissions)

    @property
    def size_text(self) -> str:
        return core_job.describe([s.kind for s in self.submissions], [s.size for s in self.submissions])


@dataclass(frozen=True)
class Outcome:
    """A finished job: one result per input in input order, and a single request's details."""

    jobs: tuple[dict[str, Any], ...]
    results: tuple[InputResult, ...] = ()
    details: Mapping[str, Any] | None = None

    @property
    def ids(self) -> list[str]:
        return [str(j["id"]) for j in self.jobs]


class PaidJob:
    """One try of a paid job: :meth:`run` (also after a queue-full deferral) and :meth:`complete`."""

    def __init__(self, op: JobOperator, context: Context, spec: JobSpec) -> None:
        self.op, self.context, self.spec = op, context, spec
        self.hook = op.hook
        self.store: RecordStore = record_store(context, spec.state_key, getattr(op, "durable", True))
        self.jobs: list[dict[str, Any]] = []
        #: final entries of submissions already finished (reused, or done at submit)
        self.finished: dict[str, tuple[EntryResult, ...]] = {}
        self.video_result: VideoResult | None = None
        self.deadline, self.limit = 0.0, ""

    @property
    def remembered(self) -> bool:
        return self.store.durable

    # ------------------------------------------------------------------ the try

    def run(
        self,
        *,
        deadline: float | None = None,
        limit: str | None = None,
        jobs: Sequence[Mapping[str, Any]] | None = None,
        queue_attempts: int = 0,
        resumed: bool = False,
    ) -> Outcome:
        """Adopt or submit every submission, then wait (or defer) and return the outcome."""
        self._clock(deadline, limit, resumed)
        fingerprints = [self._fingerprint(s) for s in self.spec.submissions]  # before any paid call
        carried = {int(j["number"]): dict(j) for j in jobs or [] if isinstance(j, Mapping)}
        stored = {} if carried else core_job.records_from_store(self.store.load())
        for planned, print_ in zip(self.spec.submissions, fingerprints, strict=True):
            job = carried.get(planned.number)
            if job is None and planned.number in stored:
                job = self._adopt(planned, stored[planned.number], print_)
            if job is None:
                job = self._submit(planned, print_, queue_attempts)
                queue_attempts = 0
            self.jobs.append(job)
            self._record()
        if not self.op.wait_for_completion:
            self.op.log.info("Not waiting for the videos (wait_for_completion=False)")
            return Outcome(tuple(self.jobs))
        if all(str(j["id"]) in self.finished for j in self.jobs):
            return self._finish(self.finished)
        if self.op.deferrable:
            waits.defer_wait(self)
        return self._finish(*waits.wait_here(self))

    def complete(self, event: Any) -> Outcome:
        """The outcome of a deferred wait, from the trigger's event (which names what it awaited)."""
        self.jobs = _jobs_of(event, self.spec)
        finished, details = waits.read_event(self, event)  # a failure, timeout or odd event raises here
        if not self.jobs:
            raise self.unexpected(event)
        return self._finish(finished, details)

    def _clock(self, deadline: float | None, limit: str | None, resumed: bool) -> None:
        """The try's one deadline: from its first ``execute`` (when Airflow's own timer starts too).

        A resumed try carries it in the defer kwargs; ``airflow dags test`` drops those, so
        there the TI's start date stands in for the try's start.
        """
        if deadline is None:
            start = getattr(self.context.get("ti"), "start_date", None)  # type: ignore[call-overload]
            now = time.time()
            started = start.timestamp() if resumed and isinstance(start, datetime) else now
            deadline, limit = core_job.try_deadline(started, now, self.op.timeout, self.op.execution_timeout)
        self.deadline, self.limit = float(deadline), limit or f"timeout of {self.op.timeout:.0f} s"

    def _fingerprint(self, planned: PlannedSubmit) -> str:
        try:
            if planned.kind == "single":
                return self.hook.client.fingerprint(planned.endpoint, planned.body)
            base_url = self.hook.get_client_settings().base_url
            return core_job.fingerprint(base_url, BATCH_PATH, planned.body)
        except ModelsLabError as exc:
            raise failure(exc, self.op.modelslab_conn_id) from None

    # ------------------------------------------------------------------ reconnect check

    def _adopt(self, planned: PlannedSubmit, stored: dict[str, Any], print_: str) -> dict[str, Any] | None:
        """A stored submission checked with one free fetch: the record to reuse, or None to submit anew."""
        log, noun, sid = self.op.log, planned.kind if planned.kind == "batch" else "request", stored["id"]
        if stored.get("fingerprint") != print_ or stored.get("kind") != planned.kind:
            log.info(
                "Stored ModelsLab %s %s was made for another server, endpoint, model or payload; "
                "submitting anew",
                noun,
                sid,
            )
            return None
        try:
            entries, result = self._fetch_once(stored)
        except ModelsLabNotFoundError as exc:
            log.warning("ModelsLab no longer knows %s %s (%s); submitting anew", noun, sid, exc)
            return None
        except (ModelsLabTransientError, ModelsLabTimeoutError) as exc:
            log.warning("Could not check ModelsLab %s %s (%s); reconnecting to it", noun, sid, exc)
            return stored
        except ModelsLabError as exc:
            raise failure(exc, self.op.modelslab_conn_id) from exc
        state = core_job.verdict(entries, planned.size, self.spec.accept_failures)
        if state == core_job.FAILED:
            log.warning(
                "ModelsLab %s %s from an earlier try ended failed (%s); submitting anew",
                noun,
                sid,
                "; ".join(e.message or e.raw_status for e in entries if e.status is not Status.DONE),
            )
            return None
        if state == core_job.DONE:
            self.finished[str(sid)] = tuple(entries)
            self.video_result = result
            log.info("ModelsLab %s %s finished during an earlier try; reusing it, not polling", noun, sid)
        else:
            log.info(
                "ModelsLab %s %s from an earlier try is still running; reconnecting instead of "
                "submitting again",
                noun,
                sid,
            )
        return stored

    def _fetch_once(self, job: Mapping[str, Any]) -> tuple[list[EntryResult], VideoResult | None]:
        if job["kind"] == "batch":
            return self.hook.client.fetch_job(job, deadline=self.deadline), None
        result = self.hook.client.fetch(
            job["id"], job.get("api_version") or "v6", job.get("fetch_url"), deadline=self.deadline
        )
        return [entry_from_single(result, job.get("track_id"))], result

    # ------------------------------------------------------------------ paid submit

    def _submit(self, planned: PlannedSubmit, print_: str, queue_attempts: int) -> dict[str, Any]:
        """One paid submit through the hook; its failure says what was and was not paid for."""
        op, ti = self.op, self.context["ti"]
        if self.spec.video:
            ti.xcom_push(key=XCOM_TRACK_ID, value=planned.track_ids[0])
            op.log.info("Submitting to ModelsLab %s with track_id %s", planned.endpoint, planned.track_ids[0])
        else:
            op.log.info("Submitting the %s to ModelsLab (%d videos)", planned.what, planned.size)

        def on_queue_full(exc: ModelsLabRateLimitError, delay: float, attempts: int) -> None:
            op.log.warning(
                "ModelsLab refused the %s: the account's queue is full (%s). Waiting %.1f s, then "
                "resubmitting (attempt %d; %.0f s left before the task's %s runs out)",
                planned.what,
                exc,
                delay,
                attempts + 1,
                max(self.deadline - time.time(), 0),
                self.limit,
            )
            if op.deferrable:
                self._defer_queue_wait(delay, attempts)

        try:
            if planned.kind == "batch":
                submitted = self.hook.client.submit_batch(
                    planned.body,
                    what=planned.what,
                    deadline=self.deadline,
                    queue_attempts=queue_attempts,
                    on_queue_full=on_queue_full,
                )
                job = planned.job(submitted.batch_id, submitted_at=time.time())
            else:
                request, result = self.hook.client.submit_request(
                    planned.endpoint,
                    planned.body,
                    track_id=planned.track_ids[0],
                    deadline=self.deadline,
                    queue_attempts=queue_attempts,
                    on_queue_full=on_queue_full,
                    resubmit_on_ambiguous_failure=getattr(op, "resubmit_on_ambiguous_failure", False),
                )
                job = planned.job(
                    request.request_id,
                    submitted_at=request.submitted_at,
                    eta=request.eta,
                    fetch_url=request.fetch_url,
                )
                job.update(api_version=request.api_version, track_id=request.track_id)
                job["track_ids"] = [request.track_id or planned.track_ids[0]]
                if result.status is Status.DONE:
                    self.finished[request.request_id] = (entry_from_single(result, request.track_id),)
                    self.video_result = result
                op.log.info(
                    "Submitted ModelsLab request %s to %s (%s, status %s, ETA %s, track_id %s)",
                    request.request_id,
                    planned.endpoint,
                    request.api_version,
                    result.raw_status,
                    "unknown" if request.eta is None else f"{request.eta:.0f} s",
                    request.track_id,
                )
        except ModelsLabError as exc:
            raise outcomes.submit_failure(
                exc,
                what=planned.what,
                track_ids=", ".join(planned.track_ids),
                conn_id=op.modelslab_conn_id,
                paid=self.jobs,
                remembered=self.remembered,
                timeout_note=f"the task's {self.limit}",
            ) from exc
        if planned.kind == "batch":
            op.log.info("Submitted ModelsLab batch %s (%s, %d videos)", job["id"], planned.what, planned.size)
        job["fingerprint"] = print_
        return job

    def _defer_queue_wait(self, delay: float, attempts: int) -> None:
        """Wait for a queue slot in the triggerer, so many waiting tasks hold no worker slots."""
        try:
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger
        except ImportError:  # pragma: no cover - the standard provider ships with Airflow 3
            return
        self.op.defer(
            trigger=DateTimeTrigger(moment=datetime.now(UTC) + timedelta(seconds=delay)),
            method_name="execute_resubmit",
            kwargs={
                "deadline": self.deadline,
                "limit": self.limit,
                "rate_limit_attempts": attempts,
                "jobs": [dict(j) for j in self.jobs],
            },
        )

    def _record(self) -> None:
        """The record of the submissions so far: the store (for a new try), then XCom."""
        if self.remembered:
            self.store.save({"jobs": [dict(j) for j in self.jobs]})
        ti = self.context["ti"]
        if self.spec.video:
            job = self.jobs[0]
            ti.xcom_push(key=XCOM_REQUEST_ID, value=job["id"])
            ti.xcom_push(key=XCOM_API_VERSION, value=job.get("api_version"))
            for key, field in ((XCOM_TRACK_ID, "track_id"), (XCOM_FETCH_URL, "fetch_url"), (XCOM_ETA, "eta")):
                if job.get(field) is not None:
                    ti.xcom_push(key=key, value=job[field])
            return
        batch_ids = [j["id"] for j in self.jobs if j["kind"] == "batch"]
        single_ids = [j["id"] for j in self.jobs if j["kind"] == "single"]
        if batch_ids:
            ti.xcom_push(key=XCOM_BATCH_IDS, value=batch_ids)
        if single_ids:
            ti.xcom_push(key=XCOM_REQUEST_IDS, value=single_ids)

    # ------------------------------------------------------------------ outcome

    def _finish(
        self, finished: Mapping[str, Sequence[EntryResult]], details: Mapping[str, Any] | None = None
    ) -> Outcome:
        """Entries in input order; failed ones fail the task unless failures are acceptable."""
        if self.video_result is not None and details is None:
            details = self.video_result.details()
        results = assemble(self.jobs, finished, self.spec.count)
        if not self.spec.video:  # every input's result, failed ones too, before any failure is raised
            xcoms, _ = batch_outputs(results, self.spec.accept_failures)
            self.context["ti"].xcom_push(key=XCOM_RESULTS, value=xcoms[XCOM_RESULTS])
        failed = [r for r in results if r.status != "success"]
        count = len(results)
        self.op.log.info(
            "ModelsLab: %d of %d videos ready (%s)", count - len(failed), count, self.spec.size_text
        )
        if failed:
            summary = failure_summary(results)
            if not self.spec.accept_failures:
                raise AirflowFailException(
                    f"{len(failed)} of {count} ModelsLab videos failed: {summary}."
                    + (" The other videos are in XCom 'results'." if count > 1 else "")
                )
            self.op.log.warning("%d of %d ModelsLab videos failed: %s", len(failed), count, summary)
        # kept after a failure: clearing the task then reuses what succeeded instead of paying again
        self.store.clear()
        return Outcome(tuple(self.jobs), tuple(results), details)

    def ids_text(self) -> str:
        return core_job.paid_list(self.jobs) if self.jobs else "the submitted job"

    def running_message(self) -> str | None:
        """What keeps running (and is billed) when the task is killed: for ``on_kill``."""
        if not self.jobs:
            return None
        then = (
            f"a retry of this task reconnects to them (recorded in {self.store.where})."
            if self.remembered
            else "a retry of this task submits NEW, billed work (nothing records them on this line)."
        )
        return f"ModelsLab has no cancel API: {self.ids_text()} keep running (and are billed); {then}"

    def unexpected(self, event: Any) -> AirflowException:
        return outcomes.unusable_event(event)


def _jobs_of(event: Any, spec: JobSpec) -> list[dict[str, Any]]:
    """The submissions a trigger awaited, as its event echoes them (a new process knows no more)."""
    if not isinstance(event, Mapping):
        return []
    if spec.video:
        planned = spec.submissions[0]
        rid = event.get("request_id")
        return [planned.job(str(rid), submitted_at=time.time())] if rid else []
    jobs = event.get("jobs")
    return [dict(j) for j in jobs if isinstance(j, Mapping)] if isinstance(jobs, list) else []
