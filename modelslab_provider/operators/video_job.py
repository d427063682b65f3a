"""The life of one paid ModelsLab video request in Airflow: submit, push the ids, wait, push the URLs.

The paid submit, its retry rules and the record of the submitted request live in the client and
the hook; this module is the Airflow side of them (XCom, ``task_state_store`` reconnects through
``ResumableJobMixin``, deferral, exceptions). The README's "Retries, timeouts and who pays"
section states what a retry, a timeout or an ambiguous submit does on each Airflow line.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, ResumableJobMixin

from modelslab_provider.client.core import SECRET_FIELDS, Status, VideoResult, resolve_endpoint
from modelslab_provider.client.errors import (
    ModelsLabError,
    ModelsLabJobFailedError,
    ModelsLabRateLimitError,
    ModelsLabTimeoutError,
)
from modelslab_provider.client.policy import WaitTracker
from modelslab_provider.client.submit import SubmittedRequest, make_track_id, prepare_payload
from modelslab_provider.events import failure, urls_from_event, wait_deadline
from modelslab_provider.operators.base import ModelsLabBaseOperator
from modelslab_provider.version_compat import AIRFLOW_V_3_3_PLUS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

# XCom keys (``return_value`` holds the list of output URLs)
XCOM_REQUEST_ID = "request_id"
XCOM_TRACK_ID = "track_id"
XCOM_API_VERSION = "api_version"
XCOM_FETCH_URL = "fetch_url"
XCOM_ETA = "eta"
XCOM_VIDEO_URL = "video_url"
XCOM_PROXY_LINKS = "proxy_links"
XCOM_GENERATION_TIME = "generation_time"
XCOM_META = "meta"

#: ``task_state_store`` key of the submitted request; renaming it breaks in-flight retries
STATE_KEY = "modelslab_request"


class VideoJobOperator(ResumableJobMixin, ModelsLabBaseOperator):
    """Submit one paid video request to ``endpoint``, push its id, wait, and push the output URLs.

    Subclasses say what to send (:meth:`build_payload`); see
    :class:`~modelslab_provider.operators.video.ModelsLabVideoOperator` for the arguments.
    """

    external_id_key = STATE_KEY

    def __init__(self, *, endpoint: str, resubmit_on_ambiguous_failure: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.resubmit_on_ambiguous_failure = resubmit_on_ambiguous_failure
        # per-try working state; nothing here survives a deferral (kwargs and events carry it)
        self._body: dict[str, Any] = {}
        self._fingerprint = ""
        self._deadline = 0.0
        self._rate_limit_attempts = 0
        self._job: SubmittedRequest | None = None
        self._known: VideoResult | None = None
        self._published_request = False
        self._urls: list[str] | None = None

    # ------------------------------------------------------------------ inputs

    def build_payload(self) -> dict[str, Any]:
        """The request body without the key."""
        raise NotImplementedError

    def _prepare(self, deadline: float | None = None, rate_limit_attempts: int = 0) -> None:
        """Validate the rendered inputs and start (or continue) the try's time budget."""
        try:
            resolve_endpoint(self.endpoint)
        except ModelsLabError as exc:
            raise AirflowFailException(str(exc)) from None
        body = self.build_payload()
        secret = sorted(str(k) for k in body if str(k).strip().lower() in SECRET_FIELDS)
        if secret:
            raise AirflowFailException(
                f"payload must not contain {secret}: the API key comes from Airflow connection "
                f"{self.modelslab_conn_id!r} only."
            )
        try:
            self._body = prepare_payload(self.endpoint, body)
            # the server's origin is part of it: needs the connection (fails here, before any call)
            self._fingerprint = self.hook.request_fingerprint(self.endpoint, self._body)
        except ModelsLabError as exc:
            raise self._failure(exc) from None
        self._deadline = deadline if deadline is not None else time.time() + self.timeout
        self._rate_limit_attempts = rate_limit_attempts

    # ------------------------------------------------------------------ entry points

    def execute(self, context: Context) -> list[str] | None:
        self._prepare()
        return self.execute_resumable(context)

    def execute_resubmit(
        self,
        context: Context,
        event: Any = None,
        *,
        deadline: float | None = None,
        rate_limit_attempts: int = 0,
    ) -> list[str] | None:
        """Resume after a deferred queue-full wait: try the submit again, within the same budget."""
        if deadline is None:
            # ``airflow dags test`` resumes with the event alone and drops the defer kwargs
            deadline = self._try_deadline(context)
        self._prepare(deadline=deadline, rate_limit_attempts=rate_limit_attempts)
        self.log.info(
            "Resubmitting to %s after waiting for a queue slot (%.0f s left of the task's timeout)",
            self.endpoint,
            max(deadline - time.time(), 0),
        )
        return self.execute_resumable(context)

    def _try_deadline(self, context: Context) -> float:
        """The budget's end counted from the start of this try, when nothing else carries it."""
        start = getattr(context.get("ti"), "start_date", None)
        started = start.timestamp() if isinstance(start, datetime) else time.time()
        return min(started, time.time()) + self.timeout

    def execute_complete(self, context: Context, event: Any = None) -> list[str]:
        """Resume after the trigger: check the event and push the outputs."""
        if isinstance(event, Mapping) and event.get("status") == "timeout":
            raise AirflowException(
                self._timeout_message(str(event.get("message") or ""), str(event.get("request_id")))
            )
        urls = urls_from_event(event, conn_id=self.modelslab_conn_id)
        details = event.get("details") if isinstance(event.get("details"), Mapping) else {}
        return self._publish_result(context, urls, details)

    def on_kill(self) -> None:
        if self._job is not None:
            self.log.warning(
                "ModelsLab has no cancel API: request %s keeps running (and is billed). A retry of this "
                "task reconnects to it where Airflow supports it (3.3+).",
                self._job.request_id,
            )

    # ------------------------------------------------------------------ ResumableJobMixin

    def submit_job(self, context: Context) -> dict[str, Any]:
        """One paid submit through the hook; push and log its ``track_id`` first."""
        track_id = self._track_id(context)
        context["ti"].xcom_push(key=XCOM_TRACK_ID, value=track_id)
        self.log.info("Submitting to ModelsLab %s with track_id %s", self.endpoint, track_id)
        try:
            job, result = self.hook.submit_request(
                self.endpoint,
                self._body,
                track_id=track_id,
                deadline=self._deadline,
                queue_attempts=self._rate_limit_attempts,
                on_queue_full=self._on_queue_full,
                resubmit_on_ambiguous_failure=self.resubmit_on_ambiguous_failure,
            )
        except ModelsLabError as exc:
            raise self._submit_failure(exc, track_id) from exc
        self.log.info(
            "Submitted ModelsLab request %s to %s (%s, status %s, ETA %s, track_id %s)",
            job.request_id,
            self.endpoint,
            job.api_version,
            result.raw_status,
            "unknown" if job.eta is None else f"{job.eta:.0f} s",
            job.track_id,
        )
        self._job = job
        self._known = result
        return job.to_dict()

    def _track_id(self, context: Context) -> str:
        given = self._body.get("track_id")
        if isinstance(given, str | int) and not isinstance(given, bool) and str(given).strip():
            return str(given)
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return make_track_id(
            str(getattr(ti, "dag_id", None) or getattr(self, "dag_id", "dag")),
            str(getattr(ti, "run_id", None) or context.get("run_id") or "run"),
            str(getattr(ti, "task_id", None) or self.task_id),
            map_index if isinstance(map_index, int) else -1,
            int(getattr(ti, "try_number", None) or 1),
        )

    def get_job_status(self, external_id: Any, context: Context) -> str:
        try:
            verdict, _, result = self.hook.recheck_request(external_id, self._fingerprint)
        except ModelsLabError as exc:
            raise self._failure(exc) from exc
        self._known = result
        return verdict

    def is_job_active(self, status: str) -> bool:
        return status == "running"

    def is_job_succeeded(self, status: str) -> bool:
        return status == "done"

    # The mixin declares ``-> None`` but returns this method's value as the task's result when it
    # reconnects to a running job, so it must return the URLs like ``get_job_result``.
    def poll_until_complete(self, external_id: Any, context: Context) -> list[str] | None:  # type: ignore[override]
        job = self._use_job(external_id)
        self._publish_request(context, job)
        if not self.wait_for_completion:
            self.log.info("Not waiting for ModelsLab request %s (wait_for_completion=False)", job.request_id)
            return None
        done = self._known if self._known is not None and self._known.status is Status.DONE else None
        if done is None and self.deferrable:
            self._defer_wait(job, context)
        result = done or self._wait(job)
        self._urls = self._publish_result(context, list(result.urls), result.details())
        return self._urls

    def get_job_result(self, external_id: Any, context: Context) -> list[str] | None:
        if self._urls is not None:
            return self._urls
        job = self._use_job(external_id)
        self._publish_request(context, job)
        if not self.wait_for_completion:
            return None
        if self._known is None or self._known.status is not Status.DONE:
            return self.poll_until_complete(external_id, context)
        self.log.info("ModelsLab request %s finished during an earlier try; not polling", job.request_id)
        self._urls = self._publish_result(context, list(self._known.urls), self._known.details())
        return self._urls

    def _use_job(self, external_id: Any) -> SubmittedRequest:
        job = SubmittedRequest.from_dict(external_id)
        if job is None:  # only a bug can get here: submit_job and the store check both validate
            raise AirflowException(f"Unusable ModelsLab request record {external_id!r}")
        self._job = job
        return job

    # ------------------------------------------------------------------ submit failures and queue waits

    def _on_queue_full(self, exc: ModelsLabRateLimitError, delay: float, attempts: int) -> None:
        """Log a queue-full refusal; deferrable tasks wait for the slot in the triggerer."""
        self._rate_limit_attempts = attempts
        self.log.warning(
            "ModelsLab refused the submission: the account's queue is full (%s). Waiting %.1f s, then "
            "resubmitting (attempt %d; %.0f s left of the task's %.0f s timeout)",
            exc,
            delay,
            attempts + 1,
            max(self._deadline - time.time(), 0),
            self.timeout,
        )
        if self.deferrable:
            self._defer_queue_wait(delay)

    def _defer_queue_wait(self, delay: float) -> None:
        """Wait for a queue slot in the triggerer, so many waiting tasks hold no worker slots."""
        try:
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger
        except ImportError:  # pragma: no cover - the standard provider ships with Airflow 3
            return
        self.defer(
            trigger=DateTimeTrigger(moment=datetime.now(UTC) + timedelta(seconds=delay)),
            method_name="execute_resubmit",
            kwargs={"deadline": self._deadline, "rate_limit_attempts": self._rate_limit_attempts},
        )

    def _submit_failure(self, exc: ModelsLabError, track_id: str | None = None) -> Exception:
        """A submit that may exist is final; one that provably never reached ModelsLab may be retried."""
        return self._paid_submit_failure(exc, f"request to {self.endpoint}", track_id)

    def _failure(self, exc: ModelsLabError) -> Exception:
        """Errors a retry cannot fix: bad key, refused request, unknown request, wrong settings."""
        return failure(exc, self.modelslab_conn_id)

    # ------------------------------------------------------------------ wait

    def _defer_wait(self, job: SubmittedRequest, context: Context | None = None) -> NoReturn:
        # imported here: the trigger module pulls in airflow.triggers.base, which DAG parsing
        # does not need (benchmarks/parse_cost.py)
        from modelslab_provider.triggers.task_end import MESSAGE, end_spec
        from modelslab_provider.triggers.video import VideoFetchTrigger

        # Airflow 3 does not apply execution_timeout while deferred: the trigger does. The try's
        # budget (``_deadline``) was counted from its first execute, so the same start serves both.
        deadline, limit = wait_deadline(
            self._deadline, self.timeout, self.execution_timeout, self._deadline - self.timeout, time.time()
        )
        self.log.info(
            "Deferring: the triggerer waits for ModelsLab request %s until %s (%s)",
            job.request_id,
            datetime.fromtimestamp(deadline, UTC).isoformat(timespec="seconds"),
            limit,
        )
        self.defer(
            trigger=VideoFetchTrigger(
                request_id=job.request_id,
                modelslab_conn_id=self.modelslab_conn_id,
                api_version=job.api_version,
                fetch_url=job.fetch_url,
                started_at=job.submitted_at,
                eta=job.eta,
                deadline=deadline,
                poll_policy=self._poll_policy().to_dict(),
                limit=limit,
                end_task=end_spec(
                    self, context, "video", timeout_message=self._timeout_message(MESSAGE, job.request_id)
                ),
            ),
            method_name="execute_complete",
            # the deadline lives in the trigger: it reports a timeout event instead of vanishing
            timeout=None,
        )

    def _wait(self, job: SubmittedRequest) -> VideoResult:
        rid = job.request_id
        self.log.info(
            "Waiting for ModelsLab request %s in the worker (timeout in %.0f s)",
            rid,
            max(self._deadline - time.time(), 0),
        )
        try:
            return self.hook.wait(
                rid,
                api_version=job.api_version,
                fetch_url=job.fetch_url,
                started_at=job.submitted_at,
                eta=job.eta,
                deadline=self._deadline,
                poll=self._poll_policy(),
                on_progress=self._log_progress,
                limit=f"timeout of {self.timeout:.0f} s",
            )
        except ModelsLabTimeoutError as exc:
            raise AirflowException(self._timeout_message(str(exc), rid)) from exc
        except ModelsLabJobFailedError as exc:
            raise AirflowFailException(str(exc)) from exc
        except ModelsLabError as exc:
            raise self._failure(exc) from exc

    def _log_progress(
        self, tracker: WaitTracker, result: VideoResult | None, error: BaseException | None
    ) -> None:
        if error is not None:
            self.log.warning(
                "ModelsLab request %s: poll %d failed (%s); still waiting",
                tracker.request_id,
                tracker.polls + 1,
                error,
            )
        elif result is not None and not result.is_terminal:
            self.log.info(*tracker.describe(result, time.time()))

    def _timeout_message(self, message: str, request_id: str) -> str:
        if AIRFLOW_V_3_3_PLUS and getattr(self, "durable", False):
            then = f"a retry of this task reconnects to request {request_id} instead of paying again."
        else:
            then = (
                "on this Airflow version (or with durable=False) a retry of this task submits a NEW, "
                "billed request; set retries=0 to avoid that."
            )
        return (
            f"{message or f'ModelsLab request {request_id} timed out.'} ModelsLab has no cancel API, "
            f"so the job may still finish; {then}"
        )

    # ------------------------------------------------------------------ XCom

    def _publish_request(self, context: Context, job: SubmittedRequest) -> None:
        """Push the request id and how to reach it, before any waiting."""
        if self._published_request:
            return
        ti = context["ti"]
        ti.xcom_push(key=XCOM_REQUEST_ID, value=job.request_id)
        ti.xcom_push(key=XCOM_API_VERSION, value=job.api_version)
        if job.track_id:
            ti.xcom_push(key=XCOM_TRACK_ID, value=job.track_id)
        if job.fetch_url:
            ti.xcom_push(key=XCOM_FETCH_URL, value=job.fetch_url)
        if job.eta is not None:
            ti.xcom_push(key=XCOM_ETA, value=job.eta)
        self._published_request = True

    def _publish_result(self, context: Context, urls: list[str], details: Mapping[str, Any]) -> list[str]:
        """Push the detail keys and return the URLs (Airflow pushes them as ``return_value``)."""
        from modelslab_provider.triggers.task_end import video_xcoms

        ti = context["ti"]
        # the same XComs the triggerer pushes when it ends the task itself
        for key, value in video_xcoms(urls, details).items():
            ti.xcom_push(key=key, value=value)
        self.log.info("ModelsLab video ready: %d output URL(s), first %s", len(urls), urls[0])
        from modelslab_provider.lineage import report_video_job

        report_video_job(self.hook, endpoint=self.endpoint, request_id=details.get("request_id"), urls=urls)
        return urls
