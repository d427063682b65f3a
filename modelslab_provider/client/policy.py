"""Retry and poll decisions as pure functions: no sleeping, no clock, no randomness of their own.

Callers pass the time and a jitter draw in, so every decision is unit-testable and the sync loop,
the sensor and the trigger all wait the same way.
"""

from __future__ import annotations

import enum
import logging
import warnings
from dataclasses import InitVar, dataclass, field
from typing import Any

from modelslab_provider.client.core import ApiRequest, Status, VideoResult, redact_url
from modelslab_provider.client.errors import (
    ModelsLabError,
    ModelsLabJobFailedError,
    ModelsLabRateLimitError,
    ModelsLabTimeoutError,
    ModelsLabTransientError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """When one HTTP call is repeated: capped exponential backoff with jitter (stripe-style).

    Free calls (fetch, wallet balance) repeat every transient failure. Paid calls (``idempotent``
    False) repeat only failures that :func:`never_reached` ModelsLab, unless
    ``resubmit_on_ambiguous_failure`` says a possible double charge beats a missing video.
    ``retry_rate_limits`` False hands rate limits back to the caller (the paid submit waits
    for a queue slot itself, see :meth:`queue_wait`).
    """

    max_attempts: int = 4
    initial_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 300.0
    retry_rate_limits: bool = True
    resubmit_on_ambiguous_failure: bool = False

    def delay(self, attempt: int, error: BaseException, *, idempotent: bool, jitter: float) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up and raise ``error``.

        ``jitter`` is a draw from [0, 1).
        """
        if not isinstance(error, ModelsLabError) or not error.retryable or attempt >= self.max_attempts:
            return None
        if isinstance(error, ModelsLabRateLimitError) and not self.retry_rate_limits:
            return None
        if not idempotent and not self.resubmit_on_ambiguous_failure and not never_reached(error):
            return None
        return self.backoff(attempt, error, jitter)

    def backoff(self, attempt: int, error: BaseException | None, jitter: float) -> float:
        if isinstance(error, ModelsLabRateLimitError) and error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after) + jitter
        base = min(self.max_delay, self.initial_delay * 2 ** max(attempt - 1, 0))
        return base * (0.5 + jitter / 2)

    @staticmethod
    def queue_wait(attempt: int, retry_after: float | None, remaining: float, jitter: float) -> float | None:
        """Seconds to wait before resubmitting after the ``attempt``-th queue-full refusal.

        The API's ``retry_after`` when given, else 5 s doubling up to 60 s; stretched by up to half
        by ``jitter`` (a draw from [0, 1)) so many waiting tasks do not resubmit in lockstep; never
        past ``remaining`` (seconds left of the caller's budget). None when nothing is left.
        """
        if remaining <= 0:
            return None
        base = retry_after if retry_after is not None else min(60.0, 5.0 * 2 ** min(max(attempt - 1, 0), 4))
        return min(base * (1 + 0.5 * min(max(jitter, 0.0), 1.0)), remaining)


@dataclass(frozen=True)
class PollPolicy:
    """When to fetch a running job next, from the time since submission and the API's ``eta``.

    With an ETA: first poll at ``eta_lead`` of it, then every ``eta_step`` of it, widening by
    ``growth`` of the overrun. Without: every ``interval``, widening by ``growth`` past
    ``patience``. Jitter shortens each wait by up to ``spread``. Every gap, the first included,
    stays within [min_interval, max_interval] (after a failed poll: :meth:`error_delay`).
    ``max_eta_wait``, a retired setting, is accepted and ignored so saved trigger kwargs load.
    """

    min_interval: float = 5.0
    max_interval: float = 60.0
    eta_lead: float = 0.8
    eta_step: float = 0.025
    interval: float = 15.0
    growth: float = 0.15
    patience: float = 600.0
    spread: float = 0.1
    max_empty_success_polls: int = 5
    max_eta_wait: InitVar[float | None] = None

    def __post_init__(self, max_eta_wait: float | None) -> None:
        if max_eta_wait is not None:
            warnings.warn(
                "PollPolicy(max_eta_wait=...) is ignored: max_interval bounds every wait, the first too.",
                DeprecationWarning,
                stacklevel=3,
            )
        if not 0 < self.min_interval <= self.max_interval:
            raise ValueError(
                f"poll intervals need 0 < min_interval <= max_interval, got {self.min_interval}, "
                f"{self.max_interval}"
            )
        if not 0.5 < self.eta_lead <= 1:
            raise ValueError(f"eta_lead must be in (0.5, 1], got {self.eta_lead}")
        if not 0 <= self.spread < 1:
            raise ValueError(f"spread must be in [0, 1), got {self.spread}")

    def next_delay(
        self, *, elapsed: float, eta: float | None, remaining: float | None = None, jitter: float = 0.0
    ) -> float:
        """Seconds until the next poll; ``jitter`` is a draw from [0, 1) (0 = no jitter)."""
        elapsed = max(elapsed, 0.0)
        shorten = 1 - self.spread * min(max(jitter, 0.0), 1.0)
        if eta is not None and eta > 0:
            expected = eta * self.eta_lead
            step = self._clamp(min(self.eta_step * eta, self.interval))
            if elapsed < expected:
                delay = self._clamp((expected - elapsed) * shorten)
            else:
                overrun = elapsed - eta / (2 - 1 / self.eta_lead)
                delay = self._clamp((step + self.growth * max(overrun, 0.0)) * shorten)
        else:
            delay = self._clamp((self.interval + self.growth * max(elapsed - self.patience, 0.0)) * shorten)
        if remaining is not None:
            delay = min(delay, max(remaining, 0.0))
        return delay

    def error_delay(self, failures: int, error: BaseException, retry: RetryPolicy, jitter: float) -> float:
        """Seconds until the poll after the ``failures``-th transient failure in a row.

        ``retry``'s backoff, from ``min_interval / 5`` (a blip is retried soon) up to
        ``max_interval``; a rate limit's own wait is honoured up to 5 x ``max_interval``, since
        ModelsLab refuses polls before it.
        """
        delay = max(retry.backoff(failures, error, jitter), self.min_interval / 5)
        limited = isinstance(error, ModelsLabRateLimitError) and error.retry_after is not None
        return min(delay, self.max_interval * (5 if limited else 1))

    def _clamp(self, value: float) -> float:
        return min(max(value, self.min_interval), self.max_interval)

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_interval": self.min_interval,
            "max_interval": self.max_interval,
            "eta_lead": self.eta_lead,
            "eta_step": self.eta_step,
            "interval": self.interval,
            "growth": self.growth,
            "patience": self.patience,
            "spread": self.spread,
            "max_empty_success_polls": self.max_empty_success_polls,
        }


class Action(enum.StrEnum):
    DONE = "done"
    WAIT = "wait"
    FAIL = "fail"


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0
    result: VideoResult | None = None
    error: ModelsLabError | None = None


#: seconds before a wait's deadline when its last poll is made (time for that fetch to answer), at
#: most the poll policy's ``min_interval``
LAST_POLL_LEAD = 1.0


class DeadlineWait:
    """The deadline half of a wait (:class:`WaitTracker`, ``BatchWait``): no wait runs past it.

    The class using it has ``deadline`` (epoch seconds or None) and ``timeout_error(now)``.
    """

    deadline: float | None
    poll: PollPolicy

    def timeout_error(self, now: float) -> ModelsLabTimeoutError:
        raise NotImplementedError

    def timed_out(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def _remaining(self, now: float) -> float | None:
        return None if self.deadline is None else self.deadline - now

    def _cut(self, now: float, delay: float) -> float | None:
        """``delay``, or less so the wait's last poll comes just before the deadline; None when past it.

        A wait that would end at or after the deadline polls once more :data:`LAST_POLL_LEAD`
        seconds before it (the fetch needs that time), so a video ready by then is seen. Once
        less than that is left after a poll, the wait is over.
        """
        remaining = self._remaining(now)
        if remaining is None:
            return delay
        # never more ahead than the policy's shortest pause: a short budget still polls at its pace
        lead = min(LAST_POLL_LEAD, self.poll.min_interval)
        if remaining <= lead:
            return None
        return min(delay, remaining - lead)

    def _wait(self, now: float, delay: float) -> Decision:
        """Wait ``delay`` seconds, cut before the deadline; fail with the timeout once it is (nearly) past."""
        cut = self._cut(now, delay)
        if cut is None:
            return Decision(Action.FAIL, error=self.timeout_error(now))
        return Decision(Action.WAIT, delay=cut)


@dataclass
class WaitTracker(DeadlineWait):
    """The state of one wait for a video, shared by the sync loop and the trigger.

    Feed it each poll's result (or error) with the current wall-clock time; it answers
    done, fail (with a typed error) or wait N seconds. It never polls after a terminal state.
    """

    request_id: str
    started_at: float
    deadline: float | None = None
    eta: float | None = None
    poll: PollPolicy = field(default_factory=PollPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    polls: int = 0
    empty_success_polls: int = 0
    transient_errors: int = 0
    #: which limit set ``deadline`` (e.g. "execution_timeout of 20 s"), named in the timeout error
    limit: str | None = None

    def on_result(self, result: VideoResult, now: float, jitter: float = 0.0) -> Decision:
        self.polls += 1
        self.transient_errors = 0
        if result.eta is not None and result.eta > 0:
            # a fresh ETA from a fetch counts from now, not from submission
            self.eta = (now - self.started_at) + result.eta
        if result.status is Status.DONE:
            return Decision(Action.DONE, result=result)
        if result.status is Status.FAILED:
            message = result.message or f"status {result.raw_status} without a message"
            return Decision(
                Action.FAIL,
                error=ModelsLabJobFailedError(
                    f"ModelsLab request {self.request_id} ended with status {result.raw_status}: {message}",
                    request_id=self.request_id,
                    status=result.raw_status,
                ),
            )
        if result.awaiting_links:
            self.empty_success_polls += 1
            if self.empty_success_polls > self.poll.max_empty_success_polls:
                return Decision(
                    Action.FAIL,
                    error=ModelsLabJobFailedError(
                        f"ModelsLab reported request {self.request_id} as successful but sent no output "
                        f"URL in {self.empty_success_polls} polls; check the request in your ModelsLab "
                        "dashboard.",
                        request_id=self.request_id,
                        status="success",
                    ),
                )
            return self._wait(now, self.poll.min_interval)
        return self._wait(
            now, self.poll.next_delay(elapsed=now - self.started_at, eta=self.eta, jitter=jitter)
        )

    def on_error(self, error: BaseException, now: float, jitter: float = 0.0) -> Decision:
        """Transient errors never end the wait (only the deadline does); the rest fail at once."""
        if isinstance(error, ModelsLabTransientError):
            self.transient_errors += 1
            return self._wait(now, self.poll.error_delay(self.transient_errors, error, self.retry, jitter))
        if isinstance(error, ModelsLabError):
            return Decision(Action.FAIL, error=error)
        raise error

    def describe(self, result: VideoResult, now: float, next_delay: float | None = None) -> tuple[Any, ...]:
        """A log call's arguments (format, ``*args``) for a running result: one wording for every wait."""
        if result.awaiting_links:
            state = "status success but no output URL yet (%d of %d empty successes allowed)"
            args: tuple[Any, ...] = (self.empty_success_polls, self.poll.max_empty_success_polls)
        elif result.unknown_status:
            state, args = "unknown status %r, treated as running", (result.raw_status,)
        else:
            state, args = "status %s", (result.raw_status,)
        elapsed = now - self.started_at
        eta = "unknown" if self.eta is None else f"{max(self.eta - elapsed, 0):.0f} s left"
        text = "ModelsLab request %s: " + state + ", ETA %s, poll %d, %.0f s elapsed"
        args = (self.request_id, *args, eta, self.polls, elapsed)
        if next_delay is not None:
            text += "; next poll in %.1f s"
            args = (*args, next_delay)
        return (text, *args)

    def first_delay(self, now: float, jitter: float = 0.0) -> float:
        """How long to wait before the first poll after submission (``jitter`` as in ``next_delay``)."""
        delay = self.poll.next_delay(elapsed=now - self.started_at, eta=self.eta, jitter=jitter)
        return self._cut(now, delay) or 0.0

    def timeout_error(self, now: float) -> ModelsLabTimeoutError:
        hit = f" when the task's {self.limit} ran out" if self.limit else ""
        return ModelsLabTimeoutError(
            f"ModelsLab request {self.request_id} was not ready after {now - self.started_at:.0f} s "
            f"({self.polls} polls){hit}; the job may still finish: its id is {self.request_id}.",
            request_id=self.request_id,
        )


def never_reached(error: BaseException) -> bool:
    """True only when a paid call (submit, batch submit) provably never reached ModelsLab.

    That is HTTP 429 (ModelsLab refused it) or a failure before any byte was sent (connection
    refused, DNS, connect timeout: transient, not ambiguous, no HTTP status). A 5xx, a read
    timeout, a dropped connection or an unreadable 200 may hide an accepted, billed request.
    """
    if isinstance(error, ModelsLabRateLimitError):
        return True
    return isinstance(error, ModelsLabTransientError) and not error.ambiguous and error.status_code is None


def retry_delay(
    retry: RetryPolicy,
    attempt: int,
    error: ModelsLabError,
    request: ApiRequest,
    jitter: float,
    *,
    now: float = 0.0,
    deadline: float | None = None,
) -> float:
    """The wait before attempt ``attempt + 1`` of ``request`` (logged), or ``error`` raised.

    It is raised when ``retry`` gives up, or when the retry could not start before ``deadline``
    (epoch seconds; ``now`` is the current time).
    """
    delay = retry.delay(attempt, error, idempotent=request.idempotent, jitter=jitter)
    if delay is None or (deadline is not None and now + delay >= deadline):
        raise error
    log.warning(
        "ModelsLab call to %s failed (%s); retry %d of %d in %.1f s",
        redact_url(request.url),
        error,
        attempt,
        retry.max_attempts - 1,
        delay,
    )
    return delay
