"""What every ModelsLab operator shares: the connection, the wait settings, a failed submit's exception."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    BaseOperator,
    conf,
)

from modelslab_provider.client.errors import (
    ModelsLabAmbiguousSubmitError,
    ModelsLabAuthError,
    ModelsLabConfigError,
    ModelsLabError,
    ModelsLabJobFailedError,
    ModelsLabNotFoundError,
    ModelsLabRateLimitError,
    ModelsLabRequestError,
    refused_key_message,
)
from modelslab_provider.client.policy import PollPolicy, never_reached
from modelslab_provider.client.submit import ambiguous_submit_error
from modelslab_provider.hooks.modelslab import ModelsLabHook

#: failures of a submit that ModelsLab answered with a refusal: nothing was queued
_REFUSALS = (ModelsLabAuthError, ModelsLabRequestError, ModelsLabConfigError, ModelsLabNotFoundError)


def seconds(value: float | timedelta, name: str) -> float:
    """A positive duration argument in seconds; a clear error names the argument otherwise."""
    number = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(number, bool) or not isinstance(number, int | float) or not number > 0:
        raise ValueError(f"{name} must be a positive number of seconds or a timedelta, got {value!r}")
    return float(number)


class ModelsLabBaseOperator(BaseOperator):
    """The arguments of every ModelsLab operator that submits paid work and waits for it.

    :param modelslab_conn_id: the connection holding the API key.
    :param wait_for_completion: wait for the videos (default); with False the task returns right
        after the submit, with the ids in XCom.
    :param deferrable: wait in the triggerer instead of the worker; defaults to
        ``[operators] default_deferrable``.
    :param poll_interval: the shortest pause between polls, in seconds.
    :param max_poll_interval: the longest pause between polls, in seconds.
    :param timeout: the task's time budget per try (seconds or timedelta).
    :param end_from_trigger: when a deferred wait is over, end the task in the triggerer (no
        worker start) where Airflow can (3.3+, docs/waiting-modes.md); False: resume on a worker.
    """

    def __init__(
        self,
        *,
        modelslab_conn_id: str = ModelsLabHook.default_conn_name,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        timeout: float | timedelta = 3600.0,
        end_from_trigger: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.end_from_trigger = end_from_trigger
        self.modelslab_conn_id = modelslab_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = seconds(poll_interval, "poll_interval")
        self.max_poll_interval = max(seconds(max_poll_interval, "max_poll_interval"), self.poll_interval)
        self.timeout = seconds(timeout, "timeout")

    @cached_property
    def hook(self) -> ModelsLabHook:
        return ModelsLabHook(modelslab_conn_id=self.modelslab_conn_id)

    def _poll_policy(self) -> PollPolicy:
        """``poll_interval`` is the floor; the ETA-aware policy decides everything above it."""
        return PollPolicy(
            min_interval=self.poll_interval,
            interval=max(PollPolicy.interval, self.poll_interval),
            max_interval=self.max_poll_interval,
        )

    def _paid_submit_failure(
        self, exc: ModelsLabError, what: str, track_ids: str | None, note: str = ""
    ) -> Exception:
        """The Airflow exception of a failed paid submit: retryable only when nothing was submitted.

        ``what`` names the submit ("request to text2video"), ``track_ids`` what to look for in the
        dashboard after an ambiguous failure, ``note`` is appended to every message.
        """
        if isinstance(exc, ModelsLabRateLimitError):  # the queue stayed full: nothing was queued
            return AirflowException(f"{exc} (task timeout: {self.timeout:.0f} s){note}")
        if never_reached(exc):
            return AirflowException(
                f"ModelsLab could not take the {what}: {exc}. Nothing was submitted, so a retry of this "
                f"task is safe.{note}"
            )
        if isinstance(exc, ModelsLabAmbiguousSubmitError | ModelsLabJobFailedError):
            return AirflowFailException(f"{exc}{note}")
        if isinstance(exc, _REFUSALS):
            text = (
                refused_key_message(exc, self.modelslab_conn_id)
                if isinstance(exc, ModelsLabAuthError)
                else str(exc)
            )
            return AirflowFailException(f"{text.rstrip('.')}. The {what} was not submitted.{note}")
        # a transient failure after the request may have arrived, or an answer that cannot be read
        return AirflowFailException(f"{ambiguous_submit_error(what, exc, track_ids)}{note}")
