"""Errors and trigger events on the Airflow side: one mapping for the trigger, sensor and operators.

The client raises typed :mod:`~modelslab_provider.client.errors`; here they become event fields
(``error_type``, ``message``) in the triggerer and Airflow exceptions in the worker. The poll
policy a trigger receives as kwargs is read here too, the same way by the sensor; and the XComs a
finished job pushes (:func:`video_outputs`, :func:`batch_outputs`), the same from a worker and
from a trigger that ends its task. Cheap to import (no trigger base class, no HTTP library), so
sensors and operators import it at parse time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
)

from modelslab_provider.client.core import http_url, http_urls
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

if TYPE_CHECKING:
    from modelslab_provider.client.batch import EntryResult, InputResult

#: every status an event may carry; anything else is a version skew and fails the resumed task
EVENT_STATUSES = frozenset({"success", "failed", "timeout", "error"})

#: ``error_type`` values after which a retry of the task cannot help (AirflowFailException)
FINAL_ERROR_TYPES = frozenset(
    {"auth", "not_found", "config", "request", "credits", "plan", "api", "job_failed"}
)

# XCom keys of a finished job (``return_value`` holds the outputs)
XCOM_VIDEO_URL = "video_url"
XCOM_PROXY_LINKS = "proxy_links"
XCOM_GENERATION_TIME = "generation_time"
XCOM_META = "meta"
#: every input's result, failed ones included (batch tasks)
XCOM_RESULTS = "results"
#: the operators' extra link (``operators.video.ModelsLabVideoLink``), stored from ``video_url``
VIDEO_LINK_NAME = "ModelsLab Video"

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


def video_outputs(urls: Sequence[str], details: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A finished video request's XComs besides ``return_value``, and its ``return_value`` (the URLs).

    The one source for the worker (``VideoJobOperator.publish``) and a trigger ending the task.
    """
    xcoms: dict[str, Any] = {
        XCOM_VIDEO_URL: urls[0],
        XCOM_PROXY_LINKS: list(http_urls(details.get("proxy_links"))),
    }
    generation_time = details.get("generation_time")
    if isinstance(generation_time, int | float) and not isinstance(generation_time, bool):
        xcoms[XCOM_GENERATION_TIME] = generation_time
    meta = details.get("meta")
    if isinstance(meta, Mapping) and meta:
        xcoms[XCOM_META] = compact_meta(meta)
    return xcoms, list(urls)


def batch_outputs(
    results: Sequence[InputResult], allow_partial_failure: bool
) -> tuple[dict[str, Any], list[list[str]]]:
    """A finished batch task's XComs besides ``return_value`` (every input's result, the first
    URL), and its ``return_value``: one URL list per input, or, with ``allow_partial_failure``,
    per successful input only, so ``.expand(urls=op.output)`` maps one task per video.

    The one source for the worker (the engine and ``ModelsLabVideoBatchOperator.publish``) and a
    trigger ending the task.
    """
    xcoms: dict[str, Any] = {XCOM_RESULTS: [r.to_dict() for r in results]}
    first = next((r.urls[0] for r in results if r.status == "success" and r.urls), None)
    if first:
        xcoms[XCOM_VIDEO_URL] = first
    if allow_partial_failure:
        return xcoms, [list(r.urls) for r in results if r.status == "success"]
    return xcoms, [list(r.urls) for r in results]


def batch_event(
    event: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, tuple[EntryResult, ...]]] | None:
    """A batch trigger's success event: the jobs it awaited and their final entries (None: unusable).

    Read the same way by the resumed worker and by the trigger that ends the task.
    """
    from modelslab_provider.client.batch import EntryResult

    jobs, finished = event.get("jobs"), event.get("finished")
    if not isinstance(jobs, list) or not isinstance(finished, Mapping):
        return None
    parsed = {
        str(k): tuple(EntryResult.from_dict(e) for e in v if isinstance(e, Mapping))
        for k, v in finished.items()
        if isinstance(v, list)
    }
    return [dict(j) for j in jobs if isinstance(j, Mapping)], parsed
