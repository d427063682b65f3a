"""The pure client core: endpoints, settings, result types, URL rules and request building.

Nothing here does I/O, sleeps or imports Airflow. A call goes: build the request here
(:func:`build_submit`, :func:`build_fetch`, :func:`build_wallet_balance`; the batch builders in
:mod:`~modelslab_provider.client.batch`), assembled with its parser by
:class:`~modelslab_provider.client.calls.BaseClient`; the transport (``sync.py`` on ``requests``,
``aio.py`` on ``aiohttp``) sends it, the sync one cutting each attempt to the wait's deadline with
:func:`time_left`, and hands the answer to :func:`~modelslab_provider.client.responses.read_answer`
(key scrubbed, typed errors) and the parser
(:func:`~modelslab_provider.client.responses.normalise_response` and friends); between attempts
it waits what :func:`~modelslab_provider.client.policy.retry_delay` says. Every quirk of the API
(the quirk table in the project's API reference) is handled once, here or in ``responses.py``.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import json
import re
from base64 import b64encode, urlsafe_b64encode
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from modelslab_provider.client.errors import ModelsLabConfigError, ModelsLabTimeoutError

DEFAULT_BASE_URL = "https://modelslab.com"
#: the Airflow connection id every hook, sensor, trigger and operator uses by default
DEFAULT_CONN_ID = "modelslab_default"
DEFAULT_TIMEOUT = 30.0
#: the User-Agent of every call to the API, from both transports
USER_AGENT = "airflow-provider-modelslab"

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


# --------------------------------------------------------------------------- URLs


def normalise_base_url(value: str | None) -> str:
    """Turn a connection host into a base URL; a scheme and port given in it are kept.

    Without a scheme, ``https`` is assumed, except for loopback hosts (the local simulator),
    which get ``http``.
    """
    raw = (value or "").strip() or DEFAULT_BASE_URL
    if "://" not in raw:
        host = raw.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        raw = ("http://" if is_loopback(host) else "https://") + raw
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


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (the local simulator's hosts)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)
def url_origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``url``, the port filled in from the scheme."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def same_origin(url: str, base_url: str) -> bool:
    """True when ``url`` is http(s) on the same scheme, host and port as ``base_url``."""
    try:
        return urlsplit(url).scheme in ("http", "https") and url_origin(url) == url_origin(base_url)
    except ValueError:
        return False


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


def redact_url(url: str) -> str:
    """A URL fit for a log line: scheme, host and path only."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"


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


# --------------------------------------------------------------------------- requests


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


def build_wallet_balance(settings: ClientSettings) -> ApiRequest:
    """The free wallet-balance call."""
    return ApiRequest(_join(settings.base_url, WALLET_BALANCE_PATH), {"key": settings.api_key})


def time_left(deadline: float | None, now: float, settings: ClientSettings) -> float:
    """One attempt's timeout: the connection's, cut to what is left before ``deadline``."""
    if deadline is None:
        return settings.timeout
    remaining = deadline - now
    if remaining <= 0:
        raise ModelsLabTimeoutError("The wait's deadline passed before the call could be made.")
    return min(settings.timeout, remaining)


# --------------------------------------------------------------------------- secrets


def scrub_secret(body: bytes, secret: str) -> bytes:
    """``body`` with the key replaced wherever it appears, in every encoding a server could echo.

    ModelsLab is not known to echo the key, but if a message, a URL or ``meta`` ever carried it,
    it would flow into results, error texts, logs and XCom; transports scrub every body first.
    The forms are those of :func:`_secret_forms`: raw, JSON-escaped, URL-encoded and base64.
    """
    if not secret:
        return body
    for form in _secret_forms(secret):
        if form in body:
            body = body.replace(form, b"***")
    return body


def scrub_text(text: str, secret: str | None) -> str:
    """``text`` (a message, an event, a log line) with the key scrubbed as :func:`scrub_secret` does."""
    if not secret:
        return text
    return scrub_secret(text.encode("utf-8", "surrogatepass"), secret).decode("utf-8", "surrogatepass")


#: base64 forms are added only for keys this long: a short key's base64 text could match by chance
_MIN_BASE64_KEY = 12


@functools.lru_cache(maxsize=16)
def _secret_forms(secret: str) -> tuple[bytes, ...]:
    """The byte forms of ``secret`` a body may carry, longest first.

    As is; JSON-escaped (``\\uXXXX`` or not, slashes escaped or not); URL-encoded the ways ``quote`` and
    ``quote_plus`` write it, with upper- and lower-case hex digits; and base64 (standard and URL-safe)
    at each of the three byte offsets the key can start at inside a longer encoded text: the
    characters that depend on the key's bits alone, which appear wherever the key was encoded.
    """
    forms = {secret}
    for escaped in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
        forms.update((escaped, escaped.replace("/", "\\/")))
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret), quote_plus(secret, safe="/")):
        forms.add(encoded)
        forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded))
    raw = secret.encode()
    found = {form.encode() for form in forms}
    if len(raw) >= _MIN_BASE64_KEY:
        for offset in range(3):
            start, end = -(-8 * offset // 6), (8 * offset + 8 * len(raw)) // 6
            for encode in (b64encode, urlsafe_b64encode):
                found.add(encode(b"\0" * offset + raw)[start:end])
    return tuple(sorted(found, key=len, reverse=True))


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
