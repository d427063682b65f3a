"""Copy generated videos from their short-lived output URLs to storage the user owns.

ModelsLab output URLs expire (temporary outputs are deleted after 24 hours) and can 404 for a few
seconds right after a job succeeds. :class:`ModelsLabStoreVideosOperator` streams each URL into an
Airflow ``ObjectStoragePath`` destination (``file://``, ``s3://``, ``gs://``, ... with the storage's
own connection) so the rest of a media pipeline works on files that stay.

How a file is written so that no half file is ever visible under its final name:

* local disk (``file://``): into a hidden ``.<name>.<token>.part`` file in the destination folder,
  then ``os.replace`` onto the final name (atomic on POSIX within one file system);
* object stores (``s3://``, ``gs://``, ...): to a hidden temporary key in the same folder, then the
  file system's move (a server-side copy of the complete object, then a delete). Writing straight
  to the final key is not safe everywhere: on an error, closing an fsspec file commits what was
  written so far, and not every file system can defer or discard an upload. The price is one
  server-side copy per file; a worker killed mid-copy can leave a ``.part`` key behind (an object
  store lifecycle rule on the ``<prefix>/.`` prefix cleans those up).

The ModelsLab API key is never involved: output URLs are public and are fetched with a plain
``requests`` session that carries no credentials of ours.

Sources are fetched from public addresses only: the host of every URL and of every redirect hop is
resolved and each address checked (loopback, link-local such as the cloud metadata address
169.254.169.254, private and reserved ranges are refused), so a URL list taken from an API answer
cannot make a worker read its own network. ``allow_private_hosts=True`` lifts this for one task;
URLs on the ModelsLab connection's own Base URL (e.g. the local simulator) are always allowed.
"""

from __future__ import annotations

import ast
import contextlib
import ipaddress
import mimetypes
import os
import posixpath
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote, urljoin, urlsplit

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseOperator

from modelslab_provider import __version__
from modelslab_provider.client.core import redact_url
from modelslab_provider.client.errors import ModelsLabRateLimitError, ModelsLabTransientError
from modelslab_provider.client.policy import RetryPolicy

if TYPE_CHECKING:
    import requests
    from airflow.providers.common.compat.sdk import Asset, Context, ObjectStoragePath

