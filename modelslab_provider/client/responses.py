"""Response handling: decoding an HTTP answer and classifying it, pure like the rest of the core.

A transport hands every answer to :func:`read_answer` (scrub the key, refuse a redirect, decode:
rate limits, 5xx and unreadable bodies become typed errors) and every failure of its HTTP library
to :func:`not_connected`, :func:`no_answer` or :func:`connection_lost`; the decoded object then
goes to :func:`normalise_response` (a video request) or :func:`parse_balance` (the wallet).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from modelslab_provider.client.core import (
    ApiRequest,
    Balance,
    Status,
    VideoResult,
    http_url,
    http_urls,
    normalise_request_id,
    redact_url,
    scrub_secret,
    strip_secrets,
)
from modelslab_provider.client.errors import (
    ModelsLabAuthError,
    ModelsLabConfigError,
    ModelsLabCreditsError,
    ModelsLabError,
    ModelsLabNotFoundError,
    ModelsLabPlanError,
    ModelsLabRateLimitError,
    ModelsLabRequestError,
    ModelsLabTransientError,
)

_DONE_WORDS = frozenset({"success", "succeeded", "completed", "done"})
_RUNNING_WORDS = frozenset({"processing", "queued", "pending", "starting", "in_progress", "running"})
_FAILED_WORDS = frozenset({"error", "failed", "failure", "cancelled", "canceled", "expired"})

_RATE_LIMIT_RE = re.compile(r"rate.?limit|too many requests|queued requests allowed|try again in", re.I)
_WAIT_RE = re.compile(r"try again in\s+(\d+(?:\.\d+)?)\s*(second|sec|s\b|minute|min|m\b|hour|h\b)?", re.I)
_AUTH_RE = re.compile(r"api.?key|invalid.?key|unauthori[sz]ed|authentication", re.I)
_CREDITS_RE = re.compile(r"credit|insufficient (balance|funds)|payment required", re.I)
_NOT_FOUND_RE = re.compile(r"not found|does not exist|no such|expired", re.I)
_MODEL_RE = re.compile(r"model", re.I)


# --------------------------------------------------------------------------- what a transport calls


def read_answer(
    request: ApiRequest, status_code: int, body: bytes, retry_after_header: str | None, secret: str
) -> dict[str, Any]:
    """The JSON object of one HTTP answer to ``request``, the key scrubbed from it; or a typed error.

    A redirect is refused (the key is never sent to its target), and :func:`decode_response`
    turns rate limits, 5xx and unreadable bodies into their errors.
    """
    if 300 <= status_code < 400:
        raise ModelsLabError(
            f"ModelsLab redirected {redact_url(request.url)} (HTTP {status_code}); "
            "check the connection's Base URL. The key is not sent to redirect targets."
        )
    return decode_response(status_code, scrub_secret(body, secret), retry_after_header=retry_after_header)


def not_connected(exc: BaseException) -> ModelsLabTransientError:
    """No connection was made (refused, DNS, connect timeout): the call provably never reached ModelsLab."""
    return ModelsLabTransientError(f"Could not connect to ModelsLab: {describe_exception(exc)}")


def no_answer(timeout: float) -> ModelsLabTransientError:
    """The request was sent but no answer came in time: ModelsLab may have acted on it."""
    return ModelsLabTransientError(f"ModelsLab did not answer within {timeout:g} s", ambiguous=True)


def connection_lost(exc: BaseException) -> ModelsLabTransientError:
    """The connection failed after the request may have been sent (reset, dropped, bad framing)."""
    return ModelsLabTransientError(
        f"Connection to ModelsLab failed: {describe_exception(exc)}", ambiguous=True
    )


def describe_exception(exc: BaseException) -> str:
    """A one-line description of a transport exception that never includes a request body."""
    name = type(exc).__name__
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{name}: {text}" if text else name


# --------------------------------------------------------------------------- decoding and classifying


def decode_response(
    status_code: int, body: bytes, *, retry_after_header: str | None = None
) -> dict[str, Any]:
    """The JSON object of a response, or a typed error for rate limits, 5xx and unreadable bodies."""
    if status_code == 429:
        data = _loads(body)
        msg = message_of(data) if isinstance(data, dict) else ""
        wait = _retry_after(data if isinstance(data, dict) else {}, msg, retry_after_header)
        raise ModelsLabRateLimitError(
            f"ModelsLab rate limit (HTTP 429): {msg or 'too many requests'}",
            retry_after=wait,
            status_code=429,
        )
    if status_code >= 500 or status_code == 408:
        kind = _describe_body(body)
        raise ModelsLabTransientError(
            f"ModelsLab answered HTTP {status_code} with {kind}.",
            # any 5xx (a gateway's 502/520/524 included) and 408 may come after the origin has
            # queued the job: a paid call must not be repeated on it (policy.never_reached)
            ambiguous=True,
            status_code=status_code,
        )
    data = _loads(body)
    if not isinstance(data, dict):
        if status_code == 403:
            raise ModelsLabPlanError(_plan_message(""))
        if status_code == 401:
            raise ModelsLabAuthError(f"ModelsLab refused the API key (HTTP {status_code}).")
        if 400 <= status_code < 500:
            raise ModelsLabRequestError(
                f"ModelsLab refused the request (HTTP {status_code}, {_describe_body(body)})."
            )
        raise ModelsLabTransientError(
            f"ModelsLab answered HTTP {status_code} with {_describe_body(body)} instead of a JSON object.",
            ambiguous=True,
            status_code=status_code,
        )
    return data


def normalise_response(
    data: Mapping[str, Any], status_code: int = 200, *, retry_after_header: str | None = None
) -> VideoResult:
    """Classify one decoded JSON object: a :class:`VideoResult`, or the typed error of a refused call."""
    raw = data.get("status", data.get("state"))
    raw_status = raw.strip().lower() if isinstance(raw, str) else ""
    message = message_of(data)
    failed = raw_status in _FAILED_WORDS or (400 <= status_code < 500)
    if failed and not _job_failure(raw_status, data, status_code):
        _raise_for_error(raw_status, message, data, status_code, retry_after_header)

    output = http_urls(data.get("output"))
    proxy = http_urls(data.get("proxy_links"))
    future = http_urls(data.get("future_links"))
    common: dict[str, Any] = {
        "raw_status": raw_status or "unknown",
        "request_id": request_id_of(data),
        "output": output,
        "proxy_links": proxy,
        "future_links": future,
        "eta": _number(data.get("eta")),
        "message": message,
        "fetch_result": http_url(data.get("fetch_result")),
        "generation_time": _number(data.get("generationTime", data.get("generation_time"))),
        "meta": strip_secrets(data.get("meta")) if isinstance(data.get("meta"), dict) else {},
    }
    if failed:
        return VideoResult(status=Status.FAILED, **common)
    if raw_status in _DONE_WORDS:
        urls = output or proxy or future
        if urls:
            return VideoResult(status=Status.DONE, urls=urls, **common)
        return VideoResult(status=Status.RUNNING, awaiting_links=True, **common)
    return VideoResult(status=Status.RUNNING, unknown_status=raw_status not in _RUNNING_WORDS, **common)


def parse_balance(result_data: Mapping[str, Any], status_code: int = 200) -> Balance:
    """The wallet balance; a refusal (``status`` other than ``success``) raises its typed error."""
    raw = result_data.get("status")
    if status_code >= 400 or (raw is not None and str(raw).strip().lower() != "success"):
        normalise_response(result_data, status_code)  # bad key, rate limit, credits: typed errors
        message = message_of(result_data) or "no message"
        raise ModelsLabRequestError(f"ModelsLab did not report a wallet balance (status {raw!r}): {message}")
    data = result_data.get("data")
    if isinstance(data, dict):
        return Balance(_number(data.get("balance")), str(data.get("currency") or "USD"))
    return Balance(_number(result_data.get("balance")), str(result_data.get("currency") or "USD"))


def _job_failure(raw_status: str, data: Mapping[str, Any], status_code: int) -> bool:
    """A finished job's failure: ``failed`` (or another terminal word), or ``error`` naming the job.

    Such an answer is final whatever words its message contains ("rate limit", "refunded",
    "authentication"): the job is over. Only an ``error`` about the call itself (no job id) and
    HTTP 4xx answers go on to :func:`_raise_for_error`, whose keywords refine them.
    """
    if not 200 <= status_code < 300 or raw_status not in _FAILED_WORDS:
        return False
    return raw_status != "error" or request_id_of(data) is not None


def _plan_message(shown: str) -> str:
    return (
        "ModelsLab refused the request (HTTP 403): the requested feature is not available on your "
        f"current plan{': ' + shown if shown else ''}. Check the endpoint and model against your "
        "ModelsLab plan, or upgrade it; the API key itself was accepted."
    )


def _raise_for_error(
    raw_status: str, message: str, data: Mapping[str, Any], status_code: int, retry_after_header: str | None
) -> None:
    """Errors that are about the call, not the job, become exceptions; job failures return."""
    shown = message or f"status {raw_status or 'missing'} (HTTP {status_code}) without a message"
    if status_code == 403:
        raise ModelsLabPlanError(_plan_message(message))
    if _RATE_LIMIT_RE.search(message) or status_code == 429:
        raise ModelsLabRateLimitError(
            f"ModelsLab rate limit: {shown}",
            retry_after=_retry_after(data, message, retry_after_header),
            status_code=status_code,
        )
    if status_code == 402 or _CREDITS_RE.search(message):
        raise ModelsLabCreditsError(f"ModelsLab refused the request: {shown}")
    if status_code == 401 or _AUTH_RE.search(message):
        raise ModelsLabAuthError(f"ModelsLab refused the API key: {shown}")
    not_found = status_code == 404 or (raw_status in ("error", "") and _NOT_FOUND_RE.search(message))
    if not_found and not _MODEL_RE.search(message):
        raise ModelsLabNotFoundError(f"ModelsLab does not know this request: {shown}")
    if 400 <= status_code < 500:
        raise ModelsLabRequestError(f"ModelsLab refused the request (HTTP {status_code}): {shown}")


def _loads(body: bytes) -> Any:
    if not body or not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _describe_body(body: bytes) -> str:
    if not body or not body.strip():
        return "an empty body"
    head = body[:200].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html")) or b"<html" in head:
        return "an HTML error page"
    if _loads(body) is None:
        return "a body that is not valid JSON"
    return "an unexpected JSON body"


def message_of(data: Mapping[str, Any]) -> str:
    """The API's message: ``message``, the misspelt ``messege``, or another usual field; "" if none."""
    for name in ("message", "messege", "error", "msg", "detail"):
        value = data.get(name)
        if isinstance(value, dict):
            value = value.get("message")
        if isinstance(value, list):
            value = "; ".join(str(v) for v in value if isinstance(v, str | int | float))
        if isinstance(value, str) and value.strip():
            return value.strip()[:2000]
    return ""


def _retry_after(data: Mapping[str, Any], message: str, header: str | None) -> float | None:
    for candidate in (data.get("retry_after"), header):
        number = _number(candidate)
        if number is not None:
            return number
    match = _WAIT_RE.search(message or "")
    if not match:
        return None
    unit = (match.group(2) or "s").lower()
    scale = 3600.0 if unit.startswith("h") else 60.0 if unit.startswith("m") else 1.0
    return float(match.group(1)) * scale


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def request_id_of(data: Mapping[str, Any]) -> str | None:
    """The request id an answer names (``id``, ``request_id``, ``meta.id`` or the fetch URL), or None."""
    candidates = [data.get("id"), data.get("request_id")]
    meta = data.get("meta")
    if isinstance(meta, dict):
        candidates.append(meta.get("id"))
    fetch_result = http_url(data.get("fetch_result"))
    if fetch_result:
        candidates.append(urlsplit(fetch_result).path.rstrip("/").rsplit("/", 1)[-1])
    for candidate in candidates:
        if isinstance(candidate, int | float | str) and not isinstance(candidate, bool):
            try:
                return normalise_request_id(candidate)
            except (ModelsLabConfigError, OverflowError, ValueError):
                continue
    return None
