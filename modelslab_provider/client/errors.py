"""Typed errors of the ModelsLab client. None of them ever carries the API key."""

from __future__ import annotations


class ModelsLabError(Exception):
    """Base class of every error the provider raises about ModelsLab."""

    #: a retry of the same call may succeed
    retryable = False
    #: the ``error_type`` of trigger events (see :mod:`modelslab_provider.events`)
    error_type = "api"


class ModelsLabConfigError(ModelsLabError, ValueError):
    """The connection or an argument is wrong; the message says what to fix."""

    error_type = "config"


class ModelsLabAuthError(ModelsLabError):
    """The API key was missing or refused."""

    error_type = "auth"


class ModelsLabRequestError(ModelsLabError):
    """ModelsLab refused the request itself (validation, model not found)."""

    error_type = "request"


class ModelsLabCreditsError(ModelsLabRequestError):
    """The account has no credits left."""

    error_type = "credits"


class ModelsLabPlanError(ModelsLabRequestError):
    """HTTP 403: the requested feature is not available on the account's current plan."""

    error_type = "plan"


class ModelsLabNotFoundError(ModelsLabError):
    """The request id is unknown to ModelsLab or has expired."""

    error_type = "not_found"


class ModelsLabTransientError(ModelsLabError):
    """A failure that says nothing about the job: 5xx, HTML or empty body, timeout, reset.

    ``ambiguous`` is true when the request may have reached ModelsLab before it failed (a read
    timeout, a dropped connection, an unreadable 200). Polling may repeat such calls freely; a
    paid submission must not, or the video could be paid for twice.
    """

    retryable = True
    error_type = "transient"

    def __init__(self, message: str, *, ambiguous: bool = False, status_code: int | None = None) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous
        self.status_code = status_code


class ModelsLabRateLimitError(ModelsLabTransientError):
    """ModelsLab asked us to slow down (HTTP 429, ``retry_after`` or "try again in N seconds")."""

    error_type = "rate_limit"

    def __init__(self, message: str, *, retry_after: float | None = None, status_code: int | None = None):
        super().__init__(message, ambiguous=False, status_code=status_code)
        self.retry_after = retry_after


class ModelsLabJobFailedError(ModelsLabError):
    """The video job ended in a terminal failure state; the message is the API's own."""

    error_type = "job_failed"

    def __init__(self, message: str, *, request_id: str | None = None, status: str = "failed") -> None:
        super().__init__(message)
        self.request_id = request_id
        self.status = status


class ModelsLabTimeoutError(ModelsLabError):
    """The video was not ready before the deadline."""

    error_type = "timeout"

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class ModelsLabAmbiguousSubmitError(ModelsLabError):
    """A paid submit whose outcome is unknown: ModelsLab may have queued (and billed) it.

    It is never repeated automatically (unless the caller opted in); ``track_id`` is what to look
    for in the ModelsLab dashboard or webhook log.
    """

    def __init__(self, message: str, *, track_id: str | None = None, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.track_id = track_id
        self.endpoint = endpoint


def refused_key_message(exc: BaseException, conn_id: str | None = None) -> str:
    """One wording for a refused key, on the Test button and in a failed task alike.

    The Test button passes no id: Airflow tests a temporary copy of the connection under a random
    id the user never saw, and the user is looking at the connection anyway.
    """
    which = "this connection" if conn_id is None else f"connection {conn_id!r}"
    return f"{str(exc).rstrip('.')}. Check the API Key (password field) of {which}."
