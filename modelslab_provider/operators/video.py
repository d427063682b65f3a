"""Operators that generate a ModelsLab video: submit, push the request id, wait, push the URLs.

:class:`ModelsLabVideoOperator` calls any video endpoint with a payload passed through unchanged;
:class:`ModelsLabTextToVideoOperator` and :class:`ModelsLabImageToVideoOperator` add typed
arguments for the common fields. All three share one flow:

1. submit (a refusal because the account's queue is full waits and resubmits, within
   ``timeout``; in deferrable mode the wait happens in the triggerer);
2. push XCom ``request_id`` (plus ``api_version``, ``fetch_url``, ``eta``) before any waiting;
3. return at once if the submit answered ``success`` with URLs; otherwise wait, in the worker or
   deferred to :class:`~modelslab_provider.triggers.video.VideoFetchTrigger`, with the deadline
   inside the trigger so a timeout is reported as one;
4. XCom ``return_value`` = the list of output URLs; ``video_url``, ``proxy_links``,
   ``generation_time`` and ``meta`` (secrets stripped) go under their own keys.

Never paying twice: what a new try of the task does, per Airflow line
-----------------------------------------------------------------------

The request is remembered through Airflow's ``ResumableJobMixin``: on 3.3+ the submitted request
(id, API version, fetch URL, submit time, ETA and a fingerprint of endpoint + payload) goes to
the task instance's ``task_state_store`` right after the submit, before any waiting. On a later
try the operator fetches that request once and then:

* still running -> reconnects to it (waits again, synchronously or deferred); no new submit;
* already done -> returns its URLs without polling;
* failed, expired, unknown to ModelsLab, or stored for another endpoint/payload -> submits anew.

=====================================================  ================  ==================
situation                                              Airflow 3.1, 3.2  Airflow 3.3+
=====================================================  ================  ==================
triggerer restart or failover while deferred           reconnects        reconnects
worker dies mid-wait (sync) or before deferring, retry submits again     reconnects
``timeout`` / ``execution_timeout`` hit, then retry    submits again     reconnects
retry or clear after the job failed                    submits again     submits again
clear after success, same endpoint and payload         submits again     returns same video
clear after success, payload changed                   submits again     submits again
``durable=False``                                      (always off)      submits again
=====================================================  ================  ==================

* The trigger's kwargs carry the request id and the absolute deadline, so a triggerer restart
  never re-runs the operator on any line.
* Below 3.3 there is no store that survives a retry (XCom is cleared before each try), and the
  ``ResumableJobMixin`` from common-compat submits on every try; the timeout error says so
  there. Prefer ``deferrable=True`` (nothing to lose when a worker dies) and ``retries=0`` if
  a second charge matters.
* Known gap on 3.3+ (Airflow's own): a worker that dies between the submit's answer and the
  store write submits again on retry.
* A submit whose outcome is unknown (read timeout, dropped connection, HTTP 524) is never
  repeated automatically on any line: the task fails without retry, because the request may
  exist under an id we never received.
* A failed job fails the task without retry (``AirflowFailException``); a timeout raises a
  plain ``AirflowException`` so ``retries`` apply and a retry reconnects (3.3+).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    BaseOperator,
    BaseOperatorLink,
    ResumableJobMixin,
    XCom,
    conf,
)

from modelslab_provider.client.core import SECRET_FIELDS, Status, VideoResult, http_urls, resolve_endpoint
from modelslab_provider.client.errors import (
    ModelsLabError,
    ModelsLabJobFailedError,
    ModelsLabNotFoundError,
    ModelsLabRateLimitError,
    ModelsLabTimeoutError,
    ModelsLabTransientError,
)
from modelslab_provider.client.policy import PollPolicy, RetryPolicy, WaitTracker
from modelslab_provider.events import compact_meta, failure, urls_from_event, wait_deadline
from modelslab_provider.hooks.modelslab import ModelsLabHook
from modelslab_provider.version_compat import AIRFLOW_V_3_3_PLUS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

    from modelslab_provider.client.sync import ModelsLabClient

# XCom keys (``return_value`` holds the list of output URLs)
XCOM_REQUEST_ID = "request_id"
XCOM_API_VERSION = "api_version"
XCOM_FETCH_URL = "fetch_url"
XCOM_ETA = "eta"
XCOM_VIDEO_URL = "video_url"
XCOM_PROXY_LINKS = "proxy_links"
XCOM_GENERATION_TIME = "generation_time"
XCOM_META = "meta"

#: ``task_state_store`` key of the submitted request; renaming it breaks in-flight retries
STATE_KEY = "modelslab_request"


class ModelsLabVideoLink(BaseOperatorLink):
    """ "ModelsLab Video" button: opens the first output video of the task.

    Computed from the ``video_url`` XCom, so the API server only reads the stored link and
    never needs this class.
    """

    name = "ModelsLab Video"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        url = XCom.get_value(key=XCOM_VIDEO_URL, ti_key=ti_key)
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return url
        return ""


class _SubmitRetryPolicy(RetryPolicy):
    """The client's retries, minus rate limits: the operator waits for a queue slot itself."""

    def delay(self, attempt: int, error: BaseException, *, idempotent: bool, jitter: float) -> float | None:
        if isinstance(error, ModelsLabRateLimitError):
            return None
        return super().delay(attempt, error, idempotent=idempotent, jitter=jitter)


