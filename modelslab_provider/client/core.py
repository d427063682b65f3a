"""The pure client core: endpoints, request building and response normalisation.

Nothing here does I/O, sleeps or imports Airflow. The sync (``requests``) and async (``aiohttp``)
transports build each call with :func:`build_submit`, :func:`build_fetch` or
:func:`build_wallet_balance` (the sync one cuts each attempt to the wait's deadline with
:func:`time_left`; the trigger uses ``asyncio.timeout``), scrub the key from the body
(:func:`scrub_secret`), decode it with :func:`decode_response` and classify it with
:func:`normalise_response` (or :func:`parse_balance`); :func:`parse_response` chains the last two
for one raw answer. Every quirk of the API (the quirk table in the project's API reference) is
handled once, here.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from modelslab_provider.client.errors import (
    ModelsLabAuthError,
    ModelsLabConfigError,
    ModelsLabCreditsError,
    ModelsLabNotFoundError,
    ModelsLabPlanError,
    ModelsLabRateLimitError,
    ModelsLabRequestError,
    ModelsLabTimeoutError,
    ModelsLabTransientError,
)

DEFAULT_BASE_URL = "https://modelslab.com"
#: the Airflow connection id every hook, sensor, trigger and operator uses by default
DEFAULT_CONN_ID = "modelslab_default"
DEFAULT_TIMEOUT = 30.0

V6 = "v6"
V7 = "v7"
API_VERSIONS = (V6, V7)

#: endpoint name -> (API version, path below the base URL)
ENDPOINTS: dict[str, tuple[str, str]] = {
    **{
        name: (V6, f"api/v6/video/{name}")
        for name in (
            "text2video",
            "img2video",
            "text2video_ultra",
            "img2video_ultra",
            "video2video",
            "watermark_remover",
        )
    },
    **{
        name: (V7, f"api/v7/video-fusion/{name}")
        for name in ("text-to-video", "image-to-video", "video-to-video", "lip-sync", "motion-control")
    },
}
FETCH_PATHS = {V6: "api/v6/video/fetch/{id}", V7: "api/v7/video-fusion/fetch/{id}"}
WALLET_BALANCE_PATH = "api/wallet_balance"

#: field names whose values are secrets and never leave the client (also stripped from echoed meta)
SECRET_FIELDS = frozenset({"key", "api_key", "apikey", "token", "secret", "password", "authorization"})

_DONE_WORDS = frozenset({"success", "succeeded", "completed", "done"})
_RUNNING_WORDS = frozenset({"processing", "queued", "pending", "starting", "in_progress", "running"})
_FAILED_WORDS = frozenset({"error", "failed", "failure", "cancelled", "canceled", "expired"})

_RATE_LIMIT_RE = re.compile(r"rate.?limit|too many requests|queued requests allowed|try again in", re.I)
_WAIT_RE = re.compile(r"try again in\s+(\d+(?:\.\d+)?)\s*(second|sec|s\b|minute|min|m\b|hour|h\b)?", re.I)
_AUTH_RE = re.compile(r"api.?key|invalid.?key|unauthori[sz]ed|authentication", re.I)
_CREDITS_RE = re.compile(r"credit|insufficient (balance|funds)|payment required", re.I)
_NOT_FOUND_RE = re.compile(r"not found|does not exist|no such|expired", re.I)
_MODEL_RE = re.compile(r"model", re.I)
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
#: any whitespace character (the same set as ``str.isspace``)
_SPACE_RE = re.compile(r"\s")


class Status(enum.StrEnum):
    """What a response means for the job: the only three states callers branch on."""

    DONE = "done"
    RUNNING = "running"
    FAILED = "failed"


@dataclass(frozen=True)
class ClientSettings:
    """Everything a transport needs. The key is excluded from ``repr`` so it cannot leak by printing."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not self.api_key.strip():
            raise ModelsLabConfigError(
                "The ModelsLab API key is empty: put your key in the connection's password field (API Key)."
            )
        object.__setattr__(self, "base_url", normalise_base_url(self.base_url))
        if not (isinstance(self.timeout, int | float) and 0 < self.timeout <= 600):
            raise ModelsLabConfigError(
                f"timeout must be a number of seconds in (0, 600], got {self.timeout!r}"
            )

    @property
    def origin(self) -> tuple[str, str, int]:
        return url_origin(self.base_url)


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP call to make. The JSON body holds the key and is kept out of ``repr``."""

    url: str
    body: dict[str, Any] = field(repr=False)
    #: safe to repeat when the outcome is unknown (polls are; paid submissions are not)
    idempotent: bool = True
    method: str = "POST"

    def encoded_body(self) -> bytes:
        """The JSON body, encoded once per request (a trigger re-sends the same fetch every poll)."""
        encoded = self.__dict__.get("_encoded")
        if encoded is None:
            encoded = json.dumps(self.body, separators=(",", ":")).encode()
            object.__setattr__(self, "_encoded", encoded)
        return encoded


@dataclass(frozen=True)
class VideoResult:
    """One normalised ModelsLab response."""

    status: Status
    raw_status: str
    request_id: str | None = None
    urls: tuple[str, ...] = ()
    output: tuple[str, ...] = ()
    proxy_links: tuple[str, ...] = ()
    future_links: tuple[str, ...] = ()
    eta: float | None = None
    message: str = ""
    fetch_result: str | None = None
    generation_time: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: ``success`` arrived without any URL: not done yet (quirk Q4)
    awaiting_links: bool = False
    #: the API sent a status word we do not know; treated as running and worth a warning
    unknown_status: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.status is not Status.RUNNING

    def details(self) -> dict[str, Any]:
        """JSON-ready detail for XCom and events (no key: ``meta`` is already stripped)."""
        return {
            "request_id": self.request_id,
            "status": self.raw_status,
            "output": list(self.output),
            "proxy_links": list(self.proxy_links),
            "future_links": list(self.future_links),
            "generation_time": self.generation_time,
            "meta": dict(self.meta),
        }


@dataclass(frozen=True)
class Balance:
    amount: float | None
    currency: str

    def __str__(self) -> str:
        if self.amount is None:
            return "unknown balance"
        return f"{self.amount:.2f} {self.currency}"


# --------------------------------------------------------------------------- URLs and endpoints


def normalise_base_url(value: str | None) -> str:
    """Turn a connection host into a base URL; a scheme and port given in it are kept.

    Without a scheme, ``https`` is assumed, except for loopback hosts (the local simulator),
    which get ``http``.
    """
    raw = (value or "").strip() or DEFAULT_BASE_URL
    if "://" not in raw:
        host = raw.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        raw = ("http://" if _is_loopback(host) else "https://") + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https"):
        raise ModelsLabConfigError(
            f"The ModelsLab base URL must start with http:// or https://, got scheme {parts.scheme!r}; "
            "fix the connection's Base URL (host) field."
        )
    if not parts.hostname:
        raise ModelsLabConfigError(
            "The ModelsLab base URL has no host name: set the connection's Base URL (host) field to "
            f"something like {DEFAULT_BASE_URL}, or leave it empty for the default."
        )
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise ModelsLabConfigError(f"The ModelsLab base URL has an invalid port: {exc}") from None
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ModelsLabConfigError(
            "The ModelsLab base URL must not contain credentials, a query or a fragment; "
            "the API key belongs in the connection's password field."
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)
def url_origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def resolve_endpoint(endpoint: str) -> tuple[str, str]:
    """Map an endpoint name (``text2video``, ``v7/text-to-video``, ...) to (version, path)."""
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ModelsLabConfigError(f"endpoint must be a non-empty string, got {endpoint!r}")
    given = endpoint.strip().strip("/").removeprefix("api/")
    name = given
    for prefix in ("v6/video/", "v6/", "v7/video-fusion/", "v7/", "video-fusion/", "video/"):
        if name.startswith(prefix) and name[len(prefix) :] in ENDPOINTS:
            name = name[len(prefix) :]
            break
    if name not in ENDPOINTS:
        known = ", ".join(sorted(ENDPOINTS))
        raise ModelsLabConfigError(
            f"Unknown ModelsLab video endpoint {endpoint!r}. Known endpoints: {known}."
        )
    if given.startswith(("v6/", "v7/")):
        wanted = given[:2]
        if ENDPOINTS[name][0] != wanted:
            raise ModelsLabConfigError(
                f"Endpoint {name!r} belongs to API {ENDPOINTS[name][0]}, not {wanted}."
            )
    return ENDPOINTS[name]


def normalise_request_id(value: Any) -> str:
    """Accept an int, an integral float or a string id; return it as a string (quirk Q1)."""
    if isinstance(value, bool) or value is None:
        raise ModelsLabConfigError(f"request_id must be a ModelsLab request id (an integer), got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ModelsLabConfigError(f"request_id must be an integer, got {value!r}")
        value = int(value)
    text = str(value).strip()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    if not _ID_RE.match(text):
        raise ModelsLabConfigError(
            f"request_id must be a ModelsLab request id such as 150000001, got {value!r}; if it comes "
            "from a template, check that the XCom it pulls exists."
        )
    return text


def _join(base_url: str, path: str) -> str:
    return f"{base_url}/{path}"


def build_submit(settings: ClientSettings, endpoint: str, payload: Mapping[str, Any]) -> ApiRequest:
    """A paid generation call: the payload is passed through unchanged, plus the key."""
    _, path = resolve_endpoint(endpoint)
    if not isinstance(payload, Mapping):
        raise ModelsLabConfigError(f"payload must be a dict of API parameters, got {type(payload).__name__}")
    secret = sorted(k for k in payload if str(k).lower() in SECRET_FIELDS)
    if secret:
        raise ModelsLabConfigError(
            f"payload must not contain {secret}: the API key comes from the Airflow connection only."
        )
    return ApiRequest(_join(settings.base_url, path), {**payload, "key": settings.api_key}, idempotent=False)


def build_fetch(
    settings: ClientSettings, request_id: Any, api_version: str = V6, fetch_url: str | None = None
) -> ApiRequest:
    """A free, read-only poll. ``fetch_url`` (the API's ``fetch_result``) is used only on our own origin."""
    if api_version not in API_VERSIONS:
        raise ModelsLabConfigError(f"api_version must be one of {API_VERSIONS}, got {api_version!r}")
    rid = normalise_request_id(request_id)
    url = _join(settings.base_url, FETCH_PATHS[api_version].format(id=rid))
    if fetch_url and documented_fetch_url(fetch_url, settings.base_url, rid):
        url = fetch_url
    return ApiRequest(url, {"key": settings.api_key})


def documented_fetch_url(url: str, base_url: str, request_id: str) -> bool:
    """True when ``url`` is a documented fetch path (v6 or v7 ``fetch/{id}``) of this request on our origin.

    Anything else (another path on the same host, a query, another request's id) is not where
    the key should go, so callers ignore it and poll the path they build themselves.
    """
    try:
        parts = urlsplit(url)
        if parts.query or parts.fragment or parts.username or not same_origin(url, base_url):
            return False
    except ValueError:
        return False
    base_path = urlsplit(base_url).path.rstrip("/")
    path = parts.path.rstrip("/")
    return any(path == f"{base_path}/{p.format(id=request_id)}" for p in FETCH_PATHS.values())


def build_wallet_balance(settings: ClientSettings) -> ApiRequest:
    return ApiRequest(_join(settings.base_url, WALLET_BALANCE_PATH), {"key": settings.api_key})


def time_left(deadline: float | None, now: float, settings: ClientSettings) -> float:
    """One attempt's timeout: the connection's, cut to what is left before ``deadline``."""
    if deadline is None:
        return settings.timeout
    remaining = deadline - now
    if remaining <= 0:
        raise ModelsLabTimeoutError("The wait's deadline passed before the call could be made.")
    return min(settings.timeout, remaining)


def same_origin(url: str, base_url: str) -> bool:
    try:
        return urlsplit(url).scheme in ("http", "https") and url_origin(url) == url_origin(base_url)
    except ValueError:
        return False


# --------------------------------------------------------------------------- response handling


def parse_response(status_code: int, body: bytes, *, retry_after_header: str | None = None) -> VideoResult:
    """Classify one HTTP response: a :class:`VideoResult`, or one of the typed errors."""
    data = decode_response(status_code, body, retry_after_header=retry_after_header)
    return normalise(data, status_code=status_code, retry_after_header=retry_after_header)


def decode_response(
    status_code: int, body: bytes, *, retry_after_header: str | None = None
) -> dict[str, Any]:
    """The JSON object of a response, or a typed error for rate limits, 5xx and unreadable bodies."""
    if status_code == 429:
        data = _loads(body)
        msg = _message(data) if isinstance(data, dict) else ""
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


def normalise_response(data: Mapping[str, Any], status_code: int) -> VideoResult:
    return normalise(data, status_code=status_code)


def scrub_secret(body: bytes, secret: str) -> bytes:
    """``body`` with the key replaced wherever it appears (also JSON-escaped).

    ModelsLab is not known to echo the key, but if a message, a URL or ``meta`` ever carried it,
    it would flow into results, error texts, logs and XCom; transports scrub every body first.
    """
    if not secret:
        return body
    for form in _secret_forms(secret):
        if form in body:
            body = body.replace(form, b"***")
    return body


@functools.lru_cache(maxsize=16)
def _secret_forms(secret: str) -> tuple[bytes, ...]:
    """The byte forms of ``secret`` a body may carry: as is, JSON-escaped, with escaped slashes."""
    return tuple({secret.encode(), json.dumps(secret)[1:-1].encode(), secret.replace("/", "\\/").encode()})


def redact_url(url: str) -> str:
    """A URL fit for a log line: scheme, host and path only."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"


def normalise(
    data: Mapping[str, Any], *, status_code: int = 200, retry_after_header: str | None = None
) -> VideoResult:
    """Turn one decoded JSON object into a :class:`VideoResult` (or raise a typed error)."""
    raw = data.get("status", data.get("state"))
    raw_status = raw.strip().lower() if isinstance(raw, str) else ""
    message = _message(data)
    failed = raw_status in _FAILED_WORDS or (400 <= status_code < 500)
    if failed and not _job_failure(raw_status, data, status_code):
        _raise_for_error(raw_status, message, data, status_code, retry_after_header)

    output = http_urls(data.get("output"))
    proxy = http_urls(data.get("proxy_links"))
    future = http_urls(data.get("future_links"))
    common: dict[str, Any] = {
        "raw_status": raw_status or "unknown",
        "request_id": _request_id(data),
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


def _job_failure(raw_status: str, data: Mapping[str, Any], status_code: int) -> bool:
    """A finished job's failure: ``failed`` (or another terminal word), or ``error`` naming the job.

    Such an answer is final whatever words its message contains ("rate limit", "refunded",
    "authentication"): the job is over. Only an ``error`` about the call itself (no job id) and
    HTTP 4xx answers go on to :func:`_raise_for_error`, whose keywords refine them.
    """
    if not 200 <= status_code < 300 or raw_status not in _FAILED_WORDS:
        return False
    return raw_status != "error" or _request_id(data) is not None


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


def _message(data: Mapping[str, Any]) -> str:
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


def http_url(value: Any) -> str | None:
    """``value`` as an http(s) URL with a host, or None: nothing else may reach XCom."""
    if isinstance(value, str):
        text = value.strip()
        if len(text) < 4096 and not _SPACE_RE.search(text):
            try:
                parts = urlsplit(text)
            except ValueError:
                return None
            if parts.scheme in ("http", "https") and parts.hostname:
                return text
    return None


def http_urls(value: Any) -> tuple[str, ...]:
    """Only http(s) URLs ever leave here (quirk Q3: ``output`` may be "", a string or a list)."""
    items = value if isinstance(value, list) else [value]
    seen: dict[str, None] = {}
    for item in items:
        url = http_url(item)
        if url:
            seen.setdefault(url)
    return tuple(seen)


def _request_id(data: Mapping[str, Any]) -> str | None:
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


def strip_secrets(value: Any) -> Any:
    """A copy of ``value`` without any field that looks like a credential, at any depth."""
    if isinstance(value, Mapping):
        return {
            str(k): strip_secrets(v) for k, v in value.items() if str(k).strip().lower() not in SECRET_FIELDS
        }
    if isinstance(value, list | tuple):
        return [strip_secrets(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def parse_balance(result_data: Mapping[str, Any], status_code: int = 200) -> Balance:
    """The wallet balance; a refusal (``status`` other than ``success``) raises its typed error."""
    raw = result_data.get("status")
    if status_code >= 400 or (raw is not None and str(raw).strip().lower() != "success"):
        normalise(result_data, status_code=status_code)  # bad key, rate limit, credits: typed errors
        message = _message(result_data) or "no message"
        raise ModelsLabRequestError(f"ModelsLab did not report a wallet balance (status {raw!r}): {message}")
    data = result_data.get("data")
    if isinstance(data, dict):
        return Balance(_number(data.get("balance")), str(data.get("currency") or "USD"))
    return Balance(_number(result_data.get("balance")), str(result_data.get("currency") or "USD"))
