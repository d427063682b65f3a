"""Blocking ModelsLab client on ``requests`` (keep-alive session). I/O only: decisions live in the core."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from modelslab_provider.client import batch, core, responses
from modelslab_provider.client.batch import BatchStatus, BatchSubmitted, BatchWait, EntryResult
from modelslab_provider.client.calls import BaseClient
from modelslab_provider.client.core import (
    USER_AGENT,
    ApiRequest,
    Balance,
    ClientSettings,
    Status,
    VideoResult,
)
from modelslab_provider.client.errors import (
    ModelsLabAmbiguousSubmitError,
    ModelsLabError,
    ModelsLabJobFailedError,
    ModelsLabRateLimitError,
    ModelsLabRequestError,
    ModelsLabTimeoutError,
    ModelsLabTransientError,
)
from modelslab_provider.client.policy import (
    Action,
    PollPolicy,
    RetryPolicy,
    WaitTracker,
    never_reached,
)
from modelslab_provider.client.submit import (
    SubmittedRequest,
    ambiguous_submit_error,
    prepare_payload,
    request_fingerprint,
)

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)
T = TypeVar("T")

ProgressCallback = Callable[[WaitTracker, VideoResult | None, BaseException | None], None]
#: called before each queue-full wait with (the refusal, seconds to wait, refusals so far); it may
#: raise to take the wait over (an operator defers to the triggerer), else the client sleeps
QueueFullCallback = Callable[[ModelsLabRateLimitError, float, int], None]


class ModelsLabClient(BaseClient):
    """Synchronous client: submit, fetch, wait and wallet balance."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(settings, retry=retry, jitter=jitter)
        self._session = session
        self._sleep = sleep
        self._clock = clock

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            import requests

            self._session = requests.Session()
            self._session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # ------------------------------------------------------------------ API calls

    def submit(self, endpoint: str, payload: Mapping[str, Any]) -> VideoResult:
        """One paid call, documented defaults filled in; repeated only if it never reached ModelsLab.

        :meth:`submit_request` adds the ``track_id``, the queue-full wait and the submit record.
        """
        return self._send(*self.submit_call(endpoint, payload))

    def fingerprint(self, endpoint: str, payload: Mapping[str, Any]) -> str:
        """The fingerprint :meth:`submit_request` records for ``payload`` (before any ``track_id``)."""
        return request_fingerprint(self.settings.base_url, endpoint, prepare_payload(endpoint, payload))

    def submit_request(
        self,
        endpoint: str,
        payload: Mapping[str, Any],
        *,
        track_id: str | None = None,
        deadline: float | None = None,
        queue_attempts: int = 0,
        on_queue_full: QueueFullCallback | None = None,
        resubmit_on_ambiguous_failure: bool = False,
    ) -> tuple[SubmittedRequest, VideoResult]:
        """One paid generation, submitted at most once as far as anyone can tell.

        The documented defaults are filled in (:func:`~modelslab_provider.client.submit.prepare_payload`)
        and ``track_id`` is added unless the payload carries one. The call is repeated only when it
        provably never reached ModelsLab (:func:`~modelslab_provider.client.policy.never_reached`);
        a refusal because the account's queue is full waits (``on_queue_full``, then sleep) and
        resubmits until ``deadline`` (epoch seconds; None: no waiting). Raises
        :class:`ModelsLabAmbiguousSubmitError` when the request may exist under an id we never
        received, :class:`ModelsLabRateLimitError` when the queue stayed full, and the typed error
        of a refused or at-once failed request.
        """
        body = prepare_payload(endpoint, payload)
        fingerprint = request_fingerprint(self.settings.base_url, endpoint, body)
        if track_id and not body.get("track_id"):
            body["track_id"] = track_id
        given = body.get("track_id")
        track = str(given) if isinstance(given, str | int) and not isinstance(given, bool) else None
        api_version, _ = core.resolve_endpoint(endpoint)
        result = self.send_paid(
            core.build_submit(self.settings, endpoint, body),
            responses.normalise_response,
            what=endpoint,
            track_id=track,
            deadline=deadline,
            queue_attempts=queue_attempts,
            on_queue_full=on_queue_full,
            resubmit_on_ambiguous_failure=resubmit_on_ambiguous_failure,
        )
        message = result.message or f"status {result.raw_status} without a message"
        if result.status is Status.FAILED:
            if result.request_id is None:
                raise ModelsLabRequestError(f"ModelsLab refused the request to {endpoint}: {message}")
            raise ModelsLabJobFailedError(
                f"ModelsLab request {result.request_id} failed at once ({result.raw_status}): {message}",
                request_id=result.request_id,
                status=result.raw_status,
            )
        if result.request_id is None:
            raise ModelsLabAmbiguousSubmitError(
                f"ModelsLab accepted the request to {endpoint} but sent neither a request id nor a fetch "
                "URL, so it cannot be followed. It is not resubmitted automatically (it may be billed); "
                f"look for track_id {track or '(none)'} in your ModelsLab dashboard.",
                track_id=track,
                endpoint=endpoint,
            )
        submitted = SubmittedRequest(
            request_id=result.request_id,
            api_version=api_version,
            fetch_url=result.fetch_result,
            submitted_at=self._clock(),
            eta=result.eta,
            fingerprint=fingerprint,
            track_id=track,
        )
        return submitted, result

    def send_paid(
        self,
        request: ApiRequest,
        parse: Callable[[dict[str, Any], int], T],
        *,
        what: str,
        track_id: str | None,
        deadline: float | None = None,
        queue_attempts: int = 0,
        on_queue_full: QueueFullCallback | None = None,
        resubmit_on_ambiguous_failure: bool = False,
    ) -> T:
        """Send one paid call (a submit, a batch submit) under the paid-call rule; ``parse`` its answer.

        Repeated only when it provably never reached ModelsLab; a queue-full refusal waits and
        resubmits until ``deadline`` (see :meth:`submit_request`). An ambiguous failure raises
        :class:`ModelsLabAmbiguousSubmitError` naming ``what`` and ``track_id``.
        """
        retry = replace(
            self.retry, retry_rate_limits=False, resubmit_on_ambiguous_failure=resubmit_on_ambiguous_failure
        )
        attempts = queue_attempts
        while True:
            try:
                return self._send(request, parse, retry=retry)
            except ModelsLabRateLimitError as exc:
                attempts += 1
                remaining = -math.inf if deadline is None else deadline - self._clock()
                delay = retry.queue_wait(attempts, exc.retry_after, remaining, self._jitter())
                if delay is None:
                    raise ModelsLabRateLimitError(
                        f"ModelsLab kept refusing the submission to {what} because the account's queue "
                        f"is full ({exc}); gave up after {attempts} attempt(s), when the time budget ran "
                        "out. Nothing was submitted, so a retry is safe.",
                        retry_after=exc.retry_after,
                        status_code=exc.status_code,
                    ) from exc
                if on_queue_full is not None:
                    on_queue_full(exc, delay, attempts)
                else:
                    log.warning("ModelsLab queue is full (%s); resubmitting in %.1f s", exc, delay)
                self._sleep(delay)
            except ModelsLabTransientError as exc:
                if never_reached(exc):
                    raise
                raise ambiguous_submit_error(
                    what, exc, track_id, resubmitted=resubmit_on_ambiguous_failure
                ) from exc

    def fetch(
        self,
        request_id: Any,
        api_version: str = core.V6,
        fetch_url: str | None = None,
        *,
        deadline: float | None = None,
    ) -> VideoResult:
        """Poll a request once (with retries of transient failures), all of it before ``deadline``.

        ``deadline`` (epoch seconds) caps each attempt's timeout and drops a retry that would
        start after it; at the deadline itself :class:`ModelsLabTimeoutError` is raised.
        """
        return self._send(*self.fetch_call(request_id, api_version, fetch_url), deadline)

    def wallet_balance(self) -> Balance:
        return self._send(*self.wallet_balance_call())

    def submit_batch(
        self,
        body: Mapping[str, Any],
        *,
        what: str = "batch",
        deadline: float | None = None,
        queue_attempts: int = 0,
        on_queue_full: QueueFullCallback | None = None,
    ) -> BatchSubmitted:
        """Submit one Video Batch (paid) under :meth:`send_paid`'s rule; errors name its track ids."""
        return self.send_paid(
            batch.build_batch_submit(self.settings, body),
            batch.parse_batch_submit,
            what=what,
            track_id=batch.batch_track_ids(body),
            deadline=deadline,
            queue_attempts=queue_attempts,
            on_queue_full=on_queue_full,
        )

    def fetch_batch(self, batch_id: Any, size: int) -> BatchStatus:
        """Poll one batch once (free; transient failures retried)."""
        return self._send(*self.batch_fetch_call(batch_id, size))

    def fetch_job(self, job: Mapping[str, Any], *, deadline: float | None = None) -> list[EntryResult]:
        """One poll of a batch task's job (a batch, or a single request standing for one entry).

        ``deadline`` bounds the call, retries included, as in :meth:`fetch`.
        """
        return self._send(*self.job_call(job), deadline)

    def wait_batches(
        self,
        jobs: Sequence[Mapping[str, Any]],
        *,
        started_at: float,
        deadline: float | None = None,
        poll: PollPolicy | None = None,
        on_round: Callable[[BatchWait, float], None] | None = None,
        limit: str | None = None,
    ) -> dict[str, tuple[EntryResult, ...]]:
        """Poll a batch task's jobs, one fetch per unfinished job per round, until every entry ends.

        Returns the final entries per job id; raises the typed error of a failed fetch or
        :class:`ModelsLabTimeoutError` at ``deadline``, which also cuts every fetch (``limit`` names
        the limit that set it). ``on_round`` hears each round and the next pause.
        """
        tracker = BatchWait(
            jobs={j["id"]: j["size"] for j in jobs},
            started_at=started_at,
            deadline=deadline,
            poll=poll or PollPolicy(),
            retry=self.retry,
            limit=limit,
        )
        by_id = {j["id"]: j for j in jobs}
        delay = tracker.first_delay(self._clock())
        while True:
            if delay > 0:
                self._sleep(delay)
            errors: list[BaseException] = []
            for job_id in tracker.pending():
                try:
                    tracker.on_status(job_id, self.fetch_job(by_id[job_id], deadline=deadline))
                except ModelsLabTimeoutError:
                    raise tracker.timeout_error(self._clock()) from None
                except ModelsLabError as exc:
                    errors.append(exc)
            decision = tracker.next_round(self._clock(), errors)
            if decision.action is Action.DONE:
                return tracker.finished
            if decision.action is Action.FAIL:
                assert decision.error is not None
                raise decision.error
            if on_round is not None:
                on_round(tracker, decision.delay)
            delay = decision.delay

    def wait(
        self,
        request_id: Any,
        *,
        api_version: str = core.V6,
        fetch_url: str | None = None,
        started_at: float | None = None,
        eta: float | None = None,
        deadline: float | None = None,
        poll: PollPolicy | None = None,
        on_progress: ProgressCallback | None = None,
        limit: str | None = None,
    ) -> VideoResult:
        """Poll until the video is done; raise the typed error on failure or at the deadline.

        No fetch (retries included) runs past ``deadline``; ``limit`` names the limit that set it.
        """
        tracker = WaitTracker(
            request_id=core.normalise_request_id(request_id),
            started_at=self._clock() if started_at is None else started_at,
            deadline=deadline,
            eta=eta,
            poll=poll or PollPolicy(),
            retry=self.retry,
            limit=limit,
        )
        delay = tracker.first_delay(self._clock())
        while True:
            if delay > 0:
                self._sleep(delay)
            result: VideoResult | None = None
            error: ModelsLabError | None = None
            try:
                result = self.fetch(tracker.request_id, api_version, fetch_url, deadline=deadline)
                decision = tracker.on_result(result, self._clock(), self._jitter())
            except ModelsLabTimeoutError:
                raise tracker.timeout_error(self._clock()) from None
            except ModelsLabError as exc:
                error = exc
                decision = tracker.on_error(exc, self._clock(), self._jitter())
            if on_progress is not None:
                on_progress(tracker, result, error)
            if decision.action is Action.DONE:
                assert decision.result is not None
                return decision.result
            if decision.action is Action.FAIL:
                assert decision.error is not None
                raise decision.error
            delay = decision.delay

    # ------------------------------------------------------------------ transport

    def _send(
        self,
        request: ApiRequest,
        parse: Callable[[dict[str, Any], int], T],
        deadline: float | None = None,
        *,
        retry: RetryPolicy | None = None,
    ) -> T:
        """Send with retries; ``parse`` runs inside the loop, so a rate limit in a 200 body is retried too."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return parse(
                    *self._send_once(request, core.time_left(deadline, self._clock(), self.settings))
                )
            except ModelsLabError as exc:
                self._sleep(
                    self.retry_wait(attempt, exc, request, retry=retry, now=self._clock(), deadline=deadline)
                )

    def _send_once(self, request: ApiRequest, timeout: float | None = None) -> tuple[dict[str, Any], int]:
        import requests

        timeout = self.settings.timeout if timeout is None else timeout

        try:
            response = self.session.request(
                request.method,
                request.url,
                data=request.encoded_body(),
                headers={"Content-Type": "application/json"},
                timeout=(min(10.0, timeout), timeout),
                allow_redirects=False,
            )
            body = response.content
        except requests.exceptions.ConnectTimeout as exc:
            raise responses.not_connected(exc) from exc
        except requests.exceptions.Timeout as exc:
            raise responses.no_answer(timeout) from exc
        except requests.exceptions.ConnectionError as exc:
            raise (
                responses.not_connected(exc) if _never_sent(exc) else responses.connection_lost(exc)
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise responses.connection_lost(exc) from exc
        retry_after = response.headers.get("Retry-After")
        data = responses.read_answer(request, response.status_code, body, retry_after, self.settings.api_key)
        return data, response.status_code


def _never_sent(exc: BaseException) -> bool:
    """True when the connection failed before any byte of the request could have been read."""
    import urllib3.exceptions

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        args = getattr(current, "args", ())
        nested = next((a for a in args if isinstance(a, BaseException)), None)
        current = nested or current.__cause__ or current.__context__
    return False
