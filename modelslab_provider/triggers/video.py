"""VideoFetchTrigger: waits for a paid job's videos in the triggerer, without holding a worker slot.

The one trigger of the provider: the sensor and every generating operator wait for one request
(``request_id``; its polls follow the API's ETA, decided by
:class:`~modelslab_provider.client.policy.WaitTracker`), and the batch operator for the
submissions of its job (``jobs``; one fetch per unfinished submission per round, decided by
:class:`~modelslab_provider.client.batch.BatchWait`, see :mod:`.batch_wait`). Both trackers are the
ones the worker's sync waits use. It is read-only (it only polls the free fetch endpoints), so
running it twice after a triggerer failover is harmless. :func:`urls_from_event` is the one place
where a resumed task checks a single request's event.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

from modelslab_provider.client.batch import BatchWait
from modelslab_provider.client.core import (
    API_VERSIONS,
    DEFAULT_CONN_ID,
    V6,
    VideoResult,
    normalise_request_id,
)
from modelslab_provider.client.errors import (
    ModelsLabConfigError,
    ModelsLabError,
    ModelsLabJobFailedError,
    ModelsLabTimeoutError,
)
from modelslab_provider.client.policy import Action, WaitTracker
from modelslab_provider.events import (  # noqa: F401  (re-exported: older imports keep working)
    EVENT_STATUSES,
    FINAL_ERROR_TYPES,
    compact_meta,
    error_message,
    error_type,
    urls_from_event,
)
from modelslab_provider.triggers.base import ModelsLabTrigger, ProgressLog, is_template
from modelslab_provider.triggers.batch_wait import (
    check_finished,
    check_jobs,
    finished_entries,
    jobs_tracker,
    poll_jobs,
)

if TYPE_CHECKING:
    from modelslab_provider.client.aio import AsyncModelsLabClient

CLASSPATH = "modelslab_provider.triggers.video.VideoFetchTrigger"
#: the trigger's kwargs that are also fields of its :class:`WaitTracker`
TRACKER_FIELDS = ("request_id", "started_at", "deadline", "eta", "limit")
#: what a wait is tracked with: one request's :class:`WaitTracker`, or a job's :class:`BatchWait`
JobTracker = WaitTracker | BatchWait


class VideoFetchTrigger(ModelsLabTrigger[JobTracker]):
    """Poll ModelsLab until the job is over, then fire one event and return.

    Give exactly one of ``request_id`` (one video) or ``jobs`` (a batch task's submissions).

    :param request_id: the ModelsLab request id (int or str; kept as a string).
    :param modelslab_conn_id: the Airflow connection with the API key; looked up asynchronously.
    :param api_version: ``v6`` or ``v7`` (video-fusion): which fetch path to poll.
    :param fetch_url: the API's ``fetch_result`` URL; used only on the connection's own origin.
    :param started_at: wall-clock epoch seconds when the job was submitted (default: now).
    :param eta: the API's ETA, in seconds after ``started_at``; shapes the first polls.
    :param deadline: wall-clock epoch seconds after which a ``timeout`` event is sent.
    :param poll_policy: :meth:`PollPolicy.to_dict` output; defaults to ``PollPolicy()``.
    :param limit: which of the task's limits set ``deadline`` (e.g. ``execution_timeout of 20 s``),
        named in the timeout message.
    :param jobs: instead of ``request_id``, every submission of a batch task's job:
        ``[{"id", "kind": "batch"|"single", "size", "api_version", "fetch_url", "track_id", ...}]``.
    :param finished: with ``jobs``, the final entries (``EntryResult.to_dict``) of submissions a
        new try found finished, by job id; they are not fetched again.
    """

    classpath = CLASSPATH

    def __init__(
        self,
        request_id: str | None = None,
        modelslab_conn_id: str = DEFAULT_CONN_ID,
        api_version: str = V6,
        fetch_url: str | None = None,
        started_at: float | None = None,
        eta: float | None = None,
        deadline: float | None = None,
        poll_policy: dict | None = None,
        limit: str | None = None,
        end_task: dict | None = None,
        jobs: list[dict[str, Any]] | None = None,
        finished: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__(modelslab_conn_id, started_at, deadline, poll_policy, end_task)
        if (request_id is None) == (jobs is None):
            raise ModelsLabConfigError(
                "give exactly one of request_id (one video) or jobs (a job's submissions)"
            )
        self.limit = limit or None
        #: a job of many submissions (None: one request)
        self.jobs = None if jobs is None else check_jobs(jobs)
        self.finished = None if self.jobs is None else check_finished(finished, self.jobs)
        self.request_id, self.api_version = request_id, api_version
        self.fetch_url = fetch_url or None
        self.eta = None if eta is None else float(eta)
        # a sensor started in the triggerer gets its templates rendered there, after __init__
        self._templated = is_template(request_id) or is_template(api_version)
        if self.jobs is not None:
            self.wait_name = "ModelsLab batches"
        elif not self._templated:
            self._check()

    def _check(self) -> None:
        if self._templated and str(self.request_id).strip() in ("", "None"):
            raise ModelsLabConfigError(
                f"request_id rendered to {self.request_id!r} in the triggerer: the XCom it pulls does "
                "not exist (did the upstream task push it?)"
            )
        if self.api_version not in API_VERSIONS:
            raise ModelsLabConfigError(f"api_version must be one of {API_VERSIONS}, got {self.api_version!r}")
        self.request_id = normalise_request_id(self.request_id)
        self.wait_name = f"ModelsLab request {self.request_id}"

    def own_kwargs(self) -> dict[str, Any]:
        if self.jobs is not None:
            return {"jobs": [dict(job) for job in self.jobs], "finished": self.finished, "limit": self.limit}
        return {
            "request_id": self.request_id,
            "api_version": self.api_version,
            "fetch_url": self.fetch_url,
            "eta": self.eta,
            "limit": self.limit,
        }

    def event_ids(self) -> dict[str, Any]:
        return {} if self.jobs is not None else {"request_id": self.request_id}

    def timeout_fields(self, tracker: JobTracker) -> dict[str, Any]:
        # a batch's timeout carries what did finish, so a retry reuses it
        return {"finished": finished_entries(tracker)} if isinstance(tracker, BatchWait) else {}

    def tracker(self) -> JobTracker:
        if self.jobs is not None:
            return jobs_tracker(self)
        self._check()  # again: rendered templates are only known now
        return WaitTracker(**{name: getattr(self, name) for name in TRACKER_FIELDS}, poll=self.poll_policy)

    async def poll(self, client: AsyncModelsLabClient, tracker: JobTracker) -> dict[str, Any]:
        if isinstance(tracker, BatchWait):
            return await poll_jobs(self, client, tracker)
        return await self._poll_request(client, tracker)

    async def _poll_request(self, client: AsyncModelsLabClient, tracker: WaitTracker) -> dict[str, Any]:
        # jittered like every later wait: triggers deferred together do not poll in one burst
        delay = tracker.first_delay(time.time(), random.random())  # noqa: S311
        self.log.info(
            "Waiting for ModelsLab request %s (%s, connection %s); ETA %s; first poll in %.1f s",
            self.request_id,
            self.api_version,
            self.modelslab_conn_id,
            "unknown" if tracker.eta is None else f"{tracker.eta:.0f} s",
            delay,
        )
        progress = ProgressLog()
        while True:
            if delay > 0:
                await asyncio.sleep(delay)
            result: VideoResult | None = None
            try:
                result = await self.before_deadline(
                    client.fetch(self.request_id, self.api_version, self.fetch_url), tracker
                )
                decision = tracker.on_result(result, time.time(), random.random())  # noqa: S311
            except ModelsLabTimeoutError:
                return self.timeout_event(tracker)
            except ModelsLabError as exc:
                decision = tracker.on_error(exc, time.time(), random.random())  # noqa: S311
                if decision.action is Action.WAIT:
                    self.log.warning(
                        "ModelsLab request %s: poll %d failed (%s); next poll in %.1f s",
                        self.request_id,
                        tracker.polls + 1,
                        exc,
                        decision.delay,
                    )
            if decision.action is Action.DONE:
                assert decision.result is not None
                return self._success_event(tracker, decision.result)
            if decision.action is Action.FAIL:
                assert decision.error is not None
                if isinstance(decision.error, ModelsLabTimeoutError):
                    return self.timeout_event(tracker)
                return self._failure_event(decision.error)
            if result is not None:
                self._log_progress(tracker, result, decision.delay, progress)
            delay = decision.delay

    def _log_progress(
        self, tracker: WaitTracker, result: VideoResult, delay: float, progress: ProgressLog
    ) -> None:
        now = time.time()
        info = self._progress_is_info(progress, tracker, result, now)
        (self.log.info if info else self.log.debug)(*tracker.describe(result, now, delay))

    @staticmethod
    def _progress_is_info(
        progress: ProgressLog, tracker: WaitTracker, result: VideoResult, now: float
    ) -> bool:
        state = (result.raw_status, result.unknown_status, result.awaiting_links)
        # an empty success is rare and counts towards a failure: always worth INFO
        return progress.is_info(state, now, eta=tracker.eta, notable=result.awaiting_links)

    def _success_event(self, tracker: WaitTracker, result: VideoResult) -> dict[str, Any]:
        elapsed = round(time.time() - tracker.started_at, 3)
        self.log.info(
            "ModelsLab request %s is ready after %d polls, %.0f s: %d output URL(s)",
            self.request_id,
            tracker.polls,
            elapsed,
            len(result.urls),
        )
        return {
            "status": "success",
            "request_id": self.request_id,
            "urls": list(result.urls),
            # compacted like the XCom push: the event is stored in the metadata DB
            "details": {**result.details(), "meta": compact_meta(result.meta)},
            "polls": tracker.polls,
            "elapsed": elapsed,
        }

    def _failure_event(self, error: ModelsLabError) -> dict[str, Any]:
        if isinstance(error, ModelsLabJobFailedError):
            self.log.error("%s", error)
            return {
                "status": "failed",
                "request_id": self.request_id,
                "message": str(error),
                "api_status": error.status,
            }
        return self.error_event(error)
