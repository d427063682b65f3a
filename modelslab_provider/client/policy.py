"""Retry and poll decisions as pure functions: no sleeping, no clock, no randomness of their own.

Callers pass the time and a jitter draw in, so every decision is unit-testable and the sync loop,
the sensor and the trigger all wait the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from modelslab_provider.client.core import Status, VideoResult
from modelslab_provider.client.errors import (
    ModelsLabError,
    ModelsLabJobFailedError,
    ModelsLabRateLimitError,
    ModelsLabTimeoutError,
    ModelsLabTransientError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """When one HTTP call is repeated: capped exponential backoff with jitter (stripe-style)."""

    max_attempts: int = 4
    initial_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, error: BaseException, *, idempotent: bool, jitter: float) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up and raise ``error``.

        ``jitter`` is a draw from [0, 1). A call that is not idempotent (a paid submission) is
        never repeated after an ambiguous failure: it might already have been accepted.
        """
        if not isinstance(error, ModelsLabError) or not error.retryable or attempt >= self.max_attempts:
            return None
        if not idempotent and getattr(error, "ambiguous", False):
            return None
        return self.backoff(attempt, error, jitter)

    def backoff(self, attempt: int, error: BaseException | None, jitter: float) -> float:
        if isinstance(error, ModelsLabRateLimitError) and error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after) + jitter
        base = min(self.max_delay, self.initial_delay * 2 ** max(attempt - 1, 0))
        return base * (0.5 + jitter / 2)


@dataclass(frozen=True)
class PollPolicy:
    """When to fetch a running job next, from the time since submission and the API's ``eta``.

    With an ETA, the first poll comes at ``eta_lead`` of it, then polls come every ``eta_step``
    of the ETA (within [min_interval, interval]) until the job has run ``1 / (2 - 1 / eta_lead)``
    of the ETA, and widen by ``growth`` of the overrun after that. The default lead of 0.8 is
    tuned for ETAs up to 25 % off either way (first poll before the job can be done, pace held
    until 4/3 of the ETA). Without an ETA, polls come every ``interval`` (a steady pace beats a
    growing one at equal cost when durations are spread evenly), widening by ``growth`` of the
    time past ``patience``. A jitter draw shortens each wait by up to ``spread`` of it, so
    triggers started together do not keep polling in lockstep (bursts stall the triggerer's event
    loop). Waits stay within [min_interval, max_interval], except that the wait for a far ETA may
    reach ``max_eta_wait``. ``benchmarks/polling.py`` measures these defaults.
    """

    min_interval: float = 5.0
    max_interval: float = 60.0
    eta_lead: float = 0.8
    eta_step: float = 0.025
    interval: float = 15.0
    growth: float = 0.15
    patience: float = 600.0
    spread: float = 0.1
    max_eta_wait: float = 900.0
    max_empty_success_polls: int = 5

    def __post_init__(self) -> None:
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
                delay = min(max((expected - elapsed) * shorten, self.min_interval), self.max_eta_wait)
            else:
                overrun = elapsed - eta / (2 - 1 / self.eta_lead)
                delay = self._clamp((step + self.growth * max(overrun, 0.0)) * shorten)
        else:
            delay = self._clamp((self.interval + self.growth * max(elapsed - self.patience, 0.0)) * shorten)
        if remaining is not None:
            delay = min(delay, max(remaining, 0.0))
        return delay

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
            "max_eta_wait": self.max_eta_wait,
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


@dataclass
class WaitTracker:
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
            delay = self.retry.backoff(self.transient_errors, error, jitter)
            return self._wait(now, min(max(delay, self.poll.min_interval / 5), self.poll.max_interval * 5))
        if isinstance(error, ModelsLabError):
            return Decision(Action.FAIL, error=error)
        raise error

    def first_delay(self, now: float, jitter: float = 0.0) -> float:
        """How long to wait before the first poll after submission (``jitter`` as in ``next_delay``)."""
        return self.poll.next_delay(
            elapsed=now - self.started_at, eta=self.eta, remaining=self._remaining(now), jitter=jitter
        )

    def timed_out(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def timeout_error(self, now: float) -> ModelsLabTimeoutError:
        return ModelsLabTimeoutError(
            f"ModelsLab request {self.request_id} was not ready after {now - self.started_at:.0f} s "
            f"({self.polls} polls); the job may still finish: its id is {self.request_id}.",
            request_id=self.request_id,
        )

    def _remaining(self, now: float) -> float | None:
        return None if self.deadline is None else self.deadline - now

    def _wait(self, now: float, delay: float) -> Decision:
        remaining = self._remaining(now)
        if remaining is not None:
            if remaining <= 0:
                return Decision(Action.FAIL, error=self.timeout_error(now))
            delay = min(delay, remaining)
        return Decision(Action.WAIT, delay=delay)


def never_reached(error: BaseException) -> bool:
    """True only when a paid call (submit, batch submit) provably never reached ModelsLab.

    That is HTTP 429 (ModelsLab refused it) or a failure before any byte was sent (connection
    refused, DNS, connect timeout: transient, not ambiguous, no HTTP status). A 5xx, a read
    timeout, a dropped connection or an unreadable 200 may hide an accepted, billed request.
    """
    if isinstance(error, ModelsLabRateLimitError):
        return True
    return isinstance(error, ModelsLabTransientError) and not error.ambiguous and error.status_code is None


@dataclass(frozen=True)
class PaidCallRetryPolicy(RetryPolicy):
    """The retries of a paid call: only those :func:`never_reached` allows."""

    def delay(self, attempt: int, error: BaseException, *, idempotent: bool, jitter: float) -> float | None:
        if not never_reached(error):
            return None
        return super().delay(attempt, error, idempotent=True, jitter=jitter)
