"""Stream URLs into files of one folder: redirects checked hop by hop, retries, size and time limits.

Output URLs are public, so they are fetched with a plain ``requests`` session that carries no
credentials of ours. A try that may work next time (an early 404/403, 429, 5xx, a dropped or
short body) is repeated with the capped, jittered backoff of a
:class:`~modelslab_provider.client.policy.RetryPolicy`; ``file_timeout`` bounds a file's tries and
pauses together, and a watchdog closes a body that keeps trickling in past it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from modelslab_provider import __version__
from modelslab_provider.client.core import redact_url
from modelslab_provider.client.errors import ModelsLabRateLimitError, ModelsLabTransientError
from modelslab_provider.client.policy import RetryPolicy
from modelslab_provider.download.errors import (
    DownloadGaveUp,
    DownloadRefused,
    VideoDownloadError,
    describe,
)
from modelslab_provider.download.hosts import HostGuard, env_proxy, socket_of
from modelslab_provider.download.names import file_name, unique_name
from modelslab_provider.download.writer import AtomicWriter, StoragePath

if TYPE_CHECKING:
    import requests

USER_AGENT = f"airflow-provider-modelslab/{__version__} (store-videos)"
DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_FILE_TIMEOUT = 1800.0
CHUNK_SIZE = 1024 * 1024
#: redirects followed per request; every hop's host is checked like the first
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: statuses worth another try: output files 403/404 for a few seconds after success (quirk Q5)
_RETRY_STATUSES = frozenset({403, 404, 408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredVideo:
    """What one copy produced; the store operator pushes these as the ``files`` XCom."""

    source: str
    uri: str
    bytes: int
    content_type: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": redact_url(self.source),
            "uri": self.uri,
            "bytes": self.bytes,
            "content_type": self.content_type,
        }


@dataclass(frozen=True)
class CopyLimits:
    """Per-file limits: bytes (``None``: none), seconds per read, seconds overall (``None``: none)."""

    max_bytes: int | None = DEFAULT_MAX_BYTES
    http_timeout: float = 60.0
    file_timeout: float | None = DEFAULT_FILE_TIMEOUT


@dataclass
class Copier:
    """Copy URLs into ``folder`` over one credential-free HTTP session; use it as a context manager.

    Files are named by :func:`~.names.file_name` (``request_id`` keeps the names stable, so a retry
    of the task overwrites its own files) and never share a name within one copier.
    """

    folder: StoragePath
    request_id: str | None = None
    limits: CopyLimits = field(default_factory=CopyLimits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    guard: HostGuard = field(default_factory=HostGuard)
    #: send requests through the proxy named by ``HTTP(S)_PROXY``/``NO_PROXY``; the proxy then
    #: resolves names and decides which addresses are reached (off: proxy variables are ignored)
    use_env_proxies: bool = False
    #: the task's own logger (stdlib or structlog: anything with ``info`` and ``warning``)
    log: Any = _log
    sleep: Callable[[float], None] = time.sleep
    taken: set[str] = field(default_factory=set)
    _session: requests.Session | None = field(default=None, init=False, repr=False)
    _adapter: Any = field(default=None, init=False, repr=False)

    def __enter__(self) -> Copier:
        import requests

        from modelslab_provider.download.pinning import PinnedAdapter

        session = requests.Session()
        # no proxy, .netrc or CA variables read behind our back: proxies are opt-in (use_env_proxies),
        # a CA bundle named by the environment is still honoured
        session.trust_env = False
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        self._adapter = PinnedAdapter()
        session.mount("http://", self._adapter)
        session.mount("https://", self._adapter)
        self._session = session
        return self

    def mode(self) -> str:
        """How requests reach their hosts, for the task log."""
        if self.use_env_proxies:
            return (
                "through the proxy named by HTTP(S)_PROXY/NO_PROXY where one applies (the proxy resolves "
                "names and decides which addresses are reached; hosts it cannot see are not checked here)"
            )
        return "directly, to checked addresses only (proxy environment variables are ignored)"

    def __exit__(self, *exc_info: object) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def copy(self, url: str, index: int) -> StoredVideo:
        """Copy ``url`` as the ``index``-th file, repeating tries that may work next time."""
        deadline = None if self.limits.file_timeout is None else time.monotonic() + self.limits.file_timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._copy_once(url, index, deadline)
            except ModelsLabTransientError as exc:
                delay = self.retry.delay(attempt, exc, idempotent=True, jitter=random.random())  # noqa: S311
                if delay is None:
                    raise DownloadGaveUp(
                        f"Could not copy {redact_url(url)} after {attempt} attempt(s): {exc}. ModelsLab "
                        "output URLs may 404 for a few seconds after a job succeeds and expire after "
                        "24 hours (temporary outputs)."
                    ) from None
                if deadline is not None and time.monotonic() + delay >= deadline:
                    raise self._timed_out(url, f"after {attempt} attempt(s), the last: {exc}") from None
                self.log.warning(
                    "Copy of %s failed (attempt %d of %d): %s; retrying in %.1f s",
                    redact_url(url),
                    attempt,
                    self.retry.max_attempts,
                    exc,
                    delay,
                )
                self.sleep(delay)

    def _timed_out(self, url: str, detail: str) -> DownloadGaveUp:
        return DownloadGaveUp(
            f"Copy of {redact_url(url)} did not finish within file_timeout={self.limits.file_timeout:g} s "
            f"({detail}). Raise file_timeout for very large files or slow links (None: no limit); "
            "the task's retries apply. The partial copy was removed."
        )

    def _timeouts(self, url: str, deadline: float | None) -> tuple[float, float]:
        """(connect, read) timeouts for one request, never past the file's deadline."""
        connect, read = min(10.0, self.limits.http_timeout), self.limits.http_timeout
        if deadline is None:
            return connect, read
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._timed_out(url, "no time left for another request")
        return min(connect, left), min(read, left)

    def _open(self, url: str, deadline: float | None) -> requests.Response:
        """GET ``url``, following up to MAX_REDIRECTS redirects by hand so each hop's host is checked."""
        if self._session is None:
            raise RuntimeError("use the Copier as a context manager: `with Copier(...) as copier:`")
        shown = redact_url(url)
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            response = self._send(current, url, deadline)
            if response.status_code not in _REDIRECT_STATUSES:
                return response
            location = response.headers.get("Location", "").strip()
            response.close()
            if not location:
                raise DownloadRefused(
                    f"Could not copy {shown}: HTTP {response.status_code} redirect without a Location."
                )
            target = urljoin(current, location)
            scheme = urlsplit(target).scheme.lower()
            if scheme not in ("http", "https"):
                raise DownloadRefused(
                    f"Could not copy {shown}: it redirects to a {scheme or 'relative'}: location, and only "
                    "http and https sources are copied. Nothing was written."
                )
            current = target
        raise DownloadRefused(f"Could not copy {shown}: more than {MAX_REDIRECTS} redirects.")

    def _send(self, current: str, url: str, deadline: float | None) -> requests.Response:
        """One GET of one hop: checked, then sent to the checked address (or to the opted-in proxy)."""
        import requests

        assert self._session is not None
        try:
            prepared = self._session.prepare_request(requests.Request("GET", current))
        except (requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL, ValueError) as exc:
            raise DownloadRefused(f"Could not copy {redact_url(url)}: {describe(exc)}") from None
        target = prepared.url or ""
        proxy = env_proxy(target) if self.use_env_proxies else None
        if proxy:
            self.guard.check_proxied(target, url)
            self._adapter.pin = None
            proxies = {urlsplit(target).scheme.lower(): proxy}
        else:
            pin = self.guard.pin(target, url)
            self._adapter.pin = pin
            host = f"[{pin.host}]" if ":" in pin.host else pin.host
            default = 443 if pin.scheme == "https" else 80
            prepared.headers["Host"] = host if pin.port == default else f"{host}:{pin.port}"
            proxies = {}
        try:
            return self._session.send(
                prepared,
                stream=True,
                allow_redirects=False,
                timeout=self._timeouts(url, deadline),
                proxies=proxies,
                verify=self._session.verify,
            )
        except (requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL) as exc:
            raise DownloadRefused(f"Could not copy {redact_url(url)}: {describe(exc)}") from None
        except requests.RequestException as exc:
            if deadline is not None and time.monotonic() >= deadline:
                raise self._timed_out(url, describe(exc)) from None
            raise VideoDownloadError(describe(exc)) from None
        finally:
            self._adapter.pin = None

    def _copy_once(self, url: str, index: int, deadline: float | None = None) -> StoredVideo:
        import requests

        shown = redact_url(url)
        max_bytes = self.limits.max_bytes
        response = self._open(url, deadline)
        with response:
            status = response.status_code
            if status != 200:
                if status == 429:
                    raise ModelsLabRateLimitError(
                        f"HTTP 429 from {shown}",
                        retry_after=_retry_after(response.headers.get("Retry-After")),
                        status_code=status,
                    )
                if status in _RETRY_STATUSES:
                    raise VideoDownloadError(f"HTTP {status} from {shown}", status_code=status)
                raise DownloadRefused(f"Could not copy {shown}: HTTP {status}; another try will not help.")
            expected = _content_length(response)
            if max_bytes is not None and expected is not None and expected > max_bytes:
                raise DownloadRefused(
                    f"{shown} is {expected} bytes, more than max_bytes={max_bytes}; nothing was written."
                )
            content_type = response.headers.get("Content-Type")
            name = unique_name(file_name(self.request_id, index, url, content_type), index, self.taken)
            target = self.folder / name
            writer = AtomicWriter(target)
            watchdog = _Watchdog(response, deadline)
            written = 0
            try:
                sink = writer.open()
                for chunk in response.iter_content(chunk_size=CHUNK_SIZE):
                    if not chunk:
                        continue
                    written += len(chunk)
                    if max_bytes is not None and written > max_bytes:
                        raise DownloadRefused(
                            f"{shown} is larger than max_bytes={max_bytes}; the partial copy was removed."
                        )
                    sink.write(chunk)
                    if deadline is not None and time.monotonic() >= deadline:
                        raise self._timed_out(url, f"{written} bytes received")
                if expected is not None and written != expected:
                    raise VideoDownloadError(
                        f"{shown} sent {written} of the {expected} bytes in its Content-Length"
                    )
                if written == 0:
                    raise VideoDownloadError(f"{shown} sent an empty body")
                watchdog.cancel()
                writer.commit()
            except BaseException as exc:
                watchdog.cancel()
                writer.abort()
                if watchdog.fired:
                    raise self._timed_out(url, f"{written} bytes received") from None
                if isinstance(exc, requests.RequestException):
                    raise VideoDownloadError(describe(exc)) from None
                raise
        self.taken.add(name)
        uri = str(target)
        self.log.info("Stored %s (%d bytes) at %s", shown, written, uri)
        return StoredVideo(source=url, uri=uri, bytes=written, content_type=content_type)


class _Watchdog:
    """Shut the response's socket at the file's deadline, so a body that trickles in cannot
    outlive ``file_timeout`` (a per-read timeout alone never fires while bytes keep coming)."""

    def __init__(self, response: requests.Response, deadline: float | None) -> None:
        self.fired = False
        self._response = response
        self._timer: threading.Timer | None = None
        if deadline is not None:
            self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        sock = socket_of(self._response)
        if sock is not None:
            # the plain socket's shutdown (an SSL socket's own would touch its TLS state)
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _content_length(response: requests.Response) -> int | None:
    """The body size to expect, or None when the header is absent, unusable or for an encoded body."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return None
    try:
        value = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None
