"""Errors and trigger events on the Airflow side: one mapping for the trigger, sensor and operators.

The client raises typed :mod:`~modelslab_provider.client.errors`; here they become event fields
(``error_type``, ``message``) in the triggerer and Airflow exceptions in the worker. The poll
policy a trigger receives as kwargs is read here too, the same way by the sensor. Cheap to
import (no trigger base class, no HTTP library), so sensors and operators import it at parse time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
)

from modelslab_provider.client.core import http_url
from modelslab_provider.client.errors import (
    ModelsLabAuthError,
    ModelsLabConfigError,
    ModelsLabError,
    ModelsLabNotFoundError,
    ModelsLabTransientError,
    refused_key_message,
)
from modelslab_provider.client.job import seconds_of
from modelslab_provider.client.policy import PollPolicy

#: every status an event may carry; anything else is a version skew and fails the resumed task
EVENT_STATUSES = frozenset({"success", "failed", "timeout", "error"})

#: ``error_type`` values after which a retry of the task cannot help (AirflowFailException)
FINAL_ERROR_TYPES = frozenset(
    {"auth", "not_found", "config", "request", "credits", "plan", "api", "job_failed"}
)

#: strings in the echoed ``meta`` longer than this (e.g. a base64 ``init_image``) are shortened
META_MAX_STRING = 2000


def error_type(exc: BaseException) -> str:
    """The event's ``error_type``: the error class's own, ``config`` for a missing connection."""
    if isinstance(exc, ModelsLabError):
        return exc.error_type
    if isinstance(exc, AirflowNotFoundException):  # the hook's "create connection X" message
        return "config"
    return "unexpected"


def error_message(exc: BaseException, conn_id: str) -> str:
    """The text a user reads for a failed wait: the API's own message, plus what to check."""
    if isinstance(exc, ModelsLabAuthError):
        return refused_key_message(exc, conn_id)
    if isinstance(exc, ModelsLabNotFoundError):
        return f"{exc} Check the request id and the api_version (v6 or v7) of the request."
    if isinstance(exc, ModelsLabError | AirflowNotFoundException):
        return str(exc)
    return f"Unexpected {type(exc).__name__} while waiting for the ModelsLab video: {exc}"


def failure(exc: BaseException, conn_id: str) -> Exception:
    """The Airflow exception for an error seen in the worker: final ones skip the task's retries."""
    message = error_message(exc, conn_id)
    if error_type(exc) in FINAL_ERROR_TYPES:
        return AirflowFailException(message)
    if isinstance(exc, ModelsLabTransientError):
        return AirflowException(message)
    return AirflowException(f"{message} (connection {conn_id!r})")


def load_poll_policy(value: PollPolicy | Mapping[str, Any] | None) -> PollPolicy:
    """A :class:`PollPolicy` from itself or its dict, or the error naming an unknown setting."""
    if isinstance(value, PollPolicy):
        return value
    try:
        return PollPolicy(**dict(value or {}))
    except TypeError as exc:
        raise ModelsLabConfigError(f"poll_policy has an unknown setting: {exc}") from None


def compact_meta(value: Any) -> Any:
    """``meta`` for XCom and events: no huge strings (secrets are already stripped by the client)."""
    if isinstance(value, Mapping):
        return {str(k): compact_meta(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [compact_meta(v) for v in value]
    if isinstance(value, str) and len(value) > META_MAX_STRING:
        return f"{value[:200]}... ({len(value)} characters, shortened)"
    return value


def wait_deadline(
    timeout_deadline: float, timeout: Any, execution_timeout: Any, try_started: Any, now: float
) -> tuple[float, str]:
    """The end of a deferred wait and the limit that sets it (a text for the timeout message).

    Airflow 3 applies ``execution_timeout`` only around ``execute``, not while a task is
    deferred, so the trigger enforces the earlier of ``timeout`` and the try's start plus
    ``execution_timeout`` (what Airflow 2 did for every deferred task). ``try_started`` is when
    the try's first ``execute`` began (epoch seconds or a datetime; None means now).
    """
    limit = f"timeout of {seconds_of(timeout) or 0:.0f} s"
    deadline = timeout_deadline
    budget = seconds_of(execution_timeout)
    if budget is not None:
        if isinstance(try_started, datetime):
            started = try_started.timestamp()
        elif isinstance(try_started, int | float) and not isinstance(try_started, bool):
            started = float(try_started)
        else:
            started = now
        ends = min(started, now) + budget
        if ends < deadline:
            deadline, limit = ends, f"execution_timeout of {budget:.0f} s"
    return deadline, limit


def urls_from_event(
    event: Any,
    *,
    conn_id: str,
    timeout_exception: type[BaseException] = AirflowException,
) -> list[str]:
    """Check a trigger event in ``execute_complete`` and return its output URLs.

    ``failed`` events and ``error`` events with a final ``error_type`` raise
    :class:`AirflowFailException`; other errors raise :class:`AirflowException` so the task's
    retries apply. ``timeout`` raises ``timeout_exception`` (the sensor passes
    ``AirflowSensorTimeout`` so ``soft_fail`` works). A missing or unknown status (a triggerer
    on another provider version) raises :class:`AirflowException`.
    """
    if not isinstance(event, dict):
        raise AirflowException(f"Expected a ModelsLab trigger event (a dict), got {type(event).__name__}.")
    status = event.get("status")
    request_id = event.get("request_id", "?")
    if status not in EVENT_STATUSES:
        raise AirflowException(
            f"ModelsLab trigger event for request {request_id} has an unknown status {status!r}; "
            "is the triggerer running the same provider version as the workers?"
        )
    message = str(event.get("message") or f"no message (event status {status})")
    if status == "success":
        urls = event.get("urls")
        # only http(s) URLs may reach XCom (downstream tasks download them), whatever the event says
        if (
            not isinstance(urls, list)
            or not urls
            or not all(isinstance(u, str) and http_url(u) == u for u in urls)
        ):
            raise AirflowFailException(
                f"ModelsLab request {request_id} finished without output URLs (http or https) in the "
                "trigger event."
            )
        return list(urls)
    if status == "failed":
        raise AirflowFailException(message)
    if status == "timeout":
        raise timeout_exception(message)
    if event.get("error_type") in FINAL_ERROR_TYPES:
        raise AirflowFailException(message)
    raise AirflowException(f"{message} (connection {conn_id!r})")
