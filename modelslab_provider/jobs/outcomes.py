"""The one mapping of a paid job's outcomes to Airflow exceptions and the messages users read.

Retryable (:class:`AirflowException`) only where a retry cannot pay twice: nothing was paid
for, or what was paid for is remembered so the retry reconnects to it. Everything else is final
(:class:`AirflowFailException`) and names the ids and track ids to look for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from modelslab_provider.client.errors import (
    ModelsLabAmbiguousSubmitError,
    ModelsLabAuthError,
    ModelsLabConfigError,
    ModelsLabError,
    ModelsLabJobFailedError,
    ModelsLabNotFoundError,
    ModelsLabRateLimitError,
    ModelsLabRequestError,
    ModelsLabTimeoutError,
    refused_key_message,
)
from modelslab_provider.client.job import paid_list
from modelslab_provider.client.policy import never_reached
from modelslab_provider.client.submit import ambiguous_submit_error
from modelslab_provider.events import failure

#: failures of a submit that ModelsLab answered with a refusal: nothing was queued
_REFUSALS = (ModelsLabAuthError, ModelsLabRequestError, ModelsLabConfigError, ModelsLabNotFoundError)


def submit_failure(
    exc: ModelsLabError,
    *,
    what: str,
    track_ids: str | None,
    conn_id: str,
    paid: Sequence[Mapping[str, Any]] = (),
    remembered: bool = False,
    timeout_note: str = "",
) -> Exception:
    """The exception of a failed paid submit.

    ``paid`` are the submissions this try already paid for. When they are not ``remembered``
    for the next try, a retry would pay for them again: the failure is final and names them.
    """
    already = ""
    if paid:
        then = (
            "remembered: a retry reconnects to them instead of paying again"
            if remembered
            else "nothing keeps their ids for a new try here (Airflow line without a record, or "
            "durable=False), so this task fails without retry: a retry would pay for them again"
        )
        already = f" Already paid for by this try: {paid_list(paid)} ({then})."
    if isinstance(exc, ModelsLabRateLimitError) or never_reached(exc):
        text = (
            f"{exc} ({timeout_note})"
            if isinstance(exc, ModelsLabRateLimitError)
            else f"ModelsLab could not take the {what}: {exc}."
        )
        if paid and not remembered:
            return AirflowFailException(f"{_strip_safe(text)} The {what} was not submitted.{already}")
        if paid:
            return AirflowException(f"{_strip_safe(text)} The {what} was not submitted.{already}")
        if isinstance(exc, ModelsLabRateLimitError):
            return AirflowException(text)
        return AirflowException(f"{text} Nothing was submitted, so a retry of this task is safe.")
    if isinstance(exc, ModelsLabAmbiguousSubmitError | ModelsLabJobFailedError):
        return AirflowFailException(f"{exc}{already}")
    if isinstance(exc, _REFUSALS):
        text = refused_key_message(exc, conn_id) if isinstance(exc, ModelsLabAuthError) else str(exc)
        return AirflowFailException(f"{text.rstrip('.')}. The {what} was not submitted.{already}")
    # a transient failure after the request may have arrived, or an answer that cannot be read
    return AirflowFailException(f"{ambiguous_submit_error(what, exc, track_ids)}{already}")


def _strip_safe(text: str) -> str:
    return text.replace(" Nothing was submitted, so a retry is safe.", "")


def timeout_message(message: str, ids: str, *, remembered: bool) -> str:
    """A wait that ran out of time: the job may still finish, and what a retry does."""
    then = (
        f"a retry of this task reconnects to {ids} instead of paying again."
        if remembered
        else "with durable=False (or where no record survives) a retry of this task submits NEW, "
        "billed work; set retries=0 to avoid that."
    )
    return f"{message} ModelsLab has no cancel API, so the job may still finish; {then}"


def wait_failure(exc: ModelsLabError, conn_id: str, ids: str, *, remembered: bool) -> Exception:
    """A wait in the worker that ended without the videos."""
    if isinstance(exc, ModelsLabTimeoutError):
        return AirflowException(timeout_message(str(exc), ids, remembered=remembered))
    if isinstance(exc, ModelsLabJobFailedError):
        return AirflowFailException(str(exc))
    return failure(exc, conn_id)


def unusable_event(event: Any) -> AirflowException:
    return AirflowException(
        f"Unexpected ModelsLab trigger event {event!r}; is the triggerer running the same provider "
        "version as the workers?"
    )