def _seconds(value: float | timedelta, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValueError(f"{name} must be a positive number of seconds or a timedelta, got {value!r}")
    return float(seconds)


def _job_record(value: Any) -> dict[str, Any] | None:
    """The stored request, or None when the store holds something this version cannot use."""
    if not isinstance(value, Mapping) or not isinstance(value.get("request_id"), str):
        return None
    if value.get("api_version") not in ("v6", "v7") or not isinstance(value.get("fingerprint"), str):
        return None
    submitted_at = value.get("submitted_at")
    eta = value.get("eta")
    return {
        "request_id": value["request_id"],
        "api_version": value["api_version"],
        "fetch_url": value.get("fetch_url") if isinstance(value.get("fetch_url"), str) else None,
        "submitted_at": float(submitted_at) if isinstance(submitted_at, int | float) else time.time(),
        "eta": float(eta) if isinstance(eta, int | float) and not isinstance(eta, bool) else None,
        "fingerprint": value["fingerprint"],
    }


class ModelsLabVideoOperator(ResumableJobMixin, BaseOperator):
    """Generate a video on any ModelsLab video endpoint and push the output URLs to XCom.

    :param endpoint: a v6 endpoint (``text2video``, ``img2video``, ``text2video_ultra``,
        ``img2video_ultra``, ``video2video``, ``watermark_remover``) or a v7 video-fusion one
        (``text-to-video``, ``image-to-video``, ``video-to-video``, ``lip-sync``,
        ``motion-control``); a ``v6/`` or ``v7/`` prefix is accepted. Templated.
    :param payload: the API parameters, passed through unchanged (templated). Never the key:
        it comes from the connection, and a ``key`` field is refused.
    :param modelslab_conn_id: the connection holding the API key.
    :param wait_for_completion: wait for the video (default). With False the task returns right
        after the submit (XCom ``request_id``) for a downstream ``VideoFetchSensor``; its
        ``return_value`` is then None.
    :param deferrable: wait in the triggerer instead of the worker (also for queue-full waits);
        defaults to ``[operators] default_deferrable``.
    :param poll_interval: the shortest pause between polls, in seconds. Above it, polls follow
        the API's ETA (the first one shortly before the video is expected; 15 s apart without
        an ETA) and thin out while a job overruns, up to ``max_poll_interval``.
    :param max_poll_interval: longest pause between polls, in seconds.
    :param timeout: the task's time budget per try (seconds or timedelta), counted from the
        start of the try: queue-full waits and the wait for the video must end within it.
        Running out raises a retryable ``AirflowException`` that says the job may still finish.
    :param durable: (Airflow 3.3+, from ``ResumableJobMixin``) remember the request in
        ``task_state_store`` so a new try reconnects to it; see the module docstring.
    """

    template_fields: Sequence[str] = ("endpoint", "payload", "modelslab_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"payload": "json"}
    operator_extra_links = (ModelsLabVideoLink(),)
    ui_color = "#efe6ff"
    external_id_key = STATE_KEY

    def __init__(
        self,
        *,
        endpoint: str,
        payload: Mapping[str, Any] | None = None,
        modelslab_conn_id: str = ModelsLabHook.default_conn_name,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        timeout: float | timedelta = 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.payload = payload
        self.modelslab_conn_id = modelslab_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = _seconds(poll_interval, "poll_interval")
        self.max_poll_interval = max(_seconds(max_poll_interval, "max_poll_interval"), self.poll_interval)
        self.timeout = _seconds(timeout, "timeout")
        # per-try working state; nothing here survives a deferral (kwargs and events carry it)
        self._api_version = "v6"
        self._body: dict[str, Any] = {}
        self._fingerprint = ""
        self._deadline = 0.0
        self._rate_limit_attempts = 0
        self._job: dict[str, Any] | None = None
        self._known: VideoResult | None = None
        self._published_request = False
        self._urls: list[str] | None = None

    @cached_property
    def hook(self) -> ModelsLabHook:
        return ModelsLabHook(modelslab_conn_id=self.modelslab_conn_id)

    # ------------------------------------------------------------------ inputs

    def build_payload(self) -> dict[str, Any]:
        """The request body without the key; typed subclasses build it from their arguments."""
        if not isinstance(self.payload, Mapping):
            raise AirflowFailException(
                f"payload must be a dict of ModelsLab API parameters, got {type(self.payload).__name__}"
                + (" (a template rendered to a string?)" if isinstance(self.payload, str) else "")
            )
        return dict(self.payload)

    def _prepare(self, deadline: float | None = None, rate_limit_attempts: int = 0) -> None:
        """Validate the rendered inputs and start (or continue) the try's time budget."""
        try:
            self._api_version, path = resolve_endpoint(self.endpoint)
        except ModelsLabError as exc:
            raise AirflowFailException(str(exc)) from None
        body = self.build_payload()
        secret = sorted(str(k) for k in body if str(k).strip().lower() in SECRET_FIELDS)
        if secret:
            raise AirflowFailException(
                f"payload must not contain {secret}: the API key comes from Airflow connection "
                f"{self.modelslab_conn_id!r} only."
            )
        self._body = body
        canonical = json.dumps({"path": path, "payload": body}, sort_keys=True, default=str)
        self._fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        self._deadline = deadline if deadline is not None else time.time() + self.timeout
        self._rate_limit_attempts = rate_limit_attempts

    def _poll_policy(self) -> PollPolicy:
        """``poll_interval`` is the floor; the ETA-aware policy decides everything above it."""
        return PollPolicy(
            min_interval=self.poll_interval,
            interval=max(PollPolicy.interval, self.poll_interval),
            max_interval=self.max_poll_interval,
        )

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
                self._job["request_id"],
            )

    # ------------------------------------------------------------------ ResumableJobMixin

    def submit_job(self, context: Context) -> dict[str, Any]:
        result = self._submit()
        assert result.request_id is not None
        job = {
            "request_id": result.request_id,
            "api_version": self._api_version,
            "fetch_url": result.fetch_result,
            "submitted_at": time.time(),
            "eta": result.eta,
            "fingerprint": self._fingerprint,
        }
        self._job = job
        self._known = result
        return job

    def get_job_status(self, external_id: Any, context: Context) -> str:
        job = _job_record(external_id)
        if job is None:
            self.log.warning("Ignoring an unreadable stored ModelsLab request (%r)", external_id)
            return "unusable"
        if job["fingerprint"] != self._fingerprint:
            self.log.info(
                "Stored ModelsLab request %s was made for another endpoint or payload; submitting anew",
                job["request_id"],
            )
            return "superseded"
        rid = job["request_id"]
        try:
            result = self.hook.fetch(rid, job["api_version"], job["fetch_url"])
        except ModelsLabNotFoundError as exc:
            self.log.warning("ModelsLab no longer knows request %s (%s); submitting anew", rid, exc)
            return "not_found"
        except ModelsLabTransientError as exc:
            # an unknown state is no reason to pay again: reconnect and let the wait sort it out
            self.log.warning("Could not check ModelsLab request %s (%s); reconnecting to it", rid, exc)
            return "running"
        except ModelsLabError as exc:
            raise self._failure(exc) from exc
        self._known = result
        if result.status is Status.DONE:
            return "done"
        if result.status is Status.FAILED:
            self.log.warning(
                "ModelsLab request %s from an earlier try ended with %s (%s); submitting anew",
                rid,
                result.raw_status,
                result.message or "no message",
            )
            return "failed"
        self.log.info(
            "ModelsLab request %s from an earlier try is still %s; reconnecting instead of submitting again",
            rid,
            result.raw_status,
        )
        return "running"

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
            self.log.info(
                "Not waiting for ModelsLab request %s (wait_for_completion=False)", job["request_id"]
            )
            return None
        done = self._known if self._known is not None and self._known.status is Status.DONE else None
        if done is None and self.deferrable:
            self._defer_wait(job)
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
        self.log.info("ModelsLab request %s finished during an earlier try; not polling", job["request_id"])
        self._urls = self._publish_result(context, list(self._known.urls), self._known.details())
        return self._urls

    def _use_job(self, external_id: Any) -> dict[str, Any]:
        job = _job_record(external_id)
        if job is None:  # only a bug can get here: submit_job and the store check both validate
            raise AirflowException(f"Unusable ModelsLab request record {external_id!r}")
        self._job = job
        return job

    # ------------------------------------------------------------------ submit

    def _submit_client(self) -> ModelsLabClient:
        from modelslab_provider.client.sync import ModelsLabClient

        settings = self.hook.client.settings
        return ModelsLabClient(settings, retry=_SubmitRetryPolicy(max_attempts=settings.max_retries))

    def _submit(self) -> VideoResult:
        """One paid submission, waiting for a queue slot (within the budget) when the account is full."""
        try:
            client = self._submit_client()
        except ModelsLabError as exc:  # no key, bad base URL: fix the connection, don't retry
            raise self._failure(exc) from None
        try:
            while True:
                try:
                    result = client.submit(self.endpoint, self._body)
                    break
                except ModelsLabRateLimitError as exc:
                    self._rate_limit_attempts += 1
                    delay = self._queue_wait(exc)
                    if self.deferrable:
                        self._defer_queue_wait(delay)
                    time.sleep(delay)
                except ModelsLabError as exc:
                    raise self._submit_failure(exc) from exc
        finally:
            client.close()
        message = result.message or f"status {result.raw_status} without a message"
        if result.status is Status.FAILED:
            if result.request_id is None:
                raise AirflowFailException(f"ModelsLab refused the request to {self.endpoint}: {message}")
            raise AirflowFailException(
                f"ModelsLab request {result.request_id} failed at once ({result.raw_status}): {message}"
            )
        if result.request_id is None:
            raise AirflowFailException(
                f"ModelsLab accepted the request to {self.endpoint} but sent neither a request id nor a "
                "fetch URL, so it cannot be followed. It is not resubmitted automatically (it may be "
                "billed); look for it in your ModelsLab dashboard."
            )
        self.log.info(
            "Submitted ModelsLab request %s to %s (%s, status %s, ETA %s)",
            result.request_id,
            self.endpoint,
            self._api_version,
            result.raw_status,
            "unknown" if result.eta is None else f"{result.eta:.0f} s",
        )
        return result

    def _queue_wait(self, exc: ModelsLabRateLimitError) -> float:
        """Seconds to wait before resubmitting after a queue-full refusal; fail past the budget."""
        now = time.time()
        remaining = self._deadline - now
        attempt = self._rate_limit_attempts
        base = exc.retry_after if exc.retry_after is not None else min(60.0, 5.0 * 2 ** min(attempt - 1, 4))
        delay = base * (1 + 0.5 * random.random())  # noqa: S311  (spread the retries of many tasks)
        if remaining <= 0:
            raise AirflowException(
                f"ModelsLab kept refusing the submission to {self.endpoint} because the account's queue "
                f"is full ({exc}); gave up after {attempt} attempts, when the task's timeout of "
                f"{self.timeout:.0f} s ran out. Nothing was submitted, so a retry is safe."
            )
        delay = min(delay, remaining)
        self.log.warning(
            "ModelsLab refused the submission: the account's queue is full (%s). Waiting %.1f s, then "
            "resubmitting (attempt %d; %.0f s left of the task's %.0f s timeout)",
            exc,
            delay,
            attempt + 1,
            remaining,
            self.timeout,
        )
        return delay

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

    def _submit_failure(self, exc: ModelsLabError) -> Exception:
        if isinstance(exc, ModelsLabTransientError) and exc.ambiguous:
            return AirflowFailException(
                f"The submission to ModelsLab ({self.endpoint}) may or may not have been accepted: {exc}. "
                "It is not sent again automatically, so the video is never paid for twice. Look for a "
                "new request in your ModelsLab dashboard; if there is none, clear this task to submit "
                "again."
            )
        if isinstance(exc, ModelsLabTransientError):
            return AirflowException(
                f"ModelsLab could not take the submission to {self.endpoint}: {exc}. Nothing was "
                "submitted, so a retry of this task is safe."
            )
        return self._failure(exc)

    def _failure(self, exc: ModelsLabError) -> Exception:
        """Errors a retry cannot fix: bad key, refused request, unknown request, wrong settings."""
        return failure(exc, self.modelslab_conn_id)

    # ------------------------------------------------------------------ wait

    def _defer_wait(self, job: dict[str, Any]) -> NoReturn:
        # imported here: the trigger module pulls in airflow.triggers.base, which DAG parsing
        # does not need (benchmarks/parse_cost.py)
        from modelslab_provider.triggers.video import VideoFetchTrigger

        # Airflow 3 does not apply execution_timeout while deferred: the trigger does. The try's
        # budget (``_deadline``) was counted from its first execute, so the same start serves both.
        deadline, limit = wait_deadline(
            self._deadline, self.timeout, self.execution_timeout, self._deadline - self.timeout, time.time()
        )
        self.log.info(
            "Deferring: the triggerer waits for ModelsLab request %s until %s (%s)",
            job["request_id"],
            datetime.fromtimestamp(deadline, UTC).isoformat(timespec="seconds"),
            limit,
        )
        self.defer(
            trigger=VideoFetchTrigger(
                request_id=job["request_id"],
                modelslab_conn_id=self.modelslab_conn_id,
                api_version=job["api_version"],
                fetch_url=job["fetch_url"],
                started_at=job["submitted_at"],
                eta=job["eta"],
                deadline=deadline,
                poll_policy=self._poll_policy().to_dict(),
                limit=limit,
            ),
            method_name="execute_complete",
            # the deadline lives in the trigger: it reports a timeout event instead of vanishing
            timeout=None,
        )

    def _wait(self, job: dict[str, Any]) -> VideoResult:
        rid = job["request_id"]
        self.log.info(
            "Waiting for ModelsLab request %s in the worker (timeout in %.0f s)",
            rid,
            max(self._deadline - time.time(), 0),
        )
        try:
            return self.hook.wait(
                rid,
                api_version=job["api_version"],
                fetch_url=job["fetch_url"],
                started_at=job["submitted_at"],
                eta=job["eta"],
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

    def _publish_request(self, context: Context, job: dict[str, Any]) -> None:
        """Push the request id and how to reach it, before any waiting."""
        if self._published_request:
            return
        ti = context["ti"]
        ti.xcom_push(key=XCOM_REQUEST_ID, value=job["request_id"])
        ti.xcom_push(key=XCOM_API_VERSION, value=job["api_version"])
        if job["fetch_url"]:
            ti.xcom_push(key=XCOM_FETCH_URL, value=job["fetch_url"])
        if job["eta"] is not None:
            ti.xcom_push(key=XCOM_ETA, value=job["eta"])
        self._published_request = True

    def _publish_result(self, context: Context, urls: list[str], details: Mapping[str, Any]) -> list[str]:
        """Push the detail keys and return the URLs (Airflow pushes them as ``return_value``)."""
        ti = context["ti"]
        ti.xcom_push(key=XCOM_VIDEO_URL, value=urls[0])
        ti.xcom_push(key=XCOM_PROXY_LINKS, value=list(http_urls(details.get("proxy_links"))))
        generation_time = details.get("generation_time")
        if isinstance(generation_time, int | float) and not isinstance(generation_time, bool):
            ti.xcom_push(key=XCOM_GENERATION_TIME, value=generation_time)
        meta = details.get("meta")
        if isinstance(meta, Mapping) and meta:
            ti.xcom_push(key=XCOM_META, value=compact_meta(meta))
        self.log.info("ModelsLab video ready: %d output URL(s), first %s", len(urls), urls[0])
        return urls


def _no_payload(cls: type, kwargs: dict[str, Any]) -> None:
    if "payload" in kwargs:
        raise TypeError(
            f"{cls.__name__} builds the payload from its arguments; pass extra API parameters as "
            "parameters={...}, or use ModelsLabVideoOperator(payload=...)"
        )


def _clean(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _parameters(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AirflowFailException(
            f"parameters must be a dict of extra ModelsLab API parameters, got {type(value).__name__}"
        )
    return dict(value)


class _TypedVideoOperator(ModelsLabVideoOperator):
    """The typed arguments the text and image operators share; the payload is built from them."""

    template_fields: Sequence[str] = (
        "endpoint",
        "modelslab_conn_id",
        "prompt",
        "negative_prompt",
        "model_id",
        "parameters",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"parameters": "json"}

    def __init__(
        self,
        *,
        prompt: str | None = None,
        model_id: str | None = None,
        negative_prompt: str | None = None,
        width: int | None = None,
        height: int | None = None,
        num_frames: int | None = None,
        fps: int | None = None,
        seed: int | None = None,
        output_type: str | None = "mp4",
        parameters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        _no_payload(type(self), kwargs)
        super().__init__(**kwargs)
        self.prompt = prompt
        self.model_id = model_id
        self.negative_prompt = negative_prompt
        self.width = width
        self.height = height
        self.num_frames = num_frames
        self.fps = fps
        self.seed = seed
        self.output_type = output_type
        self.parameters = parameters

    def _typed_payload(self, **first: Any) -> dict[str, Any]:
        """``first`` fields, the typed ones that are set, then ``parameters`` (which win)."""
        body = _clean(
            **first,
            negative_prompt=self.negative_prompt or None,
            model_id=self.model_id or None,
            width=self.width,
            height=self.height,
            num_frames=self.num_frames,
            fps=self.fps,
            seed=self.seed,
            output_type=self.output_type,
        )
        body.update(_parameters(self.parameters))
        return body


class ModelsLabTextToVideoOperator(_TypedVideoOperator):
    """Generate a video from a text prompt (``text2video`` by default).

    :param prompt: what to generate (templated; must not be empty).
    :param model_id: the model (templated); v6 falls back to ``wan2.2`` when omitted or unknown,
        v7 video-fusion endpoints require it.
    :param negative_prompt: what to avoid (templated).
    :param width, height, num_frames, fps, seed: common generation settings; sent only when set.
    :param output_type: ``mp4`` by default, because the API's own default is ``gif``; None
        leaves it out.
    :param parameters: any other API parameters (templated), merged last, so they win over the
        typed arguments.
    :param endpoint: ``text2video`` (default), ``text2video_ultra`` or ``v7/text-to-video``.

    All other arguments are those of :class:`ModelsLabVideoOperator`. Use
    ``.partial(...).expand(prompt=[...])`` to generate one video per prompt.
    """

    def __init__(self, *, prompt: str, endpoint: str = "text2video", **kwargs: Any) -> None:
        super().__init__(prompt=prompt, endpoint=endpoint, **kwargs)

    def build_payload(self) -> dict[str, Any]:
        body = self._typed_payload(prompt=self.prompt)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise AirflowFailException(
                f"prompt must be a non-empty string, got {prompt!r}; if it comes from a template or "
                "an upstream task, check what it rendered to."
            )
        return body


class ModelsLabImageToVideoOperator(_TypedVideoOperator):
    """Animate an image (``img2video`` by default).

    :param init_image: the image URL (templated; required). v7 models that take several images
        accept a list of URLs.
    :param prompt: optional guidance (templated; required by ``img2video_ultra``).
    :param model_id, negative_prompt, width, height, num_frames, fps, seed, output_type,
        parameters: as on :class:`ModelsLabTextToVideoOperator`.
    :param endpoint: ``img2video`` (default), ``img2video_ultra`` or ``v7/image-to-video``.
    """

    template_fields: Sequence[str] = (*_TypedVideoOperator.template_fields, "init_image")

    def __init__(self, *, init_image: str | list[str], endpoint: str = "img2video", **kwargs: Any) -> None:
        super().__init__(endpoint=endpoint, **kwargs)
        self.init_image = init_image

    def build_payload(self) -> dict[str, Any]:
        body = self._typed_payload(init_image=self.init_image, prompt=self.prompt or None)
        image = body.get("init_image")
        images = image if isinstance(image, list) else [image]
        if not images or not all(isinstance(i, str) and i.strip() for i in images):
            raise AirflowFailException(
                f"init_image must be an image URL (or a non-empty list of URLs), got {image!r}"
            )
        return body


__all__ = [
    "ModelsLabImageToVideoOperator",
    "ModelsLabTextToVideoOperator",
    "ModelsLabVideoLink",
    "ModelsLabVideoOperator",
]