USER_AGENT = f"airflow-provider-modelslab/{__version__} (store-videos)"
DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_FILE_TIMEOUT = 1800.0
CHUNK_SIZE = 1024 * 1024
#: redirects followed per request; every hop's host is checked like the first
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: statuses worth another try: output files 403/404 for a few seconds after success (quirk Q5)
_RETRY_STATUSES = frozenset({403, 404, 408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
_EXT_RE = re.compile(r"^[a-z0-9]{1,8}$")
_KNOWN_TYPES = {"video/mp4": "mp4", "image/gif": "gif", "video/webm": "webm", "video/quicktime": "mov"}


class VideoDownloadError(ModelsLabTransientError):
    """One try at copying a file failed in a way another try may fix (HTTP status, short body)."""


@dataclass(frozen=True)
class StoredVideo:
    """What one copy produced; the operator pushes these as the ``files`` XCom."""

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


# ----- pure helpers (no I/O) ---------------------------------------------------------------------


def source_urls(value: Any) -> list[str]:
    """Normalise ``urls`` (a list, an XCom result, one URL, or a rendered list literal) to http(s) URLs.

    Every entry is checked before anything is downloaded, so a ``file://`` path or any other
    scheme smuggled into the list fails the task with nothing written.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise AirflowFailException(f"urls is not a URL or a list of URLs: {text[:200]!r}") from None
        else:
            value = [text] if text else []
    if value is None:
        value = []
    if not isinstance(value, Iterable) or isinstance(value, bytes | dict):
        raise AirflowFailException(f"urls must be a URL or a list of URLs, got {type(value).__name__}")
    flat: list[Any] = []
    for item in value:
        # a mapped upstream task gives one list per map index
        flat.extend(item if isinstance(item, list | tuple) else [item])
    urls = []
    for index, item in enumerate(flat):
        if not isinstance(item, str):
            raise AirflowFailException(f"urls[{index}] is a {type(item).__name__}, not a URL string")
        url = item.strip()
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            shown = url if len(url) < 120 else url[:117] + "..."
            raise AirflowFailException(
                f"urls[{index}] = {shown!r} is not an http(s) URL; only http and https sources are "
                "copied (local paths and other schemes are refused). Nothing was written."
            )
        urls.append(url)
    if not urls:
        raise AirflowFailException("There are no video URLs to store (urls is empty).")
    return urls


def check_destination_syntax(destination: Any) -> str:
    """Reject what can never be an object-storage folder, with a message that says what to write."""
    example = "e.g. 'file:///data/videos/' or 's3://my-bucket/videos/'"
    if not isinstance(destination, str) or not destination.strip():
        raise AirflowFailException(f"destination must be an object-storage URI ({example}).")
    text = destination.strip()
    match = _SCHEME_RE.match(text)
    if match is None:
        raise AirflowFailException(
            f"destination {text!r} is not an object-storage URI: it needs a scheme ({example})."
        )
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        raise AirflowFailException(
            f"destination {text!r} is a web URL; http(s) is a source here, not a place to write to "
            f"({example})."
        )
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise AirflowFailException(
                f"destination {text!r} is not an absolute file URI; write file:///absolute/path/ "
                "(three slashes)."
            )
    return text


def file_name(request_id: str | None, index: int, url: str, content_type: str | None) -> str:
    """``<request_id>_<index>.<ext>``, stable across tries so a retry overwrites its own files.

    Without a request id the name is the URL's file name plus a short hash of the whole URL
    (``abc-1f2e3d4c.mp4``): just as stable, and two sources that end in the same file name (an
    output and its proxy link, or two hosts) never share a file. A URL without a file name is
    named by its hash alone. The extension comes from the URL, else the Content-Type, else ``bin``.
    """
    path = unquote(urlsplit(url).path)
    base = posixpath.basename(path)
    stem, dot, ext = base.rpartition(".")
    ext = ext.lower() if dot and _EXT_RE.match(ext.lower()) else ""
    if not dot:
        stem = base
    if not ext and content_type:
        mime = content_type.split(";", 1)[0].strip().lower()
        guessed = _KNOWN_TYPES.get(mime) or (mimetypes.guess_extension(mime) or "").lstrip(".")
        ext = guessed if _EXT_RE.match(guessed) else ""
    ext = ext or "bin"
    if request_id:
        prefix = f"{_safe(str(request_id))}_{index}"
    else:
        safe_stem = _safe(stem)[:100]
        prefix = f"{safe_stem}-{_url_digest(url)[:8]}" if safe_stem else _url_digest(url)
    return f"{prefix}.{ext}"


def _safe(text: str) -> str:
    return _SAFE_NAME_RE.sub("-", text).strip(".-")[:150]


def _url_digest(url: str) -> str:
    import hashlib

    return hashlib.sha256(url.split("#", 1)[0].encode()).hexdigest()[:16]


def _describe(exc: BaseException) -> str:
    """One line about a transport error, without query strings (signed URLs stay out of logs)."""
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    text = re.sub(r"\?\S*", "?...", text)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ----- which hosts may be fetched -----------------------------------------------------------------


def address_problem(address: str) -> str | None:
    """Why an IP address is not a public internet address (``None`` when it is one).

    IPv4 addresses embedded in IPv6 (``::ffff:127.0.0.1``, 6to4) are judged as the IPv4 address
    they reach.
    """
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            ip = embedded
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal is its own single address)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the scheme's default port filled in; ``None`` if unusable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme not in ("http", "https"):
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


# ----- writers: atomic at the final name -----------------------------------------------------------


class _Writer:
    """Write one file under a hidden temporary name next to it, then move it onto its final name.

    Local disk: ``os.replace`` (atomic within one file system). Object stores: the file system's
    move, a server-side copy of a complete object then a delete; a copy appears whole or not
    at all. The final name thus only ever holds a previous complete copy or the new one.
    """

    def __init__(self, target: ObjectStoragePath) -> None:
        from fsspec.implementations.local import LocalFileSystem

        self.target = target
        self.fs = target.fs
        self.local = isinstance(self.fs, LocalFileSystem)
        final = target.path
        folder = posixpath.dirname(final)
        self.tmp = posixpath.join(folder, f".{posixpath.basename(final)}.{secrets.token_hex(4)}.part")
        self._fh: BinaryIO | None = None

    def open(self) -> BinaryIO:
        if self.local:
            os.makedirs(posixpath.dirname(self.tmp), exist_ok=True)
            self._fh = open(self.tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        else:
            # no makedirs: on object stores it would try to create the bucket
            self._fh = self.fs.open(self.tmp, "wb")
        assert self._fh is not None
        return self._fh

    def commit(self) -> None:
        assert self._fh is not None
        self._fh.close()
        if self.local:
            os.replace(self.tmp, self.target.path)
        else:
            self.fs.mv(self.tmp, self.target.path)

    def abort(self) -> None:
        """Drop the temporary file; never raises, so the original error is the one reported."""
        fh, self._fh = self._fh, None
        try:
            if fh is not None:
                fh.close()
        except Exception:  # noqa: S110 - best effort; only the temporary name was written
            pass
        try:
            if self.local:
                os.remove(self.tmp)
            elif self.fs.exists(self.tmp):
                self.fs.rm(self.tmp)
        except Exception:  # noqa: S110 - best effort, as above
            pass


# ----- the operator --------------------------------------------------------------------------------


class ModelsLabStoreVideosOperator(BaseOperator):
    """Copy output videos (http(s) URLs, e.g. a generating task's XCom) into an object-storage folder.

    Each URL is streamed to ``<destination>/<request_id>_<index>.<ext>``; the early 404/403, 429,
    5xx and connection errors are retried with capped, jittered backoff; the byte count is checked
    against ``Content-Length``; ``max_bytes`` guards the disk and ``file_timeout`` the clock. Only
    public hosts are fetched (see the module docstring). Returns the stored URIs (XCom
    ``return_value``) and pushes details (source, uri, bytes, content type) as XCom ``files``; each
    copy is reported to Airflow's hook lineage collector (source URL in, stored file out).

    :param urls: URLs to copy: a list, an XComArg such as ``generate.output``, one URL, or a
        rendered list. Mapped upstream results (a list of lists) are flattened; a URL listed twice
        is copied once. Templated.
    :param destination: folder URI understood by Airflow's ``ObjectStoragePath``, e.g.
        ``file:///data/videos/`` or ``s3://bucket/prefix/``. Templated.
    :param destination_conn_id: Airflow connection of the storage (e.g. an ``aws`` connection for
        ``s3://``); same as writing ``s3://<conn_id>@bucket/prefix/``. Templated.
    :param request_id: ModelsLab request id used to name the files, so a retry overwrites rather
        than duplicates. Without it names come from the URLs (file name plus a hash of the URL).
        Templated.
    :param max_bytes: refuse a file larger than this (checked against ``Content-Length`` before
        writing and again while streaming); ``None`` for no limit.
    :param asset: an ``Asset`` (or its URI) to add to the task's outlets; each run's asset event
        carries the stored URIs in its ``extra`` so downstream DAGs can schedule on new videos.
    :param download_attempts: tries per file within one task try.
    :param retry_initial_delay: first backoff in seconds (it doubles, capped by ``retry_max_delay``).
    :param http_timeout: seconds to wait for the server to send a response or the next chunk.
    :param file_timeout: seconds one file may take overall, its tries and the pauses between them
        included; ``None`` for no limit. A file still unfinished then fails the task (Airflow
        ``retries`` apply).
    :param allow_private_hosts: also fetch from loopback, private, link-local and reserved
        addresses. Off by default so a URL or redirect cannot reach the worker's own network.
    :param modelslab_conn_id: the ModelsLab connection whose Base URL counts as trusted: sources on
        exactly that origin (e.g. the local simulator on 127.0.0.1) are fetched even when private.
        Only its host is read, never its key; ``None`` trusts no origin.
    """

    template_fields: Sequence[str] = ("urls", "destination", "destination_conn_id", "request_id")
    ui_color = "#e8f4f0"

    def __init__(
        self,
        *,
        urls: Any,
        destination: str,
        destination_conn_id: str | None = None,
        request_id: str | None = None,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        asset: Asset | str | None = None,
        download_attempts: int = 6,
        retry_initial_delay: float = 2.0,
        retry_max_delay: float = 30.0,
        http_timeout: float = 60.0,
        file_timeout: float | None = DEFAULT_FILE_TIMEOUT,
        allow_private_hosts: bool = False,
        modelslab_conn_id: str | None = "modelslab_default",
        **kwargs: Any,
    ) -> None:
        if asset is not None:
            asset = _as_asset(asset)
            kwargs["outlets"] = [*_as_list(kwargs.get("outlets")), asset]
        super().__init__(**kwargs)
        if isinstance(destination, str) and "{{" not in destination and "{%" not in destination:
            check_destination_syntax(destination)  # a literal typo fails at parse time
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError("max_bytes must be a positive number of bytes or None")
        if download_attempts < 1:
            raise ValueError("download_attempts must be at least 1")
        if file_timeout is not None and not file_timeout > 0:
            raise ValueError("file_timeout must be a positive number of seconds or None")
        self.urls = urls
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.request_id = request_id
        self.max_bytes = max_bytes
        self.asset = asset
        self.download_attempts = download_attempts
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay
        self.http_timeout = http_timeout
        self.file_timeout = file_timeout
        self.allow_private_hosts = allow_private_hosts
        self.modelslab_conn_id = modelslab_conn_id
        self._trusted: tuple[str, str, int] | bool | None = False  # False: not looked up yet

    # ----- execute -------------------------------------------------------------------------------

    def execute(self, context: Context) -> list[str]:
        listed = source_urls(self.urls)
        urls = list(dict.fromkeys(listed))  # one copy per distinct URL, in the order given
        if len(urls) < len(listed):
            self.log.info("%d repeated URL(s) in urls; each URL is copied once", len(listed) - len(urls))
        folder = self.destination_path()
        # a template pulling a missing XCom renders "None": name the files from their URLs then
        rendered = str(self.request_id).strip() if self.request_id is not None else ""
        request_id = rendered if rendered not in ("", "None") else None
        policy = RetryPolicy(
            max_attempts=self.download_attempts,
            initial_delay=self.retry_initial_delay,
            max_delay=self.retry_max_delay,
            max_retry_after=max(self.retry_max_delay, 1.0),
        )
        import requests

        from modelslab_provider.lineage import report_copy

        stored: list[StoredVideo] = []
        taken: set[str] = set()
        with requests.Session() as session:
            session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
            for index, url in enumerate(urls):
                item = self._copy_with_retries(session, policy, url, index, request_id, folder, taken)
                stored.append(item)
                report_copy(item.source, item.uri, folder)
        uris = [item.uri for item in stored]
        if self.do_xcom_push:
            context["ti"].xcom_push(key="files", value=[item.to_dict() for item in stored])
        if self.asset is not None:
            extra: dict[str, Any] = {
                "uris": uris,
                "request_id": request_id,
                "bytes": sum(item.bytes for item in stored),
            }
            context["outlet_events"][self.asset].extra = extra
        return uris

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def destination_path(self) -> ObjectStoragePath:
        """The rendered destination as an ``ObjectStoragePath`` whose file system is usable."""
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        text = check_destination_syntax(self.destination)
        conn_id = self.destination_conn_id or None
        try:
            path = ObjectStoragePath(text, conn_id=conn_id) if conn_id else ObjectStoragePath(text)
        except (ValueError, TypeError) as exc:
            raise AirflowFailException(
                f"destination {text!r} is not a usable object-storage URI: {exc}"
            ) from None
        try:
            path.fs  # noqa: B018 - resolves the file system (and its connection) before any download
        except (ValueError, ImportError) as exc:
            raise AirflowFailException(
                f"destination {text!r}: no file system for {path.protocol}:// ({exc}). Install the "
                "package that provides it on every worker (e.g. apache-airflow-providers-amazon[s3fs] "
                "for s3://, apache-airflow-providers-google for gs://) and check the connection id."
            ) from None
        return path

    # ----- which hosts may be fetched ------------------------------------------------------------

    def _trusted_origin(self) -> tuple[str, str, int] | None:
        """The ModelsLab connection's Base URL origin, looked up once and only when needed."""
        if self._trusted is False:
            self._trusted = None
            if self.modelslab_conn_id:
                try:
                    from modelslab_provider.hooks.modelslab import ModelsLabHook

                    hook = ModelsLabHook(modelslab_conn_id=self.modelslab_conn_id)
                    self._trusted = _origin(hook.get_client_settings().base_url)
                except Exception as exc:  # a missing or broken connection just trusts nothing
                    self.log.debug("No trusted ModelsLab origin (%s)", type(exc).__name__)
        return self._trusted if isinstance(self._trusted, tuple) else None

    def _check_host(self, url: str, source: str) -> None:
        """Refuse ``url`` unless every address its host resolves to is public (or it is allowed)."""
        if self.allow_private_hosts:
            return
        origin = _origin(url)
        if origin is None:
            raise AirflowFailException(
                f"Could not copy {redact_url(source)}: {redact_url(url)} is not an http(s) URL."
            )
        host, port = origin[1], origin[2]
        try:
            addresses = resolve_host(host, port)
        except (OSError, UnicodeError) as exc:
            if _proxied(url):
                # behind an HTTP proxy the proxy resolves names, and the worker may not be able to
                # (its egress is the proxy's to control); an IP literal needs no lookup, never gets here
                return
            raise VideoDownloadError(f"could not resolve {host}: {_describe(exc)}") from None
        for address in addresses:
            problem = address_problem(address)
            if problem is not None and origin != self._trusted_origin():
                raise self._refusal(url, source, host, address, problem)

    def _check_peer(self, response: requests.Response, url: str, source: str) -> None:
        """Check the address actually connected to (a DNS answer may change between two lookups)."""
        if self.allow_private_hosts or _proxied(url):
            return  # through a proxy the peer is the proxy, not the source
        sock = _socket_of(response)
        try:
            peer = str(sock.getpeername()[0]) if sock is not None else None
        except OSError:
            peer = None
        problem = address_problem(peer) if peer else None
        if peer and problem is not None and _origin(url) != self._trusted_origin():
            response.close()
            raise self._refusal(url, source, urlsplit(url).hostname or "?", peer, problem)

    def _refusal(self, url: str, source: str, host: str, address: str, problem: str) -> AirflowFailException:
        via = "" if url == source else f" (a redirect from {redact_url(source)})"
        where = " where cloud metadata services live" if problem == "link-local" else ""
        return AirflowFailException(
            f"Refused to fetch {redact_url(url)}{via}: host {host!r} is at {address}, a {problem} "
            f"address{where}, not a public internet address. Sources and every redirect hop must be public "
            "hosts, so that a URL cannot reach the worker's own network. If you trust this host, "
            "set allow_private_hosts=True on the task. Nothing was written."
        )

    # ----- copying -------------------------------------------------------------------------------

    def _copy_with_retries(
        self,
        session: requests.Session,
        policy: RetryPolicy,
        url: str,
        index: int,
        request_id: str | None,
        folder: ObjectStoragePath,
        taken: set[str],
    ) -> StoredVideo:
        deadline = None if self.file_timeout is None else time.monotonic() + self.file_timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._copy_once(session, url, index, request_id, folder, taken, deadline)
            except ModelsLabTransientError as exc:
                delay = policy.delay(attempt, exc, idempotent=True, jitter=random.random())  # noqa: S311
                if delay is None:
                    raise AirflowException(
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
                    self.download_attempts,
                    exc,
                    delay,
                )
                self._sleep(delay)

    def _timed_out(self, url: str, detail: str) -> AirflowException:
        return AirflowException(
            f"Copy of {redact_url(url)} did not finish within file_timeout={self.file_timeout:g} s "
            f"({detail}). Raise file_timeout for very large files or slow links (None: no limit); "
            "the task's retries apply. The partial copy was removed."
        )

    def _timeouts(self, url: str, deadline: float | None) -> tuple[float, float]:
        """(connect, read) timeouts for one request, never past the file's deadline."""
        connect, read = min(10.0, self.http_timeout), self.http_timeout
        if deadline is None:
            return connect, read
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._timed_out(url, "no time left for another request")
        return min(connect, left), min(read, left)

    def _open(self, session: requests.Session, url: str, deadline: float | None) -> requests.Response:
        """GET ``url``, following up to MAX_REDIRECTS redirects by hand so each hop's host is checked."""
        import requests

        shown = redact_url(url)
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            self._check_host(current, url)
            try:
                response = session.get(
                    current, stream=True, allow_redirects=False, timeout=self._timeouts(url, deadline)
                )
            except (requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL) as exc:
                raise AirflowFailException(f"Could not copy {shown}: {_describe(exc)}") from None
            except requests.RequestException as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    raise self._timed_out(url, _describe(exc)) from None
                raise VideoDownloadError(_describe(exc)) from None
            self._check_peer(response, current, url)
            if response.status_code not in _REDIRECT_STATUSES:
                return response
            location = response.headers.get("Location", "").strip()
            response.close()
            if not location:
                raise AirflowFailException(
                    f"Could not copy {shown}: HTTP {response.status_code} redirect without a Location."
                )
            target = urljoin(current, location)
            scheme = urlsplit(target).scheme.lower()
            if scheme not in ("http", "https"):
                raise AirflowFailException(
                    f"Could not copy {shown}: it redirects to a {scheme or 'relative'}: location, and only "
                    "http and https sources are copied. Nothing was written."
                )
            current = target
        raise AirflowFailException(f"Could not copy {shown}: more than {MAX_REDIRECTS} redirects.")

    def _copy_once(
        self,
        session: requests.Session,
        url: str,
        index: int,
        request_id: str | None,
        folder: ObjectStoragePath,
        taken: set[str],
        deadline: float | None = None,
    ) -> StoredVideo:
        import requests

        shown = redact_url(url)
        response = self._open(session, url, deadline)
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
                raise AirflowFailException(
                    f"Could not copy {shown}: HTTP {status}; another try will not help."
                )
            expected = _content_length(response)
            if self.max_bytes is not None and expected is not None and expected > self.max_bytes:
                raise AirflowFailException(
                    f"{shown} is {expected} bytes, more than max_bytes={self.max_bytes}; nothing was written."
                )
            content_type = response.headers.get("Content-Type")
            name = _unique_name(file_name(request_id, index, url, content_type), index, taken)
            target = folder / name
            writer = _Writer(target)
            watchdog = _Watchdog(response, deadline)
            written = 0
            try:
                sink = writer.open()
                for chunk in response.iter_content(chunk_size=CHUNK_SIZE):
                    if not chunk:
                        continue
                    written += len(chunk)
                    if self.max_bytes is not None and written > self.max_bytes:
                        raise AirflowFailException(
                            f"{shown} is larger than max_bytes={self.max_bytes}; the partial copy was "
                            "removed."
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
                    raise VideoDownloadError(_describe(exc)) from None
                raise
        taken.add(name)
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
        sock = _socket_of(self._response)
        if sock is not None:
            # the plain socket's shutdown (an SSL socket's own would touch its TLS state)
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket a streamed response is read from, if urllib3 still holds it."""
    raw = getattr(response, "raw", None)
    for path in (("connection", "sock"), ("_connection", "sock"), ("_fp", "fp", "raw", "_sock")):
        value: Any = raw
        for attribute in path:
            value = getattr(value, attribute, None)
        if isinstance(value, socket.socket):
            return value
    return None


def _proxied(url: str) -> bool:
    """Whether requests sends ``url`` through a proxy from the environment (``HTTPS_PROXY``, ...)."""
    from requests.utils import get_environ_proxies

    try:
        proxies = get_environ_proxies(url)
    except Exception:
        return False
    scheme = urlsplit(url).scheme.lower()
    return bool(proxies.get(scheme) or proxies.get("all"))


def _unique_name(name: str, index: int, taken: set[str]) -> str:
    """``name``, or ``<stem>_<index>.<ext>`` when an earlier file of this run already has it."""
    if name not in taken:
        return name
    stem, dot, ext = name.rpartition(".")
    return f"{stem}_{index}.{ext}" if dot else f"{name}_{index}"


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


def _as_asset(value: Asset | str) -> Asset:
    from airflow.providers.common.compat.sdk import Asset

    return value if isinstance(value, Asset) else Asset(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple | set) else [value]
