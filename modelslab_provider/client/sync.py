"""Blocking ModelsLab client on ``requests`` (keep-alive session). I/O only: decisions live in the core."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from modelslab_provider.client import batch, core
from modelslab_provider.client.batch import BatchStatus, BatchSubmitted
from modelslab_provider.client.core import ApiRequest, Balance, ClientSettings, VideoResult
from modelslab_provider.client.errors import ModelsLabError, ModelsLabTransientError
from modelslab_provider.client.policy import Action, PaidCallRetryPolicy, PollPolicy, RetryPolicy, WaitTracker

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)
T = TypeVar("T")

USER_AGENT = "airflow-provider-modelslab"
ProgressCallback = Callable[[WaitTracker, VideoResult | None, BaseException | None], None]


def retry_delay(
    retry: RetryPolicy, attempt: int, exc: ModelsLabError, request: ApiRequest, jitter: float
) -> float:
    """The wait before the next attempt of ``request`` (logged), or ``exc`` raised when giving up."""
    delay = retry.delay(attempt, exc, idempotent=request.idempotent, jitter=jitter)
    if delay is None:
        raise exc
    log.warning(
        "ModelsLab call to %s failed (%s); retry %d of %d in %.1f s",
        core.redact_url(request.url),
        exc,
        attempt,
        retry.max_attempts - 1,
        delay,
    )
    return delay


def describe_exception(exc: BaseException) -> str:
    """A one-line description of a transport exception that never includes a request body."""
    name = type(exc).__name__
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{name}: {text}" if text else name


class ModelsLabClient:
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
        self.settings = settings
        self.retry = retry or RetryPolicy(max_attempts=settings.max_retries)
        self._session = session
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    def __repr__(self) -> str:
        return f"ModelsLabClient(base_url={self.settings.base_url!r})"

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
        """Start a paid generation. Ambiguous failures are not retried (no double billing)."""
        return self._send(core.build_submit(self.settings, endpoint, payload), core.normalise_response)

    def fetch(self, request_id: Any, api_version: str = core.V6, fetch_url: str | None = None) -> VideoResult:
        """Poll a request once (with retries of transient failures)."""
        request = core.build_fetch(self.settings, request_id, api_version, fetch_url)
        return self._send(request, core.normalise_response)

    def wallet_balance(self) -> Balance:
        return self._send(core.build_wallet_balance(self.settings), core.parse_balance)

    def submit_batch(self, body: Mapping[str, Any]) -> BatchSubmitted:
        """Submit one Video Batch (paid): repeated only when it provably never reached ModelsLab."""
        request = batch.build_batch_submit(self.settings, body)
        paid = PaidCallRetryPolicy(max_attempts=self.retry.max_attempts)
        attempt = 0
        while True:
            attempt += 1
            try:
                return batch.parse_batch_submit(*self._send_once(request))
            except ModelsLabError as exc:
                self._sleep(retry_delay(paid, attempt, exc, request, self._jitter()))

    def fetch_batch(self, batch_id: Any, size: int) -> BatchStatus:
        """Poll one batch once (free; transient failures retried)."""
        bid = core.normalise_request_id(batch_id)
        return self._send(
            batch.build_batch_fetch(self.settings, bid), lambda d, c: batch.parse_batch_fetch(d, bid, size, c)
        )

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
    ) -> VideoResult:
        """Poll until the video is done; raise the typed error on failure or at the deadline."""
        tracker = WaitTracker(
            request_id=core.normalise_request_id(request_id),
            started_at=self._clock() if started_at is None else started_at,
            deadline=deadline,
            eta=eta,
            poll=poll or PollPolicy(),
            retry=self.retry,
        )
        delay = tracker.first_delay(self._clock())
        while True:
            if delay > 0:
                self._sleep(delay)
            result: VideoResult | None = None
            error: ModelsLabError | None = None
            try:
                result = self.fetch(tracker.request_id, api_version, fetch_url)
                decision = tracker.on_result(result, self._clock(), self._jitter())
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

    def _send(self, request: ApiRequest, parse: Callable[[dict[str, Any], int], T]) -> T:
        """Send with retries; ``parse`` runs inside the loop, so a rate limit in a 200 body is retried too."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return parse(*self._send_once(request))
            except ModelsLabError as exc:
                self._sleep(retry_delay(self.retry, attempt, exc, request, self._jitter()))

    def _send_once(self, request: ApiRequest) -> tuple[dict[str, Any], int]:
        import requests

        try:
            response = self.session.request(
                request.method,
                request.url,
                data=request.encoded_body(),
                headers={"Content-Type": "application/json"},
                timeout=(min(10.0, self.settings.timeout), self.settings.timeout),
                allow_redirects=False,
            )
            body = core.scrub_secret(response.content, self.settings.api_key)
        except requests.exceptions.ConnectTimeout as exc:
            raise ModelsLabTransientError(
                f"Could not connect to ModelsLab: {describe_exception(exc)}"
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise ModelsLabTransientError(
                f"ModelsLab did not answer within {self.settings.timeout:g} s", ambiguous=True
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            never_sent = _never_sent(exc)
            what = "Could not connect to ModelsLab" if never_sent else "Connection to ModelsLab failed"
            raise ModelsLabTransientError(
                f"{what}: {describe_exception(exc)}", ambiguous=not never_sent
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise ModelsLabTransientError(
                f"HTTP error talking to ModelsLab: {describe_exception(exc)}", ambiguous=True
            ) from exc
        if 300 <= response.status_code < 400:
            raise ModelsLabError(
                f"ModelsLab redirected {core.redact_url(request.url)} (HTTP {response.status_code}); "
                "check the connection's Base URL. The key is not sent to redirect targets."
            )
        data = core.decode_response(
            response.status_code, body, retry_after_header=response.headers.get("Retry-After")
        )
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
